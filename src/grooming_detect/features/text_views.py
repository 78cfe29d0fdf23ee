"""Text views: documents built by joining messages, keyed by ids."""

from __future__ import annotations

import numpy as np
import pandas as pd


def join_runs(
    frame: pd.DataFrame, keys: list[str], texts: np.ndarray, separator: str
) -> pd.DataFrame:
    """Join `texts` over runs of equal `keys` in `frame` (already sorted by them): one row per
    run with the keys and the joined ``text``. Cheaper than a groupby with a Python join."""
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "text"])
    key_values = frame[keys]
    starts = np.flatnonzero(
        np.concatenate(
            [
                [True],
                (key_values.iloc[1:].to_numpy() != key_values.iloc[:-1].to_numpy()).any(axis=1),
            ]
        )
    )
    ends = np.append(starts[1:], len(frame))
    values = list(texts)
    joined = [separator.join(values[a:b]) for a, b in zip(starts, ends, strict=True)]
    out = key_values.iloc[starts].reset_index(drop=True)
    out["text"] = joined
    return out


def author_texts(messages: pd.DataFrame, authors: pd.DataFrame, separator: str) -> pd.DataFrame:
    """One document per (author, split): all of the author's messages, in conversation order.

    This is the unit PAN-2012 Problem 1 scores. Empty messages are kept out of the document but
    counted in the authors table, so nothing disappears silently.
    """
    ordered = messages.sort_values(["split", "author", "conversation_id", "line"], kind="stable")
    nonempty = ordered[ordered["text"] != ""]
    documents = join_runs(nonempty, ["author", "split"], nonempty["text"].to_numpy(), separator)
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
    documents = join_runs(ordered, ["conversation_id"], lines, separator)
    view = conversations.merge(documents, on="conversation_id", how="left", validate="one_to_one")
    return view[["conversation_id", "split", "text", "n_messages", "n_authors", "has_predator"]]


def author_conversation_texts(
    messages: pd.DataFrame,
    authors: pd.DataFrame,
    separator: str,
    whole: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per author-in-conversation: the author's messages there (``text``), the whole
    conversation with speaker markers (``conversation_text``), the author's own marker there
    (``speaker``), and the author's label."""
    ordered = messages.sort_values(["conversation_id", "line"], kind="stable")
    nonempty = ordered[ordered["text"] != ""]
    by_author = nonempty.sort_values(["conversation_id", "author", "line"], kind="stable")
    own = join_runs(
        by_author, ["conversation_id", "author", "split"], by_author["text"].to_numpy(), separator
    ).set_index(["conversation_id", "author", "split"])["text"]
    pairs = ordered[["conversation_id", "author", "split"]].drop_duplicates()
    rank = pairs.groupby("conversation_id", sort=False).cumcount()
    pairs = pairs.assign(speaker=[speaker_marker(i) for i in rank])
    view = pairs.join(own, on=["conversation_id", "author", "split"])
    view["text"] = view["text"].fillna("")
    if whole is None:  # callers that built the conversation view already pass it in
        conversations = (
            ordered.groupby(["conversation_id", "split"], sort=False)
            .size()
            .rename("n_messages")
            .reset_index()
            .assign(n_authors=0, has_predator=False)
        )
        whole = conversation_texts(ordered, conversations, separator)
    whole = whole[["conversation_id", "text"]]
    view = view.merge(
        whole.rename(columns={"text": "conversation_text"}), on="conversation_id", how="left"
    )
    labels = authors[["author", "split", "is_predator"]]
    return view.merge(labels, on=["author", "split"], how="left", validate="many_to_one")
