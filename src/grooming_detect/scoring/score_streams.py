"""Message-by-message scores of the models that score each message and pool per unit.

`MessageScoreClassifier` (``model=embedding_logreg``, ``design: message_scores``) and
`SentinelClassifier` (``model=sentinel``) score a unit's document by scoring each of its
messages alone and pooling the scores. So a stream need not re-read anything: the state of an
author in a conversation (or of a conversation) is its running scores
(`grooming_detect.models.message_scores.RunningScores`: numbers, never text), each new message
is embedded and scored once, and the unit score after it is the model's pooling of the state.
The result is the model's own score of the prefix document (its messages so far), up to float
rounding (float32 embeddings scored in batches of another shape, a sum in another order: 1e-6
at most in `tests/scoring/test_score_streams.py`, which checks it against batch scoring).

What a step costs is embedding one message; `MessageScorePrefixScorer.prime` embeds a whole
batch of messages in one call first (the stream's batch, the early-detection curves), each
update then reads its scores from that cache (a message missing from it is embedded on its
own: priming speeds the stream up, it never changes a score), and `forget` drops the cache, and
with it the batch's texts, at the end of the batch
(`grooming_detect.scoring.incremental.ConversationStreams.add_many`).

State per unit: the `max(PROFILE_TOPS)` (or ``top_k``) highest logits with the count, sum and
count above the cut for `MessageScoreClassifier`; every score for Sentinel, whose skewness
reads the median (8 bytes a message).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from grooming_detect.models.embeddings import unit_messages
from grooming_detect.models.message_scores import MessageScoreClassifier, RunningScores
from grooming_detect.models.sentinel import SentinelClassifier


class MessageScorePrefixScorer:
    """Scores of growing documents for a message-scoring model (see the module docstring);
    the interface of `grooming_detect.scoring.incremental.LinearPrefixScorer`."""

    def __init__(self, model: Any, separator: str) -> None:
        self.model = model
        self.separator = separator
        self._primed: dict[str, float] = {}

    @classmethod
    def from_model(cls, model: Any, separator: str) -> MessageScorePrefixScorer | None:
        """The incremental form of `model`, or None when it does not pool message scores or
        its document is not split into messages (an empty separator: one message per unit,
        which a stream of messages cannot reproduce)."""
        if isinstance(model, MessageScoreClassifier | SentinelClassifier) and model.separator:
            return cls(model, model.separator)
        return None

    def new_state(self) -> RunningScores:
        return RunningScores()

    def empty_score(self) -> float:
        """The score of an empty document."""
        return self.score(RunningScores())

    def prime(self, texts: Sequence[str]) -> None:
        """Score the messages of `texts` in one call, for the updates that follow (until
        `forget`)."""
        parts = [part for text in texts for part in unit_messages(text, self.separator)]
        self._primed.update(self._score_parts(parts))

    def forget(self) -> None:
        """Drop the primed scores (and so the texts that key them): the end of a batch."""
        self._primed.clear()

    def _score_parts(self, parts: Sequence[str]) -> dict[str, float]:
        """The scores of the distinct `parts` not primed yet, in one call."""
        wanted = [p for p in dict.fromkeys(parts) if p not in self._primed]
        if not wanted:
            return {}
        scores = self.model.message_scores(wanted)
        return dict(zip(wanted, (float(s) for s in scores), strict=True))

    def _message_scores(self, parts: list[str]) -> list[float]:
        fresh = self._score_parts(parts)
        return [self._primed[p] if p in self._primed else fresh[p] for p in parts]

    def update(self, state: RunningScores, text: str) -> float:
        """Append one message to the stream's document; return the document's new score.

        A message holding the separator is several of the document's messages, as in the
        batch view; an empty one adds nothing."""
        parts = unit_messages(text, self.separator)
        if parts:
            self.model.running_add(state, self._message_scores(parts))
        return self.score(state)

    def score(self, state: RunningScores) -> float:
        """The current score (``sigmoid`` of the unit score, as ``predict_proba``)."""
        return float(expit(self.model.running_score(state)))

    def score_stream(self, texts: Sequence[str]) -> np.ndarray:
        """Scores after each of `texts`, appended in order to one fresh stream."""
        self.prime(texts)
        try:
            state = self.new_state()
            return np.array([self.update(state, text) for text in texts], dtype=np.float64)
        finally:
            self.forget()
