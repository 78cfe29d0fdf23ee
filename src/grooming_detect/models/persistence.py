"""Saving and loading trained models in a safe format (skops: no pickle execution)."""

from __future__ import annotations

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
    return sio.load(path, trusted=trusted_types(path)), read_json(directory / META_FILE)
