"""The short results table a run ends with (printed by the CLI, and heading the run report).

One row per evaluated split and unit (authors, conversations; lines when Problem 2 is scored):
precision, recall, F0.5 with its bootstrap interval, PR-AUC, ECE, alerts per 10,000 items and
the decision threshold. Every number is read from the evaluate stage's metrics, the same
dictionary that is logged to MLflow, so the table and the tracking server cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from grooming_detect.reporting.markdown import markdown_table

SPLIT_ORDER = ("train", "cv", "validation", "test")
LEVEL_ORDER = ("author", "conversation", "line")
HEADER = (
    "split",
    "unit",
    "positives",
    "precision",
    "recall",
    "F0.5 [95% CI]",
    "F3",
    "PR-AUC",
    "ECE",
    "alerts/10k",
)
#: Default of ``evaluate.min_positives``: under it, a split's numbers are said to rest on few.
MIN_POSITIVES = 10


def _count_text(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:,.0f}"


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _rows(metrics: Mapping[str, float]) -> list[tuple[str, ...]]:
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
    rows: list[tuple[str, ...]] = []
    for split, level in ordered:
        prefix = f"{split}/{level}"

        def get(name: str, prefix: str = prefix) -> float | None:
            return metrics.get(f"{prefix}/{name}")

        f05 = get("f0_5")
        low, high = get("f0_5_ci_low"), get("f0_5_ci_high")
        interval = f" [{_number(low)}, {_number(high)}]" if low is not None else ""
        rows.append(
            (
                split,
                level + "s",
                _count_text(get("n_positive")),
                _number(get("precision")),
                _number(get("recall")),
                _number(f05) + (interval if f05 is not None else ""),
                # Problem 2 (lines) is scored by F3, as PAN-2012 scored it.
                _number(get("f3")),
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


def few_positives(metrics: Mapping[str, float], min_positives: int = MIN_POSITIVES) -> str:
    """A warning, before any number, when an evaluated split holds fewer than `min_positives`
    positives (``evaluate.min_positives``): with 1 positive, every measure reads 1.000 or 0.000
    and its interval collapses. Empty otherwise."""
    thin = []
    for split in SPLIT_ORDER:
        for level in LEVEL_ORDER[:2]:
            n_positive = metrics.get(f"{split}/{level}/n_positive")
            if n_positive is not None and n_positive == n_positive and n_positive < min_positives:
                plural = "" if n_positive == 1 else "s"
                thin.append(f"{split} {n_positive:,.0f} positive {level}{plural}")
    if not thin:
        return ""
    return (
        f"FEW POSITIVES (under evaluate.min_positives = {min_positives}): the numbers below "
        f"rest on {', '.join(thin)}. One positive more or less moves every measure; read them "
        "as anecdotes, not estimates."
    )


def results_table(
    metrics: Mapping[str, float],
    threshold: float | None = None,
    fitted_on: str = "validation",
    min_positives: int = MIN_POSITIVES,
) -> str:
    """A plain-text table of the run's headline measures (empty when nothing was evaluated),
    after the few-positives warning where it applies."""
    rows = _rows(metrics)
    if not rows:
        return ""
    # Hand-written rather than tabulate's "simple" format, which pads every header by two
    # more spaces (its module-global MIN_PADDING) and widens this table by ~10 columns.
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [HEADER, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    warning = few_positives(metrics, min_positives)
    if warning:
        lines.insert(0, warning)
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
    metrics: Mapping[str, float],
    threshold: float | None = None,
    fitted_on: str = "validation",
    min_positives: int = MIN_POSITIVES,
) -> str:
    """The same table in Markdown, for the head of the run report."""
    rows = _rows(metrics)
    if not rows:
        return ""
    warning = few_positives(metrics, min_positives)
    lines = [
        *([f"> **{warning}**", ""] if warning else []),
        markdown_table(HEADER, rows),
    ]
    pan = _pan_lines(metrics)
    if pan:
        lines += ["", *(f"- {line}" for line in pan)]
    if threshold is not None:
        lines.append("")
        lines.append(f"Decision {threshold_note(threshold, fitted_on)}.")
    return "\n".join(lines)
