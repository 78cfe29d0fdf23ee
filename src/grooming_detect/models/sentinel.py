"""Rare-class affinity of a unit's messages (``model=sentinel``), after Roblox Sentinel.

Method: Roblox Sentinel (https://github.com/Roblox/Sentinel, Apache-2.0, 2025), written here from
its description; no code of it is copied. Sentinel scores each recent message of a source
(a user) by how much closer it is to a small index of rare-class examples than to an index of
common ones, and flags the source when the distribution of those scores is skewed to the right:
most messages are ordinary, a few are close to the rare class.

Here, on the project's units (authors, or conversations) and splits:

* Every message is embedded by the frozen sentence encoder the embedding models share
  (`grooming_detect.models.embeddings`: L2-normalised vectors, cached by text; a unit's document
  is split back into its messages by the same rule).
* ``fit`` builds the positive index from the distinct messages of the training positives (for
  author units: every message of a positive author) and the negative index from a seeded sample
  of the negatives' distinct messages, ``negative_ratio`` times as many as the positive index
  holds (null: all of them). Nothing else is learned.
* A message's score: with ``s⁺`` its ``top_k`` highest cosine similarities to the positive index
  and ``s⁻`` to the negative one (all of an index smaller than ``top_k``),
  ``r = log(mean(exp(s⁺)) / mean(exp(s⁻)))``; the message scores ``r`` when ``r > 0`` and
  ``r >= min_score``, else 0 (Sentinel clips ratios at or below 1 to 0, then zeroes scores
  under its ``min_score_to_consider``, 0.1 by default; the two rules together are this one).
  Search is exact: cosine similarity is a dot product of unit vectors, computed as numpy
  matrix products over chunks of messages.
* A unit's score aggregates its messages' scores (`aggregate_observations`): ``skewness``
  (Sentinel's default: ``(mean − median) / sd`` with the population sd, 0 for a unit with
  fewer than ``min_observations`` messages or sd 0), ``mean_of_positives`` (mean of the scores
  above 0; 0 when none is), ``topk_mean`` (mean of the ``aggregate_top_k`` highest),
  ``p90`` (the 90th percentile, numpy's linear interpolation) or ``max``. A unit without
  messages scores 0.
* ``predict_proba`` returns ``sigmoid(unit score)``: the calibrator takes the logit of a
  model's scores, so Platt scaling (``decision.calibration=sigmoid``) is a logistic regression
  on the unit score as its single feature, fitted out of fold or on validation, and the
  threshold is tuned on the calibrated scores, as for every model.

Explanations: `SentinelClassifier.neighbours` gives a message's nearest positive and negative
index entries by id (their row in the index and the SHA-256 prefix of their text), never
their text. What differs from Sentinel, and why: ``docs/models.md``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from grooming_detect.models.embeddings import (
    MessageEncoderMixin,
    binary_labels,
    document_texts,
    encoder_parameters,
    split_units,
    text_digest,
)

log = logging.getLogger(__name__)

AGGREGATIONS = ("skewness", "mean_of_positives", "topk_mean", "p90", "max")
#: Similarities computed per chunk of messages, at most (float32: 32 MiB).
CHUNK_CELLS = 8_000_000
#: Hex characters of a text's SHA-256 that name an index entry.
ID_CHARS = 16


def top_k_similarities(
    queries: np.ndarray, index: np.ndarray, k: int, chunk_cells: int = CHUNK_CELLS
) -> np.ndarray:
    """The `k` highest dot products of each query with the rows of `index` (all of them when
    `index` has fewer), unordered, as a (queries, min(k, rows)) array; exact, chunked."""
    n = len(index)
    if n == 0:
        raise ValueError("an empty index: nothing to compare messages with")
    kept = min(int(k), n)
    out = np.empty((len(queries), kept), dtype=np.float32)
    step = max(1, chunk_cells // n)
    for start in range(0, len(queries), step):
        sims = queries[start : start + step] @ index.T
        if kept < n:
            sims = np.partition(sims, n - kept, axis=1)[:, n - kept :]
        out[start : start + step] = sims
    return out


def affinity_scores(
    queries: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray,
    top_k: int = 5,
    min_score: float = 0.1,
) -> np.ndarray:
    """Each query's rare-class affinity (see the module docstring): the log ratio of the mean
    exp of its `top_k` similarities to `positives` and to `negatives`, kept when above 0 and at
    least `min_score`, else 0."""
    if not len(queries):
        return np.zeros(0)
    positive = np.exp(top_k_similarities(queries, positives, top_k).astype(np.float64))
    negative = np.exp(top_k_similarities(queries, negatives, top_k).astype(np.float64))
    ratio = np.log(positive.mean(axis=1) / negative.mean(axis=1))
    return np.where((ratio > 0) & (ratio >= min_score), ratio, 0.0)


def aggregate_observations(
    scores: np.ndarray,
    owners: np.ndarray,
    n_units: int,
    how: str = "skewness",
    min_observations: int = 10,
    top_k: int = 3,
) -> np.ndarray:
    """Each unit's score from its messages' scores (`owners[i]`: message i's unit); 0 for a
    unit without messages. `how`: one of `AGGREGATIONS` (see the module docstring)."""
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregate {how!r}: expected one of {AGGREGATIONS}")
    result = np.zeros(n_units)
    if not len(scores):
        return result
    frame = pd.DataFrame({"unit": np.asarray(owners), "score": np.asarray(scores, dtype=float)})
    grouped = frame.groupby("unit")["score"]
    if how == "skewness":
        stats = grouped.agg(["size", "mean", "median"])
        stats["sd"] = grouped.std(ddof=0)
        usable = (stats["size"] >= min_observations) & (stats["sd"] > 0)
        value = ((stats["mean"] - stats["median"]) / stats["sd"]).where(usable, 0.0)
    elif how == "mean_of_positives":
        value = frame[frame["score"] > 0].groupby("unit")["score"].mean()
    elif how == "topk_mean":
        ranked = frame.sort_values(["unit", "score"], ascending=[True, False], kind="stable")
        top = ranked[ranked.groupby("unit").cumcount() < top_k]
        value = top.groupby("unit")["score"].mean()
    elif how == "p90":
        value = grouped.quantile(0.9)
    else:
        value = grouped.max()
    result[value.index.to_numpy(dtype=np.int64)] = value.to_numpy(dtype=float)
    return result


def aggregate_one(
    scores: np.ndarray, how: str = "skewness", min_observations: int = 10, top_k: int = 3
) -> float:
    """`aggregate_observations` of one unit's scores, with numpy alone (a stream calls it after
    every message: no pandas group-by per step); equal to it up to float rounding."""
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregate {how!r}: expected one of {AGGREGATIONS}")
    n = len(scores)
    if n == 0:
        return 0.0
    if how == "skewness":
        sd = float(np.std(scores))
        if n < min_observations or not sd > 0:
            return 0.0
        return (float(np.mean(scores)) - float(np.median(scores))) / sd
    if how == "mean_of_positives":
        positive = scores[scores > 0]
        return float(positive.mean()) if len(positive) else 0.0
    if how == "topk_mean":
        return float(np.sort(scores)[::-1][:top_k].mean())
    if how == "p90":
        return float(np.quantile(scores, 0.9))
    return float(scores.max())


def _distinct(messages: list[str], vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The distinct texts of `messages`, first occurrence kept, with their vectors."""
    first: dict[str, int] = {}
    for i, text in enumerate(messages):
        first.setdefault(text, i)
    rows = np.fromiter(first.values(), np.int64, count=len(first))
    return list(first), vectors[rows]


def _ids(texts: list[str]) -> np.ndarray:
    return np.array([text_digest(t).hex()[:ID_CHARS] for t in texts], dtype=f"<U{ID_CHARS}")


class SentinelClassifier(MessageEncoderMixin, ClassifierMixin, BaseEstimator):
    """Rare-class affinity of each message to a positive and a negative index, aggregated per
    unit (Roblox Sentinel's method; see the module docstring)."""

    def __init__(
        self,
        encoder_path: str | None = None,
        batch_size: int = 128,
        max_seq_length: int = 128,
        cache_dir: str | None = None,
        separator: str = "\n",
        text_column: str = "text",
        top_k: int = 5,
        negative_ratio: float | None = 5.0,
        min_score: float = 0.1,
        aggregate: str = "skewness",
        min_observations: int = 10,
        aggregate_top_k: int = 3,
        random_state: int = 0,
    ) -> None:
        self.encoder_path = encoder_path
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.cache_dir = cache_dir
        self.separator = separator
        self.text_column = text_column
        self.top_k = top_k
        self.negative_ratio = negative_ratio
        self.min_score = min_score
        self.aggregate = aggregate
        self.min_observations = min_observations
        self.aggregate_top_k = aggregate_top_k
        self.random_state = random_state

    def _check_settings(self) -> None:
        if self.aggregate not in AGGREGATIONS:
            raise ValueError(f"aggregate {self.aggregate!r}: expected one of {AGGREGATIONS}")
        for name in ("top_k", "aggregate_top_k", "min_observations"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name}={value!r}: expected an integer of at least 1")
        ratio = self.negative_ratio
        if ratio is not None and not (isinstance(ratio, int | float) and ratio > 0):
            raise ValueError(f"negative_ratio={ratio!r}: expected a number above 0, or null")

    def fit(self, X: Any, y: Any) -> SentinelClassifier:
        """Build the positive and negative indexes from the rows' messages."""
        self._check_settings()
        documents = document_texts(X, self.text_column)
        labels = binary_labels(y, len(documents), "rare class")
        messages, owners = split_units(documents, self.separator)
        vectors, self.encoder_key_ = self._embed(messages)
        is_positive = labels[owners] if len(owners) else np.zeros(0, dtype=bool)
        positive_texts, positive_vectors = _distinct(
            [m for m, p in zip(messages, is_positive, strict=True) if p], vectors[is_positive]
        )
        negative_texts, negative_vectors = _distinct(
            [m for m, p in zip(messages, is_positive, strict=True) if not p],
            vectors[~is_positive],
        )
        if not positive_texts or not negative_texts:
            raise ValueError(
                f"{len(positive_texts)} positive and {len(negative_texts)} negative messages: "
                "each index needs at least one non-empty message"
            )
        keep = len(negative_texts)
        if self.negative_ratio is not None:
            keep = min(keep, max(1, math.ceil(self.negative_ratio * len(positive_texts))))
        sample = np.sort(
            np.random.default_rng(self.random_state).choice(
                len(negative_texts), size=keep, replace=False
            )
        )
        self.positive_vectors_ = positive_vectors
        self.negative_vectors_ = negative_vectors[sample]
        self.positive_ids_ = _ids(positive_texts)
        self.negative_ids_ = _ids([negative_texts[i] for i in sample])
        self.negatives_available_ = len(negative_texts)
        self.classes_ = np.array([False, True])
        log.info(
            "Sentinel index: %d positive messages, %d of %d negative messages (ratio %s)",
            len(self.positive_vectors_),
            len(self.negative_vectors_),
            len(negative_texts),
            self.negative_ratio,
        )
        return self

    def _vectors(self, messages: list[str]) -> np.ndarray:
        if not messages:
            return np.zeros((0, self.positive_vectors_.shape[1]), dtype=np.float32)
        return self._fitted_vectors(messages)

    def message_scores(self, messages: list[str]) -> np.ndarray:
        """Each message's affinity score (0 for an empty message)."""
        check_is_fitted(self, "positive_vectors_")
        scores = np.zeros(len(messages))
        kept = [i for i, m in enumerate(messages) if m]
        scores[kept] = affinity_scores(
            self._vectors([messages[i] for i in kept]),
            self.positive_vectors_,
            self.negative_vectors_,
            int(self.top_k),
            float(self.min_score),
        )
        return scores

    def unit_scores(self, X: Any) -> np.ndarray:
        """Each row's aggregated affinity (the raw score before the sigmoid)."""
        check_is_fitted(self, "positive_vectors_")
        self._check_settings()
        documents = document_texts(X, self.text_column)
        messages, owners = split_units(documents, self.separator)
        scores = affinity_scores(
            self._vectors(messages),
            self.positive_vectors_,
            self.negative_vectors_,
            int(self.top_k),
            float(self.min_score),
        )
        return aggregate_observations(
            scores,
            owners,
            len(documents),
            self.aggregate,
            int(self.min_observations),
            int(self.aggregate_top_k),
        )

    # -- a unit's score as its messages arrive (the stream) ------------------------------------
    def running_add(self, state: Any, scores: Any) -> None:
        """Add a unit's new message scores to its running state (a
        `grooming_detect.models.message_scores.RunningScores`): Sentinel's aggregations read
        every observation (the skewness its median), so all are kept, in arrival order."""
        for score in scores:
            state.count += 1
            state.total += float(score)
            state.kept.append(float(score))

    def running_score(self, state: Any) -> float:
        """The unit score of the messages added to `state`: `unit_scores` of their document."""
        check_is_fitted(self, "positive_vectors_")
        return aggregate_one(
            np.asarray(state.kept, dtype=float),
            self.aggregate,
            int(self.min_observations),
            int(self.aggregate_top_k),
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[1 - p, p]`` with ``p = sigmoid(unit score)``: the calibrator's logit recovers the
        unit score."""
        positive = expit(self.unit_scores(X))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def neighbours(self, messages: list[str], n: int = 5) -> pd.DataFrame:
        """The `n` nearest entries of each index to each message, by id, never by text:
        columns ``message`` (its position in `messages`), ``index`` (positive, negative),
        ``rank`` (1 = nearest), ``row`` (the entry's row in its index), ``id`` (the SHA-256
        prefix of the entry's text) and ``similarity`` (cosine)."""
        check_is_fitted(self, "positive_vectors_")
        vectors = self._vectors(list(messages))
        records = []
        for side, index, ids in (
            ("positive", self.positive_vectors_, self.positive_ids_),
            ("negative", self.negative_vectors_, self.negative_ids_),
        ):
            sims = vectors @ index.T
            kept = min(int(n), len(index))
            nearest = np.argsort(-sims, axis=1, kind="stable")[:, :kept]
            for message, rows in enumerate(nearest):
                for rank, row in enumerate(rows, start=1):
                    records.append(
                        (message, side, rank, int(row), str(ids[row]), float(sims[message, row]))
                    )
        return pd.DataFrame(
            records, columns=["message", "index", "rank", "row", "id", "similarity"]
        )


def make_sentinel(encoder: Any = None, **settings: Any) -> SentinelClassifier:
    """`SentinelClassifier` with the shared encoder settings (`encoder`: `EncoderSettings`
    fields) and its own (`settings`)."""
    return SentinelClassifier(**encoder_parameters(encoder), **settings)
