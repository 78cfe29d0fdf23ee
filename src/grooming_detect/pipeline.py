"""Runs the configured stages in order inside one MLflow parent run, one child run per stage."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, open_dict

from grooming_detect import progress, tracking
from grooming_detect.config import ConfigError
from grooming_detect.data.stage import run_data
from grooming_detect.evaluation.stage import run_evaluate
from grooming_detect.features.stage import run_features
from grooming_detect.io import read_json
from grooming_detect.models.stage import run_train
from grooming_detect.reporting.stage import run_report
from grooming_detect.stage import (
    ARTEFACTS,
    StageContext,
    StageResult,
    link_sources,
    publish_latest,
)
from grooming_detect.validation import validate_config

log = logging.getLogger(__name__)

StageFunction = Callable[[DictConfig, StageContext], StageResult]
STAGE_FUNCTIONS: dict[str, StageFunction] = {
    "data": run_data,
    "features": run_features,
    "train": run_train,
    "evaluate": run_evaluate,
    "report": run_report,
}


@dataclass
class PipelineResult:
    """Where the results of one invocation are."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    stages: dict[str, StageResult] = field(default_factory=dict)

    @property
    def report_path(self) -> Path | None:
        report = self.stages.get("report")
        return report.outputs.get("report") if report else None


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) under torchrun / accelerate launch; (0, 1) in a plain process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _isolate_secondary_rank(cfg: DictConfig) -> None:
    """Multi-GPU training: every rank runs the train stage (the Trainer shares the work), but
    only rank 0 writes the model and logs to MLflow; the others log to a scratch store."""
    rank, world = distributed_rank()
    if world == 1:
        return
    if list(cfg.stages) != ["train"]:
        raise ConfigError(
            f"under a multi-process launcher (WORLD_SIZE={world}) run stages=[train] only: "
            "run data and features before, evaluate and report after, in a plain process"
        )
    if rank != 0:
        scratch = Path(tempfile.mkdtemp(prefix=f"grooming-detect-rank{rank}-"))
        with open_dict(cfg):
            cfg.tracking.uri = f"sqlite:///{scratch}/mlflow.db"
            cfg.paths.run_dir = str(scratch / "run")


def run(cfg: DictConfig, overrides: list[str] | None = None) -> PipelineResult:
    """Validate `cfg`, then run `cfg.stages` in order, tracked in MLflow."""
    validate_config(cfg)
    progress.configure(bool(cfg.get("progress", True)))
    _isolate_secondary_rank(cfg)
    experiment_id = tracking.setup(cfg.tracking)
    synthetic = str(bool(cfg.data.synthetic)).lower()
    tags = {
        "git_commit": tracking.git_commit(Path(cfg.paths.root)),
        "synthetic": synthetic,
        "dataset": str(cfg.data.name),
        "model": str(cfg.model.name),
        "stages": ",".join(cfg.stages),
    }
    with tracking.parent_run(experiment_id, str(cfg.tracking.run_name), tags) as parent_id:
        tracking.log_config(cfg, list(overrides or []))
        ctx = StageContext.from_config(cfg, parent_run_id=parent_id)
        link_sources(ctx)
        result = PipelineResult(parent_id, experiment_id, str(cfg.tracking.uri))
        if "data" not in cfg.stages and ctx.manifest_path.is_file():
            tracking.set_tags({"dataset_digest": read_json(ctx.manifest_path)["fingerprint"]})
        for stage in cfg.stages:
            log.info("== stage %s ==", stage)
            with tracking.stage_run(stage, {"synthetic": synthetic}):
                stage_result = STAGE_FUNCTIONS[stage](cfg, ctx)
            # Only a completed stage becomes what later runs read by default.
            for artefact, producer in ARTEFACTS.items():
                if producer == stage:
                    publish_latest(ctx.series_dir, parent_id, artefact)
            if stage_result.parent_tags:
                tracking.set_tags(stage_result.parent_tags)
            result.stages[stage] = stage_result
    return result
