"""experiment=seeds: the spread of every measure over corpus seeds and procedure seeds, its
MLflow run, its files and the card."""

from __future__ import annotations

import json
import logging
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from conftest import ComposeFn
from grooming_detect.config import config_dir
from grooming_detect.io import read_json
from grooming_detect.reporting.model_card import seeds_headline, seeds_section
from grooming_detect.sweeps import (
    BY_CORPUS,
    SeedsSummary,
    job_record,
    summarize,
    summary_markdown,
    variance_components,
    write_summary,
)


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
    # Without corpus seeds every sd is the procedure's: no data component is claimed.
    assert "| `test/author/f0_5` | 0.700 ± 0.100 | n/a | 0.100 | 0.600–0.800 |" in table
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
    sd = f"{math.sqrt(0.02):.3f}"
    assert f"| F0.5 | 0.700 ± {sd} | n/a | {sd} | 0.600–0.800 | 0.800 [0.700, 0.900] |" in section
    assert "No data component is measured here" in section
    assert seeds_section(None, metrics, "author") == ""


def _grid_record(corpus_seed: int | None, seed: int, f05: float, pr_auc: float) -> dict:
    """A job record of a corpus seed × procedure seed grid (None: data without corpus seeds)."""
    source = "synthetic" if corpus_seed is not None else "pan12"
    return {
        "seed": seed,
        "corpus_seed": corpus_seed,
        "run_id": f"run-{corpus_seed}-{seed}",
        "config": {"data": {"source": source}, "decision": {"name": "crossfit"}},
        "metrics": {"test/author/f0_5": f05, "test/author/pr_auc": pr_auc},
    }


#: 2 corpus seeds × 2 procedure seeds: corpus means 0.7 and 0.8 (F0.5), each corpus seed's two
#: runs 0.2 apart; PR-AUC moves with the corpus only.
GRID = [
    _grid_record(1, 0, 0.6, 0.8),
    _grid_record(1, 1, 0.8, 0.8),
    _grid_record(2, 0, 0.7, 0.9),
    _grid_record(2, 1, 0.9, 0.9),
]


def test_variance_components_split_corpus_and_procedure_spread() -> None:
    balanced = variance_components({1: [0.6, 0.8], 2: [0.7, 0.9]})
    assert balanced["sd_corpus"] == pytest.approx(math.sqrt(0.005))  # sd of 0.7, 0.8
    assert balanced["sd_procedure"] == pytest.approx(math.sqrt(0.02))  # sd of 0.6, 0.8 (both)
    # Pooled within corpus seeds, weighted by their degrees of freedom: a corpus seed that lost
    # a run counts for its mean only; sds of 0.1 (3 runs) and 0.4 (2 runs): (2·0.01+0.16)/3.
    unbalanced = variance_components({1: [0.5, 0.6, 0.7], 2: [0.8, 0.8 + 0.4 * math.sqrt(2)]})
    assert unbalanced["sd_procedure"] == pytest.approx(math.sqrt(0.18 / 3))
    assert unbalanced["sd_corpus"] == pytest.approx(abs(0.6 - (0.8 + 0.2 * math.sqrt(2))) / 2**0.5)
    single = variance_components({1: [0.6], 2: [0.7]})
    assert single["sd_corpus"] == pytest.approx(0.1 / 2**0.5)
    assert math.isnan(single["sd_procedure"])
    assert math.isnan(variance_components({1: [0.6, 0.8]})["sd_corpus"])


def test_summary_of_a_grid_reports_each_source_of_variance() -> None:
    summary = summarize(list(reversed(GRID)))
    assert summary["data_variance"] is True
    assert summary["corpus_seed_values"] == [1, 2] and summary["procedure_seeds"] == [0, 1]
    f05 = summary["measures"]["test/author/f0_5"]
    assert f05["mean"] == pytest.approx(0.75)
    assert f05["sd"] == pytest.approx(math.sqrt(0.05 / 3))  # over all four runs
    assert f05["sd_corpus"] == pytest.approx(math.sqrt(0.005))
    assert f05["sd_procedure"] == pytest.approx(math.sqrt(0.02))
    assert f05["by_corpus_seed"] == pytest.approx({"1": 0.7, "2": 0.8})
    pr_auc = summary["measures"]["test/author/pr_auc"]
    assert pr_auc["sd_procedure"] == 0.0 and pr_auc["sd_corpus"] == pytest.approx(0.1 / 2**0.5)
    table = summary_markdown(summary, "author")
    assert "# Spread over 4 runs: 2 corpus seeds × 2 procedure seeds" in table
    assert "| `test/author/f0_5` | 0.750 ± 0.129 | 0.071 | 0.141 | 0.600–0.900 |" in table
    assert "| corpus seed | runs | `test/author/f0_5` | `test/author/pr_auc` |" in table
    assert "| 1 | 2 | 0.700 | 0.800 |" in table and "| 2 | 2 | 0.800 | 0.900 |" in table
    assert "each corpus seed generates another corpus" in table


def test_data_without_corpus_seeds_claims_no_data_component() -> None:
    """On PAN-2012 a swept corpus_seed shapes nothing: its repeats count once, every sd is the
    procedure's, and neither the summary nor the card names a corpus component."""
    records = [_grid_record(None, 0, 0.6, 0.8), _grid_record(None, 1, 0.8, 0.9)]
    repeat = {**_grid_record(None, 0, 0.6, 0.8), "run_id": "repeat"}
    summary = summarize([*records, repeat])
    assert summary["data_variance"] is False and summary["corpus_seed_values"] == []
    assert summary["n_runs"] == 2 and summary["repeats_not_counted"] == ["repeat"]
    f05 = summary["measures"]["test/author/f0_5"]
    assert f05["sd_corpus"] is None and "by_corpus_seed" not in f05
    assert f05["sd_procedure"] == f05["sd"] == pytest.approx(math.sqrt(0.02))
    table = summary_markdown(summary, "author")
    assert "# Spread over 2 procedure seeds" in table and "no data component" in table
    assert "corpus seed |" not in table and "`repeat`" in table
    assert "corpus seed" not in summary["varies"]
    metrics = {"test/author/f0_5": 0.8, "test/author/pr_auc": 0.9}
    headline = seeds_headline(
        {**summary, "run": {"seed": 1, "corpus_seed": None}}, metrics, "author"
    )
    assert "- test F0.5 0.800 with seed 1; across 2 procedure seeds 0.700 ± 0.141" in headline
    assert "no data component measured" in headline and "on corpus seed" not in headline


def test_summary_files_round_trip(tmp_path: Path) -> None:
    summary, paths = write_summary(tmp_path, list(GRID))
    assert [p.name for p in paths] == ["seeds-summary.json", "seeds-summary.md", BY_CORPUS]
    assert read_json(tmp_path / "seeds-summary.json") == json.loads(json.dumps(summary))
    table = pd.read_csv(tmp_path / BY_CORPUS)
    assert list(table.columns) == [
        "corpus_seed",
        "n_runs",
        "test/author/f0_5",
        "test/author/pr_auc",
    ]
    assert table["corpus_seed"].tolist() == [1, 2] and table["n_runs"].tolist() == [2, 2]
    assert table["test/author/f0_5"].tolist() == pytest.approx([0.7, 0.8])
    assert table["test/author/pr_auc"].tolist() == pytest.approx([0.8, 0.9])
    # Data without corpus seeds has no per-corpus table.
    other = tmp_path / "pan12"
    _, paths = write_summary(other, [_grid_record(None, 0, 0.6, 0.8)])
    assert not (other / BY_CORPUS).exists() and len(paths) == 2


def test_card_headline_names_its_corpus_seed_and_the_spread_across_corpus_seeds() -> None:
    summary = {**summarize(GRID), "summary_run_id": "abc", "run": {"seed": 1, "corpus_seed": 2}}
    metrics = {"test/author/f0_5": 0.9, "test/author/pr_auc": 0.9}
    headline = seeds_headline(summary, metrics, "author")
    assert headline.startswith(
        "> **One run of a sweep.** This card shows corpus seed 2, procedure seed 1, one of 4 runs "
        "(seeds 0, 1 on corpus seeds 1, 2; MLflow run `abc`"
    )
    assert (
        "> - test F0.5 0.900 on corpus seed 2; across 2 corpus seeds 0.750 ± 0.071 (procedure "
        "seeds add ± 0.141)\n" in headline
    )
    assert "> - test PR-AUC 0.900 on corpus seed 2; across 2 corpus seeds 0.850 ± 0.071" in headline
    section = seeds_section(summary, metrics, "author")
    assert "Across 4 runs with seeds 0, 1 on corpus seeds 1, 2" in section
    assert "| F0.5 | 0.750 ± 0.129 | 0.071 | 0.141 | 0.600–0.900 | 0.900 |" in section
    assert seeds_headline(None, metrics, "author") == ""


def test_job_record_names_a_corpus_seed_only_for_the_embedded_corpus(
    compose_cfg: ComposeFn, pan12_copy: Path
) -> None:
    synthetic = job_record(compose_cfg("corpus_seed=7", "seed=3"), "run", {})
    assert (synthetic["corpus_seed"], synthetic["seed"]) == (7, 3)
    pan12 = job_record(compose_cfg("data=pan12", f"data.root={pan12_copy}"), "run", {})
    assert pan12["corpus_seed"] is None


def test_default_grid_sweeps_corpus_seeds_and_procedure_seeds() -> None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=seeds"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert len(str(params.corpus_seed).split(",")) == 5 and "42" in str(params.corpus_seed)
    assert len(str(params.seed).split(",")) == 2


def test_a_swept_corpus_seed_on_real_data_is_flagged_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def config(data: str, *overrides: str) -> DictConfig:
        return OmegaConf.create(
            {
                "data": {"synthetic": data == "synthetic", "source": data},
                "hydra": {
                    "launcher": {"_target_": "hydra._internal.core_plugins.BasicLauncher"},
                    "sweeper": {"params": {"corpus_seed": "42,1,2", "seed": "0,1"}},
                    "overrides": {"task": list(overrides)},
                },
            }
        )

    callback = SeedsSummary()
    with caplog.at_level(logging.WARNING, logger="grooming_detect.sweeps"):
        callback.on_multirun_start(config("pan12", "data=pan12"))
        assert "add corpus_seed=0" in caplog.text
        caplog.clear()
        callback.on_multirun_start(config("pan12", "data=pan12", "corpus_seed=0"))
        callback.on_multirun_start(config("synthetic"))
    assert caplog.text == ""


@pytest.mark.pipeline
@pytest.mark.slow
def test_seeds_experiment_summarises_a_two_by_two_grid(tmp_path: Path) -> None:
    """2 corpus seeds × 2 procedure seeds (a small grid given explicitly, not the default's)."""
    command = [
        sys.executable,
        "-m",
        "grooming_detect.cli",
        "experiment=seeds",
        "scale=tiny",
        "corpus_seed=1,2",
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
    assert summary["n_runs"] == 4 and summary["data_variance"] is True
    assert summary["corpus_seeds"] == [1, 1, 2, 2] and summary["seeds"] == [3, 4, 3, 4]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("grooming-detect-seeds")
    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    evaluated = {
        r.data.tags["mlflow.parentRunId"]: r for r in runs.values() if r.info.run_name == "evaluate"
    }
    [summary_run] = [r for r in runs.values() if r.info.run_name == "seeds-summary"]
    # The logged values of each job's evaluate run, not the jobs' own records, by corpus seed.
    values = [evaluated[run_id].data.metrics["test/author/f0_5"] for run_id in summary["run_ids"]]
    by_corpus = {1: values[:2], 2: values[2:]}
    means = {seed: sum(v) / 2 for seed, v in by_corpus.items()}
    # The summary run's mean and sds are those of the four jobs' logged values.
    logged = summary_run.data.metrics
    assert logged["seeds/test/author/f0_5/mean"] == pytest.approx(sum(values) / 4)
    assert logged["seeds/test/author/f0_5/sd_corpus"] == pytest.approx(
        abs(means[1] - means[2]) / 2**0.5
    )
    within = [(v[0] - v[1]) ** 2 / 2 for v in by_corpus.values()]  # each corpus seed's variance
    assert logged["seeds/test/author/f0_5/sd_procedure"] == pytest.approx((sum(within) / 2) ** 0.5)
    assert "seeds/test/author/f0_5/sd" in logged
    # The per-corpus-seed table beside the Markdown, read back.
    table = pd.read_csv(summary_path.parent / BY_CORPUS)
    assert table["corpus_seed"].tolist() == [1, 2] and table["n_runs"].tolist() == [2, 2]
    assert table["test/author/f0_5"].tolist() == pytest.approx([means[1], means[2]])
    logged_files = {Path(a.path).name for a in client.list_artifacts(summary_run.info.run_id)}
    assert {"seeds-summary.json", "seeds-summary.md", BY_CORPUS} <= logged_files
    # Each job's card names its corpus seed and quotes the spread.
    cards = list(tmp_path.rglob("runs/*/report/MODEL_CARD.md"))
    assert len(cards) == 4
    pairs = zip(summary["corpus_seeds"], summary["seeds"], strict=True)
    seeds_of = dict(zip(summary["run_ids"], pairs, strict=True))
    for card in cards:
        corpus_seed, seed = seeds_of[card.parent.parent.name]
        text = card.read_text()
        assert f"This card shows corpus seed {corpus_seed}, procedure seed {seed}," in text
        assert f"on corpus seed {corpus_seed}; across 2 corpus seeds" in text
        assert "Across 4 runs with seeds 3, 4 on corpus seeds 1, 2" in text
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
    markdown = (summary_path.parent / "seeds-summary.md").read_text()
    assert "| `test/author/f0_5` |" in markdown and "| corpus seed | runs |" in markdown
