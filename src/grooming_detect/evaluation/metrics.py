"""PAN-2012 measures, ranking measures, operating points and bootstrap intervals (the decision
threshold itself is tuned with the model: `grooming_detect.models.decision`).

PAN-2012 Problem 1 scores the set of authors a system names as predators against the set in the
ground truth: precision = |named ∩ true| / |named|, recall = |named ∩ true| / |true|, and
F_beta = (1 + beta²)·P·R / (beta²·P + R) with beta = 0.5 (precision weighs more). Conventions for
degenerate cases: precision is 0 when nothing is named, recall is 0 when the truth is empty, and
F_beta is 0 when precision and recall are both 0.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve

# Decision measures live with the model (`models.decision`); importable from here as before.
from grooming_detect.models.decision import (
    BETAS,
    THRESHOLD_OBJECTIVES,
    best_f_beta,
    f_beta,
    f_beta_curve,
    ranking_scores,
    scores_at_threshold,
    set_scores,
    tune_threshold,
)
from grooming_detect.progress import track

__all__ = [
    "BETAS",
    "BOOTSTRAP_MEASURES",
    "THRESHOLD_OBJECTIVES",
    "best_f_beta",
    "bootstrap_intervals",
    "f_beta",
    "f_beta_curve",
    "operating_points",
    "precision_at_recall",
    "ranking_scores",
    "recall_at_fpr",
    "scores_at_threshold",
    "set_scores",
    "tune_threshold",
]


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


def _weighted_ranking(
    ranked: np.ndarray, group_starts: np.ndarray, sorted_positive: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Average precision and ROC-AUC of each resample (a row of item weights, items sorted by
    score, ties grouped from `group_starts`); resamples holding one class only are left out."""
    tp = np.cumsum(np.add.reduceat(ranked * sorted_positive, group_starts, axis=1), axis=1)
    fp = np.cumsum(np.add.reduceat(ranked * ~sorted_positive, group_starts, axis=1), axis=1)
    both = (tp[:, -1] > 0) & (fp[:, -1] > 0)
    tp, fp = tp[both], fp[both]
    n_pos, n_neg = tp[:, -1], fp[:, -1]
    step_tp = np.diff(tp, axis=1, prepend=0.0)
    step_fp = np.diff(fp, axis=1, prepend=0.0)
    flagged = tp + fp
    curve_precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
    pr_auc = (step_tp * curve_precision).sum(axis=1) / n_pos
    previous_tp = tp - step_tp
    roc_auc = (step_fp * (tp + previous_tp) / 2.0).sum(axis=1) / (n_pos * n_neg)
    return pr_auc, roc_auc


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
        pr_auc, roc_auc = _weighted_ranking(weights[:, order], group_starts, sorted_positive)
        values["pr_auc"].append(pr_auc)
        values["roc_auc"].append(roc_auc)
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
