"""PAN-2012 measures and decision-threshold tuning.

PAN-2012 Problem 1 scores the set of authors a system names as predators against the set in the
ground truth: precision = |named ∩ true| / |named|, recall = |named ∩ true| / |true|, and
F_beta = (1 + beta²)·P·R / (beta²·P + R) with beta = 0.5 (precision weighs more). Conventions for
degenerate cases: precision is 0 when nothing is named, recall is 0 when the truth is empty, and
F_beta is 0 when precision and recall are both 0.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from grooming_detect.progress import track


def f_beta(precision: float, recall: float, beta: float) -> float:
    """F_beta from precision and recall (0 when both are 0)."""
    denominator = beta**2 * precision + recall
    return 0.0 if denominator == 0 else (1 + beta**2) * precision * recall / denominator


def set_scores(named: Iterable[str], truth: Iterable[str]) -> dict[str, float]:
    """Precision, recall, F1, F0.5 and F3 of a set of named ids against the true ids."""
    named_set, truth_set = set(named), set(truth)
    hits = len(named_set & truth_set)
    precision = hits / len(named_set) if named_set else 0.0
    recall = hits / len(truth_set) if truth_set else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f_beta(precision, recall, 1.0),
        "f0_5": f_beta(precision, recall, 0.5),
        "f3": f_beta(precision, recall, 3.0),
    }


def scores_at_threshold(
    y_true: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """PAN set measures when every item scoring at or above `threshold` is named."""
    y_true = np.asarray(y_true, dtype=bool)
    predicted = np.asarray(scores) >= threshold
    indices = np.arange(len(y_true))
    result = set_scores(indices[predicted].tolist(), indices[y_true].tolist())
    result["n_predicted"] = float(predicted.sum())
    return result


def ranking_scores(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Threshold-free measures: average precision (PR-AUC) and ROC-AUC (NaN with one class)."""
    y_true = np.asarray(y_true, dtype=bool)
    if y_true.all() or not y_true.any():
        return {"pr_auc": float("nan"), "roc_auc": float("nan")}
    return {
        "pr_auc": float(average_precision_score(y_true, scores)),
        "roc_auc": float(roc_auc_score(y_true, scores)),
    }


BETAS = {"f0_5": 0.5, "f1": 1.0, "f3": 3.0}


THRESHOLD_OBJECTIVES = (*BETAS, "recall_at_precision")


def f_beta_curve(precision: np.ndarray, recall: np.ndarray, beta: float) -> np.ndarray:
    """F_beta at every point of a precision-recall curve (0 where both are 0)."""
    beta2 = beta**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num((1 + beta2) * precision * recall / (beta2 * precision + recall))


def best_f_beta(y_true: np.ndarray, scores: np.ndarray, beta: float = 0.5) -> float:
    """The highest F_beta over all thresholds (for model selection, not for reporting)."""
    precision, recall, _ = precision_recall_curve(np.asarray(y_true, dtype=bool), scores)
    return float(f_beta_curve(precision, recall, beta).max())


def tune_threshold(
    y_true: np.ndarray, scores: np.ndarray, objective: str = "f0_5", min_precision: float = 0.0
) -> float:
    """The score threshold that maximises `objective`: ``f0_5``, ``f1``, ``f3``, or
    ``recall_at_precision`` (the highest recall whose precision is at least `min_precision`;
    when no threshold reaches it, the one with the best precision).

    Ties go to the highest threshold (fewest alerts). Fit this on validation only.

    Raises:
        ValueError: when `y_true` holds no positive (nothing to tune on) or the objective is
            unknown.
    """
    if objective not in THRESHOLD_OBJECTIVES:
        raise ValueError(
            f"threshold objective {objective!r}: expected one of {list(THRESHOLD_OBJECTIVES)}"
        )
    y_true = np.asarray(y_true, dtype=bool)
    if not y_true.any():
        raise ValueError("cannot tune a threshold on a split without positives")
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    if objective == "recall_at_precision":
        precision, recall = precision[:-1], recall[:-1]
        feasible = precision >= min_precision
        if not feasible.any():
            return float(thresholds[np.flatnonzero(precision == precision.max())[-1]])
        best_recall = recall[feasible].max()
        return float(thresholds[np.flatnonzero(feasible & (recall == best_recall))[-1]])
    values = f_beta_curve(precision, recall, BETAS[objective])[:-1]  # last point: no threshold
    best = np.flatnonzero(values == values.max())
    return float(thresholds[best[-1]])


def precision_at_recall(y_true: np.ndarray, scores: np.ndarray, recall: float) -> float:
    """Best precision among thresholds whose recall is at least `recall` (NaN with one class)."""
    y_true = np.asarray(y_true, dtype=bool)
    if not y_true.any() or y_true.all():
        return float("nan")
    precisions, recalls, _ = precision_recall_curve(y_true, scores)
    return float(precisions[recalls >= recall].max())


def recall_at_fpr(y_true: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """Best recall among thresholds whose false-positive rate is at most `max_fpr`."""
    from sklearn.metrics import roc_curve

    y_true = np.asarray(y_true, dtype=bool)
    if not y_true.any() or y_true.all():
        return float("nan")
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(tpr[fpr <= max_fpr].max())


def operating_points(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """What a trust-and-safety team asks: precision at recall 0.8/0.9, recall at FPR 1e-3, and
    alerts per 10,000 items at the threshold."""
    return {
        "precision_at_recall_0_8": precision_at_recall(y_true, scores, 0.8),
        "precision_at_recall_0_9": precision_at_recall(y_true, scores, 0.9),
        "recall_at_fpr_1e-3": recall_at_fpr(y_true, scores, 1e-3),
        "alerts_per_10k": float(np.mean(np.asarray(scores) >= threshold) * 10_000),
    }


BOOTSTRAP_MEASURES = ("precision", "recall", "f1", "f0_5", "pr_auc", "roc_auc")


def bootstrap_intervals(
    y_true: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    batch: int = 50,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals, resampling items (authors) with replacement.

    A resample is the multiplicity of each item, so set measures are weighted counts and
    ranking measures use sample weights; resamples holding one class only are skipped for the
    ranking measures. The same `seed` gives the same intervals.

    Vectorised over each batch of resamples: items are sorted by score once, and average
    precision (the step sum of scikit-learn's ``average_precision_score``) and ROC-AUC (the
    trapezoid of ``roc_auc_score``) come from weighted cumulative counts at each distinct score,
    so the cost is O(resamples x items) with no per-resample call into scikit-learn.
    """
    y_true = np.asarray(y_true, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    predicted = scores >= threshold
    n = len(y_true)
    rng = np.random.default_rng(seed)
    values: dict[str, list[np.ndarray]] = {name: [] for name in BOOTSTRAP_MEASURES}
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    # Items of equal score form one threshold (ties are one step of the curves).
    group_starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    sorted_positive = y_true[order]
    steps = range(0, n_resamples, batch)
    for start in track(steps, f"bootstrap of {n:,} items", unit="batch"):
        size = min(batch, n_resamples - start)
        draws = rng.integers(0, n, size=(size, n))
        weights = np.stack([np.bincount(row, minlength=n) for row in draws]).astype(float)
        hits = weights @ (predicted & y_true)
        named = weights @ predicted
        positives = weights @ y_true
        precision = np.divide(hits, named, out=np.zeros(size), where=named > 0)
        recall = np.divide(hits, positives, out=np.zeros(size), where=positives > 0)
        values["precision"].append(precision)
        values["recall"].append(recall)
        values["f1"].append(_f_beta_array(precision, recall, 1.0))
        values["f0_5"].append(_f_beta_array(precision, recall, 0.5))
        ranked = weights[:, order]
        tp = np.cumsum(np.add.reduceat(ranked * sorted_positive, group_starts, axis=1), axis=1)
        fp = np.cumsum(np.add.reduceat(ranked * ~sorted_positive, group_starts, axis=1), axis=1)
        negatives = fp[:, -1]
        both = (positives > 0) & (negatives > 0)
        if both.any():
            tp, fp = tp[both], fp[both]
            n_pos, n_neg = positives[both], negatives[both]
            step_tp = np.diff(tp, axis=1, prepend=0.0)
            step_fp = np.diff(fp, axis=1, prepend=0.0)
            flagged = tp + fp
            curve_precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
            values["pr_auc"].append((step_tp * curve_precision).sum(axis=1) / n_pos)
            previous_tp = tp - step_tp
            area = (step_fp * (tp + previous_tp) / 2.0).sum(axis=1)
            values["roc_auc"].append(area / (n_pos * n_neg))
    alpha = (1 - confidence) / 2
    pooled = {name: np.concatenate(v) if v else np.empty(0) for name, v in values.items()}
    return {
        name: (float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha)))
        if v.size
        else (float("nan"), float("nan"))
        for name, v in pooled.items()
    }


def _f_beta_array(precision: np.ndarray, recall: np.ndarray, beta: float) -> np.ndarray:
    """F-beta of arrays of precision and recall (0 where both are 0)."""
    b2 = beta * beta
    denominator = b2 * precision + recall
    return np.divide(
        (1 + b2) * precision * recall,
        denominator,
        out=np.zeros_like(precision),
        where=denominator > 0,
    )
