"""The features stage: canonical tables -> text views written as Parquet beside the data."""

from __future__ import annotations

import hashlib
import json
import logging

from omegaconf import DictConfig, OmegaConf

from grooming_detect import tracking
from grooming_detect.data.schema import read_table
from grooming_detect.features.text_views import author_texts
from grooming_detect.io import read_json, write_json, write_parquet
from grooming_detect.stage import MissingInputError, StageContext, StageResult

log = logging.getLogger(__name__)

#: Bumped whenever the feature tables change for the same inputs (invalidates caches).
FEATURES_VERSION = 1


def run_features(cfg: DictConfig, ctx: StageContext) -> StageResult:
    """Build (or reuse) the author-level text view."""
    if not ctx.manifest_path.is_file():
        raise MissingInputError("features", ctx.manifest_path, "data")
    data_manifest = read_json(ctx.manifest_path)
    settings = OmegaConf.to_container(cfg.features, resolve=True)
    key = hashlib.sha256(
        json.dumps(
            {"data": data_manifest["fingerprint"], "settings": settings, "v": FEATURES_VERSION},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    manifest_path = ctx.features_dir / "manifest.json"
    output = ctx.features_dir / "author_texts.parquet"
    if (
        manifest_path.is_file()
        and output.is_file()
        and read_json(manifest_path).get("fingerprint") == key
    ):
        log.info("Features up to date (fingerprint %s): reusing %s", key[:12], ctx.features_dir)
        rows = int(read_json(manifest_path)["rows"]["author_texts"])
    else:
        messages = read_table(ctx.dataset_dir, "messages")
        authors = read_table(ctx.dataset_dir, "authors")
        view = author_texts(messages, authors, str(cfg.features.message_separator))
        write_parquet(output, view)
        rows = len(view)
        write_json(
            manifest_path,
            {
                "fingerprint": key,
                "data_fingerprint": data_manifest["fingerprint"],
                "settings": settings,
                "rows": {"author_texts": rows},
            },
        )
        log.info("Wrote %d author documents to %s", rows, output)
    metrics = {"features/author_texts_rows": float(rows)}
    tracking.log_metrics(metrics)
    tracking.log_artifact(manifest_path, "features")
    return StageResult(stage="features", outputs={"author_texts": output}, metrics=metrics)
