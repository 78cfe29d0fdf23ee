"""Score PAN-2012 submission files against ground-truth files, as PAN-2012 did.

Problem 1 (predator identification): a submission names author ids, one a line; precision,
recall, F1 and F0.5 compare that set with the set of true predators.
Problem 2 (predator lines): a submission names ``conversation_id<TAB>line`` pairs; precision,
recall and F3 compare that set with the true pairs.

Defined edge cases (tested):

* an empty submission scores precision 0, recall 0, F 0;
* ids or pairs absent from the truth count as false positives, whatever their origin;
* a duplicate line counts once (it is logged);
* CRLF line endings, a UTF-8 byte-order mark, padding spaces and blank lines are tolerated;
* a line with the wrong number of fields is an error naming the file and the line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from grooming_detect.data.pan12 import (
    TEST_PROBLEM1,
    TEST_PROBLEM2,
    CorpusFormatError,
    read_id_list,
    read_line_truth,
)
from grooming_detect.evaluation.metrics import set_scores

log = logging.getLogger(__name__)

PROBLEM1_MEASURES = ("precision", "recall", "f1", "f0_5")
PROBLEM2_MEASURES = ("precision", "recall", "f3")


def score_problem1(submission: str | Path, truth: str | Path) -> dict[str, float]:
    """Problem 1 measures of a predator-id submission."""
    scores = set_scores(read_id_list(submission), read_id_list(truth))
    return {name: scores[name] for name in PROBLEM1_MEASURES}


def score_problem2(submission: str | Path, truth: str | Path) -> dict[str, float]:
    """Problem 2 measures of a line submission."""
    scores = set_scores(read_line_truth(submission), read_line_truth(truth))
    return {name: scores[name] for name in PROBLEM2_MEASURES}


def main(argv: Sequence[str] | None = None) -> int:
    """``grooming-detect-pan-eval``: print the official PAN-2012 measures of submission files."""
    parser = argparse.ArgumentParser(
        prog="grooming-detect-pan-eval",
        description="Score PAN-2012 submissions (problem 1: predator ids; problem 2: lines).",
    )
    parser.add_argument("--predators", type=Path, help="problem-1 submission (ids, one a line)")
    parser.add_argument("--truth-predators", type=Path, help="problem-1 ground truth")
    parser.add_argument("--lines", type=Path, help="problem-2 submission (id<TAB>line)")
    parser.add_argument("--truth-lines", type=Path, help="problem-2 ground truth")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    if (args.predators is None) != (args.truth_predators is None) or (
        (args.lines is None) != (args.truth_lines is None)
    ):
        parser.error("give each submission together with its ground truth")
    if args.predators is None and args.lines is None:
        parser.error("nothing to score: give --predators/--truth-predators and/or --lines/...")
    results: dict[str, dict[str, float]] = {}
    try:
        if args.predators is not None:
            results["problem1"] = score_problem1(args.predators, args.truth_predators)
        if args.lines is not None:
            results["problem2"] = score_problem2(args.lines, args.truth_lines)
    except (FileNotFoundError, CorpusFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        for problem, measures in results.items():
            print(problem + ": " + "  ".join(f"{k} {v:.4f}" for k, v in measures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def pan_exact_scores(
    manifest: dict, problem1: Path, problem2: Path, metrics: dict[str, float]
) -> dict[str, float]:
    """PAN-2012's own scores of the written test submissions against the full ground-truth
    files (``test/author/pan_*``, ``test/line/pan_*``), where the data has them (PAN layout).

    Unlike the table-based measures, a truth id that never speaks in the test table (or was
    filtered out) counts as a miss here, as in the official scorer; a disagreement is logged."""
    sources = {name: Path(entry["path"]) for name, entry in manifest.get("sources", {}).items()}
    out: dict[str, float] = {}
    for problem, (truth_name, submission, level, scorer, names) in {
        "problem 1": (TEST_PROBLEM1, problem1, "author", score_problem1, PROBLEM1_MEASURES),
        "problem 2": (TEST_PROBLEM2, problem2, "line", score_problem2, PROBLEM2_MEASURES),
    }.items():
        truth = sources.get(truth_name)
        if truth is None or not truth.is_file():
            continue
        scores = scorer(submission, truth)
        for name in names:
            out[f"test/{level}/pan_{name}"] = scores[name]
        table_recall = metrics.get(f"test/{level}/recall")
        if table_recall is not None and abs(table_recall - scores["recall"]) > 1e-12:
            log.info(
                "test %s: recall %.3f against the full truth file (PAN scorer) vs %.3f over the "
                "test table: truth ids that never speak there, or were filtered out, are misses",
                problem,
                scores["recall"],
                table_recall,
            )
    return out


def pan_all_lines_scores(manifest: dict, all_lines: Path) -> dict[str, float]:
    """The PAN scorer's measures of the all-lines baseline submission against the full test
    line truth (``test/line/pan_*_all_lines``), where the data has the truth file."""
    source = manifest.get("sources", {}).get(TEST_PROBLEM2)
    truth = Path(source["path"]) if source else None
    if truth is None or not truth.is_file():
        return {}
    scores = score_problem2(all_lines, truth)
    return {f"test/line/pan_{name}_all_lines": scores[name] for name in PROBLEM2_MEASURES}
