"""Saving and loading trained models in a safe format (skops: no pickle execution).

Loading checks a model folder before it builds anything from it, and refuses with one line that
names the file and what was expected: a file linked from outside the folder, a ``model.skops``
that is not a skops archive or unpacks to more than `MAX_UNPACKED_BYTES`, types outside the
allow-list, an object that is not a fitted classifier, and a ``model.json`` whose settings
(threshold, calibration, unit, input, aggregation) a scorer could not use.
"""

from __future__ import annotations

import itertools
import math
import os
import reprlib
import shutil
import sys
import tempfile
import zipfile
import zlib
from numbers import Real
from pathlib import Path
from typing import Any

from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from grooming_detect.errors import (
    MissingExtraError,
    ModelFileError,
    UntrustedModelError,
    install_hint,
)
from grooming_detect.io import read_json, write_json, write_with
from grooming_detect.models.decision import METHODS
from grooming_detect.models.units import AGGREGATES, INPUTS, UNITS

MODEL_FILE = "model.skops"
META_FILE = "model.json"


#: The exact types, beyond skops' own safe defaults, that this project's models store: enumerated
#: from every model config (tests/models/test_persistence_security.py checks the list against
#: freshly trained models). Never a prefix: a whole module (``sklearn.``) holds functions that
#: run code.
TRUSTED_TYPES = frozenset(
    {
        "grooming_detect.models.baselines.CompactLogisticRegression",
        "grooming_detect.models.embeddings.MessageEmbeddings",
        "grooming_detect.models.message_scores.MessageScoreClassifier",
        "grooming_detect.models.sentinel.SentinelClassifier",
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


#: The most a ``model.skops`` may unpack to, summed over its zip members as its directory
#: declares them (zipfile stops reading a member at its declared size). The project's models
#: unpack to tens of MiB (16-56 MiB in the test runs; the 400k-term vocabulary model of
#: ``make bench-persist`` is 6.9 MiB packed); loading takes about twice the unpacked size.
MAX_UNPACKED_BYTES = 1 << 30
_MIB = 1 << 20


def trusted_types(path: Path) -> list[str]:
    """The non-default types in a skops file, when every one is on the allow-list; else an
    error naming the file and the refused types. Nothing in the file is constructed."""
    sio = _skops_io()
    types = sio.get_untrusted_types(file=path)
    refused = sorted(t for t in types if t not in TRUSTED_TYPES)
    if refused:
        raise UntrustedModelError(
            f"{path}: refusing to load a model that needs types outside the allow-list: "
            f"{refused} (a model file can run code through such types; only load models you "
            "trained, and report this file if you did not expect it)"
        )
    return types


def check_archive(path: Path) -> None:
    """Refuse a file that is not a zip archive, or whose members unpack to more than
    `MAX_UNPACKED_BYTES`; only the zip's directory is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except OSError as error:
        raise ModelFileError(f"{path}: cannot be read ({error.strerror or error})") from error
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as error:
        raise ModelFileError(
            f"{path}: not a skops model archive ({error}); expected the model.skops that "
            "save_model writes (a zip archive): train the model again or restore the file"
        ) from error
    unpacked = sum(member.file_size for member in members)
    if unpacked > MAX_UNPACKED_BYTES:
        raise ModelFileError(
            f"{path}: unpacks to {unpacked / _MIB:,.1f} MiB ({path.stat().st_size / _MIB:,.1f} "
            f"MiB on disk); refusing more than {MAX_UNPACKED_BYTES / _MIB:,.0f} MiB "
            "(MAX_UNPACKED_BYTES in grooming_detect.models.persistence; this project's models "
            "unpack to tens of MiB)"
        )


def check_scorer(model: Any, path: Path) -> Any:
    """`model` when it can score (a fitted classifier with ``predict_proba``, which every
    scorer calls); else an error naming the file and what it holds."""
    if callable(getattr(model, "predict_proba", None)):
        try:
            check_is_fitted(model)
            return model
        except (NotFittedError, TypeError):
            held = f"an unfitted {type(model).__name__}"
    else:
        held = f"a {type(model).__name__}"
    raise ModelFileError(
        f"{path}: holds {held}; expected a fitted classifier with predict_proba (the pipeline "
        "the train stage saves)"
    )


def _skops_io() -> Any:
    """``skops.io``, imported when a model is saved or loaded: its set-up of trusted types
    imports every scikit-learn estimator, seconds that a command which only checks its settings
    should not pay.

    That set-up (`sklearn.utils.all_estimators`) walks every scikit-learn sub-package, importing
    each to look inside, ``sklearn.externals.array_api_compat.torch`` included, which imports
    torch: seconds more, for a module the walk then skips (no estimator lives in
    ``externals``). Unless torch is loaded already, it is hidden for that import, as if it were
    not installed (a set-up scikit-learn and skops support; the same estimators are found), and
    importable again afterwards (a transformer model imports it when it loads).
    """
    if "skops.io" not in sys.modules and "torch" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]  # import torch: ImportError
        try:
            import skops.io
        finally:
            if sys.modules.get("torch", 0) is None:
                del sys.modules["torch"]
    import skops.io

    return skops.io


#: What skops raises on a zip whose members are damaged or are not its own schema and arrays.
_UNREADABLE = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    KeyError,
    IndexError,
    ValueError,
    TypeError,
    AttributeError,
    RecursionError,
)


def load_skops(path: Path) -> Any:
    """Load a skops file after the size and allow-list checks (the trust never comes from the
    file), refusing an object that cannot score."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model file here; run the train stage first")
    check_archive(path)
    try:
        model = _skops_io().load(path, trusted=trusted_types(path))
    except UntrustedModelError:
        raise
    except _UNREADABLE as error:
        raise ModelFileError(
            f"{path}: damaged skops model archive ({type(error).__name__}: {error}); expected "
            "the model.skops that save_model writes: train the model again or restore the file"
        ) from error
    return check_scorer(model, path)


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
            lambda tmp: _skops_io().dump(
                model, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=1
            ),
        )
        shutil.rmtree(directory / TRANSFORMER_DIR, ignore_errors=True)
        meta = {**meta, "format": "skops"}
    write_json(directory / META_FILE, meta)
    return directory


def _in_folder(directory: Path, name: str) -> Path:
    """``directory/name``, refused when it is a link that leads out of `directory` (a link
    could make a model folder load any file on the machine)."""
    path = directory / name
    if os.path.lexists(path):
        target = path.resolve()
        if directory.resolve() not in target.parents:
            raise ModelFileError(
                f"{path}: a link to {target}, outside the model folder {directory}; expected "
                "the file itself, as save_model writes it"
            )
    return path


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 3, 60, 60, 40


def shown(value: Any) -> str:
    """A short repr of `value` for an error message, whatever it is (nested many levels deep,
    an integer of thousands of digits, a long string)."""
    try:
        return _SHOWN.repr(value)
    except ValueError:  # an int over sys.get_int_max_str_digits(), which repr refuses
        return f"<an integer of {int(value.bit_length() * math.log10(2)) + 1:,} digits>"


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _finite(
    value: Any,
    field: str,
    source: str,
    low: float = -math.inf,
    high: float = math.inf,
    above: float | None = None,
) -> None:
    """Refuse `value` unless it is a finite number in [`low`, `high`] (and above `above`)."""
    ok = _number(value) and math.isfinite(value) and low <= value <= high
    if not (ok and (above is None or value > above)):
        if above is not None:
            expected = f"a finite number above {above:g}"
        elif math.isfinite(low) or math.isfinite(high):
            expected = f"a finite number in [{low:g}, {high:g}]"
        else:
            expected = "a finite number"
        raise ModelFileError(f"{source}: {field}={shown(value)}; expected {expected}")


def _numbers(
    value: Any, field: str, source: str, unit_interval: bool = False, increasing: bool = False
) -> list[float]:
    """`value` when it is a non-empty list of finite numbers (in [0, 1], non-decreasing)."""
    ok = isinstance(value, list) and bool(value)
    ok = ok and all(_number(v) and math.isfinite(v) for v in value)
    ok = ok and (not unit_interval or all(0 <= v <= 1 for v in value))
    ok = ok and (not increasing or all(a <= b for a, b in itertools.pairwise(value)))
    if not ok:
        expected = "a non-empty list of finite numbers"
        expected += " in [0, 1]" if unit_interval else ""
        expected += ", increasing" if increasing else ""
        raise ModelFileError(f"{source}: {field}={shown(value)}; expected {expected}")
    return value


def _one_of(value: Any, field: str, source: str, choices: Any, optional: bool = False) -> None:
    if (optional and value is None) or (isinstance(value, str) and value in choices):
        return
    raise ModelFileError(
        f"{source}: {field}={shown(value)}; expected one of {list(choices)}"
        + (" or null" if optional else "")
    )


def check_calibration(calibration: Any, source: str) -> None:
    """The calibrator's method and learned parameters, as `ScoreCalibrator.transform` uses
    them: finite numbers (a positive temperature; isotonic steps increasing, in [0, 1])."""
    if not isinstance(calibration, dict):
        raise ModelFileError(
            f"{source}: calibration={shown(calibration)}; expected an object with the "
            f"calibration method (one of {list(METHODS)}) and its fitted parameters"
        )
    method = calibration.get("method")
    _one_of(method, "calibration.method", source, METHODS)
    if method == "sigmoid":
        for name in ("a_", "b_"):
            _finite(calibration.get(name), f"calibration.{name}", source)
    elif method == "temperature":
        _finite(calibration.get("temperature_"), "calibration.temperature_", source, above=0)
    elif method == "isotonic":
        x = _numbers(calibration.get("x_"), "calibration.x_", source, increasing=True)
        y = _numbers(calibration.get("y_"), "calibration.y_", source, unit_interval=True)
        if len(x) != len(y):
            raise ModelFileError(
                f"{source}: calibration.y_={shown(y)}; expected as many values as "
                f"calibration.x_ ({len(x)})"
            )


def check_metadata(meta: Any, source: str) -> dict[str, Any]:
    """`meta` when every setting a scorer reads is usable: the threshold (a finite number in
    [0, 1]), the calibration, the unit, input view and aggregation, the dropped feature
    columns; else an error naming `source` (the file) and the field."""
    if not isinstance(meta, dict):
        raise ModelFileError(
            f"{source}: a JSON {type(meta).__name__ if meta is not None else 'null'}; expected "
            "an object of the model's settings (threshold, calibration, unit, ...)"
        )
    if "threshold" not in meta:
        raise ModelFileError(
            f"{source}: no threshold; expected the tuned decision threshold, a finite number "
            "in [0, 1]"
        )
    _finite(meta["threshold"], "threshold", source, 0, 1)
    check_calibration(meta.get("calibration", {"method": "none"}), source)
    _one_of(meta.get("unit", "author"), "unit", source, UNITS)
    _one_of(meta.get("input"), "input", source, INPUTS, optional=True)
    _one_of(meta.get("aggregate"), "aggregate", source, AGGREGATES, optional=True)
    _one_of(meta.get("format"), "format", source, ("skops", "transformer"), optional=True)
    features = meta.get("features")
    if features is not None and not isinstance(features, dict):
        raise ModelFileError(
            f"{source}: features={shown(features)}; expected an object of feature settings"
        )
    dropped = (features or {}).get("dropped", [])
    if not (isinstance(dropped, list) and all(isinstance(c, str) for c in dropped)):
        raise ModelFileError(
            f"{source}: features.dropped={shown(dropped)}; expected a list of column names"
        )
    return meta


def read_metadata(path: Path) -> dict[str, Any]:
    """A model folder's ``model.json``, checked by `check_metadata`."""
    try:
        meta = read_json(path)
    except UnicodeDecodeError as error:
        raise ModelFileError(
            f"{path}: not UTF-8 text (byte {error.start}); expected the model.json that "
            "save_model writes"
        ) from None
    except RecursionError:
        raise ModelFileError(
            f"{path}: JSON nested too deeply; expected the model.json that save_model writes"
        ) from None
    except ValueError as error:
        # read_json names the file and the place of a JSON syntax error; not a number too
        # long to read.
        named = str(error) if str(error).startswith(str(path)) else f"{path}: {error}"
        raise ModelFileError(f"{named}; expected the model.json that save_model writes") from None
    return check_metadata(meta, str(path))


def load_transformer(directory: Path, **kwargs: Any) -> Any:
    """`TransformerClassifier.load`, or an error saying which extra to install when its
    libraries (torch, transformers) are missing."""
    try:
        from grooming_detect.models.transformer import TransformerClassifier

        return TransformerClassifier.load(directory, **kwargs)
    except ImportError as error:
        raise MissingExtraError(
            f"{directory}: a transformer model; loading it needs the optional 'transformer' "
            f"extra ({error}): {install_hint('transformer')}"
        ) from error


def load_model(directory: Path) -> tuple[Any, dict[str, Any]]:
    """Load an estimator saved by `save_model`, checking its settings first and refusing
    files that need untrusted types (see the module's docstring for every check)."""
    meta_path = _in_folder(directory, META_FILE)
    path = _in_folder(directory, MODEL_FILE)
    if not meta_path.is_file():
        if path.is_file():
            raise FileNotFoundError(
                f"{meta_path}: missing beside model.skops; expected the model's settings that "
                "save_model writes (threshold, calibration, ...): train the model again"
            )
        raise FileNotFoundError(f"{path}: no trained model here; run the train stage first")
    meta = read_metadata(meta_path)
    if meta.get("format") == "transformer":
        return load_transformer(_in_folder(directory, TRANSFORMER_DIR)), meta
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model here; run the train stage first")
    return load_skops(path), meta
