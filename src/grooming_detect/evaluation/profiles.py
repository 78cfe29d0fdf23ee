"""Profiles of scored authors and conversations for the error analysis: what a reviewer wants
to know about a false positive (activity, partners, questions, night share, conversation sizes,
lexicon cues), and the buckets of the false-positive slices. Built from the same per-message
facts as the behavioural features (`grooming_detect.features.behaviour.message_facts`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from grooming_detect.features.behaviour import (
    HOUR_BUCKETS,
    NIGHT_HOURS,
    distinct_partners,
    message_facts,
)


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
    # The most frequent hour, the earliest on ties (as Series.mode), without a Python lambda.
    modal = (
        frame.dropna(subset=["hour"])
        .groupby([key, "split", "hour"], sort=False)
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["n", "hour"], ascending=[False, True], kind="stable")
        .drop_duplicates([key, "split"])
        .set_index([key, "split"])["hour"]
    )
    out["modal_hour"] = modal.reindex(out.index).fillna(-1).astype(int)
    if unit == "author":
        out["n_partners"] = distinct_partners(messages).reindex(out.index).fillna(0).astype(int)
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
