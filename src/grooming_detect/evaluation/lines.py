"""PAN-2012 Problem 2: which lines of a conversation are the predator's suspicious lines.

Rule (``evaluate.line_rule``):

* ``all_lines`` (default; F3 rewards recall): every message written by an author the model
  names as a predator, in that split's conversations;
* ``scored``: of those messages, the ones whose own calibrated score (the model applied to the
  single message as the author's document, with the author's behavioural features) is at least
  ``evaluate.line_threshold``; only for models that read author documents.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

LINE_RULES = ("all_lines", "scored")


def predicted_lines(
    messages: pd.DataFrame,
    named_authors: set[str],
    rule: str,
    score: Callable[[pd.DataFrame], np.ndarray] | None = None,
    line_threshold: float = 0.5,
) -> pd.DataFrame:
    """(conversation_id, line) pairs predicted as predator lines, sorted."""
    if rule not in LINE_RULES:
        raise ValueError(f"evaluate.line_rule {rule!r}: expected one of {LINE_RULES}")
    candidates = messages[messages["author"].isin(named_authors)]
    if rule == "scored" and not candidates.empty:
        if score is None:
            raise ValueError("the 'scored' line rule needs a scoring function")
        keep = score(candidates.reset_index(drop=True)) >= line_threshold
        candidates = candidates[keep]
    return (
        candidates[["conversation_id", "line"]]
        .sort_values(["conversation_id", "line"])
        .reset_index(drop=True)
    )


def submission_text(lines: pd.DataFrame) -> str:
    """Problem-2 submission: ``conversation_id<TAB>line``, one pair a line."""
    return "".join(f"{c}\t{line}\n" for c, line in lines.itertuples(index=False))
