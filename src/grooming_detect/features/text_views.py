"""Text views: documents built by joining messages, keyed by ids."""

from __future__ import annotations

import pandas as pd


def author_texts(messages: pd.DataFrame, authors: pd.DataFrame, separator: str) -> pd.DataFrame:
    """One document per (author, split): all of the author's messages, in conversation order.

    This is the unit PAN-2012 Problem 1 scores. Empty messages are kept out of the document but
    counted in the authors table, so nothing disappears silently.
    """
    ordered = messages.sort_values(["split", "author", "conversation_id", "line"], kind="stable")
    nonempty = ordered[ordered["text"] != ""]
    documents = (
        nonempty.groupby(["author", "split"], sort=False)["text"]
        .agg(separator.join)
        .rename("text")
        .reset_index()
    )
    view = authors.merge(documents, on=["author", "split"], how="left", validate="one_to_one")
    view["text"] = view["text"].fillna("")
    return view[["author", "split", "text", "n_messages", "n_conversations", "is_predator"]]


def speaker_marker(index: int) -> str:
    """Marker of the `index`-th (0-based) speaker of a conversation, by first appearance."""
    return f"[S{index + 1}]"


def conversation_texts(
    messages: pd.DataFrame, conversations: pd.DataFrame, separator: str
) -> pd.DataFrame:
    """One document per conversation: every message prefixed with its speaker's marker.

    Speakers are numbered by first appearance (``[S1]``, ``[S2]`` …) rather than named, so a model
    cannot key on author ids. Empty messages keep their marker, so turn-taking stays visible.
    """
    ordered = messages.sort_values(["conversation_id", "line"], kind="stable")
    first_seen = ordered.drop_duplicates(["conversation_id", "author"])
    rank = first_seen.groupby("conversation_id", sort=False).cumcount()
    markers = pd.Series(
        [speaker_marker(i) for i in rank],
        index=pd.MultiIndex.from_frame(first_seen[["conversation_id", "author"]]),
    )
    keys = pd.MultiIndex.from_frame(ordered[["conversation_id", "author"]])
    lines = markers.reindex(keys).to_numpy() + " " + ordered["text"].to_numpy()
    documents = (
        pd.Series(lines, index=ordered["conversation_id"].to_numpy())
        .groupby(level=0, sort=False)
        .agg(separator.join)
        .rename("text")
        .rename_axis("conversation_id")
        .reset_index()
    )
    view = conversations.merge(documents, on="conversation_id", how="left", validate="one_to_one")
    return view[["conversation_id", "split", "text", "n_messages", "n_authors", "has_predator"]]


def author_conversation_texts(
    messages: pd.DataFrame, authors: pd.DataFrame, separator: str
) -> pd.DataFrame:
    """One row per author-in-conversation: the author's messages there (``text``), the whole
    conversation with speaker markers (``conversation_text``), the author's own marker there
    (``speaker``), and the author's label."""
    ordered = messages.sort_values(["conversation_id", "line"], kind="stable")
    nonempty = ordered[ordered["text"] != ""]
    own = nonempty.groupby(["conversation_id", "author", "split"], sort=False)["text"].agg(
        separator.join
    )
    pairs = ordered[["conversation_id", "author", "split"]].drop_duplicates()
    rank = pairs.groupby("conversation_id", sort=False).cumcount()
    pairs = pairs.assign(speaker=[speaker_marker(i) for i in rank])
    view = pairs.join(own, on=["conversation_id", "author", "split"])
    view["text"] = view["text"].fillna("")
    conversations = (
        ordered.groupby(["conversation_id", "split"], sort=False)
        .size()
        .rename("n_messages")
        .reset_index()
        .assign(n_authors=0, has_predator=False)
    )
    whole = conversation_texts(ordered, conversations, separator)[["conversation_id", "text"]]
    view = view.merge(
        whole.rename(columns={"text": "conversation_text"}), on="conversation_id", how="left"
    )
    labels = authors[["author", "split", "is_predator"]]
    return view.merge(labels, on=["author", "split"], how="left", validate="many_to_one")
