"""Figures for the evaluate stage (matplotlib, PNG, titled and labelled for a reviewer)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
)

from grooming_detect.evaluation.calibration import reliability_curve
from grooming_detect.io import write_with

Curves = dict[str, tuple[np.ndarray, np.ndarray]]


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    write_with(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    plt.close(figure)
    return path


def precision_recall_figure(curves: Curves, title: str, path: Path) -> Path:
    """PR curves, one per split, with the chance level (the positive rate)."""
    figure, axis = plt.subplots(figsize=(6, 5))
    for split, (y_true, scores) in curves.items():
        PrecisionRecallDisplay.from_predictions(
            y_true,
            scores,
            name=split,
            ax=axis,
            plot_chance_level=True,
            chance_level_kw={"linestyle": ":"},
        )
    axis.set(
        title=title,
        xlabel="Recall (share of positives found)",
        ylabel="Precision (share of alerts that are right)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    return _save(figure, path)


def roc_figure(curves: Curves, title: str, path: Path) -> Path:
    """ROC curves, one per split, with the chance diagonal."""
    figure, axis = plt.subplots(figsize=(6, 5))
    for index, (split, (y_true, scores)) in enumerate(curves.items()):
        RocCurveDisplay.from_predictions(
            y_true, scores, name=split, ax=axis, plot_chance_level=index == 0
        )
    axis.set(
        title=title,
        xlabel="False-positive rate (share of negatives flagged)",
        ylabel="True-positive rate (recall)",
    )
    return _save(figure, path)


def reliability_figure(
    y_true: np.ndarray,
    raw: np.ndarray,
    calibrated: np.ndarray,
    title: str,
    path: Path,
    n_bins: int = 10,
) -> Path:
    """Reliability diagram (quantile bins) before and after calibration."""
    figure, axis = plt.subplots(figsize=(6, 5))
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for name, scores in (("before calibration", raw), ("after calibration", calibrated)):
        predicted, observed = reliability_curve(y_true, scores, n_bins)
        axis.plot(predicted, observed, marker="o", label=name)
    # Positives are rare, so most bins sit near 0: a symmetric-log scale keeps them visible.
    axis.set_xscale("symlog", linthresh=1e-3)
    axis.set_yscale("symlog", linthresh=1e-3)
    axis.set(
        title=title,
        xlabel="Mean predicted probability (quantile bins, symlog scale)",
        ylabel="Observed share of positives (symlog scale)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    axis.legend(loc="upper left")
    return _save(figure, path)


def score_histogram_figure(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, title: str, path: Path
) -> Path:
    """Score distributions of positives and negatives (log count), with the threshold."""
    figure, axis = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41).tolist()
    y = np.asarray(y_true, dtype=bool)
    axis.hist(scores[~y], bins=bins, alpha=0.6, label=f"negatives (n={int((~y).sum())})")
    axis.hist(scores[y], bins=bins, alpha=0.6, label=f"positives (n={int(y.sum())})")
    axis.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axis.set_yscale("log")
    axis.set(title=title, xlabel="Calibrated score", ylabel="Count (log scale)")
    axis.legend()
    return _save(figure, path)


def distribution_figure(
    named_scores: dict[str, np.ndarray], threshold: float, title: str, path: Path
) -> Path:
    """Score distributions of several groups as densities (groups of any size), with the
    threshold."""
    figure, axis = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41).tolist()
    for label, scores in named_scores.items():
        if len(scores):
            axis.hist(scores, bins=bins, alpha=0.5, density=True, label=label)
    axis.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axis.set_yscale("log")
    axis.set(title=title, xlabel="Calibrated score", ylabel="Density (log scale)")
    axis.legend()
    return _save(figure, path)


def confusion_figure(y_true: np.ndarray, predicted: np.ndarray, title: str, path: Path) -> Path:
    """Confusion matrix at the tuned threshold."""
    figure, axis = plt.subplots(figsize=(5, 4))
    ConfusionMatrixDisplay.from_predictions(
        np.asarray(y_true, dtype=bool),
        np.asarray(predicted, dtype=bool),
        display_labels=["negative", "positive"],
        ax=axis,
        colorbar=False,
    )
    axis.set(title=title, xlabel="Predicted", ylabel="True")
    return _save(figure, path)


def slice_figure(rates: pd.DataFrame, title: str, path: Path) -> Path:
    """False-positive rate by slice, one panel per slice dimension."""
    dimensions = list(dict.fromkeys(rates["slice"]))
    figure, axes = plt.subplots(1, len(dimensions), figsize=(4 * len(dimensions), 4), squeeze=False)
    for axis, dimension in zip(axes[0], dimensions, strict=True):
        part = rates[rates["slice"] == dimension]
        axis.bar(part["bucket"], part["false_positive_rate"])
        axis.set_title(dimension.replace("_", " "))
        axis.set_ylabel("False-positive rate among negatives")
        axis.tick_params(axis="x", rotation=30)
        for x, (rate, n) in enumerate(
            zip(part["false_positive_rate"], part["negatives"], strict=True)
        ):
            axis.annotate(f"n={n}", (x, rate), ha="center", va="bottom", fontsize=8)
    figure.suptitle(title)
    return _save(figure, path)


def warned_by_figure(warnings: dict[str, pd.DataFrame], title: str, path: Path) -> Path:
    """Early detection: share of positive conversations warned (recall) and of negatives falsely
    warned, against messages read, one line pair per split. `warnings` holds per split the
    ``label`` and ``warned_at`` (NaN: never) of each conversation."""
    figure, axis = plt.subplots(figsize=(6, 4))
    longest = max((float(t["n_messages"].max()) for t in warnings.values() if len(t)), default=1)
    ks = np.arange(1, int(longest) + 1)
    for split, table in warnings.items():
        for label, style, name in ((True, "-", "recall"), (False, ":", "false warnings")):
            part = table.loc[table["label"] == label, "warned_at"].to_numpy(dtype=float)
            if not len(part):
                continue
            warned = np.sort(part[~np.isnan(part)])
            share = np.searchsorted(warned, ks, side="right") / len(part)
            axis.plot(ks, share, style, label=f"{split} {name} (n={len(part)})")
    axis.set(
        title=title,
        xlabel="Messages read",
        ylabel="Share of conversations warned",
        ylim=(0, 1.02),
    )
    axis.set_xscale("log")
    axis.legend(fontsize=8)
    return _save(figure, path)


def latency_histogram_figure(latencies: np.ndarray, title: str, path: Path) -> Path:
    """Messages read before the first warning, over the warned positive conversations."""
    figure, axis = plt.subplots(figsize=(6, 4))
    values = np.asarray(latencies, dtype=float)
    if len(values):
        axis.hist(values, bins=min(40, max(5, len(np.unique(values)))))
        median = float(np.median(values))
        axis.axvline(median, color="black", linestyle="--", label=f"median {median:g}")
        axis.legend()
    axis.set(title=title, xlabel="Messages read at the first warning", ylabel="Conversations")
    return _save(figure, path)


def risk_curve_figure(
    examples: dict[str, pd.DataFrame], threshold: float, title: str, path: Path
) -> Path:
    """Risk after each message of example conversations (``k``, ``score``), with the warning
    threshold. No message text."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, curve in examples.items():
        axis.plot(curve["k"], curve["score"], marker=".", label=label)
    axis.axhline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axis.set(title=title, xlabel="Messages read", ylabel="Calibrated risk", ylim=(0, 1.02))
    axis.legend(fontsize=8)
    return _save(figure, path)
