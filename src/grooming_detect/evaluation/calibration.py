"""Probability calibration fitted on validation, and the measures that judge it.

Calibrators follow scikit-learn's contract (``__init__`` stores arguments, ``fit`` returns self,
learned state ends in ``_``) and serialise to plain JSON (``to_dict``/``from_dict``), so a saved
model never needs pickle.

* ``none``: scores pass through unchanged.
* ``sigmoid`` (Platt scaling): ``p = 1 / (1 + exp(-(a·logit(s) + b)))`` with ``a > 0``, so the
  calibrated scores keep the model's ranking. When validation gives a slope of zero or below
  (no signal there, e.g. one positive that scored low), an unconstrained fit would reverse the
  ranking on test; the slope is held at ``MIN_SLOPE`` instead, ``b`` is fitted alone (scores
  near the validation base rate, the ranking kept), ``slope_clamped_`` records it and a warning
  says so.
* ``temperature``: ``p = sigmoid(logit(s) / T)``, one parameter, keeps the ranking and the
  decision at 0.5 in place.
* ``isotonic``: a monotone step function (ties in ranking can appear).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss

METHODS = ("none", "sigmoid", "temperature", "isotonic")
_EPS = 1e-6
#: The smallest Platt slope: a calibrator never reverses the model's ranking.
MIN_SLOPE = 1e-3

log = logging.getLogger(__name__)


def _logit(scores: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(scores, dtype=float), _EPS, 1 - _EPS)
    return np.log(clipped / (1 - clipped))


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return expit(values)  # 1 / (1 + exp(-x)) without overflow warnings far from 0


class ScoreCalibrator(BaseEstimator):
    """Maps a model's scores to calibrated probabilities; fit on validation only."""

    def __init__(self, method: str = "sigmoid") -> None:
        self.method = method

    def fit(self, scores: np.ndarray, y_true: np.ndarray) -> ScoreCalibrator:
        if self.method not in METHODS:
            raise ValueError(f"calibration method {self.method!r}: expected one of {METHODS}")
        y = np.asarray(y_true, dtype=bool)
        logits = _logit(scores)
        if self.method == "sigmoid":
            platt = LogisticRegression(C=1e6).fit(logits.reshape(-1, 1), y)
            self.a_, self.b_ = float(platt.coef_[0, 0]), float(platt.intercept_[0])
            self.slope_clamped_ = self.a_ < MIN_SLOPE
            if self.slope_clamped_:
                log.warning(
                    "Platt calibration on validation (%d rows, %d positive) found slope %.4g: "
                    "the scores there do not rank positives higher. The slope is held at %g so "
                    "that calibration keeps the model's ranking; calibrated scores sit near the "
                    "validation base rate. More validation positives would fix this.",
                    len(y),
                    int(y.sum()),
                    self.a_,
                    MIN_SLOPE,
                )
                self.a_ = MIN_SLOPE
                shifted = MIN_SLOPE * logits

                def intercept_nll(b: float) -> float:
                    return log_loss(y, _sigmoid(shifted + b), labels=[False, True])

                self.b_ = float(
                    minimize_scalar(intercept_nll, bounds=(-30, 30), method="bounded").x
                )
        elif self.method == "temperature":

            def nll(log_t: float) -> float:
                return log_loss(y, _sigmoid(logits / np.exp(log_t)), labels=[False, True])

            self.temperature_ = float(
                np.exp(minimize_scalar(nll, bounds=(-5, 5), method="bounded").x)
            )
        elif self.method == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
            iso.fit(np.asarray(scores, dtype=float), y.astype(float))
            self.x_ = iso.X_thresholds_.tolist()
            self.y_ = iso.y_thresholds_.tolist()
        self.fitted_ = True
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for `scores`."""
        scores = np.asarray(scores, dtype=float)
        if self.method == "none":
            return scores
        if self.method == "sigmoid":
            return _sigmoid(self.a_ * _logit(scores) + self.b_)
        if self.method == "temperature":
            return _sigmoid(_logit(scores) / self.temperature_)
        return np.interp(scores, self.x_, self.y_)

    def to_dict(self) -> dict[str, Any]:
        """Learned parameters as JSON-safe values."""
        state = {"method": self.method}
        state.update({k: v for k, v in vars(self).items() if k.endswith("_") and k != "fitted_"})
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ScoreCalibrator:
        calibrator = cls(method=state["method"])
        for key, value in state.items():
            if key.endswith("_"):
                setattr(calibrator, key, value)
        calibrator.fitted_ = True
        return calibrator


def expected_calibration_error(y_true: np.ndarray, scores: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the L1 gap between mean score and positive rate over equal-width bins, weighted by
    the share of items in each bin. Bin edges include 1.0 in the last bin."""
    y = np.asarray(y_true, dtype=float)
    scores = np.asarray(scores, dtype=float)
    bins = np.minimum((scores * n_bins).astype(int), n_bins - 1)
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
