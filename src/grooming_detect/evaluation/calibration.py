"""The measures that judge probability calibration: ECE, Brier score, log loss and the
reliability curve. The calibrators themselves are fitted with the model
(`grooming_detect.models.decision`)."""

from __future__ import annotations

import numpy as np
from sklearn.calibration import calibration_curve
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


def reliability_curve(
    y_true: np.ndarray, scores: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """(mean predicted, observed positive rate) per quantile bin, for a reliability diagram."""
    observed, predicted = calibration_curve(
        np.asarray(y_true, dtype=bool),
        np.asarray(scores, dtype=float),
        n_bins=n_bins,
        strategy="quantile",
    )
    return predicted, observed
