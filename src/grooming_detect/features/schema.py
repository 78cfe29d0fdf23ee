"""The names the features stage writes and every later stage reads: the views (one Parquet
file each) and the prefixes of feature columns. One place, so that a view or a prefix cannot
be spelled two ways."""

from __future__ import annotations

#: The views the features stage writes, one ``<view>.parquet`` each: a text column plus
#: feature columns, keyed by ids.
AUTHOR_VIEW = "author_texts"
CONVERSATION_VIEW = "conversation_texts"
AUTHOR_CONVERSATION_VIEW = "author_conversation_texts"
VIEWS = (AUTHOR_VIEW, CONVERSATION_VIEW, AUTHOR_CONVERSATION_VIEW)

#: Behavioural features (``f_…``) and lexicon-cue counts (``cue_…``, one per lexicon).
BEHAVIOUR_PREFIX = "f_"
CUE_PREFIX = "cue_"
FEATURE_PREFIXES = (BEHAVIOUR_PREFIX, CUE_PREFIX)
#: The same, as a regular expression for column selectors.
FEATURE_PATTERN = r"^(?:f_|cue_)"


def view_file(view: str) -> str:
    """The file name of a view."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {list(VIEWS)}")
    return f"{view}.parquet"


def is_feature(column: str) -> bool:
    """Whether `column` is a behavioural or lexicon-cue feature column."""
    return column.startswith(FEATURE_PREFIXES)
