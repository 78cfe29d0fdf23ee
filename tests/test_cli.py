"""The `grooming-detect` command as a user runs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.pipeline


REPO = Path(__file__).resolve().parents[1]
EXECUTABLE = shutil.which("grooming-detect") or str(
    Path(sys.executable).with_name("grooming-detect")
)


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> str:
    completed = subprocess.run(
        [EXECUTABLE, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_help_lists_groups_and_options() -> None:
    out = _run("--help")
    assert "== Configuration groups ==" in out
    for group in (
        "data: chatlog, pan12, synthetic",
        "model: behaviour_gbm, embedding_logreg, metadata_only, sentinel, tfidf_logreg, "
        "tfidf_plus_behaviour, tfidf_svm, transformer, two_stage",
        "scale: pan12, tiny",
        "debug: smoke, transformer_smoke",
    ):
        assert group in out
    assert "stages:" in out


def test_smoke_run_says_where_the_results_are(tmp_path: Path) -> None:
    env = {**os.environ, "GROOMING_DETECT_ROOT": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    # Run from another directory: nothing may depend on the current directory.
    out = _run("debug=smoke", env=env, cwd=tmp_path.parent)
    last = out.strip().splitlines()[-5:]
    run_id = re.match(r"MLflow run:\s+([0-9a-f]{32})", last[0]).group(1)
    report = Path(re.match(r"Report:\s+(\S+)", last[1]).group(1))
    assert report.is_file() and report.is_relative_to(tmp_path)
    latest = Path(re.match(r"Latest:\s+(\S+) is now this run's model", last[2]).group(1))
    assert latest.resolve() == (report.parent.parent / "model").resolve()
    mlflow_ui = re.match(r"MLflow UI:\s+(\S+) ui --backend-store-uri (\S+)$", last[3])
    assert Path(mlflow_ui.group(1)).is_file()  # the venv's mlflow, not a bare `mlflow`
    assert mlflow_ui.group(2) == f"sqlite:///{tmp_path}/mlflow.db"
    assert last[4].startswith("Runs table:  http://127.0.0.1:5000/#/experiments/")
    run = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id)
    assert run.data.tags["synthetic"] == "true"
    assert not list(tmp_path.parent.glob("outputs")), "no output beside the current directory"


def test_bad_override_fails_before_any_work(tmp_path: Path) -> None:
    env = {**os.environ, "GROOMING_DETECT_ROOT": str(tmp_path)}
    completed = subprocess.run(
        [EXECUTABLE, "stages=[train,data]"], capture_output=True, text=True, env=env, timeout=120
    )
    assert completed.returncode != 0
    assert "out of order" in completed.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("evaluate.bootstrap.n_resamples=abc", "evaluate.bootstrap.n_resamples"),
        ("early.windw=5", "windw"),
    ],
)
def test_a_wrong_type_or_a_typo_fails_at_composition(
    tmp_path: Path, override: str, key: str
) -> None:
    """The typed schema (conf_schema.py) stops the command before any work, naming the key."""
    env = {**os.environ, "GROOMING_DETECT_ROOT": str(tmp_path)}
    completed = subprocess.run(
        [EXECUTABLE, override], capture_output=True, text=True, env=env, timeout=120
    )
    assert completed.returncode == 2, completed.stderr
    assert key in completed.stderr and "Traceback" not in completed.stderr, completed.stderr
    assert not (tmp_path / "data").exists()


def test_a_missing_chat_log_is_one_line_before_mlflow_is_loaded(tmp_path: Path) -> None:
    """The input files are checked with the settings: no MLflow store, no run, exit status 2."""
    env = {**os.environ, "GROOMING_DETECT_ROOT": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    missing = tmp_path / "missing.csv"
    completed = subprocess.run(
        [EXECUTABLE, "data=chatlog", f"data.path={missing}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.strip() == (
        f"grooming-detect: error: {missing}: chat-log input not found (data.path: expected a "
        "CSV or JSONL file)"
    ), completed.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_target() -> None:
    out = subprocess.run(
        ["make", "-s", "help"], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    for target in ("help", "run", "test", "lint", "bench", "ui", "verify", "clean"):
        assert re.search(rf"^\s+{target}\s+\S", out, re.MULTILINE), target


@pytest.mark.slow
def test_compare_baselines_multirun_lands_in_one_experiment(tmp_path: Path) -> None:
    env = {**os.environ, "GROOMING_DETECT_ROOT": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    _run("experiment=compare_baselines", "scale=tiny", "evaluate.bootstrap.n_resamples=20", env=env)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("grooming-detect-compare-baselines")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert sorted(r.data.tags["model"] for r in parents) == sorted(
        ["tfidf_logreg", "tfidf_svm", "behaviour_gbm", "tfidf_plus_behaviour", "two_stage"]
    )
    evaluations = [r for r in runs if r.data.tags.get("stage") == "evaluate"]
    assert len(evaluations) == 5
    assert all(0 <= r.data.metrics["test/author/pr_auc"] <= 1 for r in evaluations)


def test_an_unreachable_tracking_server_is_one_line_after_a_bounded_wait(tmp_path: Path) -> None:
    """MLflow's client retried silently for 254 s, then printed a traceback."""
    import socket
    import time

    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "GROOMING_DETECT_ROOT": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.monotonic()
    completed = subprocess.run(
        [
            EXECUTABLE,
            f"tracking.uri=http://127.0.0.1:{port}",
            "tracking.connect_timeout_s=3",
            "stages=[data]",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert f"Connecting to the MLflow tracking server at http://127.0.0.1:{port}" in (
        completed.stdout + completed.stderr
    )
    error = completed.stderr.strip().splitlines()[-1]
    assert error.startswith(f"grooming-detect: error: tracking.uri=http://127.0.0.1:{port}: no")
    assert "Traceback" not in completed.stderr
    assert time.monotonic() - started < 60


def test_a_failure_after_composition_keeps_its_exit_status(tmp_path: Path) -> None:
    """Only Hydra's refusals of the command line become status 2: a bug once the config is
    composed still ends with Hydra's status 1 and its message."""
    code = (
        "import sys\n"
        "from grooming_detect import cli, pipeline\n"
        "def bug(*args, **kwargs):\n"
        "    raise RuntimeError('a bug')\n"
        "pipeline.run = bug\n"
        "sys.argv = ['grooming-detect', 'progress=false']\n"
        "cli.run()\n"
    )
    env = {**os.environ, "GROOMING_DETECT_ROOT": str(tmp_path)}
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert completed.returncode == 1, completed.stderr
    assert "a bug" in completed.stderr
