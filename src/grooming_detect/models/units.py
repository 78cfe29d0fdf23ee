"""The unit a model scores: authors (PAN-2012 Problem 1) or conversations.

A dataset labelled per author trains and evaluates authors; one labelled only per conversation
(some teams' chat logs) trains and evaluates conversations, and author-level measures are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from grooming_detect.io import read_json
from grooming_detect.stage import MissingInputError, StageContext


@dataclass(frozen=True)
class Unit:
    """How one unit's text view is stored and labelled."""

    name: str
    view_file: str
    id_column: str
    label_column: str


UNITS: dict[str, Unit] = {
    "author": Unit("author", "author_texts.parquet", "author", "is_predator"),
    "conversation": Unit(
        "conversation", "conversation_texts.parquet", "conversation_id", "has_predator"
    ),
}


def unit_of(ctx: StageContext) -> Unit:
    """The unit that the dataset's labels support (from the data manifest)."""
    if not ctx.manifest_path.is_file():
        raise MissingInputError("train", ctx.manifest_path, "data")
    return UNITS[read_json(ctx.manifest_path).get("label_level", "author")]


def load_view(ctx: StageContext, unit: Unit, stage: str) -> pd.DataFrame:
    """The unit's text view written by the features stage."""
    path = ctx.features_dir / unit.view_file
    if not path.is_file():
        raise MissingInputError(stage, path, "features")
    return pd.read_parquet(path)


def require_split(view: pd.DataFrame, unit: Unit, split: str, stage: str) -> pd.DataFrame:
    """Rows of `split`; a missing split or one without both classes is an error, never a
    fallback to another split."""
    rows = view[view["split"] == split]
    labels = rows[unit.label_column]
    if rows.empty or labels.isna().any() or labels.all() or not labels.any():
        raise ValueError(
            f"{stage} stage: split {split!r} has {len(rows)} {unit.name}s, "
            f"{int(labels.fillna(False).sum())} positive and {int(labels.isna().sum())} "
            "unlabelled; it needs both classes and no missing labels"
        )
    return rows
