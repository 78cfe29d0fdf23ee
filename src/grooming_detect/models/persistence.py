"""Saving and loading trained models in a safe format (skops: no pickle execution)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import skops.io as sio

from grooming_detect.io import read_json, write_json, write_with

MODEL_FILE = "model.skops"
META_FILE = "model.json"


class UntrustedModelError(ValueError):
    """A model file asks for types outside scikit-learn, NumPy and SciPy."""


def save_model(model: Any, meta: dict[str, Any], directory: Path) -> Path:
    """Write the estimator (skops) and its metadata (threshold, settings) atomically."""
    write_with(directory / MODEL_FILE, lambda tmp: sio.dump(model, tmp))
    write_json(directory / META_FILE, meta)
    return directory


def load_model(directory: Path) -> tuple[Any, dict[str, Any]]:
    """Load an estimator saved by `save_model`, refusing files that need untrusted types."""
    path = directory / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model here; run the train stage first")
    untrusted = sio.get_untrusted_types(file=path)
    if untrusted:
        raise UntrustedModelError(
            f"{path}: refuses to load types outside the trusted defaults: {untrusted}"
        )
    return sio.load(path), read_json(directory / META_FILE)
