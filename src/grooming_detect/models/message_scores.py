"""Logistic regression on each message's frozen embedding, its scores pooled per unit
(``model=embedding_logreg``, ``design: message_scores``, the default).

Why not one vector per unit. Pooling a unit's message vectors (mean, max, top-k mean per
dimension; ``design: pooled_vectors``, `grooming_detect.models.embeddings.MessageEmbeddings`)
and fitting one logistic regression on them drowns the few risky messages of a positive author
in their ordinary chat: on the default corpus its test author PR-AUC was 0.12 (docs/models.md).
Risk is carried by a few messages, so this model learns which *messages* are risky and pools
their scores, a multiple-instance design:

1. Every message of every training unit is embedded (the shared, cached encoder of
   `grooming_detect.models.embeddings`), and labelled with its unit's label.
2. A logistic regression (``C``, ``class_weight``) is fitted on the message vectors. A positive
   unit's label is noisy at the message level (most of a positive author's messages are
   ordinary chat), so for ``refine_iterations`` rounds a positive unit keeps as positive only
   the messages that scored above the ``refine_percentile`` percentile of the negative
   messages' scores, and always its ``refine_keep`` highest; the regression is fitted again
   on those labels. Negative units' messages stay negative. (The mi-SVM relabelling of
   Andrews et al., 2002, with a logistic regression.)
3. A unit's score pools its message logits. ``pooling="profile"`` (the default): the unit's
   *score profile* (`PROFILE_COLUMNS`: the mean of its 1, 2, 3, 5 and 10 highest logits, the
   mean logit, the log of its message count, the log of the count above the negatives'
   percentile cut and the share above it) goes through a standardised logistic regression
   (``profile_C``) fitted on out-of-fold profiles: the message regression (with its
   relabelling) is refitted on ``profile_folds`` stratified folds of the units, each fold's
   units profiled by the regression that did not see them, so the pooling learns from scores
   like those of new units, not from the regression's own training scores. Why: the highest of
   many draws is high by chance, so an author with hundreds of ordinary messages reaches a
   top-k a risky author reaches with few; the profile lets the pooling weigh the top scores
   against the count and the share of risky-looking messages. ``pooling="top_k"``: the mean of
   the unit's ``top_k`` highest logits (all of them when it has fewer). With fewer than 2
   positive or 2 negative rows that have messages there are no out-of-fold profiles: that fit
   pools by ``top_k``, with a warning (``pooling_`` says which pooling a fit used).
   A unit without a message is profiled (or pooled) with the lowest logit seen in training.

``predict_proba`` is ``sigmoid(unit score)``; the project's calibrator (Platt on the unit score,
fitted out of fold) and F0.5 threshold come after, as for every model. Measured on the default
corpus (docs/models.md): top-k pooling 0.48 test author PR-AUC, the profile 0.54 (chosen on
validation: 0.35 and 0.55). ``message_scores``
returns each message's logit: the explanation of a unit's score is its highest-scoring messages
(by position, never by text, in what this module logs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from grooming_detect.models.embeddings import (
    MessageEncoderMixin,
    binary_labels,
    document_texts,
    split_units,
)
from grooming_detect.models.sentinel import aggregate_observations

log = logging.getLogger(__name__)

POOLINGS = ("profile", "top_k")
#: The top-k means of a unit's score profile.
PROFILE_TOPS = (1, 2, 3, 5, 10)
PROFILE_COLUMNS = (
    *(f"top_{k}_mean" for k in PROFILE_TOPS),
    "mean",
    "log_messages",
    "log_above",
    "share_above",
)


def top_k_rank(scores: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """Each message's rank (1 = highest) among its unit's messages' `scores`."""
    order = np.lexsort((-scores, owners))
    ranks = np.empty(len(scores), dtype=np.int64)
    sorted_owners = owners[order]
    starts = np.r_[0, np.flatnonzero(sorted_owners[1:] != sorted_owners[:-1]) + 1]
    position = np.arange(len(scores)) - np.repeat(starts, np.diff(np.r_[starts, len(scores)]))
    ranks[order] = position + 1
    return ranks


def profile_row(top: Sequence[float], total: float, count: int, above: int) -> list[float]:
    """One unit's score profile (`PROFILE_COLUMNS`) from its highest logits in decreasing
    order (at least its `max(PROFILE_TOPS)` highest, or all), their sum over every message
    (`total`), its message count and the count above the cut. A unit with no message has
    ``count`` 0 and is profiled by the caller (`MessageScoreClassifier.empty_profile`)."""
    kept = [float(v) for v in top]
    row = [sum(kept[: min(k, count)]) / min(k, count) for k in PROFILE_TOPS]
    return [*row, total / count, float(np.log(count)), float(np.log1p(above)), above / count]


def score_profiles(
    scores: np.ndarray, owners: np.ndarray, cuts: np.ndarray, n_units: int, empty: list[float]
) -> np.ndarray:
    """The score profile of each of `n_units` units (rows of `PROFILE_COLUMNS`) from its
    messages' `scores` (`owners[i]`: message i's unit) and each message's cut (`cuts`); a unit
    without messages gets `empty`."""
    out = np.tile(np.asarray(empty, dtype=float), (n_units, 1))
    if not len(scores):
        return out
    order = np.lexsort((-scores, owners))
    ranked, units, above = scores[order], owners[order], (scores > cuts)[order]
    starts = np.r_[0, np.flatnonzero(units[1:] != units[:-1]) + 1]
    ends = np.r_[starts[1:], len(units)]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        values = ranked[start:end]
        out[units[start]] = profile_row(
            values[: max(PROFILE_TOPS)].tolist(),
            float(values.sum()),
            end - start,
            int(above[start:end].sum()),
        )
    return out


@dataclass
class RunningScores:
    """A unit's message scores as its messages arrive (a stream's state, see
    `grooming_detect.scoring.score_streams`): the scores a model keeps (`kept`: the highest
    first for `MessageScoreClassifier`, every one in arrival order for Sentinel), their count,
    their sum and how many were above the model's cut. Numbers only, never text."""

    kept: list[float] = field(default_factory=list)
    count: int = 0
    total: float = 0.0
    above: int = 0


class MessageScoreClassifier(MessageEncoderMixin, ClassifierMixin, BaseEstimator):
    """Message-level logistic regression on frozen embeddings, refined as multiple-instance
    labels and pooled per unit by its score profile or a top-k mean (see the module
    docstring)."""

    def __init__(
        self,
        encoder_path: str | None = None,
        batch_size: int = 128,
        max_seq_length: int = 128,
        cache_dir: str | None = None,
        separator: str = "\n",
        text_column: str = "text",
        pooling: str = "profile",
        top_k: int = 3,
        C: float = 1.0,
        class_weight: str | None = "balanced",
        max_iter: int = 2000,
        refine_iterations: int = 2,
        refine_percentile: float = 95.0,
        refine_keep: int = 3,
        profile_folds: int = 5,
        profile_C: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.encoder_path = encoder_path
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.cache_dir = cache_dir
        self.separator = separator
        self.text_column = text_column
        self.pooling = pooling
        self.top_k = top_k
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.refine_iterations = refine_iterations
        self.refine_percentile = refine_percentile
        self.refine_keep = refine_keep
        self.profile_folds = profile_folds
        self.profile_C = profile_C
        self.random_state = random_state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A model saved before the profile pooling existed pooled by top_k and kept no cut:
        it loads as exactly that model (no message counts above the cut)."""
        state = {"pooling": "top_k", "profile_folds": 5, "profile_C": 1.0, **state}
        if "regression_" in state:
            state = {"pooling_": "top_k", "cut_": float("inf"), **state}
        super().__setstate__(state)

    def _check_settings(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r}: expected one of {POOLINGS}")
        for name in ("top_k", "refine_keep"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name}={value!r}: expected an integer of at least 1")
        iterations = self.refine_iterations
        if not isinstance(iterations, int | np.integer) or iterations < 0:
            raise ValueError(f"refine_iterations={iterations!r}: expected an integer of at least 0")
        folds = self.profile_folds
        if not isinstance(folds, int | np.integer) or folds < 2:
            raise ValueError(f"profile_folds={folds!r}: expected an integer of at least 2")
        if not 0 <= float(self.refine_percentile) <= 100:
            raise ValueError(
                f"refine_percentile={self.refine_percentile!r}: expected a number in [0, 100]"
            )

    def _regression(self) -> LogisticRegression:
        return LogisticRegression(
            C=self.C,
            class_weight=self.class_weight,
            max_iter=self.max_iter,
            random_state=self.random_state,
        )

    def _message_regression(
        self, vectors: np.ndarray, labels: np.ndarray, owners: np.ndarray
    ) -> tuple[LogisticRegression, np.ndarray, float]:
        """The message regression refined for ``refine_iterations`` rounds on messages of
        units labelled `labels` (per message); with its last labels and the negatives' cut."""
        current = labels.copy()
        regression = self._regression().fit(vectors, current)
        for _ in range(int(self.refine_iterations)):
            scores = regression.decision_function(vectors)
            cut = np.percentile(scores[~labels], float(self.refine_percentile))
            ranks = top_k_rank(scores, owners)
            current = labels & ((scores > cut) | (ranks <= int(self.refine_keep)))
            regression = self._regression().fit(vectors, current)
        cut = float(
            np.percentile(regression.decision_function(vectors)[~labels], self.refine_percentile)
        )
        return regression, current, cut

    def fit(self, X: Any, y: Any) -> MessageScoreClassifier:
        self._check_settings()
        documents = document_texts(X, self.text_column)
        labels = binary_labels(y, len(documents))
        messages, owners = split_units(documents, self.separator)
        message_labels = labels[owners] if len(owners) else np.zeros(0, dtype=bool)
        if not message_labels.any() or message_labels.all():
            raise ValueError(
                f"{int(message_labels.sum())} of {len(message_labels)} non-empty messages "
                "belong to positive rows: expected messages of both classes"
            )
        vectors, self.encoder_key_ = self._embed(messages)
        regression, current, self.cut_ = self._message_regression(vectors, message_labels, owners)
        self.regression_ = regression
        self.positive_messages_ = int(current.sum())
        self.empty_score_ = float(regression.decision_function(vectors).min())
        self.classes_ = np.array([False, True])
        self.pooling_ = "top_k"
        for fitted in ("profile_scaler_", "profile_regression_"):  # of an earlier fit
            self.__dict__.pop(fitted, None)
        if self.pooling == "profile":
            self.pooling_ = self._fit_profile(vectors, owners, labels)
        log.info(
            "Message-score model: %d messages, %d of %d positive rows' messages kept positive "
            "after %d refinement rounds; pooling %s",
            len(messages),
            self.positive_messages_,
            int(message_labels.sum()),
            int(self.refine_iterations),
            self.pooling_,
        )
        return self

    def empty_profile(self) -> list[float]:
        """The profile of a unit without messages: the lowest training logit as its scores,
        no message above the cut."""
        return [self.empty_score_] * (len(PROFILE_TOPS) + 1) + [0.0, 0.0, 0.0]

    def _out_of_fold_profiles(
        self, vectors: np.ndarray, owners: np.ndarray, labels: np.ndarray
    ) -> np.ndarray | str:
        """Each unit's profile by a message regression fitted without it (stratified folds
        of the units that have messages; a unit without messages gets the empty profile), or
        why there cannot be two such folds."""
        n_units = len(labels)
        has_messages = np.bincount(owners, minlength=n_units) > 0
        rows = np.flatnonzero(has_messages)
        positives, negatives = int(labels[rows].sum()), int((~labels[rows]).sum())
        folds = min(int(self.profile_folds), positives, negatives)
        if folds < 2:
            return (
                f"{positives} positive and {negatives} negative rows with messages: the "
                "profile's out-of-fold scores need at least 2 of each"
            )
        scores = np.empty(len(owners))
        cuts = np.empty(len(owners))
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        for train_rows, held_rows in splitter.split(rows, labels[rows]):
            train = np.isin(owners, rows[train_rows])
            held = np.isin(owners, rows[held_rows])
            # Stratified, with at least as many rows of each class as folds: each fold's
            # training rows hold messages of both classes.
            regression, _, cut = self._message_regression(
                vectors[train], labels[owners[train]], owners[train]
            )
            scores[held] = regression.decision_function(vectors[held])
            cuts[held] = cut
        return score_profiles(scores, owners, cuts, n_units, self.empty_profile())

    def _fit_profile(self, vectors: np.ndarray, owners: np.ndarray, labels: np.ndarray) -> str:
        """Fit the profile pooling; the pooling used: ``profile``, or ``top_k`` (with a
        warning) on too few rows for out-of-fold profiles (a tiny corpus, or a cross-fit fold
        of one: its score is then the top-k mean, which calibration takes like any score)."""
        profiles = self._out_of_fold_profiles(vectors, owners, labels)
        if isinstance(profiles, str):
            log.warning(
                "%s; this fit pools by top_k (the mean of its %d highest logits)",
                profiles,
                int(self.top_k),
            )
            return "top_k"
        self.profile_scaler_ = StandardScaler().fit(profiles)
        self.profile_regression_ = LogisticRegression(
            C=self.profile_C, max_iter=self.max_iter, random_state=self.random_state
        ).fit(self.profile_scaler_.transform(profiles), labels)
        return "profile"

    def message_scores(self, messages: list[str]) -> np.ndarray:
        """Each message's logit (`empty_score_` for an empty message)."""
        check_is_fitted(self, "regression_")
        scores = np.full(len(messages), self.empty_score_)
        kept = [i for i, m in enumerate(messages) if m]
        if kept:
            vectors = self._fitted_vectors([messages[i] for i in kept])
            scores[kept] = self.regression_.decision_function(vectors)
        return scores

    def pool_profiles(self, profiles: np.ndarray) -> np.ndarray:
        """Unit scores from score profiles (rows of `PROFILE_COLUMNS`; ``pooling="profile"``)."""
        check_is_fitted(self, "profile_regression_")
        return self.profile_regression_.decision_function(
            self.profile_scaler_.transform(np.atleast_2d(profiles))
        )

    def unit_scores(self, X: Any) -> np.ndarray:
        """Each row's pooled message logits (the score before the sigmoid)."""
        check_is_fitted(self, "regression_")
        self._check_settings()
        documents = document_texts(X, self.text_column)
        messages, owners = split_units(documents, self.separator)
        scores = self.message_scores(messages)
        if self.pooling_ == "profile":
            cuts = np.full(len(scores), self.cut_)
            return self.pool_profiles(
                score_profiles(scores, owners, cuts, len(documents), self.empty_profile())
            )
        result = np.full(len(documents), self.empty_score_)
        if not messages:
            return result
        pooled = aggregate_observations(scores, owners, len(documents), "topk_mean", 1, self.top_k)
        has_messages = np.zeros(len(documents), dtype=bool)
        has_messages[owners] = True
        result[has_messages] = pooled[has_messages]
        return result

    # -- a unit's score as its messages arrive (the stream) ------------------------------------
    def running_add(self, state: RunningScores, scores: Sequence[float]) -> None:
        """Add a unit's new message logits to its running state: their count, sum and count
        above the cut, and its highest logits (as many as the pooling reads)."""
        keep = max(PROFILE_TOPS) if self.pooling_ == "profile" else int(self.top_k)
        for score in scores:
            state.count += 1
            state.total += float(score)
            state.above += int(score > self.cut_)
            state.kept.append(float(score))
        state.kept = sorted(state.kept, reverse=True)[:keep]

    def running_score(self, state: RunningScores) -> float:
        """The unit score (before the sigmoid) of the messages added to `state`: what
        `unit_scores` gives their document, up to float rounding."""
        check_is_fitted(self, "regression_")
        if self.pooling_ == "profile":
            profile = (
                profile_row(state.kept, state.total, state.count, state.above)
                if state.count
                else self.empty_profile()
            )
            return float(self.pool_profiles(np.asarray([profile]))[0])
        if not state.count:
            return self.empty_score_
        top = state.kept[: min(int(self.top_k), state.count)]
        return float(np.mean(top))

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[1 - p, p]`` with ``p = sigmoid(unit score)``."""
        positive = expit(self.unit_scores(X))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
