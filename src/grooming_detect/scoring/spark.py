"""Scoring on Apache Spark, with the numbers of the single-process scorer.

``grooming-detect-score --engine spark`` and the Python entry points here run the project's own
scoring code (`scoring.messages.score_messages`, the stream's `ConversationState` and the
incremental `ConversationTerms`) inside Spark's pandas functions, so a cluster gives the scores,
flags and warnings one process gives, only for more messages.

Batch (`read_messages`, `score`, `write_scores`):

* Input: CSV or JSONL chat logs (any path or URI Spark reads: a file, a folder, a glob), read
  file by file with the chat-log reader itself (`data.chatlog.read_chatlog_content`), so every
  check and error message is the single-process reader's, naming the file and line; Parquet
  (read by Spark, in parallel) or a DataFrame, checked row by row by the same reader
  (`data.chatlog.read_records`), errors naming the file (or ``dataframe``) and row. Nothing is
  dropped: a bad row fails the job with its row named.
* Groups. An author model's score of an author reads the author's whole history (every message
  in every conversation, and the conversations' other messages for the behavioural features);
  a conversation then scores its highest-scoring author. So the unit of work is an author's
  *history*: the conversations the author wrote in. Authors with the same set of conversations
  share one group (in one-to-one chats both speakers do, so each conversation is scored once);
  each group holds every message of its conversations (``groupBy(...).applyInPandas``), is
  scored by `score_messages`, and keeps the authors whose history it is. A conversation
  belongs to as many groups as its speakers have different histories (at most its number of
  speakers). Grouping by conversation alone, and keeping an author's highest score across
  conversations (`batch.combine_scores` over batches), would score an author who writes in
  several conversations on each conversation apart: not the single-process number. A model of
  conversations (``unit: conversation``) reads one conversation per row: its groups are
  conversations.
* Combining: a conversation's score is the highest score of its authors, as
  `models.units.conversation_scores`; each row is flagged at the model's threshold, as
  `batch.combine_scores` flags it.
* Output (`write_scores`): ``author_scores/`` and ``conversation_scores/`` Parquet folders (the
  CSV files' columns), each file sorted flagged first, then by score, so a reader that filters
  ``flagged`` skips the rest by the files' statistics. Both are written beside the previous
  pair and replace it only when both are complete.
* The model is loaded once per Python worker (`_worker_model`, a cache keyed by the model's
  location; Spark reuses its Python workers), never once per group.

Streaming (`stream`, with `read_jsonl_stream` for a folder of JSONL files or
`parse_json_lines` for Kafka records): per-conversation state in Spark's state store
(``applyInPandasWithState``): the stream's count and warning state (`ConversationState`) and the
incremental model state (`ConversationTerms`, as JSON), so each message's record is the one
``grooming-detect-score --stream`` writes. Only models with an exact incremental form are
streamed (the window method would keep message text in the state store). A conversation idle
for ``idle_timeout`` is closed (its model state dropped, its count and warning kept, as
``--max-open`` closes one) and forgotten after ten times as long.

Privacy: nothing here logs message text, on the driver or in executors; errors name files,
rows, ids and reasons. Spark's state store and checkpoints hold term counts and each author's
last tokens (what exact incremental scores need): treat them as message data.

``pyspark`` is imported inside functions only: importing the scoring command never needs it.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from grooming_detect import progress
from grooming_detect.data import chatlog
from grooming_detect.errors import (
    ChatlogFormatError,
    MissingExtraError,
    UntrustedModelError,
    install_hint,
)
from grooming_detect.models.decision import ScoreCalibrator
from grooming_detect.models.units import reads_text_only
from grooming_detect.scoring.incremental import ConversationTerms, LinearPrefixScorer
from grooming_detect.scoring.messages import (
    SPLIT,
    feature_settings,
    load_scoring_model,
    score_messages,
)
from grooming_detect.scoring.stream import ConversationState, Message, json_message

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

INSTALL_HINT = (
    f"the Spark engine needs pyspark and Java 17: {install_hint('spark')}, and make java "
    "(apt-get install openjdk-17-jre-headless)"
)
#: The message columns every reader produces: the canonical messages (without ``split``), and
#: where each came from (``source``: a file, or ``dataframe``; ``row``: its line or row).
MESSAGE_SCHEMA = (
    "conversation_id string, line long, author string, time string, text string, "
    "source string, row long"
)
MESSAGE_COLUMNS = ("conversation_id", "line", "author", "time", "text")
#: What a history group gives back: one row per (author, conversation) of the authors whose
#: history it is, with the author's score and counts.
SCORED_SCHEMA = (
    "author string, conversation_id string, score double, n_messages long, n_conversations long"
)
AUTHOR_COLUMNS = ("author", "score", "n_messages", "n_conversations", "flagged")
CONVERSATION_COLUMNS = ("conversation_id", "score", "flagged")
#: The formats read, by file suffix.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_GLOBS = {"csv": "*.csv", "jsonl": "*.{jsonl,ndjson}"}
#: Messages per pandas frame handed back to Spark by the file reader (Arrow batches).
ROWS_PER_CHUNK = 100_000
#: Messages per scoring call, about: groups are hashed into buckets of this many input
#: messages, scored together (building features costs a fixed ~0.2 s a call whatever its size).
ROWS_PER_BUCKET = 50_000

#: One record per message, the fields ``--stream`` writes (``reopened`` false rather than absent).
RECORD_SCHEMA = (
    "conversation_id string, line long, author string, k long, score double, "
    "warning boolean, new_warning boolean, reopened boolean"
)
RECORD_COLUMNS = tuple(entry.split()[0] for entry in RECORD_SCHEMA.split(", "))
#: A conversation's state between micro-batches: `ConversationState`'s numbers and the
#: incremental model state as JSON (null once the conversation is closed).
STATE_SCHEMA = "k long, run long, warned_at long, score double, last_line long, terms string"
#: A streamed message: the checked fields, and where it came from (``source``, ``seq``: the file
#: and the message's place in it, or the Kafka partition and offset), which orders a
#: conversation's messages within a micro-batch.
STREAM_MESSAGE_SCHEMA = (
    "conversation_id string, line long, author string, text string, time string, "
    "where string, source string, seq long"
)
#: A closed conversation's count and warning are forgotten after this many idle timeouts (as
#: ``--stream`` remembers ten times ``--max-open`` closed conversations).
FORGET_FACTOR = 10


# -- Spark itself ---------------------------------------------------------------------------------
def _pyspark() -> Any:
    """The pyspark module, or an error saying how to install it and Java."""
    try:
        import pyspark
    except ImportError:
        raise MissingExtraError(INSTALL_HINT) from None
    return pyspark


def java_missing() -> str | None:
    """Why Spark cannot start a JVM here (None when ``java`` is on PATH or under JAVA_HOME)."""
    import os

    home = os.environ.get("JAVA_HOME")
    if home and shutil.which("java", path=os.path.join(home, "bin")):
        return None
    if shutil.which("java"):
        return None
    return f"no java on PATH (nor under JAVA_HOME); {INSTALL_HINT}"


def spark_session(
    master: str | None = None,
    app_name: str = "grooming-detect",
    config: dict[str, str] | None = None,
) -> SparkSession:
    """The active SparkSession, or a new one (`master`, e.g. ``local[2]``; None: what
    spark-submit or the cluster sets, else Spark's ``local[*]``). On a local master the Python
    workers run this interpreter (``PYSPARK_PYTHON``, unless set), so they import the same
    package; on a cluster they run what the cluster configures. `config`: Spark settings
    for a new session."""
    _pyspark()
    missing = java_missing()
    if missing:
        raise MissingExtraError(missing)
    import os

    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    # spark-submit starts the JVM and names its gateway; without it, this process starts a
    # local one. PySpark takes the workers' interpreter from the environment only.
    local = master.startswith("local") if master else "PYSPARK_GATEWAY_PORT" not in os.environ
    if local and "PYSPARK_PYTHON" not in os.environ:
        os.environ["PYSPARK_PYTHON"] = sys.executable
    # The model cache lives in the Python workers: keep them between tasks (Spark's default).
    builder = builder.config("spark.python.worker.reuse", "true")
    for key, value in (config or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def active_session() -> SparkSession | None:
    """The SparkSession already running in this thread (a notebook's, a test's), if any."""
    _pyspark()
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


#: The errors a worker raises for bad input or an unusable model, re-raised on the driver as
#: themselves (one line, exit status 2 from the command) instead of a JVM stack trace.
_WORKER_ERRORS: dict[str, type[Exception]] = {
    "ChatlogFormatError": ChatlogFormatError,
    "ModelFileError": UntrustedModelError,
    "UntrustedModelError": UntrustedModelError,
    "FileNotFoundError": FileNotFoundError,
}
_WORKER_ERROR = re.compile(
    r"^(?:[\w.]+\.)?(" + "|".join(_WORKER_ERRORS) + r"): (.+)$", flags=re.MULTILINE
)


def worker_error(error: BaseException) -> Exception | None:
    """The project error a Python worker raised inside `error` (Spark's wrapper of it), or
    None when it is something else."""
    found = _WORKER_ERROR.findall(str(error))
    if not found:
        return None
    name, message = found[-1]
    return _WORKER_ERRORS[name](message)


def _run(action: Any) -> Any:
    """Run a Spark action, turning a worker's input or model error into that error."""
    try:
        return action()
    except Exception as error:
        translated = worker_error(error)
        if translated is None:
            raise
        raise translated from None


# -- the model in each Python worker -------------------------------------------------------------
@dataclass
class _Loaded:
    model: Any
    meta: dict[str, Any]
    lexicons: dict[str, list[str]]
    separator: str
    scorer: LinearPrefixScorer | None = None
    calibrator: ScoreCalibrator | None = None


#: Models loaded in this process, by location: one load per Python worker, whatever the number
#: of groups or micro-batches it scores.
_MODELS: dict[str, _Loaded] = {}
#: Loads per location in this process (what tests check).
LOADS: Counter[str] = Counter()


def _worker_model(location: str) -> _Loaded:
    """The model at `location`, loaded once per process. Workers show no progress (their
    output goes to executor logs)."""
    loaded = _MODELS.get(location)
    if loaded is None:
        progress.configure(enabled=False)
        model, meta = load_scoring_model(location)
        lexicons, separator = feature_settings(meta, None, None)
        loaded = _Loaded(model, meta, lexicons, separator)
        # The stream's incremental form and calibrator (cheap to build: done once here).
        loaded.scorer = LinearPrefixScorer.from_pipeline(model, separator)
        loaded.calibrator = ScoreCalibrator.from_dict(meta.get("calibration", {"method": "none"}))
        _MODELS[location] = loaded
        LOADS[location] += 1
    return loaded


def _location(model: str) -> str:
    """`model` as executors must see it: a local folder as an absolute path (Python workers
    do not run in the driver's working directory), anything else (an MLflow URI) as given."""
    from pathlib import Path

    folder = Path(model)
    return str(folder.resolve()) if ":/" not in model and folder.exists() else model


# -- reading and checking messages ---------------------------------------------------------------
def input_format(paths: list[str], given: str | None = None) -> str:
    """``csv``, ``jsonl`` or ``parquet``: `given`, else the paths' common suffix."""
    if given is not None:
        if given not in set(FORMATS.values()):
            raise ValueError(f"input format {given!r}: expected csv, jsonl or parquet")
        return given
    found = {FORMATS.get(PurePosixPath(p.rstrip("/")).suffix.lower()) for p in paths}
    if len(found) != 1 or None in found:
        raise ValueError(
            f"{', '.join(paths)}: cannot tell the format from the name; expected paths ending "
            f"in {', '.join(FORMATS)} (all alike), or --input-format csv|jsonl|parquet"
        )
    return str(found.pop())


def read_messages(spark: SparkSession, paths: str | list[str], fmt: str | None = None) -> DataFrame:
    """The messages of chat-log files (paths, folders or globs that Spark reads), checked, as a
    DataFrame of `MESSAGE_SCHEMA`. A CSV or JSONL file is read whole by one task with the
    chat-log reader itself (checks and errors as ``grooming-detect-score FILE``); Parquet is
    read by Spark and checked row by row (`check_messages`)."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    fmt = input_format(paths, fmt)
    if fmt == "parquet":
        frame = _load(paths, lambda: spark.read.parquet(*paths))
        _require_columns(frame, paths)
        if "line" not in frame.columns:
            raise ChatlogFormatError(
                f"{', '.join(paths)}: no line column; expected conversation_id, author, text "
                "and line in a Parquet chat log (the order of a Parquet file's rows is not the "
                "order of the messages once engines rewrite it)"
            )
        from pyspark.sql import functions as F

        located = frame.select(
            *frame.columns,
            F.col("_metadata.file_path").alias("source"),
            (F.col("_metadata.row_index") + 1).alias("row"),
        )
        return check_messages(located)
    reader = spark.read.format("binaryFile").option("pathGlobFilter", _GLOBS[fmt])
    files = _load(paths, lambda: reader.load(paths)).select("path", "content")
    return files.mapInPandas(_read_files, MESSAGE_SCHEMA)


def _load(paths: list[str], load: Any) -> DataFrame:
    """`load()`, a path that does not exist (or holds nothing Spark can read) named in one
    line instead of a JVM stack trace."""
    from pyspark.errors import AnalysisException

    try:
        return load()
    except AnalysisException as error:
        reason = str(error).splitlines()[0]
        kind = FileNotFoundError if "PATH_NOT_FOUND" in reason else ValueError
        raise kind(f"{', '.join(paths)}: {reason}") from None


def _read_files(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """mapInPandas: each file's bytes through the chat-log reader, its messages in chunks."""
    progress.configure(enabled=False)
    for batch in batches:
        for path, content in zip(batch["path"], batch["content"], strict=True):
            messages, _, _ = chatlog.read_chatlog_content(bytes(content), str(path))
            messages = messages.drop(columns="split").assign(source=str(path))
            for start in range(0, len(messages), ROWS_PER_CHUNK):
                yield messages.iloc[start : start + ROWS_PER_CHUNK][
                    [*MESSAGE_COLUMNS, "source", "row"]
                ]


def _require_columns(frame: DataFrame, where: list[str] | str) -> None:
    missing = [c for c in chatlog.REQUIRED if c not in frame.columns]
    if missing:
        name = where if isinstance(where, str) else ", ".join(where)
        raise ChatlogFormatError(
            f"{name}: missing column(s) {missing}; expected {list(chatlog.REQUIRED)} and "
            "optionally line, time, timestamp"
        )


def check_messages(frame: DataFrame) -> DataFrame:
    """A DataFrame of messages (``conversation_id``, ``author``, ``text``; ``line``, ``time``,
    ``timestamp`` optional) checked row by row by the chat-log reader, as `MESSAGE_SCHEMA`.
    Rows are named by ``source`` and ``row`` columns when the frame has them (`read_messages`
    adds them), else as ``dataframe`` and a row id. Every row needs a line when the frame has a
    ``line`` column. Give one: without it, lines are numbered in row order within each batch
    of rows Spark hands over, and a conversation spread over batches is refused for repeating
    its lines."""
    from pyspark.sql import functions as F

    _require_columns(frame, "dataframe")
    if "source" not in frame.columns or "row" not in frame.columns:
        frame = frame.withColumn("source", F.lit("dataframe")).withColumn(
            "row", F.monotonically_increasing_id() + 1
        )
    kept = [c for c in (*chatlog.REQUIRED, "line", "time", "timestamp") if c in frame.columns]
    # Strings throughout: the reader's checks take a record's values as a file gives them.
    as_text = frame.select(
        *[F.col(c).cast("string").alias(c) for c in kept],
        F.col("source").cast("string").alias("source"),
        F.col("row").cast("long").alias("row"),
    )
    return as_text.mapInPandas(partial(_check_rows, "line" in kept), MESSAGE_SCHEMA)


def _check_rows(has_line: bool, batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """mapInPandas: the rows of each source through `chatlog.read_records`."""
    progress.configure(enabled=False)
    columns = (*chatlog.REQUIRED, "line", "time", "timestamp")
    for batch in batches:
        for source, rows in batch.groupby("source", sort=False):
            keep = [c for c in columns if c in rows.columns]
            # Spark's nulls arrive as None, NaN or NA, whatever the column's pandas type.
            records = [
                {k: (None if not isinstance(v, str) and pd.isna(v) else v) for k, v in r.items()}
                for r in rows[keep].astype(object).to_dict("records")
            ]
            numbers = rows["row"].tolist()
            if has_line:
                for number, record in zip(numbers, records, strict=True):
                    if record.get("line") in (None, ""):
                        raise ChatlogFormatError(
                            f"{source}:{number}: line is empty; expected a 1-based integer on "
                            "every row (the frame has a line column)"
                        )
            messages, _, _ = chatlog.read_records(
                zip(numbers, records, strict=True), str(source), require_labels=False
            )
            yield messages.drop(columns="split").assign(source=str(source), row=numbers)[
                [*MESSAGE_COLUMNS, "source", "row"]
            ]


# -- batch scoring -------------------------------------------------------------------------------
@dataclass
class SparkScores:
    """Author and conversation scores as DataFrames (lazy until written or collected), and
    the threshold that flagged them. `release` frees what `score` cached."""

    authors: DataFrame
    conversations: DataFrame
    threshold: float
    unit: str
    grouping: str
    messages: DataFrame
    n_messages: int
    _cached: list[DataFrame] = field(default_factory=list)

    def release(self) -> None:
        for frame in self._cached:
            frame.unpersist()


def score(messages: DataFrame, model: str, checked: bool = False) -> SparkScores:
    """Score a DataFrame of messages with `model` (a model folder every executor can read, or
    an MLflow model URI), as ``grooming-detect-score`` scores a chat log: see the module's
    docstring for the groups. `messages` is `read_messages`' output (`checked`), or any frame
    `check_messages` takes (checked here)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    location = _location(model)
    loaded_model, meta = load_scoring_model(location)
    feature_settings(meta, None, None)  # a model whose settings cannot be used fails here
    threshold = float(meta["threshold"])
    unit = str(meta.get("unit", "author"))
    grouping = grouping_of(loaded_model, meta)
    if not checked:
        messages = check_messages(messages)
    # Read and checked once: the grouping reads the messages twice (their pairs, then them).
    messages = messages.persist(StorageLevel.MEMORY_AND_DISK)
    cached = [messages]
    spark = messages.sparkSession
    n_messages = int(_run(messages.count))
    if n_messages == 0:
        messages.unpersist()
        raise ChatlogFormatError("no messages in the input; expected at least one chat-log row")
    n_buckets = max(2 * spark.sparkContext.defaultParallelism, -(-n_messages // ROWS_PER_BUCKET))
    if unit == "conversation":
        buckets = messages.withColumn(
            "bucket", F.pmod(F.xxhash64("conversation_id"), F.lit(n_buckets))
        )
        scored = buckets.groupBy("bucket").applyInPandas(
            partial(_score_conversations, location), "conversation_id string, score double"
        )
        scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
        authors = spark.createDataFrame(
            [], "author string, score double, n_messages long, n_conversations long"
        )
        conversations = scored
    elif grouping == "author":
        # The author's own messages are all the model reads: one group per author, each
        # message in one group. Two rows of a conversation's line by different authors meet
        # in no group: they are looked for here.
        twice = (
            messages.groupBy("conversation_id", "line")
            .agg(
                F.count(F.lit(1)).alias("n"),
                F.min(F.struct("source", "row")).alias("first"),
                F.max(F.struct("source", "row")).alias("second"),
            )
            .where("n > 1")
            .limit(1)
        )
        for found in _run(twice.collect):
            raise _duplicate_error(
                found["conversation_id"], found["line"], found["first"], found["second"]
            )
        grouped = (
            messages.withColumn("history", F.col("author"))
            .withColumn("author_history", F.col("author"))
            .withColumn("bucket", F.pmod(F.xxhash64("author"), F.lit(n_buckets)))
        )
    else:
        pairs = messages.select("conversation_id", "author").distinct()
        # An author's history: the set of conversations the author wrote in, as a key.
        histories = pairs.groupBy("author").agg(
            F.sha2(F.to_json(F.array_sort(F.collect_list("conversation_id"))), 256).alias(
                "author_history"
            )
        )
        group_conversations = (
            pairs.join(histories, "author")
            .select(F.col("author_history").alias("history"), "conversation_id")
            .distinct()
        )
        grouped = (
            messages.join(group_conversations, "conversation_id")
            .join(histories, "author")
            .withColumn("bucket", F.pmod(F.xxhash64("history"), F.lit(n_buckets)))
        )
    if unit != "conversation":
        scored = grouped.groupBy("bucket").applyInPandas(
            partial(_score_histories, location), SCORED_SCHEMA
        )
        scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
        # Every row of an author holds the same numbers: max picks them.
        authors = scored.groupBy("author").agg(
            F.max("score").alias("score"),
            F.max("n_messages").alias("n_messages"),
            F.max("n_conversations").alias("n_conversations"),
        )
        conversations = scored.groupBy("conversation_id").agg(F.max("score").alias("score"))
    flag = F.col("score") >= F.lit(threshold)
    # One row per author and per conversation, kept: written, then counted.
    authors = authors.withColumn("flagged", flag).select(*AUTHOR_COLUMNS)
    conversations = conversations.withColumn("flagged", flag).select(*CONVERSATION_COLUMNS)
    if unit != "conversation":
        authors = authors.persist(StorageLevel.MEMORY_AND_DISK)
        conversations = conversations.persist(StorageLevel.MEMORY_AND_DISK)
        cached += [authors, conversations]
    cached.append(scored)
    return SparkScores(
        authors=authors,
        conversations=conversations,
        threshold=threshold,
        unit=unit,
        grouping=grouping,
        messages=messages,
        n_messages=n_messages,
        _cached=cached,
    )


def grouping_of(model: Any, meta: dict[str, Any]) -> str:
    """What a scoring group holds for `model`: ``conversation`` (a conversation model),
    ``author`` (an author model that reads the author's own text only: the default TF-IDF
    baselines; their documents and counts need nothing else), or ``history`` (every other
    author model: the author's conversations whole, see the module's docstring)."""
    unit = str(meta.get("unit", "author"))
    if unit == "conversation":
        return "conversation"
    reads = meta.get("input") or unit
    return "author" if reads == "author" and reads_text_only(model) else "history"


def _ordered(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """A bucket's messages sorted by `keys` (ending in conversation_id and line), refusing a
    (conversation_id, line) given twice across files (each file's reader refused it within
    the file)."""
    frame = frame.sort_values(keys, kind="stable", ignore_index=True)
    twice = frame.duplicated(keys, keep=False)
    if twice.any():
        first, second = frame[twice].head(2).itertuples(index=False)
        raise _duplicate_error(second.conversation_id, second.line, first, second)
    return frame


def _duplicate_error(
    conversation_id: str, line: int, first: Any, second: Any
) -> ChatlogFormatError:
    """The error for a conversation's line in two rows (`first`, `second`: their ``source``
    and ``row``)."""
    return ChatlogFormatError(
        f"{second.source}:{second.row}: (conversation_id={conversation_id!r}, line={line}) "
        f"duplicates {first.source}:{first.row}; expected each line of a conversation once "
        "across the input (a conversation whose rows are in several files needs a line column)"
    )


def _codes(groups: pd.Series, ids: pd.Series) -> pd.Series:
    """Each (group, id) as a fixed-width code whose order is that of (group, id): one
    `score_messages` call scores many groups apart (no id is shared between two groups), and
    within a group every sort and first appearance is the one its own ids give."""
    pairs = pd.MultiIndex.from_arrays([groups, ids])
    ranks = pairs.unique().sort_values().get_indexer(pairs)
    return pd.Series([f"{rank:012d}" for rank in ranks], index=groups.index)


def _score_histories(location: str, key: tuple[Any, ...], frame: pd.DataFrame) -> pd.DataFrame:
    """applyInPandas: the histories of a bucket, each scored on every message of its
    conversations as if alone (`_codes`), and the authors whose history it is kept."""
    loaded = _worker_model(location)
    frame = _ordered(frame, ["history", "conversation_id", "line"])
    frame["author_code"] = _codes(frame["history"], frame["author"])
    coded = pd.DataFrame(
        {
            "conversation_id": _codes(frame["history"], frame["conversation_id"]),
            "line": frame["line"],
            "author": frame["author_code"],
            "time": frame["time"],
            "text": frame["text"],
            "split": SPLIT,
        }
    )
    authors, _ = score_messages(loaded.model, loaded.meta, coded, loaded.lexicons, loaded.separator)
    own = frame["author_history"] == frame["history"]
    pairs = frame.loc[own, ["author", "conversation_id", "author_code"]].drop_duplicates()
    kept = authors[["author", "score", "n_messages", "n_conversations"]].rename(
        columns={"author": "author_code"}
    )
    out = pairs.merge(kept, on="author_code", how="left", validate="many_to_one")
    out = out.astype({"score": "float64", "n_messages": "int64", "n_conversations": "int64"})
    return out[["author", "conversation_id", "score", "n_messages", "n_conversations"]]


def _score_conversations(location: str, key: tuple[Any, ...], frame: pd.DataFrame) -> pd.DataFrame:
    """applyInPandas: the conversations of a bucket, scored by a conversation model (which
    reads each conversation alone)."""
    loaded = _worker_model(location)
    frame = _ordered(frame, ["conversation_id", "line"])
    _, conversations = score_messages(
        loaded.model,
        loaded.meta,
        frame[list(MESSAGE_COLUMNS)].assign(split=SPLIT),
        loaded.lexicons,
        loaded.separator,
    )
    return conversations[["conversation_id", "score"]].astype({"score": "float64"})


def write_scores(scores: SparkScores, out: str) -> dict[str, int]:
    """Write ``author_scores/`` and ``conversation_scores/`` (Parquet) under `out` (a path or
    URI), the previous pair replaced only once both are written; counts of what was written.
    Frees what `score` cached."""
    from pyspark.sql import functions as F

    spark = scores.messages.sparkSession
    # Hadoop's file system API (the JVM's, so any URI Spark writes to): renames and deletes.
    jvm: Any = spark._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path
    fs = hadoop_path(out).getFileSystem(spark._jsc.hadoopConfiguration())
    staging = f"{out.rstrip('/')}/.staging-{uuid.uuid4().hex}"
    tables = {"author_scores": scores.authors, "conversation_scores": scores.conversations}
    try:
        for name, table in tables.items():
            ordered = table.sortWithinPartitions(F.desc("flagged"), F.desc("score"))
            _run(lambda o=ordered, n=name: o.write.parquet(f"{staging}/{n}"))
        counts = _run(lambda: _counts(scores))
        for name in tables:
            target = hadoop_path(f"{out.rstrip('/')}/{name}")
            if fs.exists(target):
                fs.delete(target, True)
            if not fs.rename(hadoop_path(f"{staging}/{name}"), target):
                raise OSError(f"{out}: could not move {name} into place")
    finally:
        fs.delete(hadoop_path(staging), True)
        scores.release()
    log.info(
        "scored %d messages on Spark: %d authors (%d flagged), %d conversations (%d flagged) "
        "at threshold %.4f",
        counts["messages"],
        counts["authors"],
        counts["authors_flagged"],
        counts["conversations"],
        counts["conversations_flagged"],
        scores.threshold,
    )
    return counts


def _counts(scores: SparkScores) -> dict[str, int]:
    from pyspark.sql import functions as F

    counts = {"messages": scores.n_messages}
    for name, table in (("authors", scores.authors), ("conversations", scores.conversations)):
        row = table.agg(
            F.count(F.lit(1)).alias("n"), F.sum(F.col("flagged").cast("long")).alias("flagged")
        ).first()
        counts[name] = int(row["n"]) if row else 0
        counts[f"{name}_flagged"] = int(row["flagged"] or 0) if row else 0
    return counts


def score_path(
    spark: SparkSession, paths: str | list[str], model: str, out: str, fmt: str | None = None
) -> dict[str, int]:
    """``grooming-detect-score --engine spark``: read, score and write (see `write_scores`)."""
    messages = read_messages(spark, paths, fmt)
    return write_scores(score(messages, model, checked=True), out)


# -- streaming -----------------------------------------------------------------------------------
def read_jsonl_stream(
    spark: SparkSession, folder: str, max_files_per_trigger: int | None = None
) -> DataFrame:
    """A streaming DataFrame of the messages in the JSONL files that arrive in `folder` (oldest
    first; at most `max_files_per_trigger` per micro-batch), each line checked as ``--stream``
    checks standard input (`stream.stdin_messages`), errors naming the file and line; a file's
    messages keep their order (``source``, ``seq``)."""
    from pyspark.sql import functions as F

    reader = spark.readStream.option("wholetext", "true").option("pathGlobFilter", _GLOBS["jsonl"])
    if max_files_per_trigger is not None:
        reader = reader.option("maxFilesPerTrigger", str(max_files_per_trigger))
    files = reader.text(folder).select("value", F.col("_metadata.file_path").alias("source"))
    return files.mapInPandas(_stream_files, STREAM_MESSAGE_SCHEMA)


def _stream_files(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    import io

    from grooming_detect.scoring.stream import stdin_messages

    for batch in batches:
        for text, source in zip(batch["value"], batch["source"], strict=True):
            messages = list(stdin_messages(io.StringIO(text, newline=""), name=str(source)))
            yield _message_rows(messages, str(source), range(1, len(messages) + 1))


def parse_json_lines(raw: DataFrame) -> DataFrame:
    """Messages from a streaming DataFrame of JSON lines: ``value`` (one message, as a line of
    ``--stream``'s standard input), ``source`` and ``seq`` (their order: with Kafka, the
    topic-partition and offset, a producer keying records by conversation_id keeping a
    conversation in one partition). Errors name ``source@seq``."""
    return raw.select("value", "source", "seq").mapInPandas(_parse_values, STREAM_MESSAGE_SCHEMA)


def _parse_values(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        for source, rows in batch.groupby("source", sort=False):
            seqs = rows["seq"].tolist()
            messages = [
                json_message(value, f"{source}@{seq}")
                for value, seq in zip(rows["value"], seqs, strict=True)
            ]
            yield _message_rows(messages, str(source), seqs)


def _message_rows(messages: list[Message], source: str, seqs: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "conversation_id": [m.conversation_id for m in messages],
            "line": pd.array([m.line for m in messages], dtype="Int64"),
            "author": [m.author for m in messages],
            "text": [m.text for m in messages],
            "time": [m.time for m in messages],
            "where": [m.where for m in messages],
            "source": source,
            "seq": pd.array(list(seqs), dtype="int64"),
        }
    )


def stream(
    messages: DataFrame,
    model: str,
    threshold: str | None = None,
    patience: int | None = None,
    idle_timeout_s: float | None = None,
) -> DataFrame:
    """Each message's record as ``grooming-detect-score --stream`` writes it, from a streaming
    DataFrame of messages (`read_jsonl_stream`, `parse_json_lines`): a streaming DataFrame of
    `RECORD_SCHEMA` in append mode. `threshold` and `patience` as ``--threshold`` and
    ``--patience``. A conversation idle for `idle_timeout_s` seconds of processing time is
    closed (None: never)."""
    from pyspark.sql.streaming.state import GroupStateTimeout

    from grooming_detect.scoring.stream import warning_policy

    location = _location(model)
    loaded_model, meta = load_scoring_model(location)
    _, separator = feature_settings(meta, None, None)
    if LinearPrefixScorer.from_pipeline(loaded_model, separator) is None:
        raise ValueError(
            f"{model}: the Spark stream scores models with an exact incremental form (TF-IDF + "
            "logistic regression); this one needs the window method, which would hold message "
            "text in Spark's state store: stream it with grooming-detect-score --stream"
        )
    warn_at, warn_patience = warning_policy(threshold, patience, meta, location)
    if isinstance(warn_patience, bool) or warn_patience < 1:
        raise ValueError(f"--patience {warn_patience}: expected a positive whole number")
    idle_ms = None if idle_timeout_s is None else int(idle_timeout_s * 1000)
    if idle_ms is not None and idle_ms < 1:
        raise ValueError(f"idle timeout {idle_timeout_s}: expected a positive number of seconds")
    function = partial(_stream_conversation, location, warn_at, warn_patience, idle_ms)
    return messages.groupBy("conversation_id").applyInPandasWithState(
        function,
        RECORD_SCHEMA,
        STATE_SCHEMA,
        "append",
        GroupStateTimeout.NoTimeout if idle_ms is None else GroupStateTimeout.ProcessingTimeTimeout,
    )


def _stream_conversation(
    location: str,
    threshold: float,
    patience: int,
    idle_ms: int | None,
    key: tuple[Any, ...],
    frames: Iterator[pd.DataFrame],
    state: Any,
) -> Iterator[pd.DataFrame]:
    """applyInPandasWithState: one conversation's messages of a micro-batch, in order."""
    if state.hasTimedOut:
        k, run, warned_at, last_score, last_line, terms = state.get
        if terms is None or idle_ms is None:
            state.remove()  # closed long enough: forgotten
        else:
            # Closed, as --max-open closes a conversation: what the model read is dropped,
            # the count and a raised warning are kept for a reopening.
            state.update((k, run, warned_at, last_score, last_line, None))
            state.setTimeoutDuration(FORGET_FACTOR * idle_ms)
        return
    frame = pd.concat(list(frames), ignore_index=True).sort_values(
        ["source", "seq"], kind="stable", ignore_index=True
    )
    if frame.empty:
        return
    loaded = _worker_model(location)
    assert loaded.scorer is not None and loaded.calibrator is not None
    unit = str(loaded.meta.get("unit", "author"))
    conversation = ConversationState()
    terms = ConversationTerms()
    reopened = False
    if state.exists:
        k, run, warned_at, last_score, last_line, saved = state.get
        conversation = ConversationState(k, run, warned_at, last_score, last_line)
        if saved is None:
            reopened = True
        else:
            terms = ConversationTerms.from_json(saved)
    steps, raw = [], []
    for cid, line, author, text, time, where in zip(
        frame["conversation_id"],
        frame["line"],
        frame["author"],
        frame["text"],
        frame["time"],
        frame["where"],
        strict=True,
    ):
        message = Message(str(cid), None if pd.isna(line) else int(line), author, text, time, where)
        steps.append((message, conversation.count(message)))
        raw.append(terms.add(loaded.scorer, unit, author, text))
    scores = loaded.calibrator.transform(np.asarray(raw, dtype=float))
    records = [
        conversation.record(message, k, reopened and index == 0, float(value), threshold, patience)
        for index, ((message, k), value) in enumerate(zip(steps, scores, strict=True))
    ]
    state.update(
        (
            conversation.k,
            conversation.run,
            conversation.warned_at,
            conversation.score,
            conversation.last_line,
            terms.to_json(),
        )
    )
    if idle_ms is not None:
        state.setTimeoutDuration(idle_ms)
    out = pd.DataFrame.from_records([{"reopened": False, **record} for record in records])
    yield out[list(RECORD_COLUMNS)]


def run_stream(
    spark: SparkSession,
    folder: str,
    model: str,
    out: str,
    checkpoint: str,
    threshold: str | None = None,
    patience: int | None = None,
    idle_timeout_s: float | None = None,
    available_now: bool = False,
) -> None:
    """``grooming-detect-score --engine spark --stream``: JSONL files arriving in `folder`
    scored into JSON-lines files under `out` (the records ``--stream`` writes), state and
    progress in `checkpoint`; with `available_now`, what is there now, then stop."""
    records = stream(read_jsonl_stream(spark, folder), model, threshold, patience, idle_timeout_s)
    writer = (
        records.writeStream.format("json")
        .option("path", out)
        .option("checkpointLocation", checkpoint)
        .outputMode("append")
    )
    if available_now:
        # Spark 4.0 keeps running empty micro-batches under availableNow when a state timeout
        # is set; a run that stops at the end of its input needs none of them.
        spark.conf.set("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        writer = writer.trigger(availableNow=True)
    query = writer.start()
    _run(query.awaitTermination)
    log.info("stream stopped: records in %s, state and progress in %s", out, checkpoint)


__all__ = [
    "SparkScores",
    "active_session",
    "check_messages",
    "parse_json_lines",
    "read_jsonl_stream",
    "read_messages",
    "run_stream",
    "score",
    "score_path",
    "spark_session",
    "stream",
    "write_scores",
]
