"""The canonical tables every data source is turned into, and their exact schema.

* ``messages``: conversation_id (str), line (int, 1-based), author (str, stripped),
  time (str ``HH:MM`` or null), text (str, fully unescaped; ``""`` for empty text), split (str)
* ``conversations``: conversation_id, split, n_messages, n_authors, has_predator (bool)
* ``authors``: author, split, n_conversations, n_messages, is_predator (bool)
* ``predator_lines`` (when problem-2 truth exists): conversation_id, line, split (the split of
  the conversation: ``test`` for the official test truth; ``train`` or ``validation`` for the
  optional, unofficial training line truth, null for a row whose conversation is not in it)

Splits are ``train``, ``validation`` and ``test``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from grooming_detect.io import write_parquet

#: Bumped whenever the tables' content or schema changes (invalidates caches).
SCHEMA_VERSION = 2
SPLITS: tuple[str, ...] = ("train", "validation", "test")

COLUMNS: dict[str, dict[str, str]] = {
    "messages": {
        "conversation_id": "str",
        "line": "int64",
        "author": "str",
        "time": "str",
        "text": "str",
        "split": "str",
    },
    "conversations": {
        "conversation_id": "str",
        "split": "str",
        "n_messages": "int64",
        "n_authors": "int64",
        "has_predator": "bool",
    },
    "authors": {
        "author": "str",
        "split": "str",
        "n_conversations": "int64",
        "n_messages": "int64",
        "is_predator": "bool",
    },
    "predator_lines": {"conversation_id": "str", "line": "int64", "split": "str"},
}


@dataclass
class Tables:
    """The canonical tables of one dataset."""

    messages: pd.DataFrame
    conversations: pd.DataFrame
    authors: pd.DataFrame
    predator_lines: pd.DataFrame | None = None
    #: ``author`` when authors carry labels (PAN-2012), ``conversation`` when only conversations do.
    label_level: str = "author"

    def frames(self) -> dict[str, pd.DataFrame]:
        frames = {
            "messages": self.messages,
            "conversations": self.conversations,
            "authors": self.authors,
        }
        if self.predator_lines is not None:
            frames["predator_lines"] = self.predator_lines
        return frames

    def counts(self) -> dict[str, dict[str, int]]:
        """Messages, conversations, authors and predators per split."""
        counts: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            authors = self.authors[self.authors["split"] == split]
            counts[split] = {
                "messages": int((self.messages["split"] == split).sum()),
                "conversations": int((self.conversations["split"] == split).sum()),
                "authors": len(authors),
                "predators": int(authors["is_predator"].fillna(False).sum()),
                "predator_conversations": int(
                    self.conversations.loc[
                        self.conversations["split"] == split, "has_predator"
                    ].sum()
                ),
            }
        return counts


def conform(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Return `frame` with exactly the columns and dtypes of `table`, in order.

    Raises:
        ValueError: naming the table and the missing columns.
    """
    columns = COLUMNS[table]
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{table} table: missing column(s) {missing}; expected {list(columns)}")
    out = frame.loc[:, list(columns)].copy()
    for column, dtype in columns.items():
        if dtype == "str":
            values = out[column]
            out[column] = values.astype(object).where(values.notna(), None)
        elif dtype == "bool" and out[column].isna().any():
            out[column] = out[column].astype("boolean")  # unknown labels stay unknown
        else:
            out[column] = out[column].astype(dtype)
    return out.reset_index(drop=True)


def build_tables(
    messages: pd.DataFrame,
    predators: dict[str, set[str]] | None = None,
    predator_lines: pd.DataFrame | None = None,
    conversation_labels: dict[str, bool] | None = None,
) -> Tables:
    """Derive the conversation and author tables from messages and labels.

    Args:
        messages: the messages table (split already assigned).
        predators: split -> the ids its ground truth labels predators (author-level labels).
        predator_lines: problem-2 line truth (conversation_id, line, split), when it exists.
        conversation_labels: conversation_id -> label, for data labelled only at conversation
            level; authors' ``is_predator`` is then unknown (null), never guessed.
    """
    if (predators is None) == (conversation_labels is None):
        raise ValueError("give either author-level predators or conversation-level labels")
    messages = conform(messages, "messages").sort_values(
        ["split", "conversation_id", "line"], kind="stable", ignore_index=True
    )
    if predators is not None:
        is_predator = pd.Series(False, index=messages.index)
        for split, ids in predators.items():
            is_predator |= (messages["split"] == split) & messages["author"].isin(ids)
    else:
        is_predator = pd.Series(pd.NA, index=messages.index, dtype="boolean")
    flagged = messages.assign(is_predator=is_predator)
    conversations = (
        flagged.groupby(["conversation_id", "split"], sort=True)
        .agg(
            n_messages=("line", "size"),
            n_authors=("author", "nunique"),
            has_predator=("is_predator", "any"),
        )
        .reset_index()
    )
    if conversation_labels is not None:
        conversations["has_predator"] = conversations["conversation_id"].map(conversation_labels)
    authors = (
        flagged.groupby(["author", "split"], sort=True)
        .agg(
            n_conversations=("conversation_id", "nunique"),
            n_messages=("line", "size"),
            is_predator=("is_predator", "first" if predators is None else "any"),
        )
        .reset_index()
    )
    lines = conform(predator_lines, "predator_lines") if predator_lines is not None else None
    return Tables(
        messages=messages,
        conversations=conform(conversations, "conversations"),
        authors=conform(authors, "authors"),
        predator_lines=lines,
        label_level="author" if predators is not None else "conversation",
    )


def write_tables(tables: Tables, directory: Path) -> dict[str, Path]:
    """Write every table as ``<name>.parquet`` under `directory` (atomically)."""
    return {
        name: write_parquet(directory / f"{name}.parquet", frame)
        for name, frame in tables.frames().items()
    }


def read_table(directory: Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one canonical table, naming the file when it is absent."""
    path = directory / f"{name}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: canonical table missing; run the data stage first")
    return pd.read_parquet(path, columns=columns)
