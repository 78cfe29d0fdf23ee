"""Decisions fitted after the model (on validation, or out of fold under crossfit): probability
calibration and the decision threshold.

Both belong to a trained model (saved in its metadata, applied by every scorer), so they live
with the models; the measures that judge them are in `grooming_detect.evaluation`.

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

Thresholds maximise an F-beta (PAN-2012 Problem 1 uses beta = 0.5: precision weighs more) or
the recall at a minimum precision. Set measures: precision = |named ∩ true| / |named|, recall =
|named ∩ true| / |true|; precision is 0 when nothing is named, recall 0 when the truth is empty,
F-beta 0 when both are 0.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
)

log = logging.getLogger(__name__)

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


def f_beta(precision: float, recall: float, beta: float) -> float:
    """F_beta from precision and recall (0 when both are 0)."""
    denominator = beta**2 * precision + recall
    return 0.0 if denominator == 0 else (1 + beta**2) * precision * recall / denominator


def set_scores(named: Iterable[Hashable], truth: Iterable[Hashable]) -> dict[str, float]:
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


def ranking_scores(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Threshold-free measures: average precision (PR-AUC) and ROC-AUC (NaN with one class)."""
    y_true = np.asarray(y_true, dtype=bool)
    if y_true.all() or not y_true.any():
        return {"pr_auc": float("nan"), "roc_auc": float("nan")}
    return {
        "pr_auc": float(average_precision_score(y_true, scores)),
        "roc_auc": float(roc_auc_score(y_true, scores)),
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


def truth_flags(candidates: pd.DataFrame, truth: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Whether each candidate message is a truth line, and how many truth lines are not
    among the candidates (misses whatever the threshold)."""
    keys = ["conversation_id", "line"]
    truth_index = pd.MultiIndex.from_frame(truth[keys].drop_duplicates())
    flags = pd.MultiIndex.from_frame(candidates[keys]).isin(truth_index)
    return flags, int(len(truth_index) - int(flags.sum()))


def tune_line_threshold(y_true: np.ndarray, scores: np.ndarray, missed: int = 0) -> float:
    """The message-score threshold that maximises F3 of the lines it selects.

    Parameters
    ----------
    y_true
        Whether each candidate message is a truth line.
    scores
        Each candidate's score; the candidate thresholds are these scores.
    missed
        Truth lines that are not among the candidates: misses at every threshold (they count
        in recall's denominator).

    Returns
    -------
    float
        The best threshold; ties go to the higher threshold (fewer lines).

    Raises
    ------
    ValueError
        When there is no candidate, or `y_true` and `scores` differ in length.
    """
    y_true, scores = np.asarray(y_true, dtype=bool), np.asarray(scores, dtype=float)
    if len(y_true) != len(scores) or not len(scores):
        raise ValueError(f"{len(y_true)} labels and {len(scores)} scores: expected equal, > 0")
    order = np.argsort(-scores, kind="stable")
    descending, hits = scores[order], np.cumsum(y_true[order])
    # The last position of each distinct score: selecting scores >= it selects 0..position.
    last = np.flatnonzero(np.append(descending[1:] != descending[:-1], True))
    n_truth = int(y_true.sum()) + int(missed)
    # F3 = 10·P·R / (9·P + R) = 10·hits / (9·truth lines + selected lines): exact ratios, so
    # equal F3 values compare equal and ties go to the first (highest) threshold.
    f3 = 10.0 * hits[last] / (9.0 * n_truth + last + 1)
    return float(descending[last[int(np.argmax(f3))]])


def tune_lines(
    candidates: pd.DataFrame, scores: np.ndarray, truth: pd.DataFrame
) -> dict[str, float] | None:
    """The F3-best line threshold of candidate messages (named authors' lines) and their
    scores against a line truth, with what it rests on; None when the scores never vary within
    an author (the model does not read the message text, so there is nothing to choose)."""
    if not (pd.Series(scores).groupby(candidates["author"].to_numpy()).nunique() > 1).any():
        return None
    y_true, missed = truth_flags(candidates, truth)
    threshold = tune_line_threshold(y_true, scores, missed)
    selected = np.asarray(scores) >= threshold
    n_truth = int(y_true.sum()) + missed
    hits = float(y_true[selected].sum())
    return {
        "threshold": threshold,
        "candidates": float(len(candidates)),
        "truth_lines": float(n_truth),
        "missed": float(missed),
        "f3": f_beta(hits / max(int(selected.sum()), 1), hits / max(n_truth, 1), 3.0),
    }
