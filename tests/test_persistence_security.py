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
from grooming_detect.scoring import load_scoring_model


@pytest.fixture
def forbid_construction(monkeypatch: pytest.MonkeyPatch):
    """Call it once the files exist: any later attempt to build objects from a skops file
    fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("skops.io.load was called: objects would have been constructed")

    return lambda: monkeypatch.setattr(persistence.sio, "load", refuse)


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
    """Each scikit-learn model config saves only allow-listed types (the list is exact)."""
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
    assert "grooming_detect.models.vectorizers.HashingTfidfVectorizer" in seen
