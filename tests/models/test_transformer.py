"""The transformer model: window rule, a tiny BERT through the pipeline, the packaged MiniLM.

No test touches the network (HF_HUB_OFFLINE is set for the whole module).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import recomputed_measures  # noqa: E402
from grooming_detect.models.transformer import (  # noqa: E402
    TransformerClassifier,
    aggregate_windows,
    dialogue_texts,
)
from grooming_detect.stage import dataset_dir, latest_dir  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_window_aggregation_rule() -> None:
    # Rows 0 and 1 have three and two windows; row 2 has none (empty text).
    scores = [0.1, 0.9, 0.5, 0.2, 0.4]
    owners = [0, 0, 0, 1, 1]
    np.testing.assert_allclose(aggregate_windows(scores, owners, 3, "max"), [0.9, 0.4, 0.0])
    np.testing.assert_allclose(aggregate_windows(scores, owners, 3, "mean"), [0.5, 0.3, 0.0])
    np.testing.assert_allclose(
        aggregate_windows(scores, owners, 3, "topk_mean", top_k=2), [0.7, 0.3, 0.0]
    )
    with pytest.raises(ValueError, match="window_aggregate"):
        aggregate_windows(scores, owners, 3, "median")


def test_dialogue_marks_own_and_partner_lines() -> None:
    text = pd.Series(["[S1] hi\n[S2] how old are you?\n[S1] 14"])
    assert dialogue_texts(text, pd.Series(["[S2]"])) == [
        "[OTHER] hi\n[ME] how old are you?\n[OTHER] 14"
    ]


@pytest.mark.pipeline
def test_long_texts_are_windowed_not_truncated(tiny_bert: Path) -> None:
    model = TransformerClassifier(
        name_or_path=str(tiny_bert), text_column="text", max_length=16, stride=4
    )
    model.tokenizer_ = transformers.AutoTokenizer.from_pretrained(tiny_bert)
    windows, owners = model._windows(["secret " * 40, "hi"])
    assert owners.count(0) > 3 and owners.count(1) == 1
    covered = sum(
        len(ids) - 2 for ids, owner in zip(windows["input_ids"], owners, strict=True) if owner == 0
    )
    assert covered >= 40, "every token of the long text is in some window"


@pytest.mark.pipeline
@pytest.mark.slow
def test_tiny_bert_trains_and_goes_through_evaluate(tiny_bert: Path, compose_cfg) -> None:
    from mlflow import MlflowClient

    from grooming_detect import pipeline

    cfg = compose_cfg(
        "scale=tiny",
        "model=transformer",
        f"model.estimator.name_or_path={tiny_bert}",
        "model.estimator.max_steps=6",
        "model.estimator.eval_steps=3",
        "model.estimator.max_length=64",
        "model.estimator.stride=16",
        "model.estimator.batch_size=8",
        "evaluate.bootstrap.n_resamples=20",
        "evaluate.top_k=5",
    )
    result = pipeline.run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    runs = {r.data.tags.get("stage"): r for r in client.search_runs([result.experiment_id])}
    metrics = runs["evaluate"].data.metrics
    expected = recomputed_measures(latest_dir(cfg.paths.run_dir, "evaluation"), "test", "author")
    for name in ("precision", "recall", "f0_5", "pr_auc", "roc_auc"):
        assert metrics[f"test/author/{name}"] == pytest.approx(expected[name], abs=1e-12)
    history = client.get_metric_history(runs["train"].info.run_id, "train/transformer/loss")
    assert len(history) >= 1, "training curves land in the train stage's own run"
    assert client.get_metric_history(runs["train"].info.run_id, "validation/transformer/pr_auc")
    assert len(client.search_runs([result.experiment_id])) == 6, "no extra run by a callback"
    model_dir = latest_dir(cfg.paths.run_dir, "model")
    assert (model_dir / "transformer" / "model.safetensors").is_file()
    assert not (model_dir / "model.skops").exists()
    from grooming_detect.models.persistence import load_model

    reloaded, meta = load_model(model_dir)
    assert isinstance(reloaded, TransformerClassifier)
    assert meta["format"] == "transformer" and meta["calibration"]["method"] == "temperature"
    # The model logged with mlflow.transformers scores new data through the scoring command.
    import mlflow

    from grooming_detect.scoring.batch import score_file

    mlflow.set_tracking_uri(cfg.tracking.uri)
    model_uri = client.get_run(result.run_id).data.tags["model_uri"]
    chat = Path(cfg.paths.root) / "chat.csv"
    pd.DataFrame(
        {
            "conversation_id": ["c1", "c1", "c2"],
            "author": ["a", "b", "c"],
            "text": ["keep this our secret", "ok", "gg"],
        }
    ).to_csv(chat, index=False)
    authors_csv, _ = score_file(model_uri, chat, Path(cfg.paths.root) / "scores")
    scored = pd.read_csv(authors_csv)
    assert sorted(scored["author"]) == ["a", "b", "c"] and scored["score"].between(0, 1).all()
    false_positives = pd.read_parquet(
        latest_dir(cfg.paths.run_dir, "evaluation") / "test-false_positives.parquet"
    )
    assert false_positives["top_conversation"].str.len().gt(0).all()


def _rows(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4 == 0
    words = np.array(["hi", "ok", "secret", "how", "old", "game", "school", "nice"])
    texts = [" ".join(rng.choice(words, size=int(rng.integers(3, 30)))) for _ in range(n)]
    return pd.DataFrame({"text": texts}), y


@pytest.mark.pipeline
def test_int8_scoring_is_close_to_float_and_refuses_other_values(tiny_bert: Path) -> None:
    X, y = _rows(24, seed=0)
    model = TransformerClassifier(
        name_or_path=str(tiny_bert),
        text_column="text",
        max_length=32,
        stride=8,
        max_steps=2,
        batch_size=8,
    ).fit(X, y)
    float_scores = model.predict_proba(X)[:, 1]
    model.set_params(quantize="int8")
    int8_scores = model.predict_proba(X)[:, 1]
    quantized = model._scoring_model("cpu")

    def int8_layers(module) -> int:
        return sum(".quantized.dynamic" in type(m).__module__ for m in module.modules())

    assert int8_layers(quantized) > 0
    assert model._scoring_model("cpu") is quantized, "built once, reused for every batch"
    assert int8_layers(model.model_) == 0, (
        "the fitted float weights stay as they are (they are what is saved)"
    )
    assert int8_scores.shape == float_scores.shape
    assert np.abs(int8_scores - float_scores).max() < 0.05
    model.set_params(quantize="fp8")
    with pytest.raises(ValueError, match=r"quantize 'fp8': expected null .* or 'int8'"):
        model.predict_proba(X)


@pytest.mark.pipeline
def test_time_budget_stops_training_and_still_selects(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = _rows(64, seed=1)
    X_val, y_val = _rows(16, seed=2)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the Trainer's folder goes here
    model = TransformerClassifier(
        name_or_path=str(tiny_bert),
        text_column="text",
        max_length=32,
        stride=8,
        max_steps=40,
        eval_steps=100,
        batch_size=4,
        max_train_seconds=1e-6,
    ).fit(X, y, validation=(X_val, y_val))
    assert model.train_steps_ == 1, "stopped at the first step past the budget"
    assert model.predict_proba(X_val).shape == (16, 2)
    # The checkpoints it selected from are gone (they used to pile up in /tmp).
    assert not list(tmp_path.glob("grooming-detect-trainer-*"))
    with pytest.raises(ValueError, match="max_train_seconds"):
        TransformerClassifier(name_or_path=str(tiny_bert), max_train_seconds=0).fit(X, y)


@pytest.mark.pipeline
def test_packaged_minilm_fine_tunes_offline(default_run, tmp_path: Path) -> None:
    """A few steps of the packaged all-MiniLM-L6-v2 on synthetic author-in-conversation rows."""
    from grooming_detect.models.units import INPUTS, features_of

    cfg, _, _ = default_run
    view = pd.read_parquet(dataset_dir(cfg) / "features" / "author_conversation_texts.parquet")

    def sample(split: str, n: int) -> tuple[pd.DataFrame, np.ndarray]:
        rows = view[view["split"] == split]
        picked = pd.concat(
            [rows[rows["is_predator"]].head(n // 4), rows[~rows["is_predator"]].head(n - n // 4)]
        )
        return features_of(picked, INPUTS["author_conversation"]), picked["is_predator"].to_numpy(
            dtype=bool
        )

    X, y = sample("train", 32)
    X_val, y_val = sample("validation", 16)
    model = TransformerClassifier(
        max_length=64, stride=16, max_steps=3, batch_size=8, eval_steps=3, seed=0
    )
    model.fit(X, y, validation=(X_val, y_val))
    scores = model.predict_proba(X_val)
    assert scores.shape == (16, 2) and np.allclose(scores.sum(axis=1), 1.0)
    restored = TransformerClassifier.load(model.save(tmp_path / "saved"))
    np.testing.assert_allclose(restored.predict_proba(X_val), scores, atol=1e-5)


@pytest.mark.pipeline
def test_training_windows_come_from_a_cached_datasets_map(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fit's windows are a datasets.Dataset made by map: the same windows as direct
    tokenisation, each labelled with its row's label; a second call on the same rows reads the
    Arrow file from cache_dir without tokenising; another text makes another file."""
    import datasets

    model = TransformerClassifier(
        name_or_path=str(tiny_bert),
        text_column="text",
        max_length=16,
        stride=4,
        cache_dir=str(tmp_path / "windows"),
    )
    model.tokenizer_ = transformers.AutoTokenizer.from_pretrained(tiny_bert)
    X = pd.DataFrame({"text": ["secret " * 40, "hi", "how old are you"]})
    y = np.array([True, False, True])
    table, owners = model._window_dataset(X, y)
    windows, expected_owners = model._windows(X["text"].tolist())
    assert isinstance(table, datasets.Dataset) and owners == expected_owners
    assert table["input_ids"] == windows["input_ids"]
    assert table["labels"] == y[owners].astype(int).tolist()
    files = sorted((tmp_path / "windows").glob("windows-*.arrow"))
    assert len(files) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("tokenised again instead of reading the cached windows")

    monkeypatch.setattr(model, "_windows", refuse)
    again, again_owners = model._window_dataset(X, y)
    assert again["input_ids"] == table["input_ids"] and again_owners == owners
    monkeypatch.undo()
    model._window_dataset(X.assign(text=["hi", "hi", "meet me"]), y)
    assert len(sorted((tmp_path / "windows").glob("windows-*.arrow"))) == 2
