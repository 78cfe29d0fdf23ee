"""What every stage receives and returns: paths in, paths and metrics out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig


@dataclass(frozen=True)
class StageContext:
    """Resolved locations shared by the stages of one pipeline invocation.

    Stages never read another stage's in-memory state: they read the files below.
    """

    dataset_dir: Path
    features_dir: Path
    run_dir: Path
    parent_run_id: str | None = None

    @classmethod
    def from_config(cls, cfg: DictConfig, parent_run_id: str | None = None) -> StageContext:
        dataset_dir = Path(cfg.paths.processed) / str(cfg.data.name)
        return cls(
            dataset_dir=dataset_dir,
            features_dir=dataset_dir / "features",
            run_dir=Path(cfg.paths.run_dir),
            parent_run_id=parent_run_id,
        )

    @property
    def manifest_path(self) -> Path:
        return self.dataset_dir / "manifest.json"

    @property
    def model_dir(self) -> Path:
        return self.run_dir / "model"

    @property
    def evaluation_dir(self) -> Path:
        return self.run_dir / "evaluation"

    @property
    def report_dir(self) -> Path:
        return self.run_dir / "report"


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
