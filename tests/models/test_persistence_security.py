"""Loading a model can never run code from the file: exact allow-list, no trust read from the
artifact, refusal before any object is constructed."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from hydra.utils import instantiate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import validation

from grooming_detect.models import persistence
from grooming_detect.models.persistence import (
    TRUSTED_TYPES,
    UntrustedModelError,
    load_model,
    save_model,
)
from grooming_detect.scoring.messages import load_scoring_model


@pytest.fixture
def forbid_construction(monkeypatch: pytest.MonkeyPatch):
    """Call it once the files exist: any later attempt to build objects from a skops file
    fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("skops.io.load was called: objects would have been constructed")

    return lambda: monkeypatch.setattr(sio, "load", refuse)


def _hostile(func: object) -> Pipeline:
    return Pipeline([("run", FunctionTransformer(func=func))]).fit([[0.0]])


@pytest.mark.parametrize(
    "func", [builtins.eval, validation.check_array], ids=["builtins", "a scikit-learn function"]
)
def test_folder_model_with_functions_is_refused(
    func: object, tmp_path: Path, forbid_construction
) -> None:
    save_model(_hostile(func), {"threshold": 0.5}, tmp_path)
    forbid_construction()
    with pytest.raises(UntrustedModelError, match=r"model\.skops: refusing to load"):
        load_model(tmp_path)


@pytest.mark.pipeline
def test_mlflow_model_with_tampered_trust_is_refused(tmp_path: Path, forbid_construction) -> None:
    # A benign model saved by MLflow, then tampered with: its skops file replaced by one that
    # calls os.system, and os.system added to the trusted types in its own MLmodel file.
    folder = tmp_path / "mlflow-model"
    benign = Pipeline([("identity", FunctionTransformer())]).fit([[0.0]])
    mlflow.sklearn.save_model(
        benign,
        folder,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        metadata={"threshold": 0.5},
    )
    system = f"{os.system.__module__}.system"
    sio.dump(_hostile(os.system), folder / "model.skops")
    mlmodel = (folder / "MLmodel").read_text()
    assert "skops_trusted_types" in mlmodel or "serialization_format: skops" in mlmodel
    (folder / "MLmodel").write_text(
        mlmodel.replace(
            "serialization_format: skops",
            f"serialization_format: skops\n    skops_trusted_types:\n    - {system}",
        )
    )
    forbid_construction()
    with pytest.raises(UntrustedModelError, match="allow-list"):
        load_scoring_model(str(folder))


def test_allow_list_covers_every_baseline(compose_cfg, tmp_path: Path) -> None:
    """Each scikit-learn model config saves only allow-listed types (the list is exact), and
    loads through every check."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"text": [f"hello there {i % 7} how old r u" for i in range(60)]})
    for column in ("f_messages", "f_conversations", "f_mean_chars", "f_partners", "cue_secrecy"):
        frame[column] = rng.random(60)
    labels = np.arange(60) % 3 == 0
    seen: set[str] = set()
    for model in ("tfidf_logreg", "tfidf_svm", "tfidf_plus_behaviour", "behaviour_gbm"):
        for vectorizer in ("hashing", "vocabulary"):
            cfg = compose_cfg(f"model={model}")
            if "vectorizer" in cfg.model.estimator:
                cfg.model.estimator.vectorizer = vectorizer
                cfg.model.estimator.n_features = 2**12
                cfg.model.estimator.min_df = 1
            estimator = instantiate(cfg.model.estimator).fit(frame, labels)
            path = tmp_path / f"{model}-{vectorizer}.skops"
            sio.dump(estimator, path)
            types = set(sio.get_untrusted_types(file=path))
            assert types <= TRUSTED_TYPES, (model, types - TRUSTED_TYPES)
            seen |= types
            # And the load-time checks (archive size, a fitted classifier) let it through.
            assert hasattr(persistence.load_skops(path), "predict_proba")
    assert "grooming_detect.models.vectorizers.HashingTfidfVectorizer" in seen


# -- damaged, foreign and oversized model folders ----------------------------------------------
# Each is refused at load with one line naming the file and what was expected: an error the
# commands report without a traceback (a subclass of UntrustedModelError, so of ValueError).

TOY_META = {
    "unit": "author",
    "input": "author",
    "threshold": 0.5,
    "calibration": {"method": "none"},
}


def _toy_folder(folder: Path, meta: dict | None = None) -> Path:
    from sklearn.dummy import DummyClassifier

    toy = DummyClassifier(strategy="prior").fit(pd.DataFrame({"text": ["a", "b"]}), [0, 1])
    return save_model(toy, dict(TOY_META if meta is None else meta), folder)


def _chat_log(tmp_path: Path) -> Path:
    chat = tmp_path / "chat.csv"
    chat.write_text(
        "conversation_id,line,author,text\nc1,1,alice,hi how was school\nc1,2,bob,fine thanks\n"
    )
    return chat


def _score_command(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run grooming-detect-score on a two-line chat log; its one error line (exit status 2)."""
    from grooming_detect.scoring.cli import main

    code = main([str(_chat_log(tmp_path)), "--model", str(model), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_middle(path: Path) -> None:
    """Keep the zip directory, damage the compressed data of its members."""
    data = bytearray(path.read_bytes())
    with persistence.zipfile.ZipFile(path) as archive:
        first = min(i.header_offset for i in archive.infolist())
        end = max(i.header_offset + i.compress_size for i in archive.infolist())
    for offset in range(first + 60, end, 7):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate, "not a skops model archive"),
        (lambda p: p.write_bytes(os.urandom(4096)), "not a skops model archive"),
        (lambda p: p.write_bytes(b""), "not a skops model archive"),
        (_corrupt_middle, "damaged skops model archive"),
    ],
    ids=["truncated", "garbage", "empty", "corrupted members"],
)
def test_a_damaged_model_file_is_named(
    damage, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _toy_folder(tmp_path / "model")
    damage(folder / "model.skops")
    with pytest.raises(persistence.ModelFileError, match=rf"model\.skops: {reason}") as refused:
        load_model(folder)
    assert isinstance(refused.value, UntrustedModelError)
    assert "expected the model.skops that save_model writes" in str(refused.value)
    assert "model.skops: " + reason in _score_command(folder, tmp_path, capsys)


def test_a_model_file_linked_out_of_its_folder_is_refused(
    tmp_path: Path, forbid_construction
) -> None:
    folder = _toy_folder(tmp_path / "model")
    outside = tmp_path / "elsewhere.skops"
    (folder / "model.skops").rename(outside)
    (folder / "model.skops").symlink_to(outside)
    forbid_construction()
    with pytest.raises(persistence.ModelFileError, match=r"model\.skops: a link to .*outside"):
        load_model(folder)
    if Path("/etc/passwd").is_file():
        (folder / "model.skops").unlink()
        (folder / "model.skops").symlink_to("/etc/passwd")
        with pytest.raises(persistence.ModelFileError, match=r"/etc/passwd, outside the model"):
            load_model(folder)


def test_a_model_folder_reached_through_links_loads(tmp_path: Path) -> None:
    """A link inside the folder names the file itself; ``latest`` links to a run's folder."""
    folder = _toy_folder(tmp_path / "model")
    (folder / "model.skops").rename(folder / "real.skops")
    (folder / "model.skops").symlink_to("real.skops")
    (tmp_path / "latest").symlink_to(folder)
    model, meta = load_model(tmp_path / "latest")
    assert meta["threshold"] == 0.5 and hasattr(model, "predict_proba")


def _scaler() -> object:
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit([[0.0], [1.0]])


def _unfitted() -> object:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression()


@pytest.mark.parametrize(
    ("make", "held"),
    [
        (lambda: {"coef": [1.0, 2.0]}, "a dict"),
        (lambda: np.zeros(3), "a ndarray"),
        (_scaler, "a StandardScaler"),
        (_unfitted, "an unfitted LogisticRegression"),
    ],
    ids=["dict", "array", "transformer", "unfitted classifier"],
)
def test_an_allowed_object_that_is_not_a_model_is_refused(make, held: str, tmp_path: Path) -> None:
    """Before: loaded, then an AttributeError (no predict_proba) at the first score."""
    folder = _toy_folder(tmp_path / "model")
    sio.dump(make(), folder / "model.skops")
    with pytest.raises(persistence.ModelFileError, match=rf"model\.skops: holds {held}") as refused:
        load_model(folder)
    assert "expected a fitted classifier with predict_proba" in str(refused.value)


def test_a_zip_bomb_is_refused_before_it_is_unpacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forbid_construction
) -> None:
    """A small file whose members unpack to far more than any model: refused from the zip's
    directory (declared sizes, which zipfile enforces while reading), before skops reads it."""
    folder = _toy_folder(tmp_path / "model")
    with (
        persistence.zipfile.ZipFile(
            folder / "model.skops", "a", compression=persistence.zipfile.ZIP_DEFLATED
        ) as archive,
        archive.open("zeros.npy", "w", force_zip64=True) as member,
    ):
        chunk = bytes(1 << 20)
        for _ in range(48):
            member.write(chunk)
    assert (folder / "model.skops").stat().st_size < 1 << 20
    monkeypatch.setattr(persistence, "MAX_UNPACKED_BYTES", 16 << 20)

    def unread(*args: object, **kwargs: object) -> None:
        raise AssertionError("skops read the archive's schema before its size was checked")

    monkeypatch.setattr(sio, "get_untrusted_types", unread)
    forbid_construction()
    with pytest.raises(
        persistence.ModelFileError,
        match=r"model\.skops: unpacks to 48\.0 MiB \(0\.\d MiB on disk\); refusing more than 16",
    ):
        load_model(folder)


def test_the_unpacked_size_limit_leaves_room_for_real_models() -> None:
    # The largest measured model (README, make bench-persist: 400k terms) is 6.9 MiB packed;
    # the models of the test runs unpack to 16-56 MiB.
    assert persistence.MAX_UNPACKED_BYTES >= 1 << 30


def _write_meta(folder: Path, text: str) -> None:
    (folder / "model.json").write_text(text)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"threshold": float("nan")}, r"threshold=nan; expected a finite number in \[0, 1\]"),
        ({"threshold": -1}, r"threshold=-1; expected a finite number in \[0, 1\]"),
        ({"threshold": 1.5}, r"threshold=1\.5; expected"),
        ({"threshold": float("inf")}, r"threshold=inf; expected"),
        ({"threshold": "0.5"}, r"threshold='0\.5'; expected a finite number"),
        ({"threshold": True}, r"threshold=True; expected a finite number"),
        ({"threshold": None}, r"threshold=None; expected a finite number"),
        (
            {"calibration": {"method": "sigmoid", "a_": float("nan"), "b_": 0.0}},
            r"calibration\.a_=nan; expected a finite number",
        ),
        (
            {"calibration": {"method": "sigmoid", "a_": 1.0}},
            r"calibration\.b_=None; expected a finite number",
        ),
        (
            {"calibration": {"method": "temperature", "temperature_": 0}},
            r"calibration\.temperature_=0; expected a finite number above 0",
        ),
        (
            {"calibration": {"method": "isotonic", "x_": [0.5, 0.1], "y_": [0.1, 0.2]}},
            r"calibration\.x_=\[0\.5, 0\.1\]; expected .*increasing",
        ),
        (
            {"calibration": {"method": "isotonic", "x_": [0.1, 0.5], "y_": [0.1, 2.0]}},
            r"calibration\.y_=\[0\.1, 2\.0\]; expected .*in \[0, 1\]",
        ),
        (
            {"calibration": {"method": "isotonic", "x_": [0.1], "y_": [0.1, 0.2]}},
            r"calibration\.y_=.*as many",
        ),
        ({"calibration": {"method": "magic"}}, r"calibration\.method='magic'; expected one of"),
        ({"calibration": None}, r"calibration=None; expected an object"),
        ({"unit": "nobody"}, r"unit='nobody'; expected one of \['author', 'conversation'\]"),
        ({"input": ["author"]}, r"input=\['author'\]; expected one of"),
        ({"aggregate": "median"}, r"aggregate='median'; expected one of"),
        (
            {"features": {"dropped": "f_messages"}},
            r"features\.dropped='f_messages'; expected a list",
        ),
    ],
)
def test_model_json_settings_are_checked_at_load(change: dict, reason: str, tmp_path: Path) -> None:
    import json

    folder = _toy_folder(tmp_path / "model")
    meta = {**json.loads((folder / "model.json").read_text()), **change}
    _write_meta(folder, json.dumps(meta))
    with pytest.raises(persistence.ModelFileError, match=rf"model\.json: {reason}"):
        load_model(folder)


def test_model_json_that_is_not_settings_is_refused(tmp_path: Path) -> None:
    import json

    folder = _toy_folder(tmp_path / "model")
    meta = json.loads((folder / "model.json").read_text())
    del meta["threshold"]
    _write_meta(folder, json.dumps(meta))
    with pytest.raises(persistence.ModelFileError, match=r"model\.json: no threshold; expected"):
        load_model(folder)
    for text, reason in [
        ("[0.5]", r"a JSON list; expected an object"),
        ("{not json", r"invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, r"nested too deeply"),
    ]:
        _write_meta(folder, text)
        with pytest.raises(persistence.ModelFileError, match=rf"model\.json: .*{reason}"):
            load_model(folder)
    (folder / "model.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(persistence.ModelFileError, match=r"model\.json: not UTF-8"):
        load_model(folder)
    (folder / "model.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.json: missing beside model\.skops"):
        load_model(folder)


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"threshold": float("nan")}, "threshold=nan"),
        ({"threshold": -1}, "threshold=-1"),
        ({"threshold": None}, "threshold=None"),
    ],
    ids=["nan", "negative", "null"],
)
def test_the_score_command_refuses_a_bad_threshold(
    change: dict, shown: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: NaN flagged nothing and -1 flagged everyone, both with exit status 0."""
    folder = _toy_folder(tmp_path / "model", {**TOY_META, **change})
    assert f"model.json: {shown}; expected a finite number in [0, 1]" in _score_command(
        folder, tmp_path, capsys
    )
    folder = _toy_folder(
        tmp_path / "model2", {k: v for k, v in TOY_META.items() if k != "threshold"}
    )
    assert "model.json: no threshold" in _score_command(folder, tmp_path, capsys)


@pytest.mark.pipeline
def test_mlflow_model_metadata_is_checked(tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    toy = DummyClassifier(strategy="prior").fit(pd.DataFrame({"text": ["a", "b"]}), [0, 1])
    folder = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(
        toy,
        folder,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        metadata={**TOY_META, "threshold": float("nan")},
    )
    with pytest.raises(
        persistence.ModelFileError, match=r"\(its MLmodel metadata\): threshold=nan; expected"
    ):
        load_scoring_model(str(folder))


def test_a_transformer_model_without_the_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import sys

    from grooming_detect.config import ConfigError

    folder = tmp_path / "model"
    (folder / "transformer").mkdir(parents=True)
    (folder / "transformer" / "estimator.json").write_text("{}")
    (folder / "model.json").write_text(json.dumps({**TOY_META, "format": "transformer"}))
    # As without the extra: importing transformers (or torch) fails.
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(
        ConfigError, match=r"pip install 'grooming-detect\[transformer\]'"
    ) as missing:
        load_model(folder)
    assert str(folder) in str(missing.value) and "transformer model" in str(missing.value)
    answer = _score_command(folder, tmp_path, capsys)
    # Both ways in: the installed package, and a clone of the repository.
    assert "pip install 'grooming-detect[transformer]'" in answer
    assert ".venv/bin/pip install -e '.[transformer]'" in answer
