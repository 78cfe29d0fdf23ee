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
3. A unit's score is the mean of its ``top_k`` highest message logits (all of them when it has
   fewer); a unit without a message gets the lowest message logit seen in training.

``predict_proba`` is ``sigmoid(unit score)``; the project's calibrator (Platt on the unit score,
fitted out of fold) and F0.5 threshold come after, as for every model. ``message_scores``
returns each message's logit: the explanation of a unit's score is its highest-scoring messages
(by position, never by text, in what this module logs).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from grooming_detect.models.embeddings import MessageEncoderMixin, document_texts, split_units
from grooming_detect.models.sentinel import aggregate_observations

log = logging.getLogger(__name__)


def top_k_rank(scores: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """Each message's rank (1 = highest) among its unit's messages' `scores`."""
    order = np.lexsort((-scores, owners))
    ranks = np.empty(len(scores), dtype=np.int64)
    sorted_owners = owners[order]
    starts = np.r_[0, np.flatnonzero(sorted_owners[1:] != sorted_owners[:-1]) + 1]
    position = np.arange(len(scores)) - np.repeat(starts, np.diff(np.r_[starts, len(scores)]))
    ranks[order] = position + 1
    return ranks


class MessageScoreClassifier(MessageEncoderMixin, ClassifierMixin, BaseEstimator):
    """Message-level logistic regression on frozen embeddings, refined as multiple-instance
    labels and pooled per unit by a top-k mean (see the module docstring)."""

    def __init__(
        self,
        encoder_path: str | None = None,
        batch_size: int = 128,
        max_seq_length: int = 128,
        cache_dir: str | None = None,
        separator: str = "\n",
        text_column: str = "text",
        top_k: int = 3,
        C: float = 1.0,
        class_weight: str | None = "balanced",
        max_iter: int = 2000,
        refine_iterations: int = 2,
        refine_percentile: float = 95.0,
        refine_keep: int = 3,
        random_state: int = 0,
    ) -> None:
        self.encoder_path = encoder_path
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.cache_dir = cache_dir
        self.separator = separator
        self.text_column = text_column
        self.top_k = top_k
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.refine_iterations = refine_iterations
        self.refine_percentile = refine_percentile
        self.refine_keep = refine_keep
        self.random_state = random_state

    def _check_settings(self) -> None:
        for name in ("top_k", "refine_keep"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name}={value!r}: expected an integer of at least 1")
        iterations = self.refine_iterations
        if not isinstance(iterations, int | np.integer) or iterations < 0:
            raise ValueError(f"refine_iterations={iterations!r}: expected an integer of at least 0")
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

    def fit(self, X: Any, y: Any) -> MessageScoreClassifier:
        self._check_settings()
        raw = np.asarray(y)
        if raw.dtype.kind != "b" and not np.isin(raw, (0, 1)).all():
            raise ValueError(
                f"labels {np.unique(raw[~np.isin(raw, (0, 1))])[:5].tolist()}: expected 0/1 "
                "or booleans, one per row (no missing labels)"
            )
        labels = raw.astype(bool)
        documents = document_texts(X, self.text_column)
        if len(labels) != len(documents) or labels.all() or not labels.any():
            raise ValueError(
                f"{len(documents)} rows and {len(labels)} labels ({int(labels.sum())} "
                "positive): expected one label per row, with and without the positive class"
            )
        messages, owners = split_units(documents, self.separator)
        message_labels = labels[owners] if len(owners) else np.zeros(0, dtype=bool)
        if not message_labels.any() or message_labels.all():
            raise ValueError(
                f"{int(message_labels.sum())} of {len(message_labels)} non-empty messages "
                "belong to positive rows: expected messages of both classes"
            )
        vectors, self.encoder_key_ = self._embed(messages)
        current = message_labels.copy()
        regression = self._regression().fit(vectors, current)
        for _ in range(int(self.refine_iterations)):
            scores = regression.decision_function(vectors)
            cut = np.percentile(scores[~message_labels], float(self.refine_percentile))
            ranks = top_k_rank(scores, owners)
            current = message_labels & ((scores > cut) | (ranks <= int(self.refine_keep)))
            regression = self._regression().fit(vectors, current)
        self.regression_ = regression
        self.positive_messages_ = int(current.sum())
        self.empty_score_ = float(regression.decision_function(vectors).min())
        self.classes_ = np.array([False, True])
        log.info(
            "Message-score model: %d messages, %d of %d positive rows' messages kept positive "
            "after %d refinement rounds",
            len(messages),
            self.positive_messages_,
            int(message_labels.sum()),
            int(self.refine_iterations),
        )
        return self

    def message_scores(self, messages: list[str]) -> np.ndarray:
        """Each message's logit (`empty_score_` for an empty message)."""
        check_is_fitted(self, "regression_")
        scores = np.full(len(messages), self.empty_score_)
        kept = [i for i, m in enumerate(messages) if m]
        if kept:
            vectors = self._fitted_vectors([messages[i] for i in kept])
            scores[kept] = self.regression_.decision_function(vectors)
        return scores

    def unit_scores(self, X: Any) -> np.ndarray:
        """Each row's top-k mean of its messages' logits (the score before the sigmoid)."""
        check_is_fitted(self, "regression_")
        self._check_settings()
        documents = document_texts(X, self.text_column)
        messages, owners = split_units(documents, self.separator)
        result = np.full(len(documents), self.empty_score_)
        if not messages:
            return result
        pooled = aggregate_observations(
            self.message_scores(messages), owners, len(documents), "topk_mean", 1, int(self.top_k)
        )
        has_messages = np.zeros(len(documents), dtype=bool)
        has_messages[owners] = True
        result[has_messages] = pooled[has_messages]
        return result

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[1 - p, p]`` with ``p = sigmoid(unit score)``."""
        positive = expit(self.unit_scores(X))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
