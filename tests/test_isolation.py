"""Run isolation and crash safety: concurrent runs keep their own models, and a run killed
between two writes (data tables, corpus generation, model files) is never reused half-done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow import MlflowClient

from grooming_detect.stage import dataset_dir, latest_dir, latest_run, runs_dir

BIN = Path(sys.executable).parent
SMALL = [
    "scale=tiny",
    "stages=[data,features,train,evaluate]",
    "evaluate.bootstrap.n_resamples=20",
    "tracking.experiment_name=isolation",
]


def _overrides(root: Path, *extra: str) -> list[str]:
    return [f"paths.root={root}", f"tracking.uri=sqlite:///{root}/mlflow.db", *SMALL, *extra]


def _grooming_detect(root: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "grooming-detect"), *_overrides(root, *extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Unbuffered: each log line reaches the test as it is written (a pipe is otherwise
        # block-buffered, and the test would signal a run that had already finished).
        env={**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"},
        # Ctrl-C as a terminal delivers it: the child starts with SIGINT's default disposition
        # even when the test process ignores SIGINT (a child inheriting "ignore" never raises
        # KeyboardInterrupt, and its run finishes).
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_id(output: str) -> str:
    return next(line.split()[2] for line in output.splitlines() if line.startswith("MLflow run:"))


def _stage_runs(root: Path, parent_id: str) -> dict[str, object]:
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    parent = client.get_run(parent_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    return {run.data.tags["stage"]: run for run in children}


@pytest.mark.slow
def test_concurrent_runs_log_their_own_models(tmp_path: Path) -> None:
    # Data and features first, so the two runs race only on training and evaluation.
    prepare = _grooming_detect(tmp_path, "stages=[data,features]")
    assert prepare.wait() == 0, prepare.stdout.read()
    strong = _grooming_detect(tmp_path, "model.estimator.C=4")
    weak = _grooming_detect(tmp_path, "model.estimator.C=0.0001")
    outputs = {}
    for name, process in (("strong", strong), ("weak", weak)):
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, out
        outputs[name] = _run_id(out)
    series = tmp_path / "outputs" / "synthetic-tiny" / "tfidf_logreg"
    thresholds = {}
    for name, run_id in outputs.items():
        stages = _stage_runs(tmp_path, run_id)
        model_dir = runs_dir(series) / run_id / "model"
        meta = json.loads((model_dir / "model.json").read_text())
        # The evaluation this run logged scored this run's own model, with its own threshold.
        assert stages["evaluate"].data.tags["model_dir"] == str(model_dir)
        assert meta["settings"]["estimator"]["C"] == (4.0 if name == "strong" else 0.0001)
        evaluation = json.loads(
            (runs_dir(series) / run_id / "evaluation" / "evaluation.json").read_text()
        )
        assert evaluation["threshold"] == pytest.approx(meta["threshold"])
        assert stages["train"].data.metrics["train/threshold"] == pytest.approx(meta["threshold"])
        thresholds[name] = meta["threshold"]
    assert thresholds["strong"] != thresholds["weak"]


KILL_AFTER = textwrap.dedent(
    """
    import os, signal, sys
    import {module} as target
    original = target.{function}
    calls = {{"n": 0}}
    def dying(*args, **kwargs):
        result = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= {after}:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    target.{function} = dying
    sys.argv = ["grooming-detect", *sys.argv[1:]]
    from grooming_detect.cli import main
    main()
    """
)


def _killed_run(root: Path, module: str, function: str, after: int, *extra: str) -> None:
    code = KILL_AFTER.format(module=module, function=function, after=after)
    completed = subprocess.run(
        [str(BIN / "python"), "-c", code, *_overrides(root, *extra)],
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
        timeout=600,
    )
    assert completed.returncode == -signal.SIGKILL, completed.stdout + completed.stderr


def _finished_run(root: Path, *extra: str) -> dict[str, float]:
    process = _grooming_detect(root, *extra)
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out
    return dict(_stage_runs(root, _run_id(out))["evaluate"].data.metrics)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """The uninterrupted run's evaluation metrics."""
    return _finished_run(tmp_path_factory.mktemp("reference"))


HEADLINE = ("test/author/f0_5", "test/author/pr_auc", "test/author/n")


@pytest.mark.pipeline
@pytest.mark.slow
def test_killed_data_stage_is_rebuilt(tmp_path: Path, reference: dict[str, float]) -> None:
    # A finished run, then a run of another corpus under the same data name killed between two
    # table writes: the finished run's manifest and half the other corpus's tables remain.
    _finished_run(tmp_path)
    _killed_run(tmp_path, "grooming_detect.data.schema", "write_parquet", 1, "seed=3")
    rerun = _finished_run(tmp_path)
    assert {k: rerun[k] for k in HEADLINE} == pytest.approx({k: reference[k] for k in HEADLINE})


@pytest.mark.pipeline
@pytest.mark.slow
def test_killed_generation_is_regenerated(tmp_path: Path, reference: dict[str, float]) -> None:
    # Killed after the training corpus and its truth were written, before the test corpus.
    _killed_run(tmp_path, "grooming_detect.data.synthetic.writer", "write_lines", 1)
    assert not any((tmp_path / "data" / "raw" / "synthetic").glob("*/generator.json"))
    rerun = _finished_run(tmp_path)
    assert {k: rerun[k] for k in HEADLINE} == pytest.approx({k: reference[k] for k in HEADLINE})


@pytest.mark.pipeline
@pytest.mark.slow
def test_killed_training_is_never_read(tmp_path: Path, reference: dict[str, float]) -> None:
    _finished_run(tmp_path)
    series = tmp_path / "outputs" / "synthetic-tiny" / "tfidf_logreg"
    finished_model = latest_dir(series, "model")
    # Another model is killed between writing model.skops and model.json.
    _killed_run(
        tmp_path, "grooming_detect.models.persistence", "write_with", 1, "model.estimator.C=0.0001"
    )
    assert latest_dir(series, "model") == finished_model
    evaluated = _finished_run(tmp_path, "stages=[evaluate]")
    assert {k: evaluated[k] for k in HEADLINE} == pytest.approx({k: reference[k] for k in HEADLINE})
    assert latest_run(series, "evaluation") != finished_model.parent.name


@pytest.mark.slow
def test_model_is_never_scored_on_other_data(tmp_path: Path) -> None:
    """Tables of other data settings live in their own folder: building them leaves the
    model's tables alone, and scoring the model on them is refused."""
    trained = _grooming_detect(tmp_path, "stages=[data,features,train]")
    assert trained.wait() == 0, trained.stdout.read()
    rebuilt = _grooming_detect(tmp_path, "stages=[data,features]", "seed=3")
    assert rebuilt.wait() == 0, rebuilt.stdout.read()
    evaluated = _grooming_detect(tmp_path, "stages=[evaluate]", "seed=3")
    out, _ = evaluated.communicate(timeout=600)
    assert evaluated.returncode == 2, out
    assert "was trained on data" in out and "Traceback" not in out
    own = _grooming_detect(tmp_path, "stages=[evaluate]")
    out, _ = own.communicate(timeout=600)
    assert own.returncode == 0, out


def test_data_settings_key_the_processed_tables(compose_cfg) -> None:
    """Two runs on one data.name with different data seeds never share (or rewrite) tables;
    the same settings share them."""
    base = dataset_dir(compose_cfg("scale=tiny"))
    assert dataset_dir(compose_cfg("scale=tiny")) == base
    assert dataset_dir(compose_cfg("scale=tiny", "seed=3")) != base
    assert dataset_dir(compose_cfg("scale=tiny", "data.validation_fraction=0.3")) != base
    assert base.parent.name == "synthetic-tiny"


@pytest.mark.pipeline
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_marks_the_runs_killed(tmp_path: Path, signum: int) -> None:
    """Ctrl-C, and SIGTERM as SLURM pre-emption or `kill` sends it, end the runs KILLED."""
    process = _grooming_detect(tmp_path)
    assert process.stdout is not None
    for line in process.stdout:
        if "== stage features ==" in line:
            break
    # The signal as a user (or a scheduler) sends it, again every 2 s until the run stops.
    for _ in range(10):
        process.send_signal(signum)
        try:
            process.wait(timeout=2)  # room to mark the runs KILLED before any second press
            break
        except subprocess.TimeoutExpired:
            continue
    process.communicate(timeout=300)
    assert process.returncode != 0
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("isolation")
    statuses = {
        run.data.tags.get("stage", "parent"): run.info.status
        for run in client.search_runs([experiment.experiment_id])
    }
    # Interrupted after the data stage: the parent and the stage running then are KILLED,
    # never FAILED; finished stages stay FINISHED.
    assert statuses["parent"] == "KILLED", statuses
    assert statuses["data"] == "FINISHED", statuses
    assert "FAILED" not in statuses.values(), statuses
    assert "KILLED" in {v for k, v in statuses.items() if k != "parent"} or set(statuses) == {
        "parent",
        "data",
    }, statuses


@pytest.mark.pipeline
def test_a_stage_alone_without_any_earlier_run_names_its_missing_input(compose_cfg) -> None:
    """No LATEST pointer yet: the context still builds, and evaluate reports the missing model
    (it used to fail reading the absent pointer file)."""
    from grooming_detect.stage import StageContext

    cfg = compose_cfg("stages=[evaluate]")
    ctx = StageContext.from_config(cfg, parent_run_id="r1")
    assert ctx.model_dir == runs_dir(Path(cfg.paths.run_dir)) / "r1" / "model"
    assert latest_run(Path(cfg.paths.run_dir), "model") is None


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_run_killed_with_minus_9_is_marked_killed_by_the_next(tmp_path: Path) -> None:
    """kill -9 leaves no chance to end a run: the next run on this host finds its process
    gone and marks the runs KILLED (they stayed RUNNING forever, even after a good rerun)."""
    process = _grooming_detect(tmp_path)
    assert process.stdout is not None
    for line in process.stdout:
        if "== stage features ==" in line:
            break
    process.kill()
    process.wait(timeout=60)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("isolation")
    left = client.search_runs([experiment.experiment_id])
    assert "RUNNING" in {run.info.status for run in left}
    rerun = _grooming_detect(tmp_path, "stages=[data]")
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out
    running = sum(run.info.status == "RUNNING" for run in left)
    assert f"Marked {running} run(s) KILLED" in out, out
    for run in left:
        after = client.get_run(run.info.run_id)
        assert after.info.status != "RUNNING", after.data.tags
        if run.info.status == "RUNNING":
            assert after.info.status == "KILLED" and "kill -9" in after.data.tags["killed_reason"]


@pytest.mark.pipeline
def test_a_live_run_is_never_marked_killed(tmp_path: Path) -> None:
    """Runs whose process is alive (this one) or on another host are left RUNNING."""
    import mlflow

    from grooming_detect import tracking

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = mlflow.create_experiment("live")
    with tracking.parent_run(experiment, "alive", {}) as run_id:
        other = mlflow.MlflowClient().create_run(
            experiment, tags={tracking.HOST_TAG: "elsewhere", tracking.PID_TAG: "1"}
        )
        assert tracking.mark_abandoned_runs(experiment) == []
        assert mlflow.get_run(run_id).info.status == "RUNNING"
        assert mlflow.get_run(other.info.run_id).info.status == "RUNNING"


def test_a_model_is_never_scored_on_views_of_other_feature_settings(tmp_path: Path) -> None:
    from grooming_detect.stage import InputMismatchError, check_same_features

    meta = {"features_fingerprint": "a" * 64}
    check_same_features(meta, {"fingerprint": "a" * 64}, tmp_path, "evaluate")
    check_same_features({}, {"fingerprint": "b" * 64}, tmp_path, "evaluate")  # older models
    with pytest.raises(InputMismatchError, match="trained on feature views aaaaaaaaaaaa"):
        check_same_features(meta, {"fingerprint": "b" * 64}, tmp_path, "evaluate")


@pytest.mark.slow
def test_views_rebuilt_with_other_feature_settings_are_refused(tmp_path: Path) -> None:
    trained = _grooming_detect(tmp_path, "stages=[data,features,train]")
    assert trained.wait() == 0, trained.stdout.read()
    rebuilt = _grooming_detect(tmp_path, "stages=[features]", "features.message_separator=' | '")
    assert rebuilt.wait() == 0, rebuilt.stdout.read()
    evaluated = _grooming_detect(tmp_path, "stages=[evaluate]")
    out, _ = evaluated.communicate(timeout=600)
    assert evaluated.returncode == 2, out
    assert "trained on feature views" in out and "Traceback" not in out
