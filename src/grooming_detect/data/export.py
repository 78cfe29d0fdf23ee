"""A processed dataset written back out as a chat log (CSV or JSONL) of a given shape.

Benchmarks and tests use it to put the same messages through the chat-log reader in every shape
a team's export takes: labelled per author (CSV), labelled per conversation (JSONL), without
times (CSV), and with one author per conversation (CSV, labelled per conversation). Validation
rows go back to ``train``: the data stage carves validation again from the log.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from grooming_detect.io import write_csv, write_with

#: The chat-log shapes `write_chatlog` writes.
CHATLOG_SHAPES = ("log_author", "log_conversation", "log_no_times", "log_one_author")
_COLUMNS = ["conversation_id", "line", "author", "time", "text", "split"]


def _messages(processed: Path) -> pd.DataFrame:
    messages = pd.read_parquet(processed / "messages.parquet")
    authors = pd.read_parquet(processed / "authors.parquet")[["author", "split", "is_predator"]]
    messages = messages.merge(authors, on=["author", "split"], how="left")
    messages["is_predator"] = messages["is_predator"].fillna(False).astype(bool)
    messages["split"] = messages["split"].replace({"validation": "train"})
    return messages.sort_values(["conversation_id", "line"], kind="stable")


def write_chatlog(shape: str, processed: Path, folder: Path) -> Path:
    """Write the messages of the processed dataset in `processed` as a chat log of `shape`
    (one of `CHATLOG_SHAPES`) into `folder`; its path."""
    if shape not in CHATLOG_SHAPES:
        raise ValueError(f"unknown chat-log shape {shape!r}: expected one of {CHATLOG_SHAPES}")
    messages = _messages(processed)
    folder.mkdir(parents=True, exist_ok=True)
    conversation_label = messages.groupby("conversation_id")["is_predator"].transform("any")
    if shape == "log_author":
        path, frame = folder / "author_labels.csv", messages[[*_COLUMNS, "is_predator"]]
    elif shape == "log_conversation":
        frame = messages.assign(conversation_label=conversation_label)
        path = folder / "conversation_labels.jsonl"
        return write_with(
            path,
            lambda tmp: frame[[*_COLUMNS, "conversation_label"]].to_json(
                tmp, orient="records", lines=True
            ),
        )
    elif shape == "log_no_times":
        path = folder / "no_times.csv"
        frame = messages[[c for c in _COLUMNS if c != "time"] + ["is_predator"]]
    else:
        single = messages.assign(
            conversation_id=messages["conversation_id"] + "-" + messages["author"],
            conversation_label=messages["is_predator"],
        )
        single["line"] = single.groupby("conversation_id").cumcount() + 1
        path, frame = folder / "one_author.csv", single[[*_COLUMNS, "conversation_label"]]
    return write_csv(path, frame, neutralise_formulas=False)
