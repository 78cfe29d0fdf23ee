"""The ``grooming-detect`` command: the project's only ``@hydra.main``."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

if TYPE_CHECKING:
    from grooming_detect.pipeline import PipelineResult

from grooming_detect.config import config_dir
from grooming_detect.errors import TrackingUnreachableError
from grooming_detect.stage import INPUT_ERRORS
from grooming_detect.validation import validate_config

log = logging.getLogger("grooming_detect")

#: Errors that mean bad input or settings (not a bug): reported in one line, exit status 2.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (*INPUT_ERRORS, TrackingUnreachableError)

#: Whether Hydra has composed the config and called `main` in this process: before that, an exit
#: status 1 is Hydra refusing the command line (see `run`). A plain dict behind module-level
#: functions, not a lock: the joblib and submitit launchers pickle `main` by value, and whatever
#: it references directly must pickle too.
_STATE = {"composed": False}


def _mark_composed() -> None:
    _STATE["composed"] = True


def _composed() -> bool:
    return _STATE["composed"]


# Libraries whose INFO chatter hides what the pipeline itself says.
QUIET_LOGGERS = ("alembic", "mlflow", "urllib3", "matplotlib", "git")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    """Compose the config, run the pipeline, and say where the results are; return the job's
    record (seed, run, measures) for sweep callbacks such as `sweeps.SeedsSummary`."""
    _mark_composed()
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    # Jobs of a sweep need no folder of their own: every run writes under runs/<run id>/.
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        # Settings are checked before the pipeline (MLflow, scikit-learn, the stages) is even
        # imported: a wrong value is answered in about a second.
        if "data" in cfg.stages and cfg.data.get("source") == "chatlog":
            # A chat log that is not there, with pathlib alone: before the settings' checks
            # import the constants they check against (scikit-learn among their modules).
            from grooming_detect.data.sources import refuse_absent_chatlog

            refuse_absent_chatlog(cfg.data)
        validate_config(cfg)
        if "data" in cfg.stages:
            # So are the input files (pipeline.run checks them again, for its other callers).
            from grooming_detect.data.stage import check_sources

            check_sources(cfg)
        from grooming_detect import pipeline

        result = pipeline.run(cfg, overrides)
    except EXPECTED_ERRORS as error:
        # Bad input or bad settings: one line a person can act on, exit status 2. The
        # traceback is for developers: HYDRA_FULL_ERROR=1 shows it.
        # In a sweep, the launcher records the failed job and runs the others.
        if multirun or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"grooming-detect: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(_closing_lines(cfg, result))
    return _job_record(cfg, result)


def _closing_lines(cfg: DictConfig, result: PipelineResult) -> str:
    """The results table and where everything is: the run, the report, the model, the UI."""
    from grooming_detect import tracking
    from grooming_detect.io import read_json
    from grooming_detect.reporting.summary import MIN_POSITIVES, results_table

    lines = [""]
    evaluated = result.stages.get("evaluate")
    if evaluated is not None and evaluated.metrics:
        summary = read_json(evaluated.outputs["summary"])
        fitted_on = str(summary.get("threshold_fitted_on", "validation"))
        table = results_table(
            evaluated.metrics,
            summary.get("threshold"),
            fitted_on,
            int(summary.get("min_positives", MIN_POSITIVES)),
        )
        lines += [table, ""]
    lines.append(f"MLflow run:  {result.run_id}  (experiment {cfg.tracking.experiment_name})")
    if result.report_path is not None:
        lines.append(f"Report:      {result.report_path}")
    latest = Path(str(cfg.paths.run_dir)) / "latest"
    if "train" in result.stages and latest.resolve().name == result.run_id:
        # Say which model `latest` now names: the folder the README's scoring command reads
        # (unless a later run, or a file system without links, left it elsewhere).
        lines.append(
            f"Latest:      {latest / 'model'} is now this run's model (grooming-detect-score)"
        )
    lines.append(f"MLflow UI:   {tracking.ui_command(result.tracking_uri)}")
    if result.runs_view_url:
        lines.append(f"Runs table:  {result.runs_view_url}")
    return "\n".join(lines)


def _job_record(cfg: DictConfig, result: PipelineResult) -> dict[str, Any]:
    """The job's record for sweep callbacks: seed, run, measures and the dataset's manifest."""
    from grooming_detect.io import read_json
    from grooming_detect.stage import StageContext
    from grooming_detect.sweeps import job_record

    measures = {
        k: v
        for stage in ("train", "evaluate")
        if stage in result.stages
        for k, v in result.stages[stage].metrics.items()
    }
    manifest_path = StageContext.from_config(cfg).manifest_path
    manifest = read_json(manifest_path) if manifest_path.is_file() else None
    return job_record(cfg, result.run_id, measures, manifest)


def run() -> None:
    """The ``grooming-detect`` command: `main` under Hydra. Hydra's own refusals of the command
    line (a misspelt key, a wrong type, a malformed override), which it reports and ends with
    status 1, exit with status 2, as every other bad setting does; a failure after composition
    keeps its status."""
    try:
        main()
    except SystemExit as ended:
        if ended.code == 1 and not _composed():
            sys.exit(2)
        raise


if __name__ == "__main__":
    run()
