"""What a model scores (the unit) and what it reads (its input view).

The unit is what the labels support: authors (PAN-2012 Problem 1) or, for data labelled only per
conversation, conversations. A model reads the unit's own view (``model.input`` = the unit) or,
for an author unit, author-in-conversation rows (``model.input=author_conversation``) whose scores
are aggregated to the author by ``model.aggregate`` (``max``, ``mean`` or ``top3_mean``). A
conversation scores its highest-scoring author (the evaluate stage and the scoring command).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from grooming_detect.features.schema import (
    AUTHOR_CONVERSATION_VIEW,
    AUTHOR_VIEW,
    CONVERSATION_VIEW,
    is_feature,
    view_file,
)
from grooming_detect.io import read_json
from grooming_detect.stage import MissingInputError, StageContext


@dataclass(frozen=True)
class Unit:
    """How one view is stored and labelled."""

    name: str
    view_file: str
    id_column: str
    label_column: str


UNITS: dict[str, Unit] = {
    "author": Unit("author", view_file(AUTHOR_VIEW), "author", "is_predator"),
    "conversation": Unit(
        "conversation", view_file(CONVERSATION_VIEW), "conversation_id", "has_predator"
    ),
}
INPUTS: dict[str, Unit] = {
    **UNITS,
    "author_conversation": Unit(
        "author_conversation", view_file(AUTHOR_CONVERSATION_VIEW), "author", "is_predator"
    ),
}
AGGREGATES = ("max", "mean", "top3_mean")


def resolve_input(setting: object, level: str) -> str | None:
    """The view a model reads on data labelled per `level` (``author`` or ``conversation``).

    ``model.input`` is null (the unit's own view), one view name, or a mapping from label level
    to view name; a level missing from the mapping is one the model does not support (None)."""
    if setting is None:
        return level
    if isinstance(setting, str):
        return setting
    value = dict(setting).get(level)  # type: ignore[call-overload]
    return None if value is None else str(value)


def supports(setting: object, level: str) -> bool:
    """Whether a model with this ``model.input`` can train on data labelled per `level`."""
    kind = resolve_input(setting, level)
    return kind == level or (kind == "author_conversation" and level == "author")


def aggregate_scores(scores: pd.Series, how: str) -> pd.Series:
    """Row scores (indexed by unit id, or by unit id and split) to one score per unit: ``max``,
    ``mean``, or ``top3_mean`` (the mean of the unit's three highest rows, or of all when it
    has fewer)."""
    if how not in AGGREGATES:
        raise ValueError(f"model.aggregate {how!r}: expected one of {AGGREGATES}")
    grouped = scores.groupby(level=list(range(scores.index.nlevels)))
    if how == "top3_mean":
        return grouped.apply(lambda s: s.nlargest(3).mean())
    return grouped.agg(how)


def unit_of(ctx: StageContext) -> Unit:
    """The unit that the dataset's labels support (from the data manifest)."""
    if not ctx.manifest_path.is_file():
        raise MissingInputError("train", ctx.manifest_path, "data")
    return UNITS[read_json(ctx.manifest_path).get("label_level", "author")]


def load_view(ctx: StageContext, unit: Unit, stage: str) -> pd.DataFrame:
    """A view written by the features stage."""
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


#: Columns a model may read: texts, the conversation key (the two-stage design groups rows by
#: it) and the behavioural/lexicon features. Ids of people, counts and labels are never inputs.
MODEL_TEXT_COLUMNS = ("text", "conversation_text", "speaker")


def _used_blocks(features: ColumnTransformer) -> list[tuple[str, Any, Any]]:
    """The fitted (name, transformer, columns) of `features` that are not dropped."""
    return [
        (name, transformer, columns)
        for name, transformer, columns in features.transformers_
        if not (isinstance(transformer, str) and transformer == "drop")
    ]


def reads_text_only(model: Any) -> bool:
    """Whether `model` provably reads text columns only: a ``Pipeline`` that opens with a
    fitted ``ColumnTransformer`` whose transformers select text columns and drop the rest (the
    TF-IDF baselines), or a model (or first step) whose ``input_columns()`` names text columns
    only (the embedding models). Its behavioural features need not be computed to score it."""
    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    declared = getattr(first, "input_columns", None)
    if callable(declared):
        return all(column in MODEL_TEXT_COLUMNS for column in declared())
    if not isinstance(first, ColumnTransformer) or not hasattr(first, "transformers_"):
        return False
    for _, _, columns in _used_blocks(first):
        selected = [columns] if isinstance(columns, str) else columns
        if not isinstance(selected, list | tuple) or not all(
            isinstance(c, str) and c in MODEL_TEXT_COLUMNS for c in selected
        ):
            return False
    return True


def positive_scores(model: Any, rows: pd.DataFrame) -> np.ndarray:
    """``model.predict_proba(rows)[:, 1]``, every scorer's call (the estimator's own
    arithmetic: a row's score does not depend on the rows scored with it)."""
    return model.predict_proba(rows)[:, 1]


def features_of(rows: pd.DataFrame, unit: Unit) -> pd.DataFrame:
    """What a model receives from a view's rows (see `MODEL_TEXT_COLUMNS`)."""
    keep = [
        c
        for c in rows.columns
        if c in MODEL_TEXT_COLUMNS
        or is_feature(c)
        or (c == "conversation_id" and unit.name == "author_conversation")
    ]
    return rows[keep].reset_index(drop=True)


def conversation_scores(pairs: pd.DataFrame, author_scores: pd.Series) -> pd.Series:
    """A conversation scores its highest-scoring author (`pairs`: conversation_id, author;
    `author_scores` indexed by author). Conversations without a scored author are absent."""
    scored = pairs.assign(score=pairs["author"].map(author_scores)).dropna(subset=["score"])
    return scored.groupby("conversation_id")["score"].max()


class ModelInput:
    """Reads a model's input rows for a split and turns its row scores into unit scores."""

    def __init__(
        self, ctx: StageContext, unit: Unit, kind: str, aggregate: str, stage: str
    ) -> None:
        if kind not in INPUTS:
            raise ValueError(f"model.input {kind!r}: expected one of {sorted(INPUTS)}")
        if kind != unit.name and not (kind == "author_conversation" and unit.name == "author"):
            raise ValueError(
                f"model.input={kind} cannot score {unit.name}s: this dataset is labelled per "
                f"{unit.name}; use a model whose input is {unit.name}"
            )
        if aggregate not in AGGREGATES:
            raise ValueError(f"model.aggregate {aggregate!r}: expected one of {AGGREGATES}")
        self.unit, self.kind, self.aggregate, self.stage = unit, INPUTS[kind], aggregate, stage
        self.unit_view = load_view(ctx, unit, stage)
        self.input_view = self.unit_view if kind == unit.name else load_view(ctx, self.kind, stage)

    @property
    def aggregated(self) -> bool:
        return self.kind.name != self.unit.name

    def unit_rows(self, split: str) -> pd.DataFrame:
        """The unit's rows of `split` (checked to hold both classes)."""
        return require_split(self.unit_view, self.unit, split, self.stage)

    def training(self, split: str) -> tuple[pd.DataFrame, np.ndarray]:
        """(X, y) for fitting: the input rows of `split` and their labels."""
        rows = self.input_view[self.input_view["split"] == split]
        if self.aggregated:
            self.unit_rows(split)  # the same checks on the unit's labels
        else:
            rows = require_split(self.input_view, self.unit, split, self.stage)
        return features_of(rows, self.kind), rows[self.kind.label_column].to_numpy(dtype=bool)

    def raw_scores(self, model: object, split: str) -> tuple[pd.DataFrame, np.ndarray]:
        """(unit rows, uncalibrated unit scores) of `split`."""
        units = self.unit_rows(split)
        return units, self.scores_of(model, units)

    def input_rows_of(self, units: pd.DataFrame) -> pd.DataFrame:
        """The input rows of the given unit rows (themselves, or their author-in-conversation
        rows of the same split: an author of both the training and the test files has rows in
        each, and a unit row never reads another split's)."""
        if not self.aggregated:
            return units
        keys = units[[self.unit.id_column, "split"]].drop_duplicates()
        return self.input_view.merge(keys, on=[self.unit.id_column, "split"], how="inner")

    def message_raw_scores(
        self, model: object, units: pd.DataFrame, messages: pd.DataFrame
    ) -> np.ndarray:
        """Each message scored alone, as its author's document (the author's other features
        kept): PAN-2012 Problem 2's per-line score. `units` must hold every message's author.

        Raises:
            ValueError: for a model that does not read author documents.
        """
        if self.aggregated or self.unit.name != "author":
            raise ValueError(
                "scoring single messages needs a model that reads author documents; this "
                f"model reads {self.kind.name} rows"
            )
        base = features_of(units, self.unit).set_index(units[self.unit.id_column].to_numpy())
        # An author on both sides of a split (data.split_override=author) has a row per side.
        base = base[~base.index.duplicated()]
        rows = base.reindex(messages["author"].to_numpy()).reset_index(drop=True)
        rows["text"] = messages["text"].to_numpy()
        if not len(rows):
            return np.array([])
        return positive_scores(model, rows)

    def scores_of(self, model: object, units: pd.DataFrame) -> np.ndarray:
        """Uncalibrated scores of the given unit rows, in their order."""
        if not self.aggregated:
            return positive_scores(model, features_of(units, self.unit))
        rows = self.input_rows_of(units)
        row_scores = positive_scores(model, features_of(rows, self.kind))
        index = pd.MultiIndex.from_frame(rows[[self.unit.id_column, "split"]])
        per_unit = aggregate_scores(pd.Series(row_scores, index=index), self.aggregate)
        wanted = pd.MultiIndex.from_frame(units[[self.unit.id_column, "split"]])
        return per_unit.reindex(wanted).to_numpy()
