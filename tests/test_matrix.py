"""Every model on every kind of data: each cell runs data -> report, or is refused at start.

The rows come from the model config group (conf/model/*.yaml) and the columns from the data
shapes of `data_shapes.py`, so a new model or data shape joins the matrix without editing this
file. Whether a cell must run or be refused is the model's declared input per label level
(`model.input`, see `models.units.supports`). The transformer cells use a tiny random BERT, and
score their own chat log again with `grooming-detect-score`. The fast tier runs the refusals
and the cells no faster test covers (`FAST_CELLS`); the slow tier runs the rest.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import compose_config, recomputed_measures
from data_shapes import SHAPES, write_shape
from grooming_detect import pipeline
from grooming_detect.config import ConfigError, config_dir
from grooming_detect.models.units import supports
from grooming_detect.stage import dataset_dir, latest_dir
from grooming_detect.validation import validate_config

FIXTURE_LOG = Path(__file__).parent / "fixtures" / "chatlog" / "author_labels.csv"
MODELS = sorted(path.stem for path in (config_dir() / "model").glob("*.yaml"))
LEVEL = {
    "pan_author": "author",
    "log_author": "author",
    "log_no_times": "author",
    "log_conversation": "conversation",
    "log_one_author": "conversation",
}
#: Cells in the fast tier besides every refusal (instant): a cell that used to crash after
#: training. The fast tier runs the other cells it once held in tests that assert more of the
#: same run: the default model on the PAN layout is `conftest.default_run` (tests/test_pipeline.py
#: recomputes its measures), on conversation labels tests/data/test_chatlog.py's
#: `test_pipeline_on_conversation_labels_scores_conversations`, and behaviour_gbm on a log
#: without times (which crashed after training) `test_features_without_values_are_dropped_and_
#: recorded` below. The rest (the default model's other chat-log shapes among them) are in the
#: slow tier.
FAST_CELLS = {
    ("tfidf_svm", "log_conversation"),
}


def _input(model: str) -> object:
    setting = OmegaConf.load(config_dir() / "model" / f"{model}.yaml").get("input")
    return OmegaConf.to_container(setting) if OmegaConf.is_config(setting) else setting


def expected(model: str, shape: str) -> str:
    """``runs`` or ``refused``: what the model's declared input says for this shape."""
    return "runs" if supports(_input(model), LEVEL[shape]) else "refused"


@pytest.fixture(scope="module")
def shape_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny synthetic corpus, and a chat log of every shape built from it."""
    root = tmp_path_factory.mktemp("matrix")
    cfg = compose_config(root, "scale=tiny", "stages=[data]")
    pipeline.run(cfg)
    processed = dataset_dir(cfg)
    files = {"root": root}
    for shape in SHAPES:
        if shape != "pan_author":
            files[shape] = write_shape(shape, processed, root / "logs")
    return files


def _cells() -> list:
    cells = []
    for model in MODELS:
        for shape in SHAPES:
            fast = (model, shape) in FAST_CELLS or expected(model, shape) == "refused"
            marks = [] if fast else [pytest.mark.slow]
            cells.append(pytest.param(model, shape, marks=marks, id=f"{model}-{shape}"))
    return cells


#: Models that embed messages with a sentence encoder: their cells use a tiny random one.
ENCODER_MODELS = {"embedding_logreg", "sentinel"}


def _overrides(
    model: str,
    shape: str,
    files: dict[str, Path],
    tiny_bert: Path | None,
    encoder: Path | None = None,
) -> list:
    root = files["root"]
    overrides = [
        f"paths.root={root}",
        f"tracking.uri=sqlite:///{root}/mlflow.db",
        f"model={model}",
        "evaluate.bootstrap.n_resamples=20",
        "evaluate.top_k=5",
        "progress=false",
    ]
    if shape == "pan_author":
        overrides.append("scale=tiny")
    else:
        overrides += ["data=chatlog", f"data.path={files[shape]}", f"data.name={shape}"]
    if model == "transformer":
        overrides += [
            f"model.estimator.name_or_path={tiny_bert}",
            "model.estimator.max_steps=4",
            "model.estimator.eval_steps=2",
            "model.estimator.max_length=64",
            "model.estimator.stride=16",
            "model.estimator.batch_size=8",
        ]
    if encoder is not None:
        overrides += [f"model.encoder.path={encoder}", "model.encoder.max_seq_length=64"]
    return overrides


@pytest.mark.pipeline
@pytest.mark.parametrize(("model", "shape"), _cells())
def test_model_on_data_shape(model: str, shape: str, shape_files, request) -> None:
    tiny_bert = request.getfixturevalue("tiny_bert") if model == "transformer" else None
    encoder = request.getfixturevalue("tiny_sentence_encoder") if model in ENCODER_MODELS else None
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        overrides = _overrides(model, shape, shape_files, tiny_bert, encoder)
        cfg = compose(config_name="config", overrides=overrides)
    if expected(model, shape) == "refused":
        with pytest.raises(ConfigError, match=r"cannot train on data labelled per conversation"):
            validate_config(cfg)
        return
    result = pipeline.run(cfg)
    report = result.report_path
    assert report is not None and report.is_file()
    metrics = result.stages["evaluate"].metrics
    unit = LEVEL[shape]
    recomputed = recomputed_measures(latest_dir(cfg.paths.run_dir, "evaluation"), "test", unit)
    for name in ("pr_auc", "precision", "recall", "f0_5"):
        assert metrics[f"test/{unit}/{name}"] == pytest.approx(recomputed[name], abs=1e-12)
    if model == "transformer" and shape != "pan_author":
        _scores_the_log_with_the_command(cfg, files=shape_files, shape=shape)


def _scores_the_log_with_the_command(cfg, files: dict[str, Path], shape: str) -> None:
    """The fine-tuned model scores its own chat log through ``grooming-detect-score`` (int8
    weights for the conversation-labelled CSV): every author and conversation gets a score."""
    from grooming_detect.scoring.cli import main as score_main
    from grooming_detect.stage import latest_dir

    log = files[shape]
    out = Path(cfg.paths.root) / "scored" / shape
    argv = [str(log), "--model", str(latest_dir(cfg.paths.run_dir, "model")), "--out", str(out)]
    if shape == "log_one_author":
        argv += ["--quantize", "int8"]
    assert score_main(argv) == 0
    messages = pd.read_csv(log) if log.suffix == ".csv" else pd.read_json(log, lines=True)
    conversations = pd.read_csv(out / "conversation_scores.csv")
    assert set(conversations["conversation_id"].astype(str)) == set(
        messages["conversation_id"].astype(str)
    )
    assert conversations["score"].between(0, 1).all()
    if LEVEL[shape] == "author":  # a model of conversation labels scores no authors
        authors = pd.read_csv(out / "author_scores.csv")
        assert set(authors["author"].astype(str)) == set(messages["author"].astype(str))
        assert authors["score"].between(0, 1).all()


def test_matrix_table_is_in_the_docs() -> None:
    """The matrix on docs/models-overview.md is the one the declared inputs give (regenerate
    with `python tests/test_matrix.py`)."""
    page = (config_dir().parent / "docs" / "models-overview.md").read_text(encoding="utf-8")
    assert matrix_table() in page


def matrix_table() -> str:
    header = "| model | " + " | ".join(SHAPES) + " |"
    lines = [header, "|" + " --- |" * (len(SHAPES) + 1)]
    for model in MODELS:
        lines.append(f"| {model} | " + " | ".join(expected(model, s) for s in SHAPES) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(matrix_table())


@pytest.mark.pipeline
def test_a_refusal_names_the_models_that_would_work(shape_files) -> None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=_overrides("two_stage", "log_conversation", shape_files, None),
        )
    with pytest.raises(ConfigError) as refused:
        validate_config(cfg)
    assert "models that can: behaviour_gbm, embedding_logreg, metadata_only, sentinel, " in str(
        refused.value
    )
    assert "two_stage" not in str(refused.value).split("models that can:")[1]


def test_a_missing_extra_is_named_at_start(compose_cfg, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "transformers" else real(name, *a),
    )
    with pytest.raises(ConfigError, match=r"pip install 'grooming-detect\[transformer\]'"):
        validate_config(compose_cfg("model=transformer"))


def test_label_level_is_read_from_the_header(tmp_path: Path) -> None:
    from grooming_detect.data.chatlog import label_level_of

    csv_file = tmp_path / "a.csv"
    csv_file.write_text("conversation_id,author,text,conversation_label\nc,a,hi,0\n")
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text('\n{"conversation_id": "c", "author": "a", "text": "", "is_predator": 1}\n')
    assert label_level_of(csv_file) == "conversation"
    assert label_level_of(jsonl) == "author"
    assert label_level_of(tmp_path / "missing.csv") is None
    assert label_level_of(tmp_path / "missing.csv", predator_ids="ids.txt") is None
    assert label_level_of(FIXTURE_LOG, predator_ids="ids.txt") is None  # ids and a column


@pytest.mark.pipeline
def test_features_without_values_are_dropped_and_recorded(shape_files) -> None:
    """A log without times has no reply gaps or hours: those columns are dropped, recorded in
    the features manifest and the model's metadata, and scoring new files drops them too."""
    import json

    from grooming_detect.scoring.batch import score_file

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=_overrides("behaviour_gbm", "log_no_times", shape_files, None),
        )
    result = pipeline.run(cfg)
    # What the matrix cell (behaviour_gbm, log_no_times), in the slow tier, checks of this run.
    metrics = result.stages["evaluate"].metrics
    recomputed = recomputed_measures(latest_dir(cfg.paths.run_dir, "evaluation"), "test", "author")
    for name in ("pr_auc", "precision", "recall", "f0_5"):
        assert metrics[f"test/author/{name}"] == pytest.approx(recomputed[name], abs=1e-12)
    features = dataset_dir(cfg) / "features"
    dropped = json.loads((features / "manifest.json").read_text())["dropped_features"]
    assert {"f_mean_gap_min", "f_hour_sin", "f_hour_cos"} <= set(dropped["author_texts"])
    model_dir = latest_dir(cfg.paths.run_dir, "model")
    meta = json.loads((model_dir / "model.json").read_text())
    assert "f_mean_gap_min" in meta["features"]["dropped"]
    # The refit alone, within every fit of the stage (the cross-fitted folds besides).
    assert 0 < meta["fit_seconds"] <= meta["total_fit_seconds"]
    trained = result.stages["train"].metrics
    assert trained["train/total_fit_seconds"] == meta["total_fit_seconds"]
    authors_csv, _ = score_file(str(model_dir), shape_files["log_no_times"], features / "scored")
    assert authors_csv.is_file()
    card = (latest_dir(cfg.paths.run_dir, "report") / "MODEL_CARD.md").read_text()
    assert "| Features dropped | `f_mean_gap_min`" in card


def test_label_level_sniffing_agrees_with_the_reader(tmp_path: Path) -> None:
    from grooming_detect.data.chatlog import label_level_of

    ndjson = tmp_path / "c.ndjson"
    record = '{"conversation_id": "c", "author": "a", "text": "", "conversation_label": 1}'
    ndjson.write_text(record)
    spaced = tmp_path / "d.csv"
    spaced.write_text("conversation_id, author, text, is_predator\nc,a,hi,0\n")
    both = tmp_path / "e.csv"
    both.write_text("conversation_id,author,text,conversation_label\nc,a,hi,0\n")
    assert label_level_of(ndjson) == "conversation"
    assert label_level_of(spaced) is None  # " is_predator" is not a label column for the reader
    assert label_level_of(both, predator_ids="ids.txt") is None  # two kinds: the reader refuses
    assert label_level_of(None) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.input=5"], r"model.input: 5; expected null, a view name"),
        (["model=transformer", "model.input=null"], r"text_column=dialogue needs conversation"),
    ],
)
def test_impossible_inputs_are_refused_at_start(compose_cfg, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(compose_cfg(*overrides))


def test_small_work_shows_no_progress(caplog: pytest.LogCaptureFixture) -> None:
    """Explanations score one document per call: no progress line for that."""
    import logging

    from grooming_detect.models.vectorizers import HashingTfidfVectorizer

    caplog.set_level(logging.INFO, logger="grooming_detect.progress")
    vectorizer = HashingTfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3)).fit(["hi there"])
    vectorizer.transform(["hello"])
    assert not caplog.records
