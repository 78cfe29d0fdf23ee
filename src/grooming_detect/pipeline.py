"""Runs the configured stages in order inside one MLflow parent run, one child run per stage."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from grooming_detect import progress, tracking
from grooming_detect.config import ConfigError
from grooming_detect.data.stage import check_sources, run_data
from grooming_detect.evaluation.stage import run_evaluate
from grooming_detect.features.stage import run_features
from grooming_detect.io import read_json
from grooming_detect.models.stage import run_train
from grooming_detect.reporting.stage import run_report
from grooming_detect.reporting.summary import MIN_POSITIVES, results_markdown
from grooming_detect.stage import (
    ARTEFACTS,
    INPUT_ERRORS,
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

#: The measures of the model's unit that the parent run carries beside its children, under the
#: evaluate run's own names (``test/author/f0_5`` …), so that MLflow's runs list compares
#: pipeline runs without opening their stage runs.
HEADLINE_SPLITS = ("test", "cv", "validation")
HEADLINE_MEASURES = ("f0_5", "precision", "recall", "pr_auc", "ece", "n_positive")
#: The decision threshold, as the train run logs it.
THRESHOLD_METRIC = "train/threshold"
#: Params the runs table's saved view shows beside the headline measures.
HEADLINE_PARAMS = ["model.name", "data.name"]


def headline_view_id(unit: str) -> str:
    """Id of the experiment's saved runs-table view of the headline measures of `unit`."""
    return f"grooming-detect-headline-{unit}"


@dataclass
class PipelineResult:
    """Where the results of one invocation are."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    stages: dict[str, StageResult] = field(default_factory=dict)
    #: The stage metrics copied to the parent run (`headline_metrics`).
    headline: dict[str, float] = field(default_factory=dict)
    #: The experiment's runs table showing those measures, once evaluated (MLflow UI address).
    runs_view_url: str | None = None

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


def insist_on_named_decision(cfg: DictConfig, overrides: list[str]) -> None:
    """A user who names ``decision=crossfit`` or ``decision.folds`` on the command line chose
    cross-fitting: it is not given up for ``decision.fallback`` (set to null, unless the
    overrides set it too), so data that cannot be cross-fitted stops the run with the error
    that names decision=holdout. Only the default procedure falls back."""
    keys = {override.lstrip("+~").split("=", 1)[0] for override in overrides}
    named = keys & {"decision", "decision.folds"}
    if not named or "decision.fallback" in keys:
        return
    decision = cfg.get("decision") or {}
    if decision.get("name") == "crossfit" and decision.get("fallback") is not None:
        with open_dict(cfg):
            cfg.decision.fallback = None
        log.info(
            "%s set on the command line: cross-fitting is insisted on (decision.fallback=null)",
            " and ".join(sorted(named)),
        )


def run(cfg: DictConfig, overrides: list[str] | None = None) -> PipelineResult:
    """Validate `cfg`, then run `cfg.stages` in order, tracked in MLflow (the command-line
    `overrides` are logged, and tell an explicit choice from a default:
    `insist_on_named_decision`)."""
    insist_on_named_decision(cfg, list(overrides or []))
    validate_config(cfg)
    progress.configure(bool(cfg.get("progress", True)))
    _isolate_secondary_rank(cfg)
    if "data" in cfg.stages:
        # A missing input file is refused before MLflow is set up and a run opened.
        check_sources(cfg)
    experiment_id = tracking.setup(cfg.tracking)
    synthetic = str(bool(cfg.data.synthetic)).lower()
    tags = {
        "git_commit": tracking.git_commit(Path(cfg.paths.root)),
        "synthetic": synthetic,
        "dataset": str(cfg.data.name),
        "model": str(cfg.model.name),
        "stages": ",".join(cfg.stages),
    }
    parent_id: str | None = None
    finished: list[str] = []
    try:
        with (
            tracking.terminate_as_interrupt(),
            tracking.parent_run(experiment_id, str(cfg.tracking.run_name), tags) as parent_id,
        ):
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
                finished.append(stage)
                _summarise_on_parent(cfg, result)
    except INPUT_ERRORS:
        if parent_id is not None and not finished:
            _discard_refused_run(parent_id)
        raise
    if result.runs_view_url:
        log.info("Runs compared on their headline measures: %s", result.runs_view_url)
    return result


def _discard_refused_run(parent_id: str) -> None:
    """Delete the runs of an invocation whose first stage refused its input or settings (a chat
    log that cannot be split, a file in the wrong format): they hold the config and nothing
    else, and a FAILED run for each refusal would crowd the runs list; the command says why it
    stopped. A run that a bug, an interruption or a later stage ended stays, FAILED or KILLED."""
    try:
        deleted = tracking.delete_run_tree(parent_id)
    except tracking.TrackingError as error:
        log.warning("Could not delete the MLflow runs of this refused invocation: %s", error)
        return
    log.info(
        "Input refused before any stage finished: its MLflow runs (%s) were deleted",
        ", ".join(deleted),
    )


def _evaluation_summary(result: PipelineResult) -> dict[str, Any] | None:
    """The evaluate stage's ``evaluation.json`` when it ran in this invocation."""
    evaluated = result.stages.get("evaluate")
    if evaluated is None or not evaluated.metrics or "summary" not in evaluated.outputs:
        return None
    return dict(read_json(evaluated.outputs["summary"]))


def headline_metrics(
    result: PipelineResult, summary: dict[str, Any] | None = None
) -> dict[str, float]:
    """What the parent run carries of its stages' metrics: the threshold and, once evaluated
    (`summary`, the evaluate stage's ``evaluation.json``), the headline measures of the model's
    unit on test and cv (or validation)."""
    headline: dict[str, float] = {}
    trained = result.stages.get("train")
    if trained is not None and THRESHOLD_METRIC in trained.metrics:
        headline[THRESHOLD_METRIC] = trained.metrics[THRESHOLD_METRIC]
    if summary is None:
        return headline
    metrics = result.stages["evaluate"].metrics
    unit = str(summary.get("unit", "author"))
    for split in HEADLINE_SPLITS:
        for measure in HEADLINE_MEASURES:
            key = f"{split}/{unit}/{measure}"
            if key in metrics:
                headline[key] = metrics[key]
    if THRESHOLD_METRIC not in headline and summary.get("threshold") is not None:
        # Evaluated without training here: the model's threshold, which its train run fitted.
        headline[THRESHOLD_METRIC] = float(summary["threshold"])
    return headline


def run_description(
    cfg: DictConfig, result: PipelineResult, summary: dict[str, Any] | None = None
) -> str:
    """The parent run's description in MLflow (Markdown): a first line that the runs table shows
    (model, data, test F0.5 and PR-AUC once evaluated, the stages completed), then, once
    evaluated (`summary`), the closing results table."""
    synthetic = " (synthetic)" if bool(cfg.data.synthetic) else ""
    stages = f"stages {', '.join(result.stages)} completed"
    pending = [str(stage) for stage in cfg.stages if stage not in result.stages]
    if pending:
        stages += f" ({', '.join(pending)} not completed)"
    who = f"{cfg.model.name} on {cfg.data.name}{synthetic}"
    if summary is None:
        return f"{who}: {stages}; no evaluation in this run."
    metrics = result.stages["evaluate"].metrics
    unit = str(summary.get("unit", "author"))
    measures = ", ".join(
        f"{label} {metrics[f'test/{unit}/{name}']:.3f}"
        for label, name in (("F0.5", "f0_5"), ("PR-AUC", "pr_auc"))
        if f"test/{unit}/{name}" in metrics
    )
    line = f"{who}, {unit}s: " + (f"test {measures}; " if measures else "") + f"{stages}."
    table = results_markdown(
        metrics,
        summary.get("threshold"),
        str(summary.get("threshold_fitted_on", "validation")),
        int(summary.get("min_positives", MIN_POSITIVES)),
    )
    return f"{line}\n\n{table}" if table else line


def _summarise_on_parent(cfg: DictConfig, result: PipelineResult) -> None:
    """After each stage: the headline metrics, the unit and the description on the parent run,
    so the runs list shows and compares them (a failed run keeps those of its finished stages)."""
    # evaluation.json is read once here, for the metrics, the unit and the description.
    summary = _evaluation_summary(result)
    headline = headline_metrics(result, summary)
    # Each metric once: logging it again after every stage would add points to its history.
    tracking.log_metrics(
        {k: v for k, v in headline.items() if k not in result.headline}, run_id=result.run_id
    )
    result.headline = headline
    if summary is not None and summary.get("unit"):
        unit = str(summary["unit"])
        tracking.set_tags({"unit": unit}, run_id=result.run_id)
        columns = [
            f"{split}/{unit}/{measure}"
            for split in HEADLINE_SPLITS
            for measure in HEADLINE_MEASURES
        ]
        view = headline_view_id(unit)
        tracking.save_runs_view(
            result.experiment_id,
            view,
            f"Headline measures ({unit}s)",
            [*columns, THRESHOLD_METRIC],
            HEADLINE_PARAMS,
        )
        result.runs_view_url = tracking.runs_view_url(
            result.tracking_uri, result.experiment_id, view
        )
    tracking.set_description(run_description(cfg, result, summary), run_id=result.run_id)
