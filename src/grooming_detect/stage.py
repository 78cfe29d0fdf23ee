"""What every stage receives and returns: paths in, paths and metrics out.

Run isolation: every pipeline invocation writes its model, evaluation and report under
``<paths.run_dir>/runs/<MLflow run id>/``, so two runs of one dataset and model (at once, or one
after the other) never read or overwrite each other's files. A stage that does not run in this
invocation is read from the run named by ``paths.source_run`` (``latest``: the last run that
completed that stage, recorded in ``<paths.run_dir>/LATEST-<artefact>``); ``<paths.run_dir>/latest``
links to the last run that completed its report, for people.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from grooming_detect.errors import (
    ChitchatUnavailableError,
    ConfigError,
    CorpusFormatError,
    CrossfitError,
    SplitError,
    UntrustedModelError,
)
from grooming_detect.io import json_digest, write_text

#: The artefacts a run writes, each a folder of its run directory, and the stage that writes it.
ARTEFACTS = {"model": "train", "evaluation": "evaluate", "report": "report"}


def data_settings(cfg: DictConfig) -> dict:
    """Every setting that shapes a dataset's tables: the ``data`` group and the seed."""
    settings = OmegaConf.to_container(cfg.data, resolve=True)
    assert isinstance(settings, dict)
    # The seed as given (validation reports a seed that is not an integer, naming it).
    return {**settings, "seed": cfg.seed}


#: Pointer file in ``<paths.processed>/<data.name>/`` naming the settings folder last built.
LATEST_DATA = "LATEST"


def dataset_dir(cfg: DictConfig) -> Path:
    """``<paths.processed>/<data.name>/<settings key>/``: the tables of one set of data settings.

    Runs with other data settings (another seed, fraction or generator setting) never share or
    rewrite each other's tables, even when they run at once on one ``data.name``; runs with the
    same settings share them (the data stage builds them under a lock). A changed input file
    under the same settings changes the manifest's fingerprint, so the data stage rebuilds."""
    key = json_digest(data_settings(cfg))[:16]
    return Path(str(cfg.paths.processed)) / str(cfg.data.name) / key


def latest_dataset_dir(processed: str | Path, name: str) -> Path:
    """The settings folder of `name` that the data stage built last (for notebooks and
    scripts that read the tables of "the" dataset)."""
    base = Path(processed) / name
    pointer = base / LATEST_DATA
    if not pointer.is_file():
        raise FileNotFoundError(f"{pointer}: no data stage has built dataset {name!r} here yet")
    return base / pointer.read_text(encoding="utf-8").strip()


def runs_dir(series_dir: Path) -> Path:
    """Where the runs of one dataset and model keep their folders."""
    return series_dir / "runs"


def latest_run(series_dir: Path, artefact: str) -> str | None:
    """The id of the last run that completed `artefact` (None when no run has)."""
    pointer = series_dir / f"LATEST-{artefact}"
    if not pointer.is_file():
        return None
    return pointer.read_text(encoding="utf-8").strip() or None


def latest_dir(series_dir: str | Path, artefact: str) -> Path:
    """Folder of `artefact` (model, evaluation, report) of the last run that completed it."""
    series_dir = Path(series_dir)
    run_id = latest_run(series_dir, artefact)
    if run_id is None:
        raise FileNotFoundError(f"{series_dir}: no run has completed its {artefact} yet")
    return runs_dir(series_dir) / run_id / artefact


def publish_latest(series_dir: Path, run_id: str, artefact: str) -> None:
    """Record `run_id` as the last run that completed `artefact` (an atomic pointer file); when
    the report is done, repoint the ``latest`` link by an atomic rename."""
    write_text(series_dir / f"LATEST-{artefact}", f"{run_id}\n")
    if artefact != "report":
        return
    staging = series_dir / f".latest-{run_id}"
    staging.unlink(missing_ok=True)
    try:
        os.symlink(Path("runs") / run_id, staging)
        os.replace(staging, series_dir / "latest")
    except OSError:  # no symlinks here, or a folder named latest: the pointer files suffice
        staging.unlink(missing_ok=True)


@dataclass(frozen=True)
class StageContext:
    """Resolved locations shared by the stages of one pipeline invocation.

    Stages never read another stage's in-memory state: they read the files below.
    """

    dataset_dir: Path
    features_dir: Path
    run_dir: Path
    model_dir: Path
    evaluation_dir: Path
    report_dir: Path
    series_dir: Path
    parent_run_id: str | None = None

    @classmethod
    def from_config(cls, cfg: DictConfig, parent_run_id: str | None = None) -> StageContext:
        tables_dir = dataset_dir(cfg)
        series_dir = Path(cfg.paths.run_dir)
        run_id = parent_run_id or "local"
        run_dir = runs_dir(series_dir) / run_id
        running = set(cfg.stages)
        source_run = str(cfg.paths.get("source_run") or "latest")
        folders = {
            artefact: run_dir / artefact
            if stage in running or artefact == "report"
            else _maybe_source(series_dir, artefact, source_run, run_dir)
            for artefact, stage in ARTEFACTS.items()
        }
        evaluation = folders["evaluation"] / "evaluation.json"
        if "train" not in running and "evaluate" not in running and evaluation.is_file():
            # A report alone describes the model its evaluation scored, not the latest model.
            recorded = json.loads(evaluation.read_text(encoding="utf-8")).get("model_dir")
            if recorded:
                folders["model"] = Path(recorded)
        return cls(
            dataset_dir=tables_dir,
            features_dir=tables_dir / "features",
            run_dir=run_dir,
            model_dir=folders["model"],
            evaluation_dir=folders["evaluation"],
            report_dir=folders["report"],
            series_dir=series_dir,
            parent_run_id=parent_run_id,
        )

    @property
    def manifest_path(self) -> Path:
        return self.dataset_dir / "manifest.json"


def link_sources(ctx: StageContext) -> None:
    """Make a run folder self-describing: an artefact read from another run (a stage run
    alone) appears in it as a relative link to that run's folder."""
    for artefact in ARTEFACTS:
        source = getattr(ctx, f"{artefact}_dir")
        own = ctx.run_dir / artefact
        if source == own or not source.is_dir():
            continue
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        # Without symlinks on this file system, the MLflow tags still name the source.
        with contextlib.suppress(OSError):
            os.symlink(os.path.relpath(source, ctx.run_dir), own)


def _maybe_source(series_dir: Path, artefact: str, source_run: str, run_dir: Path) -> Path:
    """The source run's folder, or this run's own (absent) folder when there is none yet, so
    that the stage that needs it fails with a `MissingInputError` naming the producer."""
    run_id = latest_run(series_dir, artefact) if source_run == "latest" else source_run
    return runs_dir(series_dir) / run_id / artefact if run_id else run_dir / artefact


#: Prefix of the MLflow tags that record a design chosen in place of a default setting
#: (``fallback/data.split_override``, ``fallback/decision``): "from -> to: reason".
FALLBACK_TAG = "fallback/"
#: MLflow's longest tag value is 8,000 characters; a reason is cut well before.
MAX_FALLBACK_TAG_CHARS = 2_000


def fallback_tags(fallbacks: dict[str, str]) -> dict[str, str]:
    """``{setting: "from -> to: reason"}`` as MLflow tags ``fallback/<setting>`` (the whole
    reasons stay in the data manifest and model.json)."""
    return {
        f"{FALLBACK_TAG}{setting}": choice
        if len(choice) <= MAX_FALLBACK_TAG_CHARS
        else choice[: MAX_FALLBACK_TAG_CHARS - 1] + "…"
        for setting, choice in fallbacks.items()
    }


@dataclass
class StageResult:
    """What a stage produced: named output paths, headline metrics, tags for the parent run."""

    stage: str
    outputs: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    parent_tags: dict[str, str] = field(default_factory=dict)


class MissingInputError(FileNotFoundError):
    """A stage's input is absent: an earlier stage has not run with this configuration."""

    def __init__(self, stage: str, path: Path, producer: str) -> None:
        super().__init__(
            f"{stage} stage: {path} does not exist; run the {producer} stage first "
            f"(e.g. add it to stages=[...]) with the same data and model settings"
        )


class InputMismatchError(ValueError):
    """A stage's input files were built from other data than the model it reads."""


#: The errors by which a stage refuses its input or settings (not a bug): the command reports
#: them in one line with exit status 2 (`cli.EXPECTED_ERRORS`), and a pipeline that one stops
#: before any stage finished leaves no MLflow run behind (`pipeline.run`).
INPUT_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    CorpusFormatError,
    FileNotFoundError,
    UntrustedModelError,
    ChitchatUnavailableError,
    InputMismatchError,
    SplitError,
    CrossfitError,
)


def _refuse_other_inputs(
    trained_on: str | None, current: str | None, model_dir: Path, stage: str, inputs: str
) -> None:
    """Refuse a model whose recorded fingerprint of `inputs` differs from the inputs' now."""
    if trained_on and current and trained_on != current:
        raise InputMismatchError(
            f"{stage} stage: the model in {model_dir} was trained on {inputs} {trained_on[:12]}, "
            f"but they now are {current[:12]} (another run rewrote them with other settings): "
            "rerun the earlier stages with the model's settings, or train again"
        )


def check_same_data(model_meta: dict, manifest: dict, model_dir: Path, stage: str) -> None:
    """Refuse to score a model on tables built from other data than it was trained on (a later
    run with other data settings rewrote them): its numbers would describe nothing."""
    _refuse_other_inputs(
        model_meta.get("data_fingerprint"), manifest.get("fingerprint"), model_dir, stage, "data"
    )


def check_same_features(
    model_meta: dict, features_manifest: dict, model_dir: Path, stage: str
) -> None:
    """Refuse to score a model on feature views built with other feature settings than it was
    trained with (a later run with other ``features.*`` settings rewrote them): the columns
    would mean something else and the numbers would describe nothing."""
    _refuse_other_inputs(
        model_meta.get("features_fingerprint"),
        features_manifest.get("fingerprint"),
        model_dir,
        stage,
        "feature views",
    )
