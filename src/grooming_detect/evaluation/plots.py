"""Figures for the evaluate stage (matplotlib, PNG, titled and labelled for a reviewer).

Each figure of a score table is drawn from one table computed from the score table's own rows
(``label``, ``raw_score``, ``score``, ``predicted``: never from separate arrays that could fall
out of order), and that table is saved beside the PNG as CSV (``<figure>.csv``), so a figure can
be checked against the logged metrics without reading pixels."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, auc, precision_recall_curve, roc_curve

from grooming_detect.evaluation.calibration import equal_width_bins, quantile_bins
from grooming_detect.io import write_csv, write_with


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    write_with(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    plt.close(figure)
    return path


def figure_table_path(figure: Path) -> Path:
    """Where the table a figure is drawn from is saved: beside it, as CSV."""
    return figure.with_suffix(".csv")


def _save_drawn_from(figure: Figure, path: Path, table: pd.DataFrame) -> Path:
    """Save `table` (the rows the figure was drawn from) beside the figure, then the figure."""
    write_csv(figure_table_path(path), table)
    return _save(figure, path)


def _labels_and_scores(predictions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return predictions["label"].to_numpy(dtype=bool), predictions["score"].to_numpy(dtype=float)


def precision_recall_table(predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The precision-recall curve of each split's score table (``label``, ``score``): one row
    per distinct score threshold, highest first, after a first row at recall 0. Average
    precision (the logged PR-AUC) is the sum of ``precision`` x the recall step."""
    parts = []
    for split, table in predictions.items():
        y_true, scores = _labels_and_scores(table)
        precision, recall, thresholds = precision_recall_curve(y_true, scores)
        # scikit-learn orders by increasing threshold and appends (precision 1, recall 0).
        parts.append(
            pd.DataFrame(
                {
                    "split": split,
                    "threshold": np.r_[np.inf, thresholds[::-1]],
                    "precision": precision[::-1],
                    "recall": recall[::-1],
                    "positive_rate": float(y_true.mean()) if len(y_true) else float("nan"),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def precision_recall_figure(predictions: dict[str, pd.DataFrame], title: str, path: Path) -> Path:
    """PR curves, one per split, with the chance level (the positive rate); drawn from
    `precision_recall_table`, saved beside it."""
    table = precision_recall_table(predictions)
    figure, axis = plt.subplots(figsize=(6, 5))
    for split, curve in table.groupby("split", sort=False):
        average_precision = float(
            (np.diff(curve["recall"].to_numpy(), prepend=0.0) * curve["precision"]).sum()
        )
        line = axis.step(
            curve["recall"],
            curve["precision"],
            where="pre",
            label=f"{split} (AP = {average_precision:.3f})",
        )[0]
        axis.axhline(
            curve["positive_rate"].iloc[0],
            linestyle=":",
            color=line.get_color(),
            label=f"{split} chance (AP = {curve['positive_rate'].iloc[0]:.3f})",
        )
    axis.set(
        title=title,
        xlabel="Recall (share of positives found)",
        ylabel="Precision (share of alerts that are right)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    axis.legend(loc="lower left")
    return _save_drawn_from(figure, path, table)


def roc_table(predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The ROC curve of each split's score table: false- and true-positive rate at each
    distinct threshold (the trapezoid under it is the logged ROC-AUC)."""
    parts = []
    for split, table in predictions.items():
        y_true, scores = _labels_and_scores(table)
        fpr, tpr, thresholds = roc_curve(y_true, scores, drop_intermediate=False)
        parts.append(
            pd.DataFrame(
                {
                    "split": split,
                    "threshold": thresholds,
                    "false_positive_rate": fpr,
                    "true_positive_rate": tpr,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def roc_figure(predictions: dict[str, pd.DataFrame], title: str, path: Path) -> Path:
    """ROC curves, one per split, with the chance diagonal; drawn from `roc_table`."""
    table = roc_table(predictions)
    figure, axis = plt.subplots(figsize=(6, 5))
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance (AUC = 0.5)")
    for split, curve in table.groupby("split", sort=False):
        area = float(auc(curve["false_positive_rate"], curve["true_positive_rate"]))
        axis.plot(
            curve["false_positive_rate"],
            curve["true_positive_rate"],
            label=f"{split} (AUC = {area:.3f})",
        )
    axis.set(
        title=title,
        xlabel="False-positive rate (share of negatives flagged)",
        ylabel="True-positive rate (recall)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    axis.legend(loc="lower right")
    return _save_drawn_from(figure, path, table)


#: The two curves of a reliability diagram: the score table's column, and its name.
RELIABILITY_CURVES = (("raw_score", "before calibration"), ("score", "after calibration"))


def _bins(
    y_true: np.ndarray, scores: np.ndarray, index: np.ndarray, edges: np.ndarray
) -> pd.DataFrame:
    """Items per bin (`index` into `edges`), with their mean score and observed positive rate;
    empty bins left out."""
    frame = pd.DataFrame({"bin": index, "score": scores, "label": y_true.astype(float)})
    grouped = frame.groupby("bin").agg(
        n=("score", "size"), mean_score=("score", "mean"), positive_rate=("label", "mean")
    )
    grouped["bin_low"] = edges[grouped.index]
    grouped["bin_high"] = edges[grouped.index + 1]
    return grouped.reset_index()


def reliability_table(predictions: pd.DataFrame, n_bins: int, ece_bins: int) -> pd.DataFrame:
    """Reliability of a score table, before (``raw_score``) and after calibration (``score``):
    per bin, items, mean predicted probability and observed share of positives. Rows with
    ``binning`` = ``quantile`` (`n_bins` quantile bins of each curve's scores) are the ones
    drawn; ``equal_width`` rows (`ece_bins` bins on [0, 1]) are the bins of the logged ECE,
    which is the sum of ``n`` / total x |``mean_score`` - ``positive_rate``| over them."""
    y_true = predictions["label"].to_numpy(dtype=bool)
    parts = []
    for column, curve in RELIABILITY_CURVES:
        scores = predictions[column].to_numpy(dtype=float)
        in_quantile, quantiles = quantile_bins(scores, n_bins)
        equal_width = np.linspace(0.0, 1.0, ece_bins + 1)
        for binning, index, edges in (
            ("quantile", in_quantile, quantiles),
            ("equal_width", equal_width_bins(scores, ece_bins), equal_width),
        ):
            parts.append(_bins(y_true, scores, index, edges).assign(curve=curve, binning=binning))
    columns = ["curve", "binning", "bin", "bin_low", "bin_high", "n", "mean_score"]
    return pd.concat(parts, ignore_index=True)[[*columns, "positive_rate"]]


def reliability_figure(
    predictions: pd.DataFrame, title: str, path: Path, n_bins: int = 10, ece_bins: int = 15
) -> Path:
    """Reliability diagram (quantile bins) before and after calibration, drawn from
    `reliability_table`."""
    table = reliability_table(predictions, n_bins, ece_bins)
    figure, axis = plt.subplots(figsize=(6, 5))
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    drawn = table[table["binning"] == "quantile"]
    for _, curve in RELIABILITY_CURVES:
        part = drawn[drawn["curve"] == curve]
        axis.plot(part["mean_score"], part["positive_rate"], marker="o", label=curve)
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
    return _save_drawn_from(figure, path, table)


HISTOGRAM_BINS = 40


def score_histogram_table(predictions: pd.DataFrame, n_bins: int = HISTOGRAM_BINS) -> pd.DataFrame:
    """Negatives and positives of a score table per equal-width bin of the calibrated score
    (the last bin closed at 1)."""
    y_true, scores = _labels_and_scores(predictions)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    negatives, _ = np.histogram(scores[~y_true], bins=edges)
    positives, _ = np.histogram(scores[y_true], bins=edges)
    return pd.DataFrame(
        {
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "negatives": negatives,
            "positives": positives,
        }
    )


def score_histogram_figure(
    predictions: pd.DataFrame, threshold: float, title: str, path: Path
) -> Path:
    """Score distributions of positives and negatives (log count), with the threshold; drawn
    from `score_histogram_table`."""
    table = score_histogram_table(predictions)
    figure, axis = plt.subplots(figsize=(6, 4))
    width = table["bin_high"] - table["bin_low"]
    for column, name in (("negatives", "negatives"), ("positives", "positives")):
        axis.bar(
            table["bin_low"],
            table[column],
            width=width,
            align="edge",
            alpha=0.6,
            label=f"{name} (n={int(table[column].sum())})",
        )
    axis.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axis.set_yscale("log")
    axis.set(title=title, xlabel="Calibrated score", ylabel="Count (log scale)", xlim=(0, 1))
    axis.legend()
    return _save_drawn_from(figure, path, table)


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


CLASS_NAMES = ("negative", "positive")


def confusion_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Counts of a score table's ``label`` against its ``predicted`` flag: one row per cell."""
    y_true = predictions["label"].to_numpy(dtype=bool)
    predicted = predictions["predicted"].to_numpy(dtype=bool)
    return pd.DataFrame(
        [
            {
                "true": CLASS_NAMES[truth],
                "predicted": CLASS_NAMES[flag],
                "count": int(np.sum((y_true == truth) & (predicted == flag))),
            }
            for truth in (False, True)
            for flag in (False, True)
        ]
    )


def confusion_figure(predictions: pd.DataFrame, title: str, path: Path) -> Path:
    """Confusion matrix at the decision threshold, drawn from `confusion_table`."""
    table = confusion_table(predictions)
    matrix = (
        table.pivot(index="true", columns="predicted", values="count")
        .reindex(index=list(CLASS_NAMES), columns=list(CLASS_NAMES))
        .to_numpy()
    )
    figure, axis = plt.subplots(figsize=(5, 4))
    ConfusionMatrixDisplay(matrix, display_labels=list(CLASS_NAMES)).plot(
        ax=axis, colorbar=False, values_format="d"
    )
    # The matrix is narrower than its title: wrap the title rather than clip it.
    axis.set(title=textwrap.fill(title, 48), xlabel="Predicted", ylabel="True")
    return _save_drawn_from(figure, path, table)


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
    return _save_drawn_from(figure, path, rates)


def warned_by_table(warnings: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Early detection: per split and class, the share of conversations warned after each
    number of non-empty messages read (``label`` and ``warned_at``, NaN: never, of each
    conversation; ``n_messages``: its non-empty messages, eSPD's steps).
    The positive class's last share is the split's early recall; the negative class's, its
    share of negatives ever falsely warned."""
    longest = max((float(t["n_messages"].max()) for t in warnings.values() if len(t)), default=1)
    ks = np.arange(1, int(longest) + 1)
    parts = []
    for split, table in warnings.items():
        for label, name in ((True, "positive"), (False, "negative")):
            part = table.loc[table["label"] == label, "warned_at"].to_numpy(dtype=float)
            if not len(part):
                continue
            warned = np.sort(part[~np.isnan(part)])
            parts.append(
                pd.DataFrame(
                    {
                        "split": split,
                        "class": name,
                        "conversations": len(part),
                        "messages_read": ks,
                        "share_warned": np.searchsorted(warned, ks, side="right") / len(part),
                    }
                )
            )
    columns = ["split", "class", "conversations", "messages_read", "share_warned"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def warned_by_figure(warnings: dict[str, pd.DataFrame], title: str, path: Path) -> Path:
    """Early detection: share of positive conversations warned (recall) and of negatives falsely
    warned, against messages read, one line pair per split; drawn from `warned_by_table`."""
    table = warned_by_table(warnings)
    figure, axis = plt.subplots(figsize=(6, 4))
    for (split, name), curve in table.groupby(["split", "class"], sort=False):
        style, what = ("-", "recall") if name == "positive" else (":", "false warnings")
        axis.plot(
            curve["messages_read"],
            curve["share_warned"],
            style,
            label=f"{split} {what} (n={int(curve['conversations'].iloc[0])})",
        )
    axis.set(
        title=title,
        xlabel="Non-empty messages read",
        ylabel="Share of conversations warned",
        ylim=(0, 1.02),
    )
    axis.set_xscale("log")
    axis.legend(fontsize=8)
    return _save_drawn_from(figure, path, table)


def latency_histogram_figure(latencies: np.ndarray, title: str, path: Path) -> Path:
    """Non-empty messages read at the first warning, over the warned positive conversations;
    drawn from a table of conversations per latency."""
    values = np.asarray(latencies, dtype=float)
    counts = pd.Series(values).value_counts().sort_index()
    table = pd.DataFrame({"messages_read": counts.index, "conversations": counts.to_numpy()})
    figure, axis = plt.subplots(figsize=(6, 4))
    if len(values):
        axis.bar(table["messages_read"], table["conversations"], width=0.8)
        median = float(np.median(values))
        axis.axvline(median, color="black", linestyle="--", label=f"median {median:g}")
        axis.legend()
    axis.set(
        title=title, xlabel="Non-empty messages read at the first warning", ylabel="Conversations"
    )
    return _save_drawn_from(figure, path, table)


def risk_curve_figure(
    examples: dict[str, pd.DataFrame], threshold: float, title: str, path: Path
) -> Path:
    """Risk after each message of example conversations (``k``, ``score``), with the warning
    threshold; drawn from the examples' table (ids of the examples, no message text)."""
    columns = ["example", "k", "score"]
    table = (
        pd.concat(
            [curve[["k", "score"]].assign(example=label) for label, curve in examples.items()],
            ignore_index=True,
        )[columns]
        if examples
        else pd.DataFrame(columns=columns)
    )
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, curve in table.groupby("example", sort=False):
        axis.plot(curve["k"], curve["score"], marker=".", label=label)
    axis.axhline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axis.set(
        title=title, xlabel="Non-empty messages read", ylabel="Calibrated risk", ylim=(0, 1.02)
    )
    axis.legend(fontsize=8)
    return _save_drawn_from(figure, path, table)
