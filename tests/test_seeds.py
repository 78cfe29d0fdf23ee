"""experiment=seeds: the spread of every measure over seeds, its MLflow run and the card."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from grooming_detect.reporting.model_card import seeds_section
from grooming_detect.sweeps import summarize, summary_markdown


def _record(seed: int, f05: float, pr_auc: float) -> dict:
    return {
        "seed": seed,
        "run_id": f"run{seed}",
        "config": {},
        "metrics": {"test/author/f0_5": f05, "test/author/pr_auc": pr_auc, "only/one": 1.0},
    }


def test_summary_is_mean_and_sample_sd_of_measures_every_run_has() -> None:
    records = [_record(0, 0.6, 0.8), _record(1, 0.8, 0.9), _record(2, 0.7, float("nan"))]
    del records[1]["metrics"]["only/one"]
    summary = summarize(records)
    f05 = summary["measures"]["test/author/f0_5"]
    assert f05["mean"] == pytest.approx(0.7)
    assert f05["sd"] == pytest.approx(0.1)  # sample sd of 0.6, 0.8, 0.7
    assert (f05["min"], f05["max"]) == (0.6, 0.8)
    # A measure missing from one run, or not finite in one, is not averaged.
    assert "only/one" not in summary["measures"]
    assert "test/author/pr_auc" not in summary["measures"]
    table = summary_markdown(summary, "author")
    assert "| `test/author/f0_5` | 0.700 ± 0.100 | 0.600–0.800 | 0.600 | 0.800 | 0.700 |" in table
    with pytest.raises(ValueError, match="no completed job"):
        summarize([])


def test_card_section_sets_the_spread_beside_the_bootstrap_interval() -> None:
    summary = summarize([_record(0, 0.6, 0.8), _record(1, 0.8, 0.9)])
    metrics = {
        "test/author/f0_5": 0.8,
        "test/author/f0_5_ci_low": 0.7,
        "test/author/f0_5_ci_high": 0.9,
    }
    section = seeds_section(summary, metrics, "author")
    assert "Across 2 runs with seeds 0, 1" in section
    assert f"| F0.5 | 0.700 ± {math.sqrt(0.02):.3f} | 0.600–0.800 | 0.800 [0.700, 0.900] |" in (
        section
    )
    assert seeds_section(None, metrics, "author") == ""


@pytest.mark.pipeline
@pytest.mark.slow
def test_seeds_experiment_summarises_two_seeds(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "grooming_detect.cli",
        "experiment=seeds",
        "scale=tiny",
        "seed=3,4",
        f"paths.root={tmp_path}",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        "evaluate.bootstrap.n_resamples=50",
        "progress=false",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    [summary_path] = list(tmp_path.glob("logs/multiruns/*/seeds-summary.json"))
    summary = json.loads(summary_path.read_text())
    assert summary["seeds"] == [3, 4] and summary["n_runs"] == 2
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("grooming-detect-seeds")
    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    evaluated = {
        r.data.tags["mlflow.parentRunId"]: r for r in runs.values() if r.info.run_name == "evaluate"
    }
    [summary_run] = [r for r in runs.values() if r.info.run_name == "seeds-summary"]
    # The logged values of each job's evaluate run, not the jobs' own records.
    values = [evaluated[run_id].data.metrics["test/author/f0_5"] for run_id in summary["run_ids"]]
    # The summary run's mean and sd are those of the two jobs' logged values.
    logged = summary_run.data.metrics
    assert logged["seeds/test/author/f0_5/mean"] == pytest.approx(sum(values) / 2)
    assert logged["seeds/test/author/f0_5/sd"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5)
    # Each job's card quotes the spread.
    cards = list(tmp_path.rglob("runs/*/report/MODEL_CARD.md"))
    assert len(cards) == 2
    assert all("Across 2 runs with seeds 3, 4" in card.read_text() for card in cards)
    # Each card keeps its own run's data counts (the seeds carve validation differently; the
    # shared dataset folder holds the last job's manifest).
    data_runs = {
        r.data.tags["mlflow.parentRunId"]: r for r in runs.values() if r.info.run_name == "data"
    }
    for card in cards:
        run_id = card.parent.parent.name
        conversations = int(data_runs[run_id].data.metrics["validation/conversations"])
        assert re.search(rf"^\| validation \| {conversations} \|", card.read_text(), re.M)
    assert all(summary_run.info.run_id in card.read_text() for card in cards)
    logged_cards = client.list_artifacts(summary_run.info.run_id, "cards")
    assert sorted(Path(a.path).name for a in logged_cards) == sorted(summary["run_ids"])
    assert "| `test/author/f0_5` |" in (summary_path.parent / "seeds-summary.md").read_text()
