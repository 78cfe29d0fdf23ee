"""The ONNX export: the graph's scores equal the package's calibrated scores, on ordinary and
hostile documents; int8 tables stay within their stated tolerance; models the graph cannot
reproduce are refused in one line with exit status 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip(
    "onnxruntime", reason="the ONNX export tests need the 'onnx' extra: pip install -e '.[onnx]'"
)
pytest.importorskip(
    "onnx", reason="the ONNX export tests need the 'onnx' extra: pip install -e '.[onnx]'"
)

from grooming_detect.errors import ExportUnsupportedError
from grooming_detect.models.baselines import (
    make_behaviour_gbm,
    make_tfidf_logreg,
    make_tfidf_plus_behaviour,
)
from grooming_detect.models.decision import ScoreCalibrator
from grooming_detect.models.persistence import save_model
from grooming_detect.scoring.onnx_export import (
    FLOAT_TOLERANCE,
    INT8_TOLERANCE,
    PROBE_DOCUMENTS,
    build_graph,
    export,
    exportable,
    onnx_scores,
    python_scores,
    quantize_int8,
    session,
)

SEPARATOR = "\n"

#: Harmless author documents (messages joined by the separator), two kinds of talk.
RISKY = [
    "keep this our secret\nmeet me saturday",
    "our secret ok\ndon't tell your parents\nadd me on the other app",
    "delete this chat\nnobody has to know we talk",
    "move to a more private app\nkeep it secret",
]
ORDINARY = [
    "did you see the game last night\nyeah the team played great",
    "anyone know why gcc segfaults\ncheck the logs and rebuild",
    "pizza tonight?\nsure, pizza and the game",
    "the maths homework is due friday\nI finished it yesterday",
    "Привет, как дела?\nвсё хорошо",
    "ça va très bien\nà demain",
]

#: Documents a tokenizer trips on: the separator alone and repeated, emoji, other scripts,
#: mixed case, punctuation only, control characters, very long text.
HOSTILE = [
    "",
    SEPARATOR,
    SEPARATOR * 5,
    f"{SEPARATOR}keep{SEPARATOR}",
    "🙂🙂🙂",
    "see you 👋🏽 at practice 🏀",
    "日本語のテキスト です",
    "שלום מה שלומך",
    "KeEp ThIs OuR SeCrEt",
    "!!! ??? ... ,,, ;;; :::",
    "a",
    "ab",
    "tab\tand\u00a0no-break\u2003em space\u3000ideographic",
    "\u200bzero\u200bwidth\u200b",
    "under_score snake_case CamelCase 2024 x2",
    "nul\x00inside a message",
    "windows\r\nline ends\rand old mac ones",
    "\ufeffbyte order mark first",
    "e\u0301 combining accent, café, naïve",
    "𝐁𝐨𝐥𝐝 math letters and ٣٤٥ arabic digits ²³",
    "homework " * 1000,
    "y" * 6000,
]


def _train(calibration: str = "sigmoid", n_features: int = 2**18, **settings: Any) -> tuple:
    texts = RISKY * 3 + ORDINARY * 3
    labels = np.array([True] * len(RISKY) * 3 + [False] * len(ORDINARY) * 3)
    model = make_tfidf_logreg(min_df=1, n_features=n_features, **settings).fit(
        pd.DataFrame({"text": texts}), labels
    )
    raw = model.predict_proba(pd.DataFrame({"text": texts}))[:, 1]
    calibrator = ScoreCalibrator(calibration).fit(raw, labels)
    meta = {
        "model_name": "tfidf_logreg",
        "unit": "author",
        "input": "author",
        "threshold": 0.5,
        "calibration": calibrator.to_dict(),
        "features": {"message_separator": SEPARATOR, "dropped": []},
    }
    return model, meta


@pytest.fixture(scope="module")
def trained() -> tuple:
    return _train(n_features=2**20)  # the default width


@pytest.fixture(scope="module")
def float_session(trained: tuple) -> Any:
    model, meta = trained
    return session(build_graph(exportable(model, meta)))


DOCUMENTS = RISKY + ORDINARY + HOSTILE + list(PROBE_DOCUMENTS)


def test_float_export_equals_python(trained: tuple, float_session: Any) -> None:
    model, meta = trained
    expected = python_scores(model, meta, DOCUMENTS)
    got = onnx_scores(float_session, DOCUMENTS)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= FLOAT_TOLERANCE
    # The scores vary: the test would not pass with a constant graph.
    assert expected.max() - expected.min() > 0.2


def test_a_document_scores_the_same_alone_and_in_any_batch(float_session: Any) -> None:
    together = onnx_scores(float_session, HOSTILE)
    alone = np.array([onnx_scores(float_session, [d])[0] for d in HOSTILE])
    reversed_batch = onnx_scores(float_session, HOSTILE[::-1])[::-1]
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(together, reversed_batch)
    assert onnx_scores(float_session, []).shape == (0,)


@pytest.mark.parametrize(
    ("calibration", "settings"),
    [
        ("none", {}),
        ("temperature", {}),
        ("isotonic", {}),
        # char_wb from 4: a padded word of 3 characters counts once, whole.
        ("sigmoid", {"word_ngram_range": (1, 3), "char_ngram_range": (4, 6)}),
    ],
    ids=["none", "temperature", "isotonic", "sigmoid-other-ngrams"],
)
def test_every_calibrator_and_ngram_range(calibration: str, settings: dict) -> None:
    model, meta = _train(calibration, n_features=2**12, **settings)
    graph = session(build_graph(exportable(model, meta)))
    documents = RISKY + ORDINARY + HOSTILE
    difference = onnx_scores(graph, documents) - python_scores(model, meta, documents)
    assert np.max(np.abs(difference)) <= FLOAT_TOLERANCE


def test_int8_export_within_its_tolerance_and_smaller(trained: tuple, tmp_path: Path) -> None:
    model, meta = trained
    graph = build_graph(exportable(model, meta))
    quantized = quantize_int8(graph)
    import onnx

    onnx.checker.check_model(graph)
    onnx.checker.check_model(quantized)
    difference = onnx_scores(session(quantized), DOCUMENTS) - python_scores(model, meta, DOCUMENTS)
    assert np.max(np.abs(difference)) <= INT8_TOLERANCE
    assert quantized.ByteSize() < graph.ByteSize() / 3


def test_export_writes_metadata_and_reports_the_difference(trained: tuple, tmp_path: Path) -> None:
    model, meta = trained
    report = export(model, meta, tmp_path / "model.onnx")
    assert report.path.is_file() and report.size_mb > 1
    assert report.max_abs_difference <= FLOAT_TOLERANCE
    scorer = session(report.path)
    props = scorer.get_modelmeta().custom_metadata_map
    assert float(props["threshold"]) == 0.5
    assert props["message_separator"] == '"\\n"'
    assert '"method": "sigmoid"' in props["calibration"]
    assert props["model_name"] == "tfidf_logreg"
    scores, flagged = scorer.run(None, {"documents": np.array(RISKY + ORDINARY, dtype=object)})
    np.testing.assert_array_equal(flagged, scores >= 0.5)


@pytest.mark.pipeline
def test_an_export_beyond_its_tolerance_is_refused_and_not_written(
    trained: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a file that scores differently from the model: beyond the stated tolerance the
    export stops (exit status 2 from the command) and writes nothing; a written file is
    readable as a plain open() would make it (not the temporary file's 0600)."""
    import os

    from grooming_detect.scoring import export_cli, onnx_export

    model, meta = trained
    out = tmp_path / "risk.onnx"
    written = export(model, meta, out)
    umask = os.umask(0)
    os.umask(umask)
    assert written.path.stat().st_mode & 0o777 == 0o666 & ~umask
    out.unlink()
    monkeypatch.setattr(onnx_export, "FLOAT_TOLERANCE", -1.0)
    with pytest.raises(ValueError, match=r"not written: .* beyond the stated tolerance -1"):
        export(model, meta, out)
    assert not out.exists() and not list(tmp_path.glob(".risk.onnx*"))
    folder = save_model(model, meta, tmp_path / "model")
    assert export_cli.main(["--onnx", str(folder), "--out", str(out)]) == 2
    assert not out.exists()


def test_models_reading_more_than_text_are_refused() -> None:
    frame = pd.DataFrame({"f_messages": [1.0, 2.0, 3.0, 4.0] * 5, "text": (RISKY + ORDINARY) * 2})
    labels = np.array([True, False] * 10)
    both = make_tfidf_plus_behaviour(min_df=1, n_features=2**10).fit(frame, labels)
    with pytest.raises(ExportUnsupportedError, match=r"'tfidf_plus_behaviour'.*behavioural"):
        exportable(both, {"model_name": "tfidf_plus_behaviour", "threshold": 0.5})
    gbm = make_behaviour_gbm(max_iter=5).fit(frame, labels)
    with pytest.raises(ExportUnsupportedError, match=r"'behaviour_gbm'.*LogisticRegression"):
        exportable(gbm, {"model_name": "behaviour_gbm", "threshold": 0.5})


def test_aggregated_inputs_are_refused(trained: tuple) -> None:
    model, meta = trained
    with pytest.raises(ExportUnsupportedError, match="author_conversation rows aggregated"):
        exportable(model, {**meta, "input": "author_conversation", "aggregate": "max"})


@pytest.mark.pipeline
def test_cli_exports_and_refuses_in_one_line(
    trained: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from grooming_detect.scoring import export_cli

    model, meta = trained
    folder = save_model(model, meta, tmp_path / "model")
    out = tmp_path / "out" / "risk.onnx"
    assert export_cli.main(["--onnx", str(folder), "--out", str(out), "--int8"]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "int8" in printed and "within the stated tolerance" in printed

    frame = pd.DataFrame({"f_messages": [1.0, 2.0, 3.0, 4.0] * 5})
    gbm = make_behaviour_gbm(max_iter=5).fit(frame, np.array([True, False] * 10))
    refused = save_model(gbm, {"model_name": "behaviour_gbm", "threshold": 0.5}, tmp_path / "gbm")
    status = export_cli.main(["--onnx", str(refused), "--out", str(tmp_path / "gbm.onnx")])
    error = capsys.readouterr().err
    assert status == 2
    assert error.count("\n") == 1 and "cannot export model 'behaviour_gbm'" in error
    assert not (tmp_path / "gbm.onnx").exists()
