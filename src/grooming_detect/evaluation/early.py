"""Early sexual predator detection (eSPD) measures: warning policy, latency and the
latency-weighted F1 of Vogt, Leser and Akbik (ACL 2021).

A model reads a conversation message by message and produces a risk score after message
``k = 1, 2, ...`` (one curve per conversation). The warning policy raises a warning at the
first ``k`` where the score has reached the threshold in ``patience`` consecutive evaluated
steps (eSPD's "skepticism"); ``k`` is then the warning latency: the messages read before the
warning. Measures over conversations:

* precision, recall and F1 of warned conversations (a warning on a positive conversation is a
  true positive, on a negative one a false warning);
* latency over true positives: median and quantiles;
* ``penalty(k) = -1 + 2 / (1 + exp(-p (k - 1)))`` with ``p = ln(3) / 89``, so that
  ``penalty(1) = 0`` and ``penalty(90) = 0.5``; ``speed = 1 - median penalty`` over true
  positives; latency-weighted F1 = F1 × speed;
* false warnings per 1,000 negative conversations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: eSPD's penalty slope: a warning after 90 messages costs half of the F1.
P_DEFAULT = math.log(3) / 89


def latency_penalty(k: float | np.ndarray, p: float = P_DEFAULT) -> float | np.ndarray:
    """``-1 + 2 / (1 + exp(-p (k - 1)))``: 0 for a warning at the first message, towards 1
    for late ones."""
    k = np.asarray(k, dtype=float)
    if np.any(k < 1):
        raise ValueError("latency k counts messages read: expected k >= 1")
    value = -1.0 + 2.0 / (1.0 + np.exp(-p * (k - 1.0)))
    return float(value) if value.ndim == 0 else value


def speed(latencies: Sequence[float], p: float = P_DEFAULT) -> float:
    """``1 - median penalty`` over the true positives' latencies (NaN without any)."""
    if len(latencies) == 0:
        return float("nan")
    return float(1.0 - np.median(latency_penalty(np.asarray(latencies, dtype=float), p)))


def first_warning(
    steps: Sequence[int], scores: Sequence[float], threshold: float, patience: int = 1
) -> int | None:
    """Messages read (``k``) when the warning is raised: the step at which the score has been
    at or above `threshold` for `patience` consecutive evaluated steps; None if never.

    `steps` are the ``k`` at which the conversation was scored (increasing), `scores` the
    score after each."""
    if patience < 1:
        raise ValueError(f"patience {patience!r}: expected a positive number of steps")
    if len(steps) != len(scores):
        raise ValueError("steps and scores differ in length")
    run = 0
    for k, score in zip(steps, scores, strict=True):
        run = run + 1 if score >= threshold else 0
        if run >= patience:
            return int(k)
    return None


def early_measures(
    latencies: Sequence[int | None], labels: Sequence[bool], p: float = P_DEFAULT
) -> dict[str, float]:
    """The eSPD measures from each conversation's warning latency (None: no warning) and its
    label."""
    warned = np.array([k is not None for k in latencies], dtype=bool)
    y = np.asarray(labels, dtype=bool)
    true_positive = warned & y
    n_tp, n_warned, n_pos, n_neg = true_positive.sum(), warned.sum(), y.sum(), (~y).sum()
    precision = n_tp / n_warned if n_warned else 0.0
    recall = n_tp / n_pos if n_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    tp_latencies = np.array(
        [k for k, hit in zip(latencies, true_positive, strict=True) if hit], dtype=float
    )
    fast = speed(tp_latencies, p)
    measures = {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "speed": fast,
        "latency_weighted_f1": float(f1 * fast) if np.isfinite(fast) else 0.0,
        "false_warnings_per_1k_negatives": float(1000 * (warned & ~y).sum() / n_neg)
        if n_neg
        else float("nan"),
        "n_conversations": float(len(y)),
        "n_positive": float(n_pos),
        "n_warned": float(n_warned),
    }
    for q in (0.25, 0.5, 0.75, 0.9):
        name = "latency_median" if q == 0.5 else f"latency_q{int(q * 100)}"
        measures[name] = float(np.quantile(tp_latencies, q)) if len(tp_latencies) else float("nan")
    return measures
