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


def tune_threshold(y_true: np.ndarray, scores: np.ndarray, objective: str = "f0_5") -> float:
    """The score threshold that maximises `objective` (``f0_5``, ``f1`` or ``f3``).

    Ties go to the highest threshold (fewest alerts). Fit this on validation only.

    Raises:
        ValueError: when `y_true` holds no positive (nothing to tune on) or the objective is
            unknown.
    """
    if objective not in BETAS:
        raise ValueError(f"threshold objective {objective!r}: expected one of {sorted(BETAS)}")
    y_true = np.asarray(y_true, dtype=bool)
    if not y_true.any():
        raise ValueError("cannot tune a threshold on a split without positives")
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    beta2 = BETAS[objective] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.nan_to_num((1 + beta2) * precision * recall / (beta2 * precision + recall))
    values = values[:-1]  # the last point has no threshold
    best = np.flatnonzero(values == values.max())
    return float(thresholds[best[-1]])
