"""Scoring new files with a trained model gives the evaluate stage's scores, in bounded batches."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import FIXTURES
from grooming_detect.data import pan12
from grooming_detect.scoring.batch import score_file
from grooming_detect.scoring.cli import main
from grooming_detect.stage import dataset_dir, latest_dir


@pytest.fixture(scope="module")
def test_xml(default_run) -> Path:
    cfg, _, _ = default_run
    corpus = next(Path(cfg.paths.raw, "synthetic").iterdir())
    return pan12.find_files(corpus).test_xml


def _evaluated(cfg) -> pd.DataFrame:
    scores = pd.read_parquet(
        latest_dir(cfg.paths.run_dir, "evaluation") / "test-author-scores.parquet"
    )
    return scores.set_index("id")["score"]


@pytest.mark.pipeline
def test_scores_equal_the_evaluate_stage(default_run, test_xml: Path, tmp_path: Path) -> None:
    cfg, _, _ = default_run
    authors_csv, conversations_csv = score_file(
        str(latest_dir(cfg.paths.run_dir, "model")), test_xml, tmp_path, batch_conversations=0
    )
    scored = pd.read_csv(authors_csv).set_index("author")
    expected = _evaluated(cfg)
    assert set(scored.index) == set(expected.index)
    pd.testing.assert_series_equal(
        scored["score"].sort_index(), expected.sort_index(), check_names=False, atol=1e-9
    )
    conversations = pd.read_csv(conversations_csv)
    assert (
        len(conversations) == cfg.data.generator.n_test_conversations
        and conversations["score"].between(0, 1).all()
    )


@pytest.mark.pipeline
def test_mlflow_model_uri_and_batches(
    default_run, test_xml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, result, client = default_run
    mlflow.set_tracking_uri(cfg.tracking.uri)
    model_uri = client.get_run(result.run_id).data.tags["model_uri"]
    assert (
        main(
            [
                str(test_xml),
                "--model",
                model_uri,
                "--out",
                str(tmp_path),
                "--batch-conversations",
                "500",
            ]
        )
        == 0
    )
    assert "author scores:" in capsys.readouterr().out
    scored = pd.read_csv(tmp_path / "author_scores.csv").set_index("author")
    expected = _evaluated(cfg)
    # Batches see part of an author's history each: scores differ (most of all among the many
    # near-zero negatives), and the predators are found almost as well (default corpus, 500
    # conversations a batch: PR-AUC 0.53 against 0.63 for whole histories).
    from sklearn.metrics import average_precision_score

    joined = scored.join(expected.rename("evaluated"))
    authors = pd.read_parquet(dataset_dir(cfg) / "authors.parquet").set_index("author")
    labels = authors["is_predator"].reindex(joined.index).fillna(False).astype(bool)
    batched = average_precision_score(labels, joined["score"])
    whole = average_precision_score(labels, joined["evaluated"])
    assert batched >= 0.8 * whole, (batched, whole)
    assert (
        joined["n_messages"].sum()
        == pd.read_parquet(dataset_dir(cfg) / "messages.parquet").query("split == 'test'").shape[0]
    )


@pytest.mark.pipeline
def test_unlabelled_chat_log(default_run, tmp_path: Path) -> None:
    cfg, _, _ = default_run
    unlabelled = tmp_path / "chat.csv"
    pd.read_csv(FIXTURES / "chatlog" / "author_labels.csv").drop(
        columns=["is_predator", "split"]
    ).to_csv(unlabelled, index=False)
    authors_csv, _ = score_file(
        str(latest_dir(cfg.paths.run_dir, "model")), unlabelled, tmp_path / "out"
    )
    assert sorted(pd.read_csv(authors_csv)["author"]) == ["u1", "u2", "u3", "u4", "u5", "u6"]


def test_missing_model_is_a_clear_error(tmp_path: Path, capsys) -> None:
    source = FIXTURES / "chatlog" / "author_labels.csv"
    code = main([str(source), "--model", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert code == 2 and "error:" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-3", "abc"])
def test_a_bad_batch_size_is_a_clear_error(tmp_path: Path, capsys, value: str) -> None:
    source = FIXTURES / "chatlog" / "author_labels.csv"
    with pytest.raises(SystemExit) as exit_info:
        main([str(source), "--model", "m", "--out", str(tmp_path), "--batch-conversations", value])
    assert exit_info.value.code == 2
    assert f"--batch-conversations: {value}: expected 0 or a positive integer" in (
        capsys.readouterr().err
    )


@pytest.mark.pipeline
def test_scoring_rebuilds_the_features_the_model_was_trained_with(compose_cfg, tmp_path) -> None:
    """A model trained with its own lexicons (other cue columns than the default's) scores new
    files with those lexicons, read from its model.json, and equals the evaluate stage."""
    from grooming_detect import pipeline

    lexicons = 'features.lexicons={secrecy:["between us","our secret"],meeting:["meet up"]}'
    # Up to the evaluate stage, whose scores the command's must equal (no report is read); one
    # fit of the model (decision=holdout), not cross-fitting's six: the features are the point.
    cfg = compose_cfg(
        "scale=tiny",
        "model=tfidf_plus_behaviour",
        lexicons,
        "decision=holdout",
        "stages=[data,features,train,evaluate]",
        "evaluate.bootstrap.n_resamples=20",
    )
    pipeline.run(cfg)
    model_dir = latest_dir(cfg.paths.run_dir, "model")
    meta = pd.read_json(model_dir / "model.json", typ="series")
    assert meta["features"]["lexicons"]["meeting"] == ["meet up"]
    corpus = next(Path(cfg.paths.raw, "synthetic").iterdir())
    authors_csv, _ = score_file(
        str(model_dir), pan12.find_files(corpus).test_xml, tmp_path / "out", batch_conversations=0
    )
    scored = pd.read_csv(authors_csv).set_index("author")["score"]
    expected = _evaluated(cfg)
    pd.testing.assert_series_equal(
        scored.sort_index(), expected.sort_index(), check_names=False, atol=1e-9
    )


def test_text_only_models_are_scored_without_behavioural_features() -> None:
    """Scoring skips the behavioural features for a model that provably reads text only (the
    scores are unchanged: `test_scores_equal_the_evaluate_stage`), and computes them for any
    model that may read them."""
    import numpy as np

    from grooming_detect.data.schema import build_tables
    from grooming_detect.features.stage import build_views
    from grooming_detect.models.baselines import (
        make_behaviour_gbm,
        make_tfidf_logreg,
        make_tfidf_plus_behaviour,
    )
    from grooming_detect.scoring.messages import SPLIT, read_messages, reads_text_only

    frame = pd.DataFrame({"text": ["how old r u", "nice park", "hi there", "see u"] * 5})
    frame["f_messages"] = np.arange(20.0)
    labels = np.arange(20) % 2 == 0
    assert reads_text_only(make_tfidf_logreg(min_df=1, max_iter=50).fit(frame, labels))
    assert not reads_text_only(make_tfidf_plus_behaviour(min_df=1, max_iter=50).fit(frame, labels))
    assert not reads_text_only(make_behaviour_gbm().fit(frame[["f_messages"]], labels))
    assert not reads_text_only(make_tfidf_logreg()), "an unfitted pipeline proves nothing"

    xml = next((FIXTURES / "pan12").rglob("*training-corpus*.xml"))
    tables = build_tables(read_messages(xml), predators={SPLIT: set()})
    full = build_views(tables.messages, tables.authors, tables.conversations, " ", {})
    lean = build_views(
        tables.messages, tables.authors, tables.conversations, " ", {}, behaviour=False
    )
    for name, view in lean.items():
        assert not [c for c in view.columns if c.startswith(("f_", "cue_"))]
        shared = list(view.columns)
        pd.testing.assert_frame_equal(view, full[name][shared])
