"""Behavioural profiles of authors and conversations, and lexicon cues, from the messages table.

Used by the false-positive analysis to describe who was flagged; every column says what it
measures. Lexicons come from config (``features.lexicons``) so a team can edit them without code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

NIGHT_HOURS = frozenset({22, 23, 0, 1, 2, 3, 4, 5})
HOUR_BUCKETS = [
    "morning (06-11)",
    "afternoon (12-17)",
    "evening (18-21)",
    "night (22-05)",
    "unknown",
]


def lexicon_pattern(phrases: Sequence[str]) -> re.Pattern[str]:
    """One case-insensitive pattern matching any phrase on word boundaries."""
    alternatives = sorted(
        (re.escape(p.lower()) for p in phrases if p.strip()), key=len, reverse=True
    )
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


def lexicon_counts(texts: pd.Series, lexicons: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Matches of each lexicon in each message (columns ``cue_<lexicon>``)."""
    return pd.DataFrame(
        {
            f"cue_{name}": texts.str.count(lexicon_pattern(phrases))
            for name, phrases in lexicons.items()
        },
        index=texts.index,
    )


def message_facts(messages: pd.DataFrame, lexicons: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Per-message facts the profiles aggregate: words, questions, hour, night, cues."""
    text = messages["text"]
    hour = pd.to_numeric(messages["time"].str.slice(0, 2), errors="coerce")
    facts = pd.DataFrame(
        {
            "words": text.str.split().str.len().fillna(0),
            "is_question": text.str.contains("?", regex=False),
            "hour": hour,
            "is_night": hour.isin(NIGHT_HOURS),
        },
        index=messages.index,
    )
    cues = lexicon_counts(text, lexicons)
    facts["cues"] = cues.sum(axis=1)
    return facts


def profiles(
    messages: pd.DataFrame, unit: str, lexicons: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """One row per (unit id, split): what a reviewer wants to know about a flagged author or
    conversation.

    Columns: ``n_messages``; ``n_conversations``; ``n_partners`` (distinct other authors met;
    for a conversation, its authors minus one); ``mean_words`` per message; ``question_rate``
    (share of messages with "?"); ``night_share`` (share sent 22:00-05:59);
    ``median_conversation_length`` (messages); ``max_conversation_authors``; ``modal_hour``
    (most frequent hour, -1 when no times); ``cues_per_message`` (lexicon matches per message).
    """
    key = "author" if unit == "author" else "conversation_id"
    facts = message_facts(messages, lexicons)
    frame = pd.concat([messages[["conversation_id", "author", "split"]], facts], axis=1)
    conversation_size = messages.groupby("conversation_id").agg(
        conversation_length=("line", "size"), conversation_authors=("author", "nunique")
    )
    frame = frame.join(conversation_size, on="conversation_id")
    grouped = frame.groupby([key, "split"], sort=False)
    out = grouped.agg(
        n_messages=("conversation_id", "size"),
        n_conversations=("conversation_id", "nunique"),
        mean_words=("words", "mean"),
        question_rate=("is_question", "mean"),
        night_share=("is_night", "mean"),
        median_conversation_length=("conversation_length", "median"),
        max_conversation_authors=("conversation_authors", "max"),
        cues_per_message=("cues", "mean"),
    )
    out["modal_hour"] = grouped["hour"].agg(
        lambda hours: int(hours.mode().iloc[0]) if hours.notna().any() else -1
    )
    if unit == "author":
        pairs = messages[["conversation_id", "author", "split"]].drop_duplicates()
        met = pairs.merge(pairs, on=["conversation_id", "split"], suffixes=("", "_partner"))
        met = met[met["author"] != met["author_partner"]]
        partners = met.groupby(["author", "split"])["author_partner"].nunique()
        out["n_partners"] = partners.reindex(out.index).fillna(0).astype(int)
    else:
        out["n_partners"] = (out["max_conversation_authors"] - 1).astype(int)
    return out.reset_index().rename(columns={key: "id"})


def slice_labels(profile: pd.DataFrame) -> pd.DataFrame:
    """Buckets for the false-positive slices: conversation length, authors, hour, lexicon cue."""
    length = pd.cut(
        profile["median_conversation_length"],
        bins=[0, 5, 15, 40, np.inf],
        labels=["1-5 messages", "6-15 messages", "16-40 messages", "over 40 messages"],
    )
    authors = pd.cut(
        profile["max_conversation_authors"],
        bins=[0, 1, 2, np.inf],
        labels=["1 author", "2 authors", "3+ authors"],
    )
    hour = pd.Categorical(
        profile["modal_hour"].map(hour_bucket), categories=HOUR_BUCKETS, ordered=True
    )
    cue = pd.Categorical(
        np.where(profile["cues_per_message"] > 0, "lexicon cue present", "no lexicon cue"),
        categories=["no lexicon cue", "lexicon cue present"],
        ordered=True,
    )
    return pd.DataFrame(
        {
            "conversation_length": length,
            "authors_in_conversation": authors,
            "hour_of_day": hour,
            "lexicon_cue": cue,
        },
        index=profile.index,
    )


def hour_bucket(hour: int) -> str:
    """Part of the day of an hour (-1: unknown)."""
    if hour < 0:
        return "unknown"
    if hour in NIGHT_HOURS:
        return "night (22-05)"
    if hour < 12:
        return "morning (06-11)"
    return "afternoon (12-17)" if hour < 18 else "evening (18-21)"
