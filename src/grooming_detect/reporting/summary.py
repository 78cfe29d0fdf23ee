"""The short results table a run ends with (printed by the CLI, and heading the run report).

One row per evaluated split and unit (authors, conversations; lines when Problem 2 is scored):
precision, recall, F0.5 with its bootstrap interval, PR-AUC, ECE, alerts per 10,000 items and
the decision threshold. Every number is read from the evaluate stage's metrics, the same
dictionary that is logged to MLflow, so the table and the tracking server cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

SPLIT_ORDER = ("train", "cv", "validation", "test")
LEVEL_ORDER = ("author", "conversation", "line")
HEADER = ("split", "unit", "precision", "recall", "F0.5 [95% CI]", "PR-AUC", "ECE", "alerts/10k")


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _rows(metrics: Mapping[str, float]) -> list[tuple[str, str, str, str, str, str, str, str]]:
    # Under crossfit the evaluate stage logs cv (out-of-fold) rows and no validation rows.
    pairs = {
        tuple(key.split("/")[:2])
        for key in metrics
        if key.count("/") == 2 and key.endswith(("/precision", "/f3"))
    }
    ordered = sorted(
        (p for p in pairs if p[0] in SPLIT_ORDER and p[1] in LEVEL_ORDER),
        key=lambda p: (SPLIT_ORDER.index(p[0]), LEVEL_ORDER.index(p[1])),
    )
    rows = []
    for split, level in ordered:
        prefix = f"{split}/{level}"

        def get(name: str, prefix: str = prefix) -> float | None:
            return metrics.get(f"{prefix}/{name}")

        f05 = get("f0_5")
        low, high = get("f0_5_ci_low"), get("f0_5_ci_high")
        interval = f" [{_number(low)}, {_number(high)}]" if low is not None else ""
        if f05 is None and get("f3") is not None:  # Problem 2 (lines) is scored by F3
            f05_text = f"F3 {_number(get('f3'))}"
        else:
            f05_text = _number(f05) + interval
        rows.append(
            (
                split,
                level + "s",
                _number(get("precision")),
                _number(get("recall")),
                f05_text,
                _number(get("pr_auc")),
                _number(get("ece")),
                _number(get("alerts_per_10k"), 1),
            )
        )
    return rows


def threshold_note(threshold: float, fitted_on: str) -> str:
    """Where the threshold came from, and what the validation or cv rows therefore mean."""
    if fitted_on.startswith("out-of-fold"):
        return (
            f"threshold {threshold:.4f}, tuned on {fitted_on}; cv rows are those scores at "
            "that threshold (optimistic, as a tuning set is), and validation is training data "
            "(not shown)"
        )
    return f"threshold {threshold:.4f} (tuned on validation; validation rows are in-sample)"


def results_table(
    metrics: Mapping[str, float], threshold: float | None = None, fitted_on: str = "validation"
) -> str:
    """A plain-text table of the run's headline measures (empty when nothing was evaluated)."""
    rows = _rows(metrics)
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [HEADER, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.extend(_pan_lines(metrics))
    if threshold is not None:
        lines.append(threshold_note(threshold, fitted_on))
    return "\n".join(lines)


def _pan_lines(metrics: Mapping[str, float]) -> list[str]:
    """The PAN-2012 scorer's figures of the written test submissions, when computed."""
    out = []
    for level, problem, f_name in (("author", "problem 1", "f0_5"), ("line", "problem 2", "f3")):
        prefix = f"test/{level}/pan_"
        if f"{prefix}{f_name}" in metrics:
            out.append(
                f"PAN-2012 scorer, test {problem} (full truth file): precision "
                f"{_number(metrics.get(prefix + 'precision'))}, recall "
                f"{_number(metrics.get(prefix + 'recall'))}, "
                f"{f_name.replace('_', '.').upper()} {_number(metrics.get(prefix + f_name))}"
            )
    return out


def results_markdown(
    metrics: Mapping[str, float], threshold: float | None = None, fitted_on: str = "validation"
) -> str:
    """The same table in Markdown, for the head of the run report."""
    rows = _rows(metrics)
    if not rows:
        return ""
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "| " + " | ".join("---" for _ in HEADER) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    pan = _pan_lines(metrics)
    if pan:
        lines += ["", *(f"- {line}" for line in pan)]
    if threshold is not None:
        lines.append("")
        lines.append(f"Decision {threshold_note(threshold, fitted_on)}.")
    return "\n".join(lines)
