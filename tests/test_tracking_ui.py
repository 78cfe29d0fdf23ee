"""What MLflow's UI shows of a pipeline run: the experiment opens on its runs table, and the
parent run carries the headline measures and a description, so runs compare from the list."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import ComposeFn
from grooming_detect import pipeline, tracking
from grooming_detect.stage import StageResult

HEADLINE = [
    f"{split}/author/{measure}"
    for split in ("test", "cv")
    for measure in ("f0_5", "precision", "recall", "pr_auc", "n_positive")
] + ["test/author/ece"]


def _runs(default_run):
    _, result, client = default_run
    runs = client.search_runs([result.experiment_id])
    parent = next(r for r in runs if r.info.run_id == result.run_id)
    stages = {
        r.data.tags["stage"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == result.run_id
    }
    return parent, stages


@pytest.mark.pipeline
def test_the_experiment_opens_on_the_runs_table(default_run) -> None:
    _, result, client = default_run
    tags = client.get_experiment(result.experiment_id).tags
    assert tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


@pytest.mark.pipeline
def test_the_parent_run_carries_the_evaluate_runs_headline_measures(default_run) -> None:
    parent, stages = _runs(default_run)
    evaluated, trained = stages["evaluate"].data.metrics, stages["train"].data.metrics
    headline = parent.data.metrics
    assert not [key for key in HEADLINE if key not in headline]
    # The same names and values as the stage runs that measured them.
    assert headline.pop(pipeline.THRESHOLD_METRIC) == trained[pipeline.THRESHOLD_METRIC]
    assert headline == {key: evaluated[key] for key in headline}
    assert parent.data.params["model.name"] == parent.data.tags["model"] == "tfidf_logreg"
    assert parent.data.params["data.name"] == parent.data.tags["dataset"] == "synthetic"
    assert parent.data.tags["unit"] == "author"


@pytest.mark.pipeline
def test_the_parent_runs_description_is_the_results_table(default_run) -> None:
    parent, stages = _runs(default_run)
    description = parent.data.tags[tracking.DESCRIPTION_TAG]
    first, *rest = description.splitlines()
    f05 = stages["evaluate"].data.metrics["test/author/f0_5"]
    assert math.isfinite(f05)
    # The line the runs table shows: model, data and the test F0.5.
    assert first.startswith(f"tfidf_logreg on synthetic (synthetic), authors: test F0.5 {f05:.3f}")
    assert first.endswith("stages data, features, train, evaluate, report completed.")
    # Then the closing results table.
    assert "| split | unit |" in description
    test_row = next(line for line in rest if line.startswith("| test | authors |"))
    assert f"{f05:.3f}" in test_row


@pytest.mark.pipeline
def test_the_experiment_has_a_runs_table_view_of_the_headline_measures(default_run) -> None:
    _, result, client = default_run
    view = pipeline.headline_view_id("author")
    tags = client.get_experiment(result.experiment_id).tags
    envelope = json.loads(tags[tracking.SAVED_VIEW_TAG_PREFIX + view])
    assert envelope["name"] == "Headline measures (authors)"
    columns = json.loads(envelope["state"])["selectedColumns"]
    assert columns[0] == "attributes.`Description`"
    assert {f"metrics.`{key}`" for key in HEADLINE} <= set(columns)
    assert "params.`model.name`" in columns
    assert result.runs_view_url == (
        f"http://127.0.0.1:5000/#/experiments/{result.experiment_id}/runs"
        f"?viewStateShareKey={view}&workflowType=machine_learning"
    )


def test_a_saved_view_is_added_once_and_then_left_alone(compose_cfg: ComposeFn) -> None:
    cfg = compose_cfg()
    experiment_id = tracking.setup(cfg.tracking)
    tracking.save_runs_view(experiment_id, "v", "Mine", ["test/author/f0_5"], [])
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    first = client.get_experiment(experiment_id).tags[tracking.SAVED_VIEW_TAG_PREFIX + "v"]
    tracking.save_runs_view(experiment_id, "v", "Other", ["test/author/recall"], [])
    assert client.get_experiment(experiment_id).tags[tracking.SAVED_VIEW_TAG_PREFIX + "v"] == first
    assert json.loads(json.loads(first)["state"]) == {
        "selectedColumns": ["attributes.`Description`", "metrics.`test/author/f0_5`"]
    }


def test_the_runs_view_address_follows_the_backend() -> None:
    tail = "/#/experiments/3/runs?viewStateShareKey=v&workflowType=machine_learning"
    assert tracking.runs_view_url("sqlite:////x/mlflow.db", "3", "v") == (
        "http://127.0.0.1:5000" + tail
    )
    assert tracking.runs_view_url("http://host:8080/", "3", "v") == "http://host:8080" + tail
    assert tracking.runs_view_url("databricks", "3", "v") is None


def test_a_run_without_evaluation_says_which_stages_ran(compose_cfg: ComposeFn) -> None:
    cfg = compose_cfg("scale=tiny", "stages=[data,features]")
    result = pipeline.PipelineResult("run", "1", "sqlite://", {"data": StageResult("data")})
    assert pipeline.run_description(cfg, result) == (
        "tfidf_logreg on synthetic-tiny (synthetic): stages data completed (features not "
        "completed); no evaluation in this run."
    )
    assert pipeline.headline_metrics(result) == {}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, "custom_model_development"),  # made before the tag existed, or by someone else
        ({tracking.EXPERIMENT_KIND_TAG: "genai_development"}, "genai_development"),  # chosen
    ],
)
def test_an_existing_experiment_is_tagged_unless_its_kind_was_chosen(
    compose_cfg: ComposeFn, tmp_path: Path, before: dict[str, str], after: str
) -> None:
    cfg = compose_cfg()
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    made = client.create_experiment(str(cfg.tracking.experiment_name), tags=before)
    assert tracking.setup(cfg.tracking) == made
    assert client.get_experiment(made).tags[tracking.EXPERIMENT_KIND_TAG] == after
