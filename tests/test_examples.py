"""examples/: the committed files are what scripts/make_examples.py writes, and the README's
chat-log command runs on them with the defaults, recording the designs the data forced."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from grooming_detect.errors import CrossfitError, SplitError
from grooming_detect.io import read_json

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
#: The README's command: `make run ARGS="data=chatlog data.path=examples/chatlog.csv"`.
README_OVERRIDES = ["data=chatlog", f"data.path={EXAMPLES / 'chatlog.csv'}"]


def _make_examples():
    spec = importlib.util.spec_from_file_location(
        "make_examples", REPO / "scripts/make_examples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_examples_are_what_the_script_writes(tmp_path: Path) -> None:
    written = _make_examples().write_examples(tmp_path)
    assert [path.name for path in written] == ["chatlog.csv", "chatlog.jsonl", "benign.csv"]
    for path in written:
        assert path.read_bytes() == (EXAMPLES / path.name).read_bytes(), (
            f"examples/{path.name} differs from what scripts/make_examples.py writes: rerun it"
        )


def test_the_example_chat_log_has_the_documented_shape() -> None:
    from grooming_detect.data.chatlog import read_chatlog

    log = pd.read_csv(EXAMPLES / "chatlog.csv", dtype=str)
    assert log["conversation_id"].nunique() == 300 and len(log) == 1_473
    assert log.loc[log["is_predator"] == "1", "author"].nunique() == 5
    assert "split" not in log.columns
    csv_messages, csv_labels, _ = read_chatlog(EXAMPLES / "chatlog.csv", None)
    jsonl_messages, jsonl_labels, _ = read_chatlog(EXAMPLES / "chatlog.jsonl", None)
    pd.testing.assert_frame_equal(csv_messages, jsonl_messages)
    assert csv_labels == jsonl_labels and len(csv_labels) == 5
    benign = pd.read_csv(EXAMPLES / "benign.csv", dtype=str)
    assert (benign["is_predator"] == "0").all()


def test_an_explicit_null_split_override_keeps_the_error_naming_the_author_split(
    compose_cfg,
) -> None:
    from grooming_detect.data.stage import load_tables

    cfg = compose_cfg(*README_OVERRIDES, "data.split_override=null")
    with pytest.raises(SplitError, match=r"test split: .*Set data\.split_override=author"):
        load_tables(cfg)


def test_naming_crossfit_on_the_command_line_turns_its_fallback_off(compose_cfg) -> None:
    from grooming_detect.pipeline import insist_on_named_decision

    for named in (["decision=crossfit"], ["decision.folds=3"]):
        cfg = compose_cfg(*README_OVERRIDES, *named)
        insist_on_named_decision(cfg, [*README_OVERRIDES, *named])
        assert cfg.decision.fallback is None
    cfg = compose_cfg(*README_OVERRIDES)
    insist_on_named_decision(cfg, README_OVERRIDES)
    assert cfg.decision.fallback == "holdout"  # the default procedure may fall back
    both = ["decision=crossfit", "decision.fallback=holdout"]
    cfg = compose_cfg(*README_OVERRIDES, *both)
    insist_on_named_decision(cfg, both)
    assert cfg.decision.fallback == "holdout"


@pytest.mark.pipeline
@pytest.mark.slow
def test_the_readme_chat_log_command_runs_and_records_its_fallbacks(compose_cfg) -> None:
    from grooming_detect import pipeline
    from grooming_detect.reporting.summary import results_table

    cfg = compose_cfg(*README_OVERRIDES)
    result = pipeline.run(cfg, README_OVERRIDES)
    assert list(result.stages) == ["data", "features", "train", "evaluate", "report"]

    manifest = read_json(result.stages["data"].outputs["manifest"])
    assert manifest["fallbacks"]["data.split_override"].startswith("auto -> author: test split")
    meta = read_json(result.stages["train"].outputs["model_dir"] / "model.json")
    assert meta["fallbacks"]["decision"].startswith("crossfit -> holdout: decision.folds=5")
    assert meta["selection"]["method"] == "holdout"

    tags = MlflowClient(tracking_uri=cfg.tracking.uri).get_run(result.run_id).data.tags
    assert tags["fallback/data.split_override"] == manifest["fallbacks"]["data.split_override"]
    assert tags["fallback/decision"] == meta["fallbacks"]["decision"]

    card = result.stages["report"].outputs["model_card"].read_text(encoding="utf-8")
    design = next(line for line in card.splitlines() if "Design chosen for this data" in line)
    assert "`data.split_override` auto -> author" in design
    assert "`decision` crossfit -> holdout" in design

    metrics = result.stages["evaluate"].metrics
    assert metrics["test/author/n_positive"] == 1 and metrics["validation/author/n_positive"] == 1
    table = results_table(metrics).splitlines()
    assert "FEW POSITIVES" in table[0] and "test 1 positive author" in table[0]
    header = table[1].split()
    test_authors = next(
        row.split() for row in table if row.startswith("test ") and "authors" in row
    )
    assert test_authors[header.index("positives")] == "1"


@pytest.mark.pipeline
def test_insisting_on_components_stops_the_command_with_exit_status_2(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GROOMING_DETECT_ROOT": str(tmp_path),
        "PYTHONPATH": str(REPO / "src"),
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "grooming_detect.cli",
            *README_OVERRIDES,
            "data.split_override=null",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert "Set data.split_override=author" in completed.stderr, completed.stderr[-2000:]
    # The refusal leaves no FAILED run behind: the runs it opened are deleted.
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert client.search_runs(experiments) == []
    deleted = client.search_runs(experiments, run_view_type=ViewType.DELETED_ONLY)
    assert sorted(r.data.tags.get("stage", "parent") for r in deleted) == ["data", "parent"]


@pytest.mark.pipeline
def test_insisting_on_crossfit_stops_before_any_model_is_fitted(compose_cfg) -> None:
    from grooming_detect import pipeline

    overrides = [*README_OVERRIDES, "decision=crossfit", "stages=[data,features,train]"]
    cfg = compose_cfg(*overrides)
    with pytest.raises(CrossfitError, match="Set decision=holdout"):
        pipeline.run(cfg, overrides)
    assert not list(Path(cfg.paths.root).rglob("model.json"))
