"""Saving and loading trained models in a safe format (skops: no pickle execution)."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import skops.io as sio

from grooming_detect.io import read_json, write_json, write_with

MODEL_FILE = "model.skops"
META_FILE = "model.json"


#: The exact types, beyond skops' own safe defaults, that this project's models store: enumerated
#: from every model config (tests/test_persistence_security.py checks the list against freshly
#: trained models). Never a prefix: a whole module (``sklearn.``) holds functions that run code.
TRUSTED_TYPES = frozenset(
    {
        "grooming_detect.models.baselines.CompactLogisticRegression",
        "grooming_detect.models.vectorizers.CompactTfidfVectorizer",
        "grooming_detect.models.vectorizers.HashingTfidfVectorizer",
        "grooming_detect.models.two_stage.TwoStageClassifier",
        "numpy.dtype",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.compose._column_transformer.make_column_selector",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)


#: The artifact of the logged whole-scorer pyfunc that holds the model folder.
ARTIFACT = "grooming_model"


class UntrustedModelError(ValueError):
    """A model file asks for types outside the project's exact allow-list."""


def trusted_types(path: Path) -> list[str]:
    """The non-default types in a skops file, when every one is on the allow-list; else an
    error naming the file and the refused types. Nothing in the file is constructed."""
    types = sio.get_untrusted_types(file=path)
    refused = sorted(t for t in types if t not in TRUSTED_TYPES)
    if refused:
        raise UntrustedModelError(
            f"{path}: refusing to load a model that needs types outside the allow-list: "
            f"{refused} (a model file can run code through such types; only load models you "
            "trained, and report this file if you did not expect it)"
        )
    return types


def load_skops(path: Path) -> Any:
    """Load a skops file after the allow-list check (the trust never comes from the file)."""
    return sio.load(path, trusted=trusted_types(path))


TRANSFORMER_DIR = "transformer"


def save_model(model: Any, meta: dict[str, Any], directory: Path) -> Path:
    """Write the estimator and its metadata (threshold, settings) atomically: scikit-learn
    estimators as skops, fine-tuned transformers as safetensors with their tokenizer."""
    if hasattr(model, "save") and hasattr(model, "model_"):
        staging = Path(
            tempfile.mkdtemp(
                prefix=".transformer-", dir=directory.parent if directory.parent.exists() else None
            )
        )
        model.save(staging)
        target = directory / TRANSFORMER_DIR
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        (directory / MODEL_FILE).unlink(missing_ok=True)
        meta = {**meta, "format": "transformer"}
    else:
        write_with(
            directory / MODEL_FILE,
            lambda tmp: sio.dump(model, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=1),
        )
        shutil.rmtree(directory / TRANSFORMER_DIR, ignore_errors=True)
        meta = {**meta, "format": "skops"}
    write_json(directory / META_FILE, meta)
    return directory


def load_model(directory: Path) -> tuple[Any, dict[str, Any]]:
    """Load an estimator saved by `save_model`, refusing files that need untrusted types."""
    meta_path = directory / META_FILE
    if meta_path.is_file() and read_json(meta_path).get("format") == "transformer":
        from grooming_detect.models.transformer import TransformerClassifier

        return TransformerClassifier.load(directory / TRANSFORMER_DIR), read_json(meta_path)
    path = directory / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model here; run the train stage first")
    return load_skops(path), read_json(directory / META_FILE)
