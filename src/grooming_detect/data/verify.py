"""Check a PAN-2012 download against the published checksums and figures.

Used by the data stage (the result goes into the manifest and MLflow tags; a mismatch warns
loudly but does not stop the run) and by the ``grooming-detect-verify`` command.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grooming_detect.data import pan12
from grooming_detect.io import sha256_file

log = logging.getLogger(__name__)

#: SHA-256 of the official files after CRLF -> LF normalisation.
PUBLISHED_SHA256: dict[str, str] = {
    pan12.TRAIN_XML: "1630a5923460da3f940482a5c8d7ed57f845762154cd56c69238d45e7bbc6ca1",
    pan12.TRAIN_PREDATORS: "a8594e6439c885c98c4a6232ce8661690b762ec98850c23918e3d4bce5e366f0",
    pan12.TEST_XML: "ff1d94fb61c8fb13fadb8859ac55471e9a4e19a06f50a7134ec06ed3d3b3f201",
    pan12.TEST_PROBLEM1: "342c12b06d148b025ad92d12d57c816ec0abd1743f0d1e9dda552fe6af7c41d2",
}
#: Published sizes of the official corpora.
PUBLISHED_COUNTS: dict[str, dict[str, int]] = {
    "training": {"conversations": 66_927, "messages": 903_607, "authors": 97_689, "predators": 142},
    "test": {"conversations": 155_128, "messages": 2_058_781, "authors": 218_702, "predators": 254},
}


@dataclass(frozen=True)
class Check:
    """One line of a verification table."""

    item: str
    expected: str
    found: str

    @property
    def ok(self) -> bool:
        return self.expected == self.found


def checksum_checks(sha256_by_name: dict[str, str]) -> list[Check]:
    """Presence and checksum of every file that has a published checksum."""
    return [
        Check(f"sha256 {name}", expected, sha256_by_name.get(name, "missing"))
        for name, expected in PUBLISHED_SHA256.items()
    ]


def count_checks(counts: dict[str, dict[str, int]]) -> list[Check]:
    """Corpus sizes against the published figures (`counts` keyed training/test)."""
    return [
        Check(f"{corpus} {name}", f"{expected:,}", f"{counts.get(corpus, {}).get(name, 0):,}")
        for corpus, figures in PUBLISHED_COUNTS.items()
        for name, expected in figures.items()
    ]


def counts_from_tables(split_counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Official-corpus sizes from canonical per-split counts (train + validation = training)."""
    keys = ("conversations", "messages", "authors", "predators")
    return {
        "training": {k: split_counts["train"][k] + split_counts["validation"][k] for k in keys},
        "test": {k: split_counts.get("test", {}).get(k, 0) for k in keys},
    }


def summarise(checks: Sequence[Check]) -> str:
    """``official`` when everything matched, else ``mismatch: <items>``."""
    failed = [check.item for check in checks if not check.ok]
    return "official" if not failed else "mismatch: " + "; ".join(failed)


def format_table(checks: Sequence[Check]) -> str:
    """A plain-text table of the checks."""
    width = max(len(check.item) for check in checks)
    lines = [f"{'check':<{width}}  {'result':<8}  expected / found"]
    for check in checks:
        found = "" if check.ok else f" / {check.found}"
        lines.append(
            f"{check.item:<{width}}  {'ok' if check.ok else 'MISMATCH':<8}  {check.expected}{found}"
        )
    return "\n".join(lines)


def verify_download(root: Path, with_counts: bool = True) -> list[Check]:
    """Verify files under `root`; with `with_counts`, parse them (streaming) to count too."""
    files = pan12.find_files(root)
    sha256_by_name = {
        name: sha256_file(path, normalise_newlines=True) for name, path in files.present().items()
    }
    checks = checksum_checks(sha256_by_name)
    if with_counts:
        counts: dict[str, dict[str, int]] = {}
        for corpus, xml, truth in (
            ("training", files.train_xml, files.train_predators),
            ("test", files.test_xml, files.test_problem1),
        ):
            if xml is None or truth is None:
                continue
            columns = pan12.parse_messages(xml)
            counts[corpus] = {
                "conversations": columns.n_conversations,
                "messages": len(columns),
                "authors": len(set(columns.author)),
                "predators": len(pan12.read_id_list(truth)),
            }
        checks += count_checks(counts)
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    """``grooming-detect-verify ROOT``: print what matched; exit 1 on any mismatch."""
    parser = argparse.ArgumentParser(
        prog="grooming-detect-verify",
        description="Verify a PAN-2012 download: files, published sha256 (after CRLF->LF), counts.",
    )
    parser.add_argument("root", type=Path, help="folder holding the official PAN-2012 files")
    parser.add_argument(
        "--no-counts",
        action="store_true",
        help="check files and checksums only (skip parsing the XML)",
    )
    args = parser.parse_args(argv)
    try:
        checks = verify_download(args.root, with_counts=not args.no_counts)
    except (FileNotFoundError, pan12.CorpusFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(checks))
    verdict = summarise(checks)
    print(f"\n{args.root}: {verdict}")
    return 0 if verdict == "official" else 1


if __name__ == "__main__":
    sys.exit(main())
