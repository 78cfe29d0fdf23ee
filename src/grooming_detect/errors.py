"""The errors that mean bad input or bad settings rather than a bug.

Every command reports one of these in one line and exits with status 2 (`cli.EXPECTED_ERRORS`).
They live here, apart from the code that raises them, so that the command line can name them
without importing that code (scikit-learn, skops, MLflow): a wrong setting is answered in a
second, not after the whole package has loaded.
"""

from __future__ import annotations

import sys


class ConfigError(ValueError):
    """A composed configuration that cannot run."""


class CorpusFormatError(ValueError):
    """Input that does not follow the official format; the message names file, line and column."""


class ChatlogFormatError(CorpusFormatError):
    """A chat-log file that does not follow the documented format."""


class SplitError(ValueError):
    """A held-out split that whole components cannot carve near its target shares (or with
    positives on both sides); the message names the split, the achieved and target shares, the
    largest component and the override (``data.split_override=author``)."""


class ChitchatUnavailableError(RuntimeError):
    """The ``chitchat-dataset`` package (the real chat text) is not installed or unreadable."""


class CrossfitError(ValueError):
    """The pooled data cannot be cut into the requested number of grouped folds."""


class UntrustedModelError(ValueError):
    """A model file asks for types outside the project's exact allow-list."""


class ModelFileError(UntrustedModelError):
    """A model folder's file is not what `save_model` writes: linked from outside the folder,
    not a skops archive (cut short, damaged, another kind of file), unpacking to more than
    `MAX_UNPACKED_BYTES`, holding an object that is not a fitted classifier, or a
    ``model.json`` with settings a scorer cannot use. A kind of `UntrustedModelError`, so every
    command reports it in one line, as it does a refused type."""


class MissingExtraError(ConfigError):
    """A model needs an optional extra of the package that is not installed."""


def install_hint(extra: str) -> str:
    """How to install an optional extra, for an installed package and for a clone (whose
    `make install` installs every extra into ``.venv``)."""
    return (
        f"pip install 'grooming-detect[{extra}]' (from a clone of the repository: "
        f".venv/bin/pip install -e '.[{extra}]', or make install for every extra)"
    )


class TrackingUnreachableError(ConnectionError):
    """No MLflow tracking server answered at ``tracking.uri`` within the configured wait."""


class ExportUnsupportedError(ValueError):
    """A trained model that the ONNX export cannot reproduce exactly (behavioural features,
    another classifier, an embedding encoder); the message names the model and why."""


def tracking_errors() -> tuple[type[Exception], ...]:
    """MLflow's exception class (`grooming_detect.tracking.TrackingError`) once MLflow is loaded,
    else none: for the ``except`` clause of a command that imports MLflow only when it needs it
    (the clause is evaluated when an error reaches it, and an error MLflow raised means MLflow
    is loaded)."""
    exceptions = sys.modules.get("mlflow.exceptions")
    return () if exceptions is None else (exceptions.MlflowException,)
