"""The ONNX export of ``embedding_logreg`` (design: message_scores) on a tiny random sentence
encoder: the tokenizer graph's ids equal the Hugging Face tokenizer's on hostile texts; the
model graph's unit scores equal the package's calibrated scores (profile and top-k pooling,
float and int8) and its message scores the package's message logits; a unit's score does not
depend on the other units of the call; sentinel and pooled vectors are refused in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime", reason="the ONNX export tests need the 'onnx' extra")
pytest.importorskip("onnx", reason="the ONNX export tests need the 'onnx' extra")
pytest.importorskip(
    "onnxruntime_extensions", reason="the embedding export's tokenizer needs the 'onnx' extra"
)
pytest.importorskip("sentence_transformers", reason="the embedding models need the extra")

from grooming_detect.errors import ExportUnsupportedError
from grooming_detect.models.decision import ScoreCalibrator
from grooming_detect.models.embeddings import make_embedding_logreg, split_units
from grooming_detect.models.persistence import save_model
from grooming_detect.models.sentinel import make_sentinel
from grooming_detect.scoring.onnx_embedding import (
    EMBEDDING_FLOAT_TOLERANCE,
    EMBEDDING_INT8_TOLERANCE,
    EMBEDDING_PROBES,
    build_embedding_files,
    embedding_exportable,
    export_embedding,
    graph_token_ids,
    hf_token_ids,
    memory_only,
    onnx_unit_scores,
    tokenizer_path_of,
    tokenizer_session,
)
from grooming_detect.scoring.onnx_export import exportable, python_scores, session

# The tiny random sentence encoder is built by a fixture that counts as a network (conftest).
pytestmark = pytest.mark.pipeline

SEPARATOR = "\n"
MAX_SEQ_LENGTH = 64

#: Harmless messages of two kinds of talk (the "risky" markers are non-explicit).
RISKY = [
    "how old are you",
    "don't tell your parents",
    "add me on snap",
    "keep this our secret",
    "delete this chat",
    "meet me saturday",
]
ORDINARY = [
    "did you see the game last night",
    "the maths homework is due friday",
    "pizza tonight?",
    "see you at practice",
    "lol ok",
    "how was school today",
    "my cat knocked over a plant",
]

#: Texts a tokenizer trips on.
HOSTILE_MESSAGES = [
    " ",
    "\t",
    "🙂🙂🙂",
    "see you 👋🏽 at practice 🏀",
    "Привет, как дела?",
    "こんにちは 今日は いい天気 ですね",
    "日本語のテキスト です",
    "مرحبا كيف حالك",
    "שלום מה שלומך",
    "नमस्ते आप कैसे हैं",
    "ça va? très bien, merci — à demain",
    "Crème brûlée, naïve café, Ångström",
    "e\u0301 combining accent",
    "KeEp ThIs OuR SeCrEt",
    "!!! ??? ... ,,, ;;; :::",
    "?!... ,;: --- ***",
    "$5 @ the shop #weekend ^_^ ~ok~ `code` |x|",
    "a",
    "tab\tand\u00a0no-break\u2003em space\u3000ideographic",
    "under_score snake_case CamelCase 2024 x2",
    "don't won't it's",
    "hi😀 there",
    "x¯y and café¯",
    "nul\x00inside",
    "ΟΔΟΣ İSTANBUL ΠΡΙΒΕΤ",
    "한국어 텍스트",
    "homework " * 300,
    "y" * 3000,
]


def _units(n_units: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n_units) % 3 == 0
    documents = []
    for positive in labels:
        picked = list(rng.choice(ORDINARY, size=int(rng.integers(1, 5)), replace=False))
        if positive:
            picked += list(rng.choice(RISKY, size=2, replace=False))
        rng.shuffle(picked)
        documents.append(SEPARATOR.join(picked))
    return documents, labels


def _train(encoder: Path, pooling: str = "profile") -> tuple[Any, dict[str, Any]]:
    documents, labels = _units(30, seed=0)
    model = make_embedding_logreg(
        {"path": str(encoder), "max_seq_length": MAX_SEQ_LENGTH},
        pooling=pooling,
        profile_folds=3,
        top_k=2,
    ).fit(pd.DataFrame({"text": documents}), labels)
    raw = model.predict_proba(pd.DataFrame({"text": documents}))[:, 1]
    meta = {
        "model_name": "embedding_logreg",
        "unit": "author",
        "input": "author",
        "threshold": 0.4,
        "calibration": ScoreCalibrator("sigmoid").fit(raw, labels).to_dict(),
        "features": {"message_separator": SEPARATOR, "dropped": []},
    }
    return model, meta


@pytest.fixture(scope="module")
def trained(tiny_sentence_encoder: Path) -> tuple[Any, dict[str, Any]]:
    return _train(tiny_sentence_encoder)


@pytest.fixture(scope="module")
def built(trained: tuple, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    model, meta = trained
    _parts, graph, tokenizer_graph, st_model = build_embedding_files(
        model, meta, tmp_path_factory.mktemp("onnx-embedding")
    )
    return {
        "graph": graph,
        "scorer": session(graph),
        "tokenizer": tokenizer_session(tokenizer_graph),
        "st_model": st_model,
    }


#: Unit documents: trained-like units, hostile single-message units, the probes (an empty
#: unit, whitespace-only units, several-message units) and a unit of every hostile message.
UNITS = [
    *_units(8, seed=1)[0],
    *HOSTILE_MESSAGES,
    *EMBEDDING_PROBES,
    SEPARATOR.join(HOSTILE_MESSAGES),
    "",
]


def test_token_ids_equal_the_hugging_face_tokenizer(built: dict[str, Any]) -> None:
    messages = [*HOSTILE_MESSAGES, *split_units(EMBEDDING_PROBES, SEPARATOR)[0], *RISKY]
    expected = hf_token_ids(built["st_model"], messages)
    got = graph_token_ids(built["tokenizer"], messages)
    different = [m for m, a, b in zip(messages, expected, got, strict=True) if a != b]
    assert not different, different
    # Truncated at max_seq_length tokens, [CLS] and [SEP] included.
    assert max(len(ids) for ids in got) == MAX_SEQ_LENGTH
    assert graph_token_ids(built["tokenizer"], []) == []


def test_float_export_equals_python(trained: tuple, built: dict[str, Any]) -> None:
    model, meta = trained
    expected = python_scores(memory_only(model), meta, UNITS)
    got, message_scores = onnx_unit_scores(built["tokenizer"], built["scorer"], UNITS, SEPARATOR)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= EMBEDDING_FLOAT_TOLERANCE
    messages, _ = split_units(UNITS, SEPARATOR)
    np.testing.assert_allclose(
        message_scores, memory_only(model).message_scores(messages), atol=1e-4
    )
    # The scores vary: the test would not pass with a constant graph.
    assert expected.max() - expected.min() > 0.05


def test_a_unit_scores_the_same_alone_and_in_any_batch(built: dict[str, Any]) -> None:
    tokenizer, scorer = built["tokenizer"], built["scorer"]
    units = [*UNITS[:12], "", "\n\n", *UNITS[-3:]]
    together, _ = onnx_unit_scores(tokenizer, scorer, units, SEPARATOR)
    alone = np.array([onnx_unit_scores(tokenizer, scorer, [u], SEPARATOR)[0][0] for u in units])
    reversed_batch = onnx_unit_scores(tokenizer, scorer, units[::-1], SEPARATOR)[0][::-1]
    # Equal up to float32 rounding: the padding width of the call changes the encoder's sums.
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)
    np.testing.assert_allclose(together, reversed_batch, rtol=0, atol=1e-6)
    # An empty unit alone (no message at all in the call), and no unit at all.
    assert onnx_unit_scores(tokenizer, scorer, [""], SEPARATOR)[0][0] == pytest.approx(
        together[units.index("")], abs=1e-7
    )
    assert onnx_unit_scores(tokenizer, scorer, [], SEPARATOR)[0].shape == (0,)


def test_flagged_is_the_threshold(trained: tuple, built: dict[str, Any]) -> None:
    _model, meta = trained
    messages, owners = split_units(UNITS, SEPARATOR)
    ids, mask = built["tokenizer"].run(None, {"messages": np.array(messages, dtype=object)})
    score, flagged, _ = built["scorer"].run(
        None,
        {
            "input_ids": ids,
            "attention_mask": mask,
            "unit": owners,
            "n_units": np.array([len(UNITS)], dtype=np.int64),
        },
    )
    np.testing.assert_array_equal(flagged, score >= meta["threshold"])


def test_top_k_pooling(tiny_sentence_encoder: Path, tmp_path: Path) -> None:
    model, meta = _train(tiny_sentence_encoder, pooling="top_k")
    expected = python_scores(memory_only(model), meta, UNITS)
    _, graph, tokenizer_graph, _ = build_embedding_files(model, meta, tmp_path)
    got, _ = onnx_unit_scores(tokenizer_session(tokenizer_graph), session(graph), UNITS, SEPARATOR)
    assert np.max(np.abs(got - expected)) <= EMBEDDING_FLOAT_TOLERANCE
    assert expected.max() - expected.min() > 0.05


def test_export_writes_two_files_with_metadata(trained: tuple, tmp_path: Path) -> None:
    model, meta = trained
    out = tmp_path / "risk.onnx"
    report = export_embedding(model, meta, out, int8=True)
    assert report.path == out and tokenizer_path_of(out) == tmp_path / "risk.tokenizer.onnx"
    assert out.is_file() and report.tokenizer_path.is_file()
    assert report.max_abs_difference <= EMBEDDING_INT8_TOLERANCE
    assert report.token_mismatches == 0
    assert "within the stated tolerance 0.1" in report.line()
    props = session(out).get_modelmeta().custom_metadata_map
    assert props["model_name"] == "embedding_logreg" and float(props["threshold"]) == 0.4
    assert props["message_separator"] == '"\\n"' and props["pooling"] == "profile"
    assert '"method": "sigmoid"' in props["calibration"] and "quantization" in props
    assert props["max_seq_length"] == str(MAX_SEQ_LENGTH)


def test_sentinel_and_pooled_vectors_are_refused(tiny_sentence_encoder: Path) -> None:
    encoder = {"path": str(tiny_sentence_encoder), "max_seq_length": MAX_SEQ_LENGTH}
    documents, labels = _units(30, seed=0)
    frame = pd.DataFrame({"text": documents})
    sentinel = make_sentinel(encoder, top_k=2, aggregate="max").fit(frame, labels)
    meta = {"model_name": "sentinel", "threshold": 0.5}
    with pytest.raises(ExportUnsupportedError, match=r"'sentinel'.*SentinelClassifier"):
        embedding_exportable(sentinel, meta)
    with pytest.raises(ExportUnsupportedError, match=r"'sentinel'.*SentinelClassifier"):
        exportable(sentinel, meta)
    pooled = make_embedding_logreg(encoder, design="pooled_vectors").fit(frame, labels)
    with pytest.raises(ExportUnsupportedError, match=r"design: pooled_vectors"):
        exportable(pooled, {"model_name": "embedding_logreg", "threshold": 0.5})


def test_cli_exports_and_refuses_in_one_line(
    trained: tuple,
    tiny_sentence_encoder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from grooming_detect.scoring import export_cli

    model, meta = trained
    folder = save_model(model, meta, tmp_path / "model")
    out = tmp_path / "out" / "risk.onnx"
    assert export_cli.main(["--onnx", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and (tmp_path / "out" / "risk.tokenizer.onnx").is_file()
    assert "within the stated tolerance 0.0001" in printed and "token ids equal" in printed

    encoder = {"path": str(tiny_sentence_encoder), "max_seq_length": MAX_SEQ_LENGTH}
    documents, labels = _units(30, seed=0)
    pooled = make_embedding_logreg(encoder, design="pooled_vectors").fit(
        pd.DataFrame({"text": documents}), labels
    )
    refused = save_model(
        pooled, {"model_name": "embedding_logreg", "threshold": 0.5}, tmp_path / "pooled"
    )
    status = export_cli.main(["--onnx", str(refused), "--out", str(tmp_path / "pooled.onnx")])
    error = capsys.readouterr().err
    assert status == 2
    assert error.count("\n") == 1 and "design: pooled_vectors" in error
    assert not (tmp_path / "pooled.onnx").exists()
