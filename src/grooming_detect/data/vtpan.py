"""The eSPD benchmark's split of PAN-2012 (VTPAN): conversation ids only, packaged with their
licence and credit in ``vtpan_ids/`` (Vogt, Leser and Akbik, "Early Detection of Sexual
Predators in Chats", ACL 2021; MIT licence; see ``vtpan_ids/README.md``).

VTPAN is the PAN-2012 subset left by the 2012 winners' filtering; the id lists, not filter
rules, define it. Labels are per conversation: positive when one of its authors is in the
PAN-2012 predator list.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

FOLDER = Path(__file__).with_name("vtpan_ids")
FILES = {"train": "VTPAN_train_IDs.txt", "test": "VTPAN_test_IDs.txt"}
#: The published sizes: a packaged list of another size is damaged.
EXPECTED_COUNTS = {"train": 6_588, "test": 15_329}


class VtpanListError(RuntimeError):
    """A packaged VTPAN id list is missing or does not have its published size."""


@lru_cache(maxsize=2)
def conversation_ids(split: str) -> frozenset[str]:
    """The VTPAN conversation ids of `split` (``train`` or ``test``), checked against the
    published counts."""
    if split not in FILES:
        raise ValueError(f"VTPAN split {split!r}: expected one of {sorted(FILES)}")
    path = FOLDER / FILES[split]
    try:
        lines = path.read_text(encoding="utf-8").split()
    except OSError as error:
        raise VtpanListError(f"{path}: cannot read the packaged VTPAN ids ({error})") from error
    ids = frozenset(lines)
    if len(ids) != EXPECTED_COUNTS[split] or len(lines) != len(ids):
        raise VtpanListError(
            f"{path}: {len(lines):,} lines, {len(ids):,} distinct ids; expected "
            f"{EXPECTED_COUNTS[split]:,} distinct ids (the eSPD authors' list)"
        )
    return ids
