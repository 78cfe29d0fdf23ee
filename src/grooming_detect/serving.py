"""The whole scorer as an MLflow pyfunc model: messages in, calibrated risk and flags out.

What a service gets from ``mlflow.pyfunc.load_model`` or ``mlflow models serve`` is what
``grooming-detect-score`` computes, by the same code (`scoring.score_messages`):

* input: one row per message, the columns ``grooming-detect-score`` reads from a chat log:
  ``conversation_id``, ``author``, ``text`` (required), ``line`` and ``time`` (``HH:MM``) or
  ``timestamp`` (ISO 8601) (optional). Rows are checked by the chat-log reader's own code
  (`data.chatlog.read_records`): a bad row is refused with its row number and what was expected,
  as a 400 answer when served, never a stack trace.
* inside: the features rebuilt with the settings the model was trained with (lexicons, message
  separator, dropped columns), the estimator, the calibrator fitted on validation, the
  aggregation to authors and conversations, and the tuned threshold.
* output: one row per author (for an author-level model) and one per conversation, with
  ``level`` (``author`` or ``conversation``), ``id``, ``risk`` (calibrated), ``flagged``
  (risk >= threshold), ``threshold`` and ``model_version`` (model name, the train run's id and
  the package version).

The artifact holds the train stage's model folder (``model.json`` and ``model.skops``, or the
transformer's safetensors weights and tokenizer). The pyfunc is logged from code
(``serving_model.py``), so loading it unpickles nothing; the skops file is still loaded against
the project's allow-list.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from grooming_detect.data.chatlog import ChatlogFormatError, read_records
from grooming_detect.models.persistence import load_model

#: The request's columns: required, then optional.
REQUIRED_COLUMNS = ("conversation_id", "author", "text")
OPTIONAL_COLUMNS = ("line", "time", "timestamp")
OUTPUT_COLUMNS = ("level", "id", "risk", "flagged", "threshold", "model_version")
ARTIFACT = "grooming_model"


def package_version() -> str:
    try:
        return version("grooming-detect")
    except PackageNotFoundError:
        return "unknown"


def model_version(meta: dict[str, Any]) -> str:
    """``<model name>@<train run id>`` and the package version: the identity of a score."""
    run = meta.get("run_id") or "local"
    return f"{meta.get('model_name', 'model')}@{run} (grooming-detect {package_version()})"


def request_messages(frame: pd.DataFrame, source: str = "request") -> pd.DataFrame:
    """The messages of a request, checked row by row by the chat-log reader (row numbers
    from 1); `ChatlogFormatError` names the row and what was expected."""
    if not isinstance(frame, pd.DataFrame):
        raise ChatlogFormatError(f"{source}: expected a table of messages, got {type(frame)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ChatlogFormatError(
            f"{source}: missing column(s) {missing}; expected {list(REQUIRED_COLUMNS)} and "
            f"optionally {list(OPTIONAL_COLUMNS)}"
        )
    if frame.empty:
        raise ChatlogFormatError(f"{source}: no messages; expected one row per message")
    for column in ("conversation_id", "author", "text"):
        # A number where a string belongs is a client bug; the reader would turn it into text.
        kinds = frame[column].map(lambda v: v is None or isinstance(v, str) or pd.isna(v))
        if not kinds.all():
            row = int(kinds.to_numpy().argmin()) + 1
            value = frame[column].iloc[row - 1]
            raise ChatlogFormatError(
                f"{source}:{row}: {column}={value!r} is a {type(value).__name__}; expected a string"
            )
    keep = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in frame.columns]
    records = frame[keep].astype(object).where(frame[keep].notna(), None).to_dict("records")
    for record in records:
        if record.get("line") is not None and isinstance(record["line"], float):
            record["line"] = int(record["line"]) if record["line"].is_integer() else record["line"]
    messages, _, _ = read_records(enumerate(records, start=1), source, require_labels=False)
    return messages


def score_request(model: Any, meta: dict[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    """Author and conversation rows for a request (see the module's docstring)."""
    from grooming_detect.scoring import SPLIT, feature_settings, score_messages

    messages = request_messages(frame).assign(split=SPLIT)
    lexicons, separator = feature_settings(meta, None, None)
    threshold = float(meta["threshold"])
    authors, conversations = score_messages(model, meta, messages, lexicons, separator)
    parts = []
    for level, table, key in (
        ("author", authors, "author"),
        ("conversation", conversations, "conversation_id"),
    ):
        if len(table):
            parts.append(
                pd.DataFrame(
                    {
                        "level": level,
                        "id": table[key].astype(str).to_numpy(),
                        "risk": table["score"].astype(float).to_numpy(),
                    }
                )
            )
    result = pd.concat(parts, ignore_index=True)
    result["flagged"] = result["risk"] >= threshold
    result["threshold"] = threshold
    result["model_version"] = model_version(meta)
    return result[list(OUTPUT_COLUMNS)]


class GroomingRiskModel(mlflow.pyfunc.PythonModel):
    """The pyfunc: `score_request` over the model folder in the artifact ``grooming_model``."""

    def load_context(self, context: Any) -> None:
        folder = Path(context.artifacts[ARTIFACT])
        self.model, self.meta = load_model(folder)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        try:
            return score_request(self.model, self.meta, model_input)
        except (ChatlogFormatError, ValueError) as error:
            # A 400 answer with the reason, not a 500 with a stack trace.
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [
            ColSpec("string", "conversation_id"),
            ColSpec("string", "author"),
            ColSpec("string", "text"),
            ColSpec("long", "line", required=False),
            ColSpec("string", "time", required=False),
            ColSpec("string", "timestamp", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec("string", "level"),
            ColSpec("string", "id"),
            ColSpec("double", "risk"),
            ColSpec("boolean", "flagged"),
            ColSpec("double", "threshold"),
            ColSpec("string", "model_version"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


INPUT_EXAMPLE = pd.DataFrame(
    {
        "conversation_id": ["c1", "c1", "c1"],
        "author": ["alice", "bob", "alice"],
        "text": ["hi, how was school today?", "fine, we had a quiz", "cool, good luck"],
        "line": [1, 2, 3],
        "time": ["18:01", "18:02", "18:04"],
    }
)


def log_pyfunc_model(model_dir: Path, metadata: dict[str, Any], name: str = "model") -> str:
    """Log the train stage's model folder as the whole-scorer pyfunc; its model URI."""
    import importlib.metadata

    requirements = [
        f"{package}=={importlib.metadata.version(package)}"
        for package in ("mlflow", "scikit-learn", "skops", "numpy", "scipy", "pandas", "pyarrow")
    ]
    if (model_dir / "transformer").is_dir():
        requirements += [
            f"{package}=={importlib.metadata.version(package)}"
            for package in ("torch", "transformers")
        ]
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(__file__).with_name("serving_model.py")),
        artifacts={ARTIFACT: str(model_dir)},
        signature=signature(),
        input_example=INPUT_EXAMPLE,
        pip_requirements=requirements,
        metadata=metadata,
    )
    return info.model_uri
