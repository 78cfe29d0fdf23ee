"""Sweeps and cluster launch: joblib in parallel into one experiment, SLURM config, submitit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from mlflow import MlflowClient

from grooming_detect.config import config_dir
from test_cli import _run


def _env(root: Path) -> dict[str, str]:
    env = {**os.environ, "GROOMING_DETECT_ROOT": str(root)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def test_slurm_launcher_composes_and_instantiates(tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.gpus_per_node=2",
                f"paths.root={tmp_path}",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.mem_gb) == ("gpu", 2, 16)
    assert launcher.timeout_min == 120
    assert launcher.submitit_folder == f"{tmp_path}/logs/submitit/%j"
    assert type(instantiate(launcher)).__name__ == "SlurmLauncher"


@pytest.mark.pipeline
@pytest.mark.slow
def test_one_job_through_submitit_local(tmp_path: Path) -> None:
    _run(
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "scale=tiny",
        "stages=[data,features]",
        env=_env(tmp_path),
    )
    assert list((tmp_path / "data" / "processed" / "synthetic-tiny").glob("*/manifest.json"))
    assert list((tmp_path / "logs").rglob("*_submitted.pkl")), "submitit ran the job"


@pytest.mark.pipeline
@pytest.mark.slow
def test_joblib_sweep_runs_in_parallel_into_one_experiment(tmp_path: Path) -> None:
    _run(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "scale=tiny",
        "model.estimator.C=1.0,8.0",
        "evaluate.bootstrap.n_resamples=20",
        "tracking.experiment_name=sweep",
        env=_env(tmp_path),
    )
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert sorted(p.data.params["model.estimator.C"] for p in parents) == ["1.0", "8.0"]
    assert all(r.info.status == "FINISHED" for r in runs) and len(runs) == 2 * 6
    models = sorted(
        (tmp_path / "outputs" / "synthetic-tiny" / "tfidf_logreg" / "runs").rglob("model.json")
    )
    assert len(models) == 2, "each job keeps its own model"
