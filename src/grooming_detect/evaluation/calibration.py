"""The measures that judge probability calibration: ECE, Brier score, log loss and the
reliability curve. The calibrators themselves are fitted with the model
(`grooming_detect.models.decision`)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss

# The calibrator is fitted with the model; importable from here as before.
from grooming_detect.models.decision import _EPS, METHODS, MIN_SLOPE, ScoreCalibrator

__all__ = [
    "METHODS",
    "MIN_SLOPE",
    "ScoreCalibrator",
    "calibration_scores",
    "equal_width_bins",
    "expected_calibration_error",
    "quantile_bins",
    "reliability_curve",
]


def equal_width_bins(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """The bin of each score among `n_bins` equal-width bins of [0, 1]; 1.0 falls in the last
    bin. The ECE and the reliability table's ``equal_width`` rows share it."""
    return np.minimum((np.asarray(scores, dtype=float) * n_bins).astype(int), n_bins - 1)


def expected_calibration_error(y_true: np.ndarray, scores: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the L1 gap between mean score and positive rate over equal-width bins, weighted by
    the share of items in each bin. Bin edges include 1.0 in the last bin."""
    y = np.asarray(y_true, dtype=float)
    scores = np.asarray(scores, dtype=float)
    bins = equal_width_bins(scores, n_bins)
    total = 0.0
    for index in np.unique(bins):
        members = bins == index
        total += members.mean() * abs(scores[members].mean() - y[members].mean())
    return float(total)


def calibration_scores(
    y_true: np.ndarray, scores: np.ndarray, n_bins: int = 15
) -> dict[str, float]:
    """ECE (15 equal-width bins, L1), Brier score and log-loss."""
    y = np.asarray(y_true, dtype=bool)
    clipped = np.clip(np.asarray(scores, dtype=float), _EPS, 1 - _EPS)
    return {
        "ece": expected_calibration_error(y, scores, n_bins),
        "brier": float(brier_score_loss(y, scores)),
        "log_loss": float(log_loss(y, clipped, labels=[False, True])),
    }


def quantile_bins(scores: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(bin of each score, bin edges) for `n_bins` quantile bins of `scores`; tied quantiles
    merge into one bin, and the top edge belongs to the last bin. The reliability diagram, its
    table and the notebooks share it."""
    scores = np.asarray(scores, dtype=float)
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:
        edges = np.r_[edges, edges]
    index = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, len(edges) - 2)
    return index, edges


def reliability_curve(
    y_true: np.ndarray, scores: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """(mean predicted, observed positive rate) per non-empty quantile bin (`quantile_bins`),
    for a reliability diagram."""
    y = np.asarray(y_true, dtype=float)
    scores = np.asarray(scores, dtype=float)
    index, _ = quantile_bins(scores, n_bins)
    used = np.unique(index)
    predicted = np.array([scores[index == b].mean() for b in used])
    observed = np.array([y[index == b].mean() for b in used])
    return predicted, observed
