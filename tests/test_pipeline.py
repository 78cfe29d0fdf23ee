"""End to end: every stage on the synthetic corpus, checked in the MLflow store it leaves."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import TINY_RUN, ComposeFn, compose_config, recomputed_measures, stage_run
from grooming_detect import pipeline
from grooming_detect.config import STAGES
from grooming_detect.models.persistence import load_model
from grooming_detect.stage import MissingInputError, dataset_dir, latest_dir

pytestmark = pytest.mark.pipeline


def test_one_parent_run_with_one_child_per_stage(default_run) -> None:
    _, result, client = default_run
    runs = client.search_runs([result.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.run_id]
    assert [p.info.run_id for p in parents] == [result.run_id]
    assert sorted(c.data.tags["stage"] for c in children) == sorted(STAGES)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags["synthetic"] == "true" for r in runs)


def test_parent_logs_config_overrides_commit_and_digest(default_run) -> None:
    cfg, result, client = default_run
    parent = client.get_run(result.run_id)
    assert parent.data.params["model.estimator.C"] == str(cfg.model.estimator.C)
    assert parent.data.params["data.generator.seed"] == "42"
    assert len(parent.data.tags["dataset_digest"]) == 64
    assert parent.data.tags["git_commit"]
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "config")}
    assert artifacts == {"config/config.yaml", "config/overrides.txt"}
    overrides = Path(
        mlflow.artifacts.download_artifacts(
            run_id=result.run_id,
            artifact_path="config/overrides.txt",
            tracking_uri=cfg.tracking.uri,
        )
    ).read_text()
    assert f"paths.root={cfg.paths.root}" in overrides


def test_artifacts_land_under_the_project_root(default_run) -> None:
    cfg, result, client = default_run
    location = client.get_experiment(result.experiment_id).artifact_location
    assert location == Path(cfg.paths.root, "mlartifacts").as_uri()


def test_default_baseline_is_good_but_not_perfect(default_run) -> None:
    _, result, client = default_run
    metrics = stage_run(client, result, "evaluate").data.metrics
    for split in ("test",):  # validation is training data under the default crossfit
        for name in ("precision", "recall", "f1", "f0_5", "pr_auc", "roc_auc"):
            value = metrics[f"{split}/author/{name}"]
            assert math.isfinite(value) and 0.0 <= value <= 1.0, (split, name)
            assert metrics[f"{split}/author/{name}_ci_low"] <= value + 1e-9
            assert value <= metrics[f"{split}/author/{name}_ci_high"] + 1e-9
    # The synthetic corpus is built to leave room for false positives and misses.
    assert 0.60 <= metrics["test/author/f0_5"] <= 0.95
    assert 0.60 <= metrics["cv/author/f0_5"] <= 0.95


EXPECTED_METRICS = (
    [
        f"test/author/{name}"
        for name in (
            "precision",
            "recall",
            "f1",
            "f0_5",
            "precision_at_0_5",
            "recall_at_0_5",
            "f0_5_at_0_5",
            "f1_at_0_5",
            "pr_auc",
            "roc_auc",
            "f0_5_ci_low",
            "f0_5_ci_high",
            "pr_auc_ci_low",
            "precision_at_recall_0_8",
            "precision_at_recall_0_9",
            "recall_at_fpr_1e-3",
            "alerts_per_10k",
            "ece",
            "brier",
            "log_loss",
            "ece_uncalibrated",
            "brier_uncalibrated",
            "log_loss_uncalibrated",
        )
    ]
    + [
        f"test/conversation/{name}"
        for name in ("pr_auc", "roc_auc", "precision", "recall", "f1", "alerts_per_10k")
    ]
    + ["test/line/precision", "test/line/recall", "test/line/f3", "cv/author/f0_5"]
)

EXPECTED_ARTIFACTS = [
    "evaluation/evaluation.json",
    "evaluation/pr_curve_author.png",
    "evaluation/roc_curve_author.png",
    "evaluation/test-reliability.png",
    "evaluation/test-score-histogram.png",
    "evaluation/test-confusion.png",
    "evaluation/test-fp-slices.png",
    "evaluation/test-problem1-predators.txt",
    "evaluation/test-problem2-lines.txt",
    "tables/test-false_positives.json",
    "tables/test-false_negatives.json",
    "tables/test-fp-slices.json",
]


def test_evaluate_run_holds_every_measure_and_artifact(default_run) -> None:
    cfg, result, client = default_run
    run = stage_run(client, result, "evaluate")
    missing = [key for key in EXPECTED_METRICS if key not in run.data.metrics]
    assert not missing
    root = Path(
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, tracking_uri=cfg.tracking.uri)
    )
    absent = [name for name in EXPECTED_ARTIFACTS if not (root / name).is_file()]
    assert not absent
    false_positives = pd.read_parquet(
        latest_dir(cfg.paths.run_dir, "evaluation") / "test-false_positives.parquet"
    )
    assert {
        "score",
        "n_conversations",
        "n_messages",
        "n_partners",
        "top_terms",
        "example_text",
    } <= set(false_positives.columns)
    assert not false_positives["label"].any()


def test_submission_scored_offline_equals_logged_metrics(default_run) -> None:
    from grooming_detect.data import pan12
    from grooming_detect.evaluation.pan_eval import score_problem1, score_problem2

    cfg, result, client = default_run
    metrics = stage_run(client, result, "evaluate").data.metrics
    corpus = next(Path(cfg.paths.raw, "synthetic").iterdir())
    files = pan12.find_files(corpus)
    evaluation = latest_dir(cfg.paths.run_dir, "evaluation")
    problem1 = score_problem1(evaluation / "test-problem1-predators.txt", files.test_problem1)
    for name, value in problem1.items():
        assert metrics[f"test/author/{name}"] == pytest.approx(value), name
    problem2 = score_problem2(evaluation / "test-problem2-lines.txt", files.test_problem2)
    for name, value in problem2.items():
        assert metrics[f"test/line/{name}"] == pytest.approx(value), name


def test_measures_are_those_of_the_written_score_table(default_run) -> None:
    """The test measures equal those recomputed from the score table the evaluate stage wrote
    (as the matrix checks for every model and data shape, tests/test_matrix.py)."""
    cfg, result, _ = default_run
    metrics = result.stages["evaluate"].metrics
    recomputed = recomputed_measures(latest_dir(cfg.paths.run_dir, "evaluation"), "test", "author")
    for name in ("pr_auc", "precision", "recall", "f0_5"):
        assert metrics[f"test/author/{name}"] == pytest.approx(recomputed[name], abs=1e-12)


def test_logged_estimator_loads_and_scores(default_run) -> None:
    """The bare estimator logged beside the whole-scorer model (test_serving.py) equals the
    local one."""
    cfg, result, client = default_run
    estimator_uri = client.get_run(result.run_id).data.tags["estimator_uri"]
    mlflow.set_tracking_uri(cfg.tracking.uri)  # other tests point MLflow elsewhere
    loaded = mlflow.pyfunc.load_model(estimator_uri)
    from grooming_detect.models.units import UNITS, features_of

    view = pd.read_parquet(dataset_dir(cfg) / "features" / "author_texts.parquet")
    examples = features_of(view.head(2), UNITS["author"])
    scores = loaded.predict(examples)
    scores = getattr(scores, "to_numpy", lambda: scores)()
    assert scores.shape == (2, 2)
    model, meta = load_model(latest_dir(cfg.paths.run_dir, "model"))
    assert (model.predict_proba(examples) == scores).all(), "MLflow copy equals the local one"
    # The default selection is cross-fitted: decisions on out-of-fold scores, model on both.
    assert meta["threshold_fitted_on"].startswith("out-of-fold scores (5 grouped folds")
    assert meta["selection"]["method"] == "crossfit"
    folds = meta["selection"]["fold_sizes"]
    assert len(folds) == 5 and all(fold["positive"] > 0 for fold in folds)
    assert meta["n_train"] == sum(fold["units"] for fold in folds)
    assert 0.0 < meta["threshold"] < 1.0


def test_report_opens_with_the_synthetic_warning(default_run) -> None:
    _, result, _ = default_run
    report = result.report_path.read_text()
    assert report.splitlines()[0].startswith("> **Synthetic data.**")
    assert "says nothing about real-world performance" in report.splitlines()[0]
    assert result.run_id in report


def test_data_is_cached_and_stages_run_alone(tiny_run) -> None:
    cfg, _ = tiny_run
    root = Path(cfg.paths.root)
    manifest = dataset_dir(cfg) / "manifest.json"
    first = manifest.stat().st_mtime_ns
    # The run's own settings: what it evaluates again is what test_no_message_text reads.
    again = pipeline.run(compose_config(root, *TINY_RUN, "stages=[data,evaluate]"))
    assert manifest.stat().st_mtime_ns == first, "unchanged inputs reuse the tables"
    assert "test/author/f0_5" in again.stages["evaluate"].metrics
    changed = compose_config(root, *TINY_RUN, "data.validation_fraction=0.3", "stages=[data]")
    pipeline.run(changed)
    # A changed config builds its own tables and leaves the others' alone.
    assert (dataset_dir(changed) / "manifest.json").is_file()
    assert dataset_dir(changed) != dataset_dir(cfg)
    assert manifest.stat().st_mtime_ns == first, "another config's tables are never rewritten"


def test_no_message_text_unless_asked(tiny_run) -> None:
    cfg, _ = tiny_run
    tables = sorted(latest_dir(cfg.paths.run_dir, "evaluation").glob("*-false_*.parquet"))
    assert tables
    for table in tables:
        assert "example_text" not in pd.read_parquet(table).columns, table.name


def test_a_stage_without_its_inputs_says_what_to_run(compose_cfg: ComposeFn) -> None:
    with pytest.raises(MissingInputError, match="run the data stage first"):
        pipeline.run(compose_cfg("scale=tiny", "stages=[features]"))


def test_a_missing_chat_log_is_refused_before_mlflow_is_set_up(
    compose_cfg: ComposeFn, tmp_path: Path
) -> None:
    cfg = compose_cfg("data=chatlog", f"data.path={tmp_path}/missing.csv")
    with pytest.raises(FileNotFoundError, match=r"missing\.csv: chat-log input not found"):
        pipeline.run(cfg)
    assert not (tmp_path / "mlflow.db").exists()


def test_a_refusal_before_any_stage_finished_leaves_no_run_but_a_bug_does(
    compose_cfg: ComposeFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Input refused by the first stage: the runs it opened are deleted, not left FAILED with
    nothing in them. A bug there still leaves its FAILED runs, the record of what broke."""
    from mlflow.entities import ViewType

    cfg = compose_cfg("scale=tiny", "stages=[features]")
    with pytest.raises(MissingInputError):
        pipeline.run(cfg)
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment_name).experiment_id
    assert client.search_runs([experiment]) == []
    deleted = client.search_runs([experiment], run_view_type=ViewType.DELETED_ONLY)
    assert sorted(r.data.tags.get("stage", "parent") for r in deleted) == ["features", "parent"]

    def broken(cfg, ctx):
        raise RuntimeError("a bug in the stage")

    monkeypatch.setitem(pipeline.STAGE_FUNCTIONS, "features", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        pipeline.run(cfg)
    statuses = {
        r.data.tags.get("stage", "parent"): r.info.status for r in client.search_runs([experiment])
    }
    assert statuses == {"parent": "FAILED", "features": "FAILED"}


def test_multi_process_launch_allows_only_the_train_stage(
    compose_cfg: ComposeFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from grooming_detect.config import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ConfigError, match=r"stages=\[train\] only"):
        pipeline.run(compose_cfg("scale=tiny"))
    cfg = compose_cfg("scale=tiny", "stages=[train]")
    root_run_dir = cfg.paths.run_dir
    from grooming_detect.pipeline import _isolate_secondary_rank

    _isolate_secondary_rank(cfg)
    assert cfg.paths.run_dir != root_run_dir and "rank1" in cfg.tracking.uri
