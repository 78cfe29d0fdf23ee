"""The two-stage design of the PAN-2012 winners (Villatoro-Tello et al., 2012).

Stage 1 (suspicious conversation identification) scores each conversation, from its whole text
with speaker markers, as containing a predator or not. Stage 2 (victim-from-predator disclosure)
is trained only on conversations that do contain a predator, to tell the predator from the other
participant(s) by the author's own messages there. An author-in-conversation scores
``P(suspicious conversation) × P(predator | suspicious)``; rows whose stage-1 score is below
`suspicion_threshold` are not passed to stage 2 and score 0. The pipeline then aggregates rows
to an author score (``model.aggregate``: max or mean over the author's conversations).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone


class TwoStageClassifier(ClassifierMixin, BaseEstimator):
    """Scores author-in-conversation rows (``conversation_id``, ``text``,
    ``conversation_text``, feature columns) with the two-stage design.

    Args:
        conversation_model: classifier of conversations; receives a frame whose ``text`` is the
            conversation text (cloned, then fitted).
        author_model: classifier of an author's messages within a suspicious conversation.
        suspicion_threshold: stage-1 score below which stage 2 is skipped (0 keeps every row,
            a soft gate by multiplication).
    """

    def __init__(
        self,
        conversation_model: Any = None,
        author_model: Any = None,
        suspicion_threshold: float = 0.0,
    ) -> None:
        self.conversation_model = conversation_model
        self.author_model = author_model
        self.suspicion_threshold = suspicion_threshold

    @staticmethod
    def _conversations(X: pd.DataFrame) -> pd.DataFrame:
        first = X.drop_duplicates("conversation_id")
        return pd.DataFrame(
            {
                "conversation_id": first["conversation_id"].to_numpy(),
                "text": first["conversation_text"].to_numpy(),
            }
        )

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> TwoStageClassifier:
        y = np.asarray(y, dtype=bool)
        conversations = self._conversations(X)
        positive = set(X.loc[y, "conversation_id"])
        conversation_y = conversations["conversation_id"].isin(positive).to_numpy()
        if conversation_y.all() or not conversation_y.any():
            raise ValueError(
                "two-stage model: training needs conversations with and without a predator"
            )
        self.conversation_model_ = clone(self.conversation_model).fit(conversations, conversation_y)
        inside = X["conversation_id"].isin(positive).to_numpy()
        self.author_model_ = clone(self.author_model).fit(
            X.loc[inside].reset_index(drop=True), y[inside]
        )
        self.classes_ = np.array([False, True])
        return self

    def suspicion(self, X: pd.DataFrame) -> np.ndarray:
        """Stage-1 score of each row's conversation."""
        conversations = self._conversations(X)
        scores = self.conversation_model_.predict_proba(conversations)[:, 1]
        lookup = pd.Series(scores, index=conversations["conversation_id"].to_numpy())
        return lookup.reindex(X["conversation_id"].to_numpy()).to_numpy()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        stage1 = self.suspicion(X)
        gate = stage1 >= self.suspicion_threshold
        stage2 = np.zeros(len(X))
        if gate.any():
            stage2[gate] = self.author_model_.predict_proba(X.loc[gate].reset_index(drop=True))[
                :, 1
            ]
        positive = stage1 * stage2
        return np.column_stack([1 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(X)[:, 1] >= 0.5
