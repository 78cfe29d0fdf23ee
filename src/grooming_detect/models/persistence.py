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


#: Modules whose types a model file may use besides skops' defaults: scikit-learn's own
#: internals and this package's estimators. Anything else (a function from ``os``,
#: ``builtins.eval`` …) is refused.
TRUSTED_PREFIXES = ("sklearn.", "grooming_detect.")
#: Single non-default types that fitted scikit-learn steps store (e.g. SimpleImputer's dtype).
TRUSTED_EXTRA = frozenset({"numpy.dtype"})


class UntrustedModelError(ValueError):
    """A model file asks for types outside scikit-learn, NumPy, SciPy and this package."""


def trusted_types(path: Path) -> list[str]:
    """The non-default types in a skops file, all from trusted modules; else an error."""
    types = sio.get_untrusted_types(file=path)
    refused = [t for t in types if not t.startswith(TRUSTED_PREFIXES) and t not in TRUSTED_EXTRA]
    if refused:
        raise UntrustedModelError(
            f"{path}: refuses to load types from untrusted modules: {refused}"
        )
    return types


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
    return sio.load(path, trusted=trusted_types(path)), read_json(directory / META_FILE)
