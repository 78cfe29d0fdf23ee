"""Chat logs of every supported shape, built from the tiny synthetic corpus (real chat text from
the chitchat-dataset package with non-explicit markers; written under a test's temporary folder,
never committed).

Shapes: author-labelled CSV; conversation-labelled JSONL; a log without times; a log with one
author per conversation (each author's messages in a conversation become a conversation of
their own, labelled per conversation). The PAN-format corpus itself is the sixth shape.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: Shape name -> the data overrides (besides data.path) that read it.
SHAPES = ("pan_author", "log_author", "log_conversation", "log_no_times", "log_one_author")


def _messages(processed: Path) -> pd.DataFrame:
    messages = pd.read_parquet(processed / "messages.parquet")
    authors = pd.read_parquet(processed / "authors.parquet")[["author", "split", "is_predator"]]
    messages = messages.merge(authors, on=["author", "split"], how="left")
    messages["is_predator"] = messages["is_predator"].fillna(False).astype(bool)
    messages["split"] = messages["split"].replace({"validation": "train"})
    return messages.sort_values(["conversation_id", "line"], kind="stable")


def write_shape(shape: str, processed: Path, folder: Path) -> Path:
    """Write the chat log of `shape` from a processed tiny synthetic dataset; its path."""
    messages = _messages(processed)
    folder.mkdir(parents=True, exist_ok=True)
    if shape == "log_author":
        path = folder / "author_labels.csv"
        messages[
            ["conversation_id", "line", "author", "time", "text", "split", "is_predator"]
        ].to_csv(path, index=False)
        return path
    conversation_label = messages.groupby("conversation_id")["is_predator"].transform("any")
    if shape == "log_conversation":
        path = folder / "conversation_labels.jsonl"
        frame = messages.assign(conversation_label=conversation_label)
        columns = ["conversation_id", "line", "author", "time", "text", "split"]
        frame[[*columns, "conversation_label"]].to_json(path, orient="records", lines=True)
        return path
    if shape == "log_no_times":
        path = folder / "no_times.csv"
        messages[["conversation_id", "line", "author", "text", "split", "is_predator"]].to_csv(
            path, index=False
        )
        return path
    if shape == "log_one_author":
        path = folder / "one_author.csv"
        single = messages.assign(
            conversation_id=messages["conversation_id"] + "-" + messages["author"],
            conversation_label=messages["is_predator"],
        )
        single["line"] = single.groupby("conversation_id").cumcount() + 1
        single[
            ["conversation_id", "line", "author", "time", "text", "split", "conversation_label"]
        ].to_csv(path, index=False)
        return path
    raise ValueError(f"unknown shape {shape!r}")
