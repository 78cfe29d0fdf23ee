"""PAN-2012 Problem 2: which lines of a conversation are the predator's suspicious lines.

Rule (``evaluate.line_rule``), among the messages of the authors the model names as predators
in that split's conversations (the candidates):

* ``scored`` (default): the candidates whose own calibrated score reaches
  ``evaluate.line_threshold``. A message's score is the model applied to that single message as
  its author's document (the author's behavioural features unchanged), so only models that read
  author documents can score messages. ``line_threshold: tuned`` picks the threshold that
  maximises F3 on the validation split's line truth (`tune_line_threshold`); the test split
  never influences it;
* ``all_lines``: every candidate. It measures author detection only (F3 rewards recall), and is
  reported beside the scored rule as a baseline (``<split>/line/*_all_lines``).

Where the scored rule cannot be applied (no validation line truth to tune on, a model refit on
validation whose validation scores are in-sample, or a model that cannot score a single
message), the evaluate stage falls back to ``all_lines`` and records why (`LineDecision`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from grooming_detect.evaluation.metrics import set_scores

# Fitted with the model under crossfit, so they live with the decisions; importable from here.
from grooming_detect.models.decision import truth_flags, tune_line_threshold

__all__ = [
    "LINE_MEASURES",
    "LINE_RULES",
    "TUNED",
    "LineDecision",
    "as_lines",
    "candidate_messages",
    "line_scores",
    "one_line_id",
    "parse_line_threshold",
    "predicted_lines",
    "submission_text",
    "truth_flags",
    "tune_line_threshold",
]

LINE_RULES = ("all_lines", "scored")
#: ``evaluate.line_threshold`` value that tunes the threshold on validation's line truth.
TUNED = "tuned"
LINE_MEASURES = ("precision", "recall", "f3")


@dataclass(frozen=True)
class LineDecision:
    """The line rule a run actually applies, its threshold (``scored`` only), and a note on
    where the threshold came from or why the configured rule was not applied."""

    rule: str
    threshold: float | None = None
    note: str = ""


def parse_line_threshold(value: object) -> float | str:
    """``evaluate.line_threshold``: `TUNED` or a number in [0, 1].

    Raises
    ------
    ValueError
        For any other value, naming it and what is expected.
    """
    if value == TUNED:
        return TUNED
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return float(value)
    raise ValueError(
        f"evaluate.line_threshold: {value!r}; expected {TUNED!r} or a number in [0, 1]"
    )


def predicted_lines(
    messages: pd.DataFrame,
    named_authors: set[str],
    rule: str,
    score: Callable[[pd.DataFrame], np.ndarray] | None = None,
    line_threshold: float = 0.5,
) -> pd.DataFrame:
    """(conversation_id, line) pairs predicted as predator lines, sorted.

    `score` maps candidate messages (index reset) to their scores, one batched call."""
    if rule not in LINE_RULES:
        raise ValueError(f"evaluate.line_rule {rule!r}: expected one of {LINE_RULES}")
    candidates = candidate_messages(messages, named_authors)
    if rule == "scored" and not candidates.empty:
        if score is None:
            raise ValueError("the 'scored' line rule needs a scoring function")
        candidates = candidates[score(candidates) >= line_threshold]
    return as_lines(candidates)


def candidate_messages(messages: pd.DataFrame, named_authors: set[str]) -> pd.DataFrame:
    """The messages written by the named authors (index reset): every rule chooses among them."""
    return messages[messages["author"].isin(named_authors)].reset_index(drop=True)


def as_lines(messages: pd.DataFrame) -> pd.DataFrame:
    """The (conversation_id, line) pairs of `messages`, sorted."""
    return (
        messages[["conversation_id", "line"]]
        .sort_values(["conversation_id", "line"])
        .reset_index(drop=True)
    )


def line_scores(predicted: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Precision, recall and F3 of predicted (conversation_id, line) pairs against the truth's."""
    scores = set_scores(
        predicted[["conversation_id", "line"]].itertuples(index=False, name=None),
        truth[["conversation_id", "line"]].itertuples(index=False, name=None),
    )
    return {name: scores[name] for name in LINE_MEASURES}


def one_line_id(value: object, kind: str) -> str:
    """`value` as it goes on one line of a PAN-format submission; a control character in it
    (a line break, a tab) is refused with the id named."""
    text = str(value)
    if any(ord(c) < 32 or c in "\x7f\x85\u2028\u2029" for c in text):
        raise ValueError(
            f"{kind} id {text!r} holds a line break or other control character: it cannot be "
            "written on one line of a PAN-2012 submission; clean the ids in the input"
        )
    return text


def submission_text(lines: pd.DataFrame) -> str:
    """Problem-2 submission: ``conversation_id<TAB>line``, one pair a line (an id that would
    split its line is refused, see `one_line_id`)."""
    return "".join(
        f"{one_line_id(c, 'conversation')}\t{line}\n" for c, line in lines.itertuples(index=False)
    )
