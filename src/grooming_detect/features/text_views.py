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
