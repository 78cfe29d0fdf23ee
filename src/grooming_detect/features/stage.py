"""The features stage: canonical tables -> text views written as Parquet beside the data."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from grooming_detect.config import to_dict
from grooming_detect.data.schema import read_table
from grooming_detect.features.behaviour import (
    author_conversation_features,
    author_features,
    conversation_features,
    message_facts,
)
from grooming_detect.features.schema import (
    AUTHOR_CONVERSATION_VIEW,
    AUTHOR_VIEW,
    CONVERSATION_VIEW,
    VIEWS,
    is_feature,
)
from grooming_detect.features.text_views import (
    author_conversation_texts,
    author_texts,
    conversation_texts,
)
from grooming_detect.io import (
    file_digests,
    folder_lock,
    json_digest,
    outputs_intact,
    read_json,
    write_json,
    write_parquet,
)
from grooming_detect.progress import Progress
from grooming_detect.stage import MissingInputError, StageContext, StageResult

log = logging.getLogger(__name__)

#: Bumped whenever the feature tables change for the same inputs (invalidates caches).
FEATURES_VERSION = 7


def _with_conversation_features(
    texts: pd.DataFrame, messages: pd.DataFrame, lexicons: dict[str, list[str]], facts: Any
) -> pd.DataFrame:
    """The conversation texts with their behavioural and lexicon features."""
    return texts.merge(
        conversation_features(messages, lexicons, facts),
        on=["conversation_id", "split"],
        how="left",
        suffixes=("", "_feature"),
    )


def build_views(
    messages: pd.DataFrame,
    authors: pd.DataFrame,
    conversations: pd.DataFrame,
    separator: str,
    lexicons: dict[str, list[str]],
    views: Collection[str] = VIEWS,
    behaviour: bool = True,
) -> dict[str, pd.DataFrame]:
    """The `views` (default: every one) keyed by ids: author, conversation and
    author-in-conversation rows. A view is the same whichever others are built with it (for
    the same `behaviour`); scoring builds only the one its model reads (and the author table it
    reports), and without the behavioural and lexicon columns (`behaviour` false) for a model
    that reads text only."""
    wanted = set(views)
    unknown = wanted - set(VIEWS)
    if unknown:
        raise ValueError(f"unknown view(s) {sorted(unknown)}; expected some of {list(VIEWS)}")
    built: dict[str, pd.DataFrame] = {}
    with Progress(f"features of {len(messages):,} messages", total=5, unit="step") as bar:
        # Computed once, shared by every view.
        facts = message_facts(messages, lexicons) if behaviour else None
        bar.update()
        per_conversation = (
            author_conversation_features(messages, lexicons, facts)
            if behaviour and wanted & {AUTHOR_VIEW, AUTHOR_CONVERSATION_VIEW}
            else None
        )
        bar.update()
        whole = (
            conversation_texts(messages, conversations, separator)
            if wanted & {CONVERSATION_VIEW, AUTHOR_CONVERSATION_VIEW}
            else None
        )
        if AUTHOR_VIEW in wanted:
            built[AUTHOR_VIEW] = author_texts(messages, authors, separator)
            if per_conversation is not None:
                built[AUTHOR_VIEW] = built[AUTHOR_VIEW].merge(
                    author_features(per_conversation, messages), on=["author", "split"], how="left"
                )
        bar.update()
        if CONVERSATION_VIEW in wanted:
            assert whole is not None
            built[CONVERSATION_VIEW] = (
                _with_conversation_features(whole, messages, lexicons, facts)
                if behaviour
                else whole
            )
        bar.update()
        if AUTHOR_CONVERSATION_VIEW in wanted:
            pairs = author_conversation_texts(messages, authors, separator, whole)
            built[AUTHOR_CONVERSATION_VIEW] = (
                pairs
                if per_conversation is None
                else pairs.merge(
                    per_conversation, on=["conversation_id", "author", "split"], how="left"
                )
            )
        bar.update()
    # Features are doubles throughout (counts too), so a model's input schema is stable and a
    # missing value at scoring time is representable.
    return {
        name: view.astype({c: "float64" for c in view.columns if is_feature(c)})
        for name, view in built.items()
    }


def drop_uncomputable(
    views: dict[str, pd.DataFrame],
) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    """Drop the behavioural columns that hold no value at all in a view (reply gaps and hours
    of a log without times, for instance): a model never receives an all-missing column.
    Returns the views and, per view, the columns dropped."""
    dropped = {}
    for name, view in views.items():
        empty = [c for c in view.columns if is_feature(c) and view[c].isna().all()]
        if empty:
            dropped[name] = empty
            views[name] = view.drop(columns=empty)
    return views, dropped


def run_features(cfg: DictConfig, ctx: StageContext) -> StageResult:
    """Build (or reuse) the text views with their behavioural and lexicon features."""
    if not ctx.manifest_path.is_file():
        raise MissingInputError("features", ctx.manifest_path, "data")
    data_manifest = read_json(ctx.manifest_path)
    settings = to_dict(cfg.features)
    key = json_digest(
        {
            "data": data_manifest["fingerprint"],
            "tables": data_manifest.get("table_sha256"),
            "settings": settings,
            "v": FEATURES_VERSION,
        }
    )
    manifest_path = ctx.features_dir / "manifest.json"
    outputs = {name: ctx.features_dir / f"{name}.parquet" for name in VIEWS}
    # One run at a time checks and builds the views: two jobs of a sweep starting together
    # would otherwise both build, and the second's rewrite removes the manifest the first is
    # about to read.
    with folder_lock(ctx.features_dir, "the feature views"):
        if (
            manifest_path.is_file()
            and read_json(manifest_path).get("fingerprint") == key
            and outputs_intact(ctx.features_dir, read_json(manifest_path).get("sha256"))
        ):
            log.info("Features up to date (fingerprint %s): reusing %s", key[:12], ctx.features_dir)
            rows = read_json(manifest_path)["rows"]
            dropped = read_json(manifest_path).get("dropped_features", {})
        else:
            rows, dropped = _build_and_write(cfg, ctx, settings, key, data_manifest, outputs)
    # MLflow is imported here, by the stage, not by the scorers that import `build_views`.
    from grooming_detect import tracking

    metrics = {f"features/{name}_rows": float(count) for name, count in rows.items()}
    tracking.log_metrics(metrics)
    if dropped:
        tracking.set_tags(
            {f"features_dropped/{name}": ",".join(cols) for name, cols in dropped.items()}
        )
    tracking.log_artifact(manifest_path, "features")
    return StageResult(stage="features", outputs=outputs, metrics=metrics)


def _build_and_write(
    cfg: DictConfig,
    ctx: StageContext,
    settings: dict[str, Any],
    key: str,
    data_manifest: dict[str, Any],
    outputs: dict[str, Path],
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Build every view from the dataset's tables and write them with their manifest (removed
    first, so an interrupted write is never taken for a finished one); rows per view and the
    columns dropped because no row has a value."""
    manifest_path = ctx.features_dir / "manifest.json"
    views = build_views(
        read_table(ctx.dataset_dir, "messages"),
        read_table(ctx.dataset_dir, "authors"),
        read_table(ctx.dataset_dir, "conversations"),
        str(cfg.features.message_separator),
        settings["lexicons"],
    )
    views, dropped = drop_uncomputable(views)
    for name, columns in dropped.items():
        log.info("%s: dropped %s (no value for any row of this dataset)", name, ", ".join(columns))
    rows = {}
    manifest_path.unlink(missing_ok=True)
    for name, view in views.items():
        write_parquet(outputs[name], view)
        rows[name] = len(view)
    write_json(
        manifest_path,
        {
            "fingerprint": key,
            "data_fingerprint": data_manifest["fingerprint"],
            "settings": settings,
            "rows": rows,
            "dropped_features": dropped,
            "sha256": file_digests(ctx.features_dir, [p.name for p in outputs.values()]),
        },
    )
    log.info(
        "Wrote %s to %s",
        ", ".join(f"{n} ({r} rows)" for n, r in rows.items()),
        ctx.features_dir,
    )
    return rows, dropped
