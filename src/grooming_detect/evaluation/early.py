"""Early sexual predator detection (eSPD) measures: warning policies, latency, speed and the
latency-weighted F1 of Vogt, Leser and Akbik, "Early Detection of Sexual Predators in Chats"
(ACL 2021).

A model reads a conversation message by message and produces a risk score after each message
(one curve per conversation). As in eSPD's evaluation code, only non-empty messages are steps:
an empty-text message is not a step and is not counted, so ``k`` below is the number of
non-empty messages read (`espd_steps`). A step is *positive* when its score is at or above the
warning threshold. Two warning policies, one at a time (setting both is refused):

* ``skepticism`` s (eSPD's): warn at the first step where at least s of the last
  `SKEPTICISM_WINDOW` (10) steps were positive; steps before the first count as negative, so
  the earliest warning is at ``k = s``. eSPD's evaluation reports s = 1 .. 10.
* ``patience`` n (this project's, not eSPD's): warn at the first step where the last n steps
  were all positive (``patience 1`` and ``skepticism 1`` are the same rule: the first positive).

Once raised, a warning stays. The latency of a warning is the ``k`` at which it is raised.
Measures over a split's conversations:

* precision, recall and F1 of warned conversations (a warning on a positive conversation is a
  true positive, on a negative one a false warning);
* latency over true positives: median and quantiles;
* ``penalty(k) = -1 + 2 / (1 + exp(-p (k - 1)))`` and ``speed = 1 - median penalty`` over the
  true positives; latency-weighted F1 = F1 × speed;
* false warnings per 1,000 negative conversations.

The penalty slope ``p`` follows eSPD's rule: p is set so that a latency equal to the median
chat length costs half, ``penalty(median) = 0.5``, i.e. ``p = ln 3 / (median - 1)``. eSPD's
code fixes the median at 90 messages (``p = ln 3 / 89``, `P_ESPD`); on a corpus of short chats
that value makes every warning look fast (a latency of 10 costs 0.06, speed near 1 whatever
the model does). So by default (``early.penalty_p: null``) p is derived per evaluated split
from the median number of non-empty messages of its positive conversations (those with at
least one non-empty message), and that split's measures use it (validation's p tunes the
threshold); ``early.penalty_p: espd`` uses ln 3 / 89, a number sets p directly. A median of at
most one message cannot give a p (``penalty(1)`` is 0 whatever p) and is refused, naming the
alternatives. Each split logs the p it used (``<split>/early/penalty_p``) and the median
(``<split>/early/positive_median_length``).

Where this differs from eSPD's evaluation code (`espd_steps`, `split_measures`): eSPD computes
speed on full-length positive chats and F1 on segments of chats (each segment warned on its
own), filtering segments to 6..150 non-empty messages on its PANC dataset. This project has no
grouping of conversations into longer chats, so a conversation is both the unit of F1 and the
chat of the speed; no length filter is applied. eSPD's model reads non-empty messages only;
here the model reads the conversation as the stream does (an empty message is read but is not
a step, and a conversation model sees its speaker marker).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from grooming_detect.models.decision import ScoreCalibrator
from grooming_detect.scoring.incremental import ConversationStreams, PrefixScorer, prefix_scorer
from grooming_detect.stage import StageContext

log = logging.getLogger(__name__)

#: The median chat length eSPD's code sets p from: a warning after 90 messages costs half.
ESPD_MEDIAN_LENGTH = 90
#: eSPD's own penalty slope, ``ln 3 / 89`` (``early.penalty_p: espd``).
P_ESPD = math.log(3) / (ESPD_MEDIAN_LENGTH - 1)
#: The steps eSPD's skepticism looks back over: its "last 10 predictions".
SKEPTICISM_WINDOW = 10
#: ``early.penalty_p`` that selects eSPD's own slope (null derives p from the split).
PENALTY_ESPD = "espd"
#: Rows of the sliding windows the skepticism rule ranks at a time (bounds its memory).
HELD_CHUNK_ROWS = 500_000


def latency_penalty(k: float | np.ndarray, p: float = P_ESPD) -> float | np.ndarray:
    """``-1 + 2 / (1 + exp(-p (k - 1)))``: 0 for a warning at the first message, towards 1
    for late ones."""
    k = np.asarray(k, dtype=float)
    if np.any(k < 1):
        raise ValueError("latency k counts messages read: expected k >= 1")
    value = -1.0 + 2.0 / (1.0 + np.exp(-p * (k - 1.0)))
    return float(value) if value.ndim == 0 else value


def espd_penalty_p(median_length: float) -> float:
    """eSPD's rule for the penalty slope: the p for which ``penalty(median_length) = 0.5``,
    ``ln 3 / (median_length - 1)`` (from ``2 / (1 + exp(-p (m - 1))) = 3/2``)."""
    if not (math.isfinite(median_length) and median_length > 1):
        raise ValueError(
            f"median length {median_length!r}: eSPD's rule sets p so that a latency equal to "
            "the median chat length costs half, which needs a median of more than one message"
        )
    return math.log(3) / (median_length - 1)


def speed(latencies: Sequence[float], p: float = P_ESPD) -> float:
    """``1 - median penalty`` over the true positives' latencies (NaN without any)."""
    if len(latencies) == 0:
        return float("nan")
    return float(1.0 - np.median(latency_penalty(np.asarray(latencies, dtype=float), p)))


def warning_rule(
    patience: int = 1, skepticism: int | None = None, window: int = SKEPTICISM_WINDOW
) -> tuple[int, int]:
    """``(span, needed)``: a warning is due at the first step where at least `needed` of the
    last `span` steps were positive. eSPD's skepticism s is ``(window, s)``; patience n is
    ``(n, n)``, n positive steps in a row. Both at once is refused: they are two policies."""
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience {patience!r}: expected a positive number of steps")
    if skepticism is None:
        return patience, patience
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"skepticism window {window!r}: expected a positive number of steps")
    if isinstance(skepticism, bool) or not isinstance(skepticism, int):
        raise ValueError(f"skepticism {skepticism!r}: expected a whole number or None")
    if not 1 <= skepticism <= window:
        raise ValueError(
            f"skepticism {skepticism!r}: expected 1 to {window} (positive steps among the last "
            f"{window})"
        )
    if patience != 1:
        raise ValueError(
            f"patience {patience} and skepticism {skepticism} are two warning policies "
            f"(consecutive positive steps, or positive steps among the last {window}): use "
            "patience 1 with skepticism, or skepticism None with patience"
        )
    return window, skepticism


def first_warning(
    steps: Sequence[int],
    scores: Sequence[float],
    threshold: float,
    patience: int = 1,
    *,
    skepticism: int | None = None,
    skepticism_window: int = SKEPTICISM_WINDOW,
) -> int | None:
    """Messages read (``k``) when the warning is raised; None if never. With `skepticism` s
    (eSPD's master classifier): the first step where at least s of the last
    `skepticism_window` scores were at or above `threshold`, steps before the first counting
    as below. Otherwise the first step where the score has been at or above it for `patience`
    consecutive steps.

    `steps` are the ``k`` at which the conversation was scored (increasing), `scores` the
    score after each. The step-by-step reference of `warning_latencies`."""
    span, needed = warning_rule(patience, skepticism, skepticism_window)
    if len(steps) != len(scores):
        raise ValueError("steps and scores differ in length")
    recent = [False] * span
    for k, score in zip(steps, scores, strict=True):
        recent = [*recent[1:], score >= threshold]
        if sum(recent) >= needed:
            return int(k)
    return None


def early_measures(
    latencies: Sequence[int | None], labels: Sequence[bool], p: float = P_ESPD
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
    fast = speed(tp_latencies.tolist(), p)
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


# --------------------------------------------------------------------------- risk curves

#: How a model's risk curve is computed: ``incremental`` (exact prefix scores of a linear TF-IDF
#: model, `grooming_detect.scoring.incremental`, or of a model that pools message scores,
#: `grooming_detect.scoring.score_streams`), ``window`` (re-score the last `window`
#: messages every `step` messages: any model), or ``auto`` (incremental when the model allows).
METHODS = ("auto", "incremental", "window")
#: Pseudo-ids of windows join the original id and the step with this character (never in ids).
_JOIN = "\x1f"
#: Window messages scored at a time by the window method (bounds its memory).
WINDOW_CHUNK_MESSAGES = 200_000


@dataclass(frozen=True)
class EarlySettings:
    """``early`` in the config."""

    window: int = 50
    step: int = 1
    #: This project's policy: positive steps in a row (1: the first positive step warns).
    patience: int = 1
    #: eSPD's policy: positive steps among the last `skepticism_window` (None: off).
    skepticism: int | None = None
    skepticism_window: int = SKEPTICISM_WINDOW
    method: str = "auto"
    #: ``tuned``: warning threshold maximising latency-weighted F1 on validation; ``model``:
    #: the model's own tuned decision threshold.
    threshold: str = "tuned"
    #: None: derived per split by eSPD's rule (`split_penalty`); ``espd``: `P_ESPD`; a number.
    penalty_p: float | str | None = None

    def __post_init__(self) -> None:
        for name in ("window", "step", "patience", "skepticism_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"early.{name} {value!r}: expected a positive whole number")
        if self.skepticism is not None and self.patience != 1:
            raise ValueError(
                f"early.patience={self.patience} and early.skepticism={self.skepticism} are two "
                "warning policies (positive steps in a row, or eSPD's positive steps among the "
                f"last {self.skepticism_window}): set early.patience=1 to use skepticism, or "
                "early.skepticism=null to use patience"
            )
        try:
            self.rule()
        except ValueError as error:
            raise ValueError(f"early.{error}") from None
        if self.method not in METHODS:
            raise ValueError(f"early.method {self.method!r}: expected one of {list(METHODS)}")
        if self.threshold not in ("tuned", "model"):
            raise ValueError(f"early.threshold {self.threshold!r}: expected 'tuned' or 'model'")
        p = self.penalty_p
        if p is not None and p != PENALTY_ESPD:
            positive = (
                isinstance(p, float | int)
                and not isinstance(p, bool)
                and math.isfinite(p)
                and p > 0
            )
            if not positive:
                raise ValueError(
                    f"early.penalty_p {p!r}: expected null (derived from the split's positive "
                    f"conversations by eSPD's rule), {PENALTY_ESPD!r} (eSPD's ln 3 / 89) or a "
                    "positive number"
                )

    def rule(self) -> tuple[int, int]:
        """``(span, needed)`` of the warning policy (`warning_rule`)."""
        return warning_rule(self.patience, self.skepticism, self.skepticism_window)

    def describe_policy(self) -> str:
        """The warning policy in words, for logs and the card."""
        if self.skepticism is not None:
            return (
                f"at least {self.skepticism} of its last {self.skepticism_window} scored steps "
                f"reached the threshold (eSPD's skepticism {self.skepticism})"
            )
        return (
            f"its risk reached the threshold in {self.patience} consecutive scored step(s) "
            f"(patience {self.patience})"
        )


def ordered_messages(messages: pd.DataFrame) -> pd.DataFrame:
    """Messages in reading order (conversation, then line) with ``k``: messages read so far."""
    ordered = messages.sort_values(["conversation_id", "line"], kind="stable", ignore_index=True)
    return ordered.assign(k=ordered.groupby("conversation_id", sort=False).cumcount() + 1)


#: Messages read per call of `ConversationStreams.add_many` (a message-scoring model embeds
#: each batch in one call).
CURVE_BATCH = 10_000


def incremental_curves(scorer: PrefixScorer, unit: str, messages: pd.DataFrame) -> pd.DataFrame:
    """Raw score of each conversation after every message, from exact prefix scores
    (`ConversationStreams`: the code ``grooming-detect-score --stream`` runs)."""
    ordered = ordered_messages(messages)
    streams = ConversationStreams(scorer, unit)
    rows = list(
        zip(
            ordered["conversation_id"].tolist(),
            ordered["author"].tolist(),
            ordered["text"].tolist(),
            strict=True,
        )
    )
    scores = np.asarray(
        [
            score
            for start in range(0, len(rows), CURVE_BATCH)
            for score in streams.add_many(rows[start : start + CURVE_BATCH])
        ],
        dtype=np.float64,
    )
    return pd.DataFrame(
        {"conversation_id": ordered["conversation_id"], "k": ordered["k"], "raw_score": scores}
    )


def window_steps(n_messages: int, step: int) -> list[int]:
    """The ``k`` at which a conversation of `n_messages` is scored: every `step`, and the end."""
    steps = list(range(step, n_messages + 1, step))
    if not steps or steps[-1] != n_messages:
        steps.append(n_messages)
    return steps


def _runs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end positions of each run of equal consecutive `ids` (a conversation's rows)."""
    if not len(ids):
        return np.array([], dtype=int), np.array([], dtype=int)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return starts, np.r_[starts[1:], len(ids)]


def _window_index(
    ordered: pd.DataFrame, window: int, step: int
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Positions (in `ordered`) of every scored window's messages, the window's
    pseudo-conversation id for each position, and each window's ``k``."""
    ids = ordered["conversation_id"].to_numpy()
    starts, ends = _runs(ids)
    positions, pseudo, ks = [], [], []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        cid = ids[start]
        for k in window_steps(end - start, step):
            first = start + max(0, k - window)
            positions.append(np.arange(first, start + k))
            pseudo.extend([f"{cid}{_JOIN}{k}"] * (start + k - first))
            ks.append(k)
    index = np.concatenate(positions) if positions else np.array([], dtype=int)
    return index, pseudo, np.asarray(ks, dtype=int)


def window_messages(messages: pd.DataFrame, window: int, step: int) -> pd.DataFrame:
    """The messages each scored window holds: for step ``k`` of a conversation, messages
    ``max(1, k - window + 1) .. k`` under a pseudo-conversation ``<id>\\x1f<k>`` whose authors
    are ``<author>\\x1f<id>\\x1f<k>``, so every window is scored on its own."""
    ordered = ordered_messages(messages)
    index, pseudo, _ = _window_index(ordered, window, step)
    part = ordered.iloc[index].reset_index(drop=True)
    pseudo_ids = pd.Series(pseudo, dtype=object)
    return part.assign(
        conversation_id=pseudo_ids.to_numpy(),
        author=(part["author"].astype(str) + _JOIN + pseudo_ids).to_numpy(),
    )


def window_curves(
    model: Any,
    meta: dict[str, Any],
    messages: pd.DataFrame,
    settings: EarlySettings,
    lexicons: dict[str, list[str]],
    separator: str,
) -> pd.DataFrame:
    """Raw score of each conversation every `settings.step` messages (and at its end), the
    model reading the last `settings.window` messages, with the features the pipeline builds.
    Windows are scored in chunks of about `WINDOW_CHUNK_MESSAGES` messages."""
    from grooming_detect.scoring.messages import score_messages

    raw_meta = {**meta, "calibration": {"method": "none"}}
    ordered = ordered_messages(messages)
    starts, ends = _runs(ordered["conversation_id"].to_numpy())
    parts, chunk_start, size = [], 0, 0
    for position, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        size += sum(min(k, settings.window) for k in window_steps(end - start, settings.step))
        if size >= WINDOW_CHUNK_MESSAGES or position == len(starts) - 1:
            chunk = window_messages(
                ordered.iloc[starts[chunk_start] : end].drop(columns="k"),
                settings.window,
                settings.step,
            )
            _, scored = score_messages(
                model, raw_meta, chunk.drop(columns="k"), lexicons, separator
            )
            parts.append(scored)
            chunk_start, size = position + 1, 0
    if not parts:
        return pd.DataFrame(columns=["conversation_id", "k", "raw_score"])
    scored = pd.concat(parts, ignore_index=True)
    split = scored["conversation_id"].str.rsplit(_JOIN, n=1, expand=True)
    return pd.DataFrame(
        {
            "conversation_id": split[0],
            "k": split[1].astype(int),
            "raw_score": scored["score"].astype(float),
        }
    ).sort_values(["conversation_id", "k"], ignore_index=True)


def risk_curves(
    model: Any,
    meta: dict[str, Any],
    messages: pd.DataFrame,
    settings: EarlySettings,
    lexicons: dict[str, list[str]],
    separator: str,
) -> tuple[pd.DataFrame, str]:
    """Each conversation's calibrated risk after message ``k`` (columns ``conversation_id``,
    ``k``, ``nonempty_k``: the non-empty messages among ``1..k``, ``raw_score``, ``score``) and
    the method used. The score at ``k`` is computed from messages ``1..k`` alone; ``k`` counts
    every message, as ``grooming-detect-score --stream`` does (`espd_steps` keeps eSPD's)."""
    scorer = None
    if settings.method in ("auto", "incremental"):
        scorer = prefix_scorer(model, separator)
        if scorer is None and settings.method == "incremental":
            raise ValueError(
                "early.method=incremental needs a TF-IDF + logistic-regression model on text "
                "alone or a model that pools message scores (embedding_logreg, sentinel); "
                f"{meta.get('model_name', type(model).__name__)} is neither (use "
                "early.method=window)"
            )
    unit = str(meta.get("unit", "author"))
    if scorer is not None:
        curves, method = incremental_curves(scorer, unit, messages), "incremental"
    else:
        curves = window_curves(model, meta, messages, settings, lexicons, separator)
        method = "window"
    curves = curves.merge(nonempty_counts(messages), on=["conversation_id", "k"], how="left")
    calibrator = ScoreCalibrator.from_dict(meta.get("calibration", {"method": "none"}))
    curves["score"] = calibrator.transform(curves["raw_score"].to_numpy())
    return curves[["conversation_id", "k", "nonempty_k", "raw_score", "score"]], method


def nonempty_counts(messages: pd.DataFrame) -> pd.DataFrame:
    """Per message (``conversation_id``, ``k``): ``nonempty_k``, the messages with text among
    the conversation's first ``k`` (eSPD's ``isNonemptyMsg``: a message whose text is not
    ``""``; whitespace counts as text, as there)."""
    ordered = ordered_messages(messages)
    nonempty = ordered["text"].fillna("").astype(str).ne("")
    counted = nonempty.groupby(ordered["conversation_id"], sort=False).cumsum()
    return pd.DataFrame(
        {
            "conversation_id": ordered["conversation_id"],
            "k": ordered["k"],
            "nonempty_k": counted.astype(int),
        }
    )


def espd_steps(curves: pd.DataFrame) -> pd.DataFrame:
    """The steps eSPD's evaluation counts, from risk curves (`risk_curves`): one per non-empty
    message, ``k`` renumbered to the non-empty messages read, with ``score``.

    A step is the first scored row after a non-empty message: a row at an empty message
    repeats the previous row's count and is dropped (the incremental method scores every
    message, so its steps are the rows at non-empty messages); the window method's row at an
    empty message stands for the non-empty messages before it when none of them was scored.
    Rows before the first non-empty message are not steps, so a conversation of empty messages
    alone has none (and is never warned)."""
    counted = curves[curves["nonempty_k"] > 0]
    first = ~counted.duplicated(["conversation_id", "nonempty_k"], keep="first")
    steps = counted.loc[first, ["conversation_id", "nonempty_k", "score"]]
    return steps.rename(columns={"nonempty_k": "k"}).reset_index(drop=True)


def split_penalty(
    curves: pd.DataFrame, labels: pd.Series, setting: float | str | None
) -> tuple[float, float]:
    """The penalty slope p for one split's measures and the median length of its positive
    conversations (non-empty messages, those with at least one; NaN without any).

    `setting` None derives p by eSPD's rule from that median (`espd_penalty_p`); a split
    without a positive conversation gets NaN (its speed has no true positive to weigh);
    ``espd`` is `P_ESPD`; a number is p itself."""
    lengths = curves.groupby("conversation_id", sort=False)["nonempty_k"].max()
    positive = labels.reindex(lengths.index).eq(True).to_numpy()
    chats = lengths[positive & (lengths.to_numpy() > 0)]
    median = float(chats.median()) if len(chats) else float("nan")
    if setting == PENALTY_ESPD:
        return P_ESPD, median
    if setting is not None:
        return float(setting), median
    if not len(chats):
        return float("nan"), median
    try:
        return espd_penalty_p(median), median
    except ValueError as error:
        raise ValueError(
            f"early.penalty_p=null: {error}; the positive conversations here have a median of "
            f"{median:g} non-empty message(s) ({len(chats)} conversations): set "
            f"early.penalty_p to a number or to {PENALTY_ESPD!r} (eSPD's ln 3 / 89)"
        ) from None


# ------------------------------------------------------------------ warnings and tuning


def _held_running_max(steps: pd.DataFrame, span: int, needed: int) -> np.ndarray:
    """Per step: the highest threshold a warning could have been raised at so far. At one step,
    at least `needed` of the last `span` scores reach t exactly when the `needed`-th highest of
    them does (steps before the first count as below any t); the running maximum of that over
    the conversation is the highest t warned by then, so the warning at threshold t is raised
    at the first step where it reaches t. Steps must be contiguous per conversation."""
    scores = steps["score"].to_numpy(dtype=float)
    ids = steps["conversation_id"].to_numpy()
    starts, ends = _runs(ids)
    first_row = np.repeat(starts, ends - starts)
    windows = np.lib.stride_tricks.sliding_window_view(
        np.concatenate([np.full(span - 1, -np.inf), scores]), span
    )  # row i: the scores of steps i - span + 1 .. i (padding before the first)
    offsets = np.arange(span)
    held = np.empty(len(scores))
    for a in range(0, len(scores), HELD_CHUNK_ROWS):
        b = min(len(scores), a + HELD_CHUNK_ROWS)
        block = windows[a:b].copy()
        # Offsets before the conversation's first step hold another conversation's scores.
        block[offsets[None, :] < (first_row[a:b] - np.arange(a, b) + span - 1)[:, None]] = -np.inf
        held[a:b] = np.partition(block, span - needed, axis=1)[:, span - needed]
    return pd.Series(held).groupby(ids, sort=False).cummax().to_numpy()


def warning_latencies(
    steps: pd.DataFrame,
    threshold: float,
    patience: int = 1,
    *,
    skepticism: int | None = None,
    skepticism_window: int = SKEPTICISM_WINDOW,
) -> pd.Series:
    """Per conversation (in step order): ``k`` of the first warning, NaN when none. `steps`
    (``conversation_id``, ``k``, ``score``; `espd_steps`) are contiguous per conversation;
    the policy is `first_warning`'s."""
    steps = steps.reset_index(drop=True)
    span, needed = warning_rule(patience, skepticism, skepticism_window)
    reached = _held_running_max(steps, span, needed) >= threshold
    first = steps.loc[reached].groupby("conversation_id", sort=False)["k"].min()
    ids = steps["conversation_id"].drop_duplicates()
    return first.reindex(ids).astype(float)


def tune_warning_threshold(
    steps: pd.DataFrame,
    labels: pd.Series,
    patience: int = 1,
    p: float = P_ESPD,
    *,
    skepticism: int | None = None,
    skepticism_window: int = SKEPTICISM_WINDOW,
    conversation_ids: Sequence[str] | None = None,
) -> tuple[float, float]:
    """The threshold maximising latency-weighted F1 of `steps` (validation), and that value.

    `conversation_ids` are the split's conversations (default: those with a step); one without
    a step is never warned, and counts in recall when positive. Candidates are the scores at
    which a conversation's warning or its latency changes (the values of the held running
    maximum), at most 400 quantiles of them."""
    steps = steps.reset_index(drop=True)
    span, needed = warning_rule(patience, skepticism, skepticism_window)
    held = _held_running_max(steps, span, needed)
    peaks = pd.Series(held).groupby(steps["conversation_id"], sort=False).max()
    starts, ends = _runs(steps["conversation_id"].to_numpy())
    if len(starts) != len(peaks):
        raise ValueError("early detection: each conversation's curve rows must be contiguous")
    every = peaks.index if conversation_ids is None else pd.Index(conversation_ids)
    known = labels.reindex(every.union(peaks.index, sort=False))
    if known.isna().any():
        missing = list(known.index[known.isna()][:3])
        raise ValueError(f"early detection: conversations without a label, e.g. {missing}")
    y = known.reindex(peaks.index).to_numpy(dtype=bool)
    n_pos = known.to_numpy(dtype=bool).sum()
    candidates = np.unique(held[np.isfinite(held)])
    if len(candidates) > 400:  # observed scores only, never interpolated ones
        candidates = np.unique(np.quantile(candidates, np.linspace(0, 1, 400), method="higher"))
    ks = steps["k"].to_numpy(dtype=float)
    latency = np.full((len(peaks), len(candidates)), np.nan)
    for row, (a, b) in enumerate(zip(starts, ends, strict=True)):
        where = np.searchsorted(held[a:b], candidates, side="left")
        hit = where < b - a
        latency[row, hit] = ks[a:b][where[hit]]
    warned = ~np.isnan(latency)
    tp = (warned & y[:, None]).sum(axis=0)
    n_warned = warned.sum(axis=0)
    precision = np.divide(tp, n_warned, out=np.zeros(len(candidates)), where=n_warned > 0)
    recall = tp / n_pos if n_pos else np.zeros(len(candidates))
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall,
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    hits = warned & y[:, None]
    penalties = np.where(hits, latency_penalty(np.nan_to_num(latency, nan=1.0), p), np.nan)
    penalties[:, tp == 0] = 0.0  # no true positive: the objective is 0 below anyway
    median_penalty = np.nanmedian(penalties, axis=0)
    objective = np.where(tp > 0, f1 * (1.0 - median_penalty), 0.0)
    if len(candidates) == 0 or objective.max() <= 0:
        policy = (
            f"patience {patience}"
            if skepticism is None
            else f"skepticism {skepticism} of {skepticism_window}"
        )
        raise ValueError(
            f"early detection: no warning threshold warns a positive validation conversation "
            f"({int(n_pos)} positive of {len(known)}, {policy}), so none can be tuned; "
            "lower early.patience or early.skepticism, or set early.threshold=model"
        )
    best = int(np.argmax(objective))  # the lowest threshold among equals: the earliest warnings
    return float(candidates[best]), float(objective[best])


def split_measures(
    curves: pd.DataFrame, labels: pd.Series, threshold: float, settings: EarlySettings
) -> tuple[dict[str, float], pd.DataFrame]:
    """The eSPD measures of one split's risk curves (`risk_curves`, with ``nonempty_k``) at
    `threshold`, and the per-conversation warnings (``conversation_id``, ``label``,
    ``n_messages``: non-empty messages, ``warned_at``: non-empty messages read at the warning,
    NaN when never).

    Latencies count non-empty messages (`espd_steps`); F1 is over the split's conversations
    and speed over its warned positive ones, with p from `split_penalty` (logged with the
    median it came from as ``penalty_p`` and ``positive_median_length``)."""
    ids = curves["conversation_id"].drop_duplicates()
    latencies = warning_latencies(
        espd_steps(curves),
        threshold,
        settings.patience,
        skepticism=settings.skepticism,
        skepticism_window=settings.skepticism_window,
    ).reindex(ids)
    y = labels.reindex(ids)
    if y.isna().any():
        missing = list(y.index[y.isna()][:3])
        raise ValueError(f"early detection: conversations without a label, e.g. {missing}")
    p, median = split_penalty(curves, labels, settings.penalty_p)
    measures = early_measures(
        [None if np.isnan(k) else int(k) for k in latencies],
        y.to_numpy(dtype=bool).tolist(),
        p,
    )
    measures.update({"penalty_p": p, "positive_median_length": median})
    lengths = curves.groupby("conversation_id", sort=False)["nonempty_k"].max()
    table = pd.DataFrame(
        {
            "conversation_id": ids.to_numpy(),
            "label": y.to_numpy(dtype=bool),
            "n_messages": lengths.reindex(ids).to_numpy(),
            "warned_at": latencies.to_numpy(),
        }
    )
    return measures, table


def evaluate_early(
    model: Any,
    meta: dict[str, Any],
    messages: pd.DataFrame,
    conversations: pd.DataFrame,
    splits: Sequence[str],
    settings: EarlySettings,
    lexicons: dict[str, list[str]],
    separator: str,
    out_dir: Path,
) -> tuple[dict[str, float], dict[str, Any], dict[str, Path]]:
    """Risk curves, the warning threshold (tuned on validation), the eSPD measures per split
    (``<split>/early/…``, each split with its own penalty slope p unless ``early.penalty_p``
    fixes it), the per-conversation warnings and curves (Parquet, no text) and the figures,
    under `out_dir`."""
    from grooming_detect.io import write_parquet

    out_dir.mkdir(parents=True, exist_ok=True)
    curves: dict[str, pd.DataFrame] = {}
    method = ""
    for split in splits:
        part = messages[messages["split"] == split]
        curves[split], method = risk_curves(model, meta, part, settings, lexicons, separator)
    labels = conversations.set_index("conversation_id")["has_predator"]
    threshold, fitted_on = _warning_threshold(meta, curves, labels, settings)
    metrics: dict[str, float] = {"early/threshold": threshold}
    outputs: dict[str, Path] = {}
    warnings: dict[str, pd.DataFrame] = {}
    for split, curve in curves.items():
        measures, warnings[split] = split_measures(curve, labels, threshold, settings)
        metrics.update({f"{split}/early/{name}": value for name, value in measures.items()})
        outputs[f"early_{split}_warnings"] = write_parquet(
            out_dir / f"{split}-warnings.parquet", warnings[split]
        )
        outputs[f"early_{split}_curves"] = write_parquet(out_dir / f"{split}-curves.parquet", curve)
    steps = {split: espd_steps(curve) for split, curve in curves.items()}
    outputs.update(
        _early_figures(steps, warnings, threshold, meta.get("model_name", "model"), out_dir)
    )
    summary = {
        "method": method,
        "window": settings.window,
        "step": settings.step,
        "patience": settings.patience,
        "skepticism": settings.skepticism,
        "skepticism_window": settings.skepticism_window,
        "warning_policy": settings.describe_policy(),
        "penalty_p_setting": settings.penalty_p,
        "penalty_rule": penalty_rule(settings.penalty_p),
        "penalty_p": {split: metrics[f"{split}/early/penalty_p"] for split in curves},
        "positive_median_length": {
            split: metrics[f"{split}/early/positive_median_length"] for split in curves
        },
        "threshold": threshold,
        "threshold_fitted_on": fitted_on,
        "splits": list(curves),
    }
    return metrics, summary, outputs


def penalty_rule(setting: float | str | None) -> str:
    """How ``early.penalty_p`` sets the penalty slope, in words (the card and the logs)."""
    if setting is None:
        return (
            "p = ln 3 / (m − 1), m the median number of non-empty messages of the split's "
            "positive conversations, so that a latency of m costs half (eSPD's rule)"
        )
    if setting == PENALTY_ESPD:
        return "p = ln 3 / 89, eSPD's own value (a latency of 90 messages costs half)"
    return f"p = {float(setting):g}, set by early.penalty_p"


def _warning_threshold(
    meta: dict[str, Any],
    curves: dict[str, pd.DataFrame],
    labels: pd.Series,
    settings: EarlySettings,
) -> tuple[float, str]:
    """The warning threshold and what it was fitted on: the model's decision threshold, or the
    one that maximises latency-weighted F1 on validation's risk curves (with validation's p)."""
    if settings.threshold == "model":
        return float(meta["threshold"]), "the model's decision threshold"
    if "validation" not in curves:
        raise ValueError(
            "early.threshold=tuned tunes the warning threshold on validation; add "
            "validation to evaluate.splits or set early.threshold=model"
        )
    validation = curves["validation"]
    p, _ = split_penalty(validation, labels, settings.penalty_p)
    threshold, _ = tune_warning_threshold(
        espd_steps(validation),
        labels,
        settings.patience,
        p,
        skepticism=settings.skepticism,
        skepticism_window=settings.skepticism_window,
        conversation_ids=validation["conversation_id"].drop_duplicates().tolist(),
    )
    return threshold, "validation (latency-weighted F1)"


def _early_figures(
    steps: dict[str, pd.DataFrame],
    warnings: dict[str, pd.DataFrame],
    threshold: float,
    name: str,
    out_dir: Path,
) -> dict[str, Path]:
    """Warned share against non-empty messages read (every split), and for test (else the first
    split) the latency of correct warnings and example risk curves (eSPD's steps, `steps`)."""
    from grooming_detect.evaluation import plots

    outputs = {
        "early_warned_by": plots.warned_by_figure(
            warnings,
            f"Warnings against non-empty messages read ({name})",
            out_dir / "warned-by-messages.png",
        )
    }
    focus = "test" if "test" in warnings else next(iter(warnings))
    table = warnings[focus]
    hits = table.loc[table["label"] & table["warned_at"].notna(), "warned_at"].to_numpy()
    outputs["early_latency"] = plots.latency_histogram_figure(
        hits, f"{focus}: latency of correct warnings ({name})", out_dir / "latency-histogram.png"
    )
    outputs["early_examples"] = plots.risk_curve_figure(
        _examples(steps[focus], table),
        threshold,
        f"{focus}: risk as the conversation unfolds ({name})",
        out_dir / "risk-curves.png",
    )
    return outputs


def _examples(curves: pd.DataFrame, warnings: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One positive conversation (the correctly warned one at the median latency, else the
    highest-scoring) and the negative with the highest risk, by id only. `curves` are eSPD's
    steps: a conversation of empty messages alone has none and is never an example."""
    examples: dict[str, pd.DataFrame] = {}
    peaks = curves.groupby("conversation_id")["score"].max()
    positives = warnings[warnings["label"]]
    warned = positives.dropna(subset=["warned_at"]).sort_values("warned_at")
    positive_peaks = peaks.reindex(positives["conversation_id"]).dropna()
    if len(warned):
        pick = warned.iloc[len(warned) // 2]["conversation_id"]
    elif len(positive_peaks):
        pick = positive_peaks.idxmax()
    else:
        pick = None
    if pick is not None:
        examples[f"positive {pick}"] = curves[curves["conversation_id"] == pick]
    negative_peaks = peaks.reindex(warnings.loc[~warnings["label"], "conversation_id"]).dropna()
    if len(negative_peaks):
        worst = negative_peaks.idxmax()
        examples[f"negative {worst} (highest risk)"] = curves[curves["conversation_id"] == worst]
    return examples


def early_settings(section: Any) -> EarlySettings:
    """`EarlySettings` from the config's ``early`` section (checked)."""
    values = dict(section)
    return EarlySettings(
        window=values.get("window", 50),
        step=values.get("step", 1),
        patience=values.get("patience", 1),
        skepticism=values.get("skepticism"),
        skepticism_window=values.get("skepticism_window", SKEPTICISM_WINDOW),
        method=str(values.get("method", "auto")),
        threshold=str(values.get("threshold", "tuned")),
        penalty_p=values.get("penalty_p"),
    )


def early_from_config(
    cfg: DictConfig,
    ctx: StageContext,
    model: Any,
    meta: dict[str, Any],
    messages: pd.DataFrame,
    conversations: pd.DataFrame,
    metrics: dict[str, float],
    outputs: dict[str, Path],
) -> dict[str, Any]:
    """Early detection (`evaluation.early`) when ``early.enabled``: adds ``<split>/early/…`` to
    `metrics`, the curves, warnings and figures to `outputs`; returns the summary the model card
    reads."""
    if not cfg.early.enabled:
        return {}
    # Imported here: validation reads this module's settings before MLflow is loaded.
    from grooming_detect.scoring.messages import feature_settings

    lexicons, separator = feature_settings(meta, None, None)
    early_metrics, summary, early_outputs = evaluate_early(
        model,
        meta,
        messages,
        conversations,
        [str(split) for split in cfg.evaluate.splits],
        early_settings(cfg.early),
        lexicons,
        separator,
        ctx.evaluation_dir / "early",
    )
    metrics.update(early_metrics)
    outputs.update(early_outputs)
    for split in summary["splits"]:
        prefix = f"{split}/early"
        log.info(
            "%s early detection (%s): latency-weighted F1 %.3f (F1 %.3f x speed %.3f; penalty "
            "p %.5f, positive conversations' median length %s non-empty messages), median "
            "latency %s non-empty messages, %.1f false warnings per 1,000 negative "
            "conversations; threshold %.3f, warned when %s",
            split,
            summary["method"],
            metrics[f"{prefix}/latency_weighted_f1"],
            metrics[f"{prefix}/f1"],
            metrics[f"{prefix}/speed"],
            metrics[f"{prefix}/penalty_p"],
            f"{metrics[f'{prefix}/positive_median_length']:g}",
            f"{metrics[f'{prefix}/latency_median']:g}",
            metrics[f"{prefix}/false_warnings_per_1k_negatives"],
            summary["threshold"],
            summary["warning_policy"],
        )
    return summary
