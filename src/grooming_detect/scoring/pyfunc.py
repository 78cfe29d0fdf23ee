"""The whole scorer as an MLflow pyfunc model: messages in, calibrated risk and flags out.

What a service gets from ``mlflow.pyfunc.load_model`` or ``mlflow models serve`` is what
``grooming-detect-score`` computes, by the same code (`scoring.messages.score_messages`):

* input: one row per message, the columns ``grooming-detect-score`` reads from a chat log:
  ``conversation_id``, ``author``, ``text`` (required), ``line`` and ``time`` (``HH:MM``) or
  ``timestamp`` (ISO 8601) (optional). Rows are checked by the chat-log reader's own code
  (`data.chatlog.read_records`): a bad row is refused with its row number and what was expected,
  as a 400 answer when served, never a stack trace.
* inside: the features rebuilt with the settings the model was trained with (lexicons, message
  separator, dropped columns), the estimator, the calibrator (fitted on validation or out of
  fold), the aggregation to authors and conversations, and the tuned threshold.
* output: one row per author (for an author-level model) and one per conversation, with
  ``level`` (``author`` or ``conversation``), ``id``, ``risk`` (calibrated), ``flagged``
  (risk >= threshold), ``threshold`` and ``model_version`` (model name, the train run's id and
  the package version).

The artifact holds the train stage's model folder (``model.json`` and ``model.skops``, or the
transformer's safetensors weights and tokenizer). The pyfunc is logged from code
(``pyfunc_model.py``), so loading it unpickles nothing; the skops file is still loaded against
the project's allow-list.
"""

from __future__ import annotations

import logging
import math
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from grooming_detect import __version__, tracking
from grooming_detect.data.chatlog import REQUIRED, ChatlogFormatError, read_records
from grooming_detect.models.persistence import ARTIFACT, load_model, shown

#: The request's columns: the chat-log reader's required ones, then the optional ones that
#: describe a message (labels and splits have no place in a request).
REQUIRED_COLUMNS = REQUIRED
OPTIONAL_COLUMNS = ("line", "time", "timestamp")
OUTPUT_COLUMNS = ("level", "id", "risk", "flagged", "threshold", "model_version")
#: The most messages one request may hold (a larger batch belongs in grooming-detect-score).
MAX_REQUEST_ROWS = 100_000
#: The largest line number a request may give: the canonical tables store lines as int64.
MAX_LINE = 2**63 - 1

log = logging.getLogger(__name__)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _line_number(value: Any, where: str) -> int | str:
    """A request's ``line`` as the chat-log reader takes it: an integer in [1, `MAX_LINE`],
    from a number (JSON) or a string of ASCII digits (JSON, or any CSV cell); a blank string
    stays blank, for the reader to name. Anything else is an error naming `where` and the
    value; nothing here lets a value through that int() or the int64 table cannot take."""
    if isinstance(value, str):
        digits = value.strip()
        if not digits:
            return digits
        # isdigit() alone passes "²", which int() refuses; int() reads "٣" (Arabic-Indic 3).
        number = (
            int(digits)
            if digits.isascii() and digits.isdecimal() and len(digits) <= len(str(MAX_LINE))
            else None
        )
    elif isinstance(value, bool):
        number = None  # true is not line 1
    elif isinstance(value, Integral):
        number = int(value)  # any size: an int of 5,000 digits has no float
    elif isinstance(value, Real):
        number = int(float(value)) if float(value).is_integer() else None  # not nan, not inf
    else:
        raise ChatlogFormatError(
            f"{where}: line={shown(value)} is a {type(value).__name__}; expected a 1-based integer"
        )
    if number is None or not 1 <= number <= MAX_LINE:
        raise ChatlogFormatError(f"{where}: line={shown(value)}; expected a 1-based integer")
    return number


def model_version(meta: dict[str, Any]) -> str:
    """``<model name>@<train run id>`` and the package version: the identity of a score."""
    run = meta.get("run_id") or "local"
    return f"{meta.get('model_name', 'model')}@{run} (grooming-detect {__version__})"


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
    if len(frame) > MAX_REQUEST_ROWS:
        raise ChatlogFormatError(
            f"{source}: {len(frame):,} messages; at most {MAX_REQUEST_ROWS:,} per request (score "
            "larger batches with grooming-detect-score)"
        )
    expected = {"conversation_id": str, "author": str, "text": str, "time": str, "timestamp": str}
    for column, kind in expected.items():
        if column not in frame.columns:
            continue
        # A number (or a list) where a string belongs is a client bug; the reader would
        # quietly turn it into text.
        wrong = [not (_missing(v) or isinstance(v, kind)) for v in frame[column]]
        if any(wrong):
            row = wrong.index(True) + 1
            value = frame[column].iloc[row - 1]
            raise ChatlogFormatError(
                f"{source}:{row}: {column}={shown(value)} is a {type(value).__name__}; "
                "expected a string"
            )
    keep = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in frame.columns]
    records = [
        {k: (None if _missing(v) else v) for k, v in record.items()}
        for record in frame[keep].astype(object).to_dict("records")
    ]
    for row, record in enumerate(records, start=1):
        if record.get("line") is not None:
            record["line"] = _line_number(record["line"], f"{source}:{row}")
    messages, _, _ = read_records(enumerate(records, start=1), source, require_labels=False)
    return messages


def score_request(model: Any, meta: dict[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    """Author and conversation rows for a request (see the module's docstring)."""
    from grooming_detect.scoring.messages import SPLIT, feature_settings, score_messages

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


class GroomingRiskModel(PythonModel):
    """The pyfunc: `score_request` over the model folder in the artifact ``grooming_model``."""

    def load_context(self, context: Any) -> None:
        folder = Path(context.artifacts[ARTIFACT])
        self.model, self.meta = load_model(folder)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        try:
            return score_request(self.model, self.meta, model_input)
        except ChatlogFormatError as error:
            # The client's mistake: a 400 answer with the row and the reason.
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        except Exception:
            # Ours: a 500 without a stack trace in the answer; the trace goes to the server log.
            log.exception("scoring a request failed")
            raise MlflowException(
                "internal error while scoring the request; see the server log",
                error_code=INTERNAL_ERROR,
            ) from None


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inputs = Schema(
        [
            ColSpec("string", "conversation_id"),
            ColSpec("string", "author"),
            ColSpec("string", "text"),
            # Any type: a typed column would let MLflow cast 1.5 or true to 1 (long) or refuse
            # integers (double, and string: an int64 column passed to predict in process). The
            # price: MLflow's server reads text/csv only when every column has a pandas type,
            # so it answers every CSV request 400 (tests/scoring/test_serving.py records it).
            ColSpec(AnyType(), "line", required=False),
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


def requirements(transformer: bool) -> list[str]:
    """Pinned requirements of the scorer: grooming-detect's own dependencies as installed (and
    the transformer extra's for a transformer model)."""
    import importlib.metadata
    import re as _re

    names = []
    for spec in importlib.metadata.requires("grooming-detect") or []:
        name, _, marker = spec.partition(";")
        if "extra" in marker and not (transformer and "transformer" in marker):
            continue
        names.append(_re.split(r"[<>=!~\[ ]", name.strip(), maxsplit=1)[0])
    pinned = []
    for name in dict.fromkeys(names):
        try:
            # Without a local version label (torch's "+cpu"), which no index serves.
            installed = importlib.metadata.version(name).split("+")[0]
            pinned.append(f"{name}=={installed}")
        except importlib.metadata.PackageNotFoundError:
            pinned.append(name)
    return pinned


def log_pyfunc_model(
    model_dir: Path, metadata: dict[str, Any], name: str = "model", needs_torch: bool = False
) -> str:
    """Log the train stage's model folder as the whole-scorer pyfunc; its model URI.
    `needs_torch`: the model embeds text with a sentence encoder (the transformer extra's
    requirements travel with it, as with a fine-tuned transformer)."""
    package = Path(__file__).parents[1]  # grooming_detect/
    return tracking.log_pyfunc_model(
        name=name,
        python_model=Path(__file__).with_name("pyfunc_model.py"),
        artifacts={ARTIFACT: str(model_dir)},
        # The package travels with the model: any environment manager can load it.
        code_paths=[str(package)],
        signature=signature(),
        input_example=INPUT_EXAMPLE,
        pip_requirements=requirements(
            transformer=needs_torch or (model_dir / "transformer").is_dir()
        ),
        metadata=metadata,
    )
