"""``grooming-detect-score --stream``: risk of each conversation as its messages arrive.

Reads a chat log (CSV or JSONL, in the order of its rows, which should be time order) or JSON
lines on standard input (``-``: one message per line, as they happen), and writes one JSON line
per message: the conversation's calibrated risk after it, and whether the conversation is in a
warning (the risk has reached the threshold in ``patience`` consecutive scored steps; once raised,
a warning stays raised). The risk after message ``k`` depends on messages ``1..k`` only.

* A TF-IDF + logistic-regression model (the default) is scored exactly and incrementally: a
  conversation holds the term counts of what it has read, and each message costs its own length
  (`grooming_detect.scoring.incremental`).
* A model that scores each message and pools the scores (``embedding_logreg``'s default design,
  ``sentinel``) is scored exactly and incrementally too: a conversation holds each author's
  running message scores, and each message is embedded once
  (`grooming_detect.scoring.score_streams`).
* Any other model re-reads the conversation's last ``window`` messages every ``step`` messages
  (between steps the last risk stands); state per conversation is those messages.

At most ``max_open`` conversations are held; the least recently active is closed when another
opens (its state dropped, counted on standard error at the end).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from grooming_detect.data import chatlog
from grooming_detect.io import atomic_path, read_json, write_with
from grooming_detect.models.decision import ScoreCalibrator
from grooming_detect.scoring.incremental import ConversationStreams, prefix_scorer

log = logging.getLogger(__name__)

#: Closed conversations whose count and warning are remembered, as a multiple of --max-open
#: (three numbers each; the oldest are forgotten first).
CLOSED_MEMORY_FACTOR = 10
#: Messages read from a file before the window method scores their windows together.
FILE_BATCH = 2_000


@dataclass(frozen=True)
class Message:
    """One incoming message: `line` None when the input numbers no lines (the k-th message of
    its conversation is then line k); `where` names its input line for errors."""

    conversation_id: str
    line: int | None
    author: str
    text: str
    time: str | None = None
    where: str = ""


def stdin_messages(handle: IO[str], name: str = "<stdin>") -> Iterator[Message]:
    """Messages from JSON lines (``conversation_id``, ``author``, ``text``, optional ``line``,
    ``time`` or ``timestamp``), checked one by one; an error names the input line and what was
    expected. Nothing is kept from one line to the next (a live stream runs for ever), and no
    line is read past the longest a record can be (`chatlog.max_record_chars`)."""
    limit = chatlog.max_record_chars(chatlog.MAX_MESSAGE_CHARS) or 0
    number = 0
    while raw := handle.readline(limit + 2):  # a line of `limit` and its "\r\n"
        number += 1
        where = f"{name}:{number}"
        if len(raw.rstrip("\r\n")) > limit:
            raise chatlog.ChatlogFormatError(
                f"{where}: a line of more than {limit:,} characters, longer than any record "
                f"with a text of at most {chatlog.MAX_MESSAGE_CHARS:,} characters can be; "
                "expected one JSON record per line"
            )
        if number == 1:
            raw = raw.removeprefix("\ufeff")  # a byte-order mark before the first record
        if not raw.strip():
            continue
        yield json_message(raw, where)


def json_message(raw: str, where: str) -> Message:
    """One JSON line as a `Message` (see `stdin_messages`; the Spark stream reads its lines
    with it too): the chat-log reader's checks of a JSON line (`chatlog.parse_json_record`,
    `chatlog.check_fields`), then stricter types."""
    record = chatlog.parse_json_record(raw, where)
    chatlog.check_fields(record, where)
    ids = {}
    for key in ("conversation_id", "author"):
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
            raise chatlog.ChatlogFormatError(
                f"{where}: {key} {value!r:.80}; expected a non-empty string"
            )
        ids[key] = str(value).strip()
    text = record["text"]
    if text is not None and not isinstance(text, str):
        raise chatlog.ChatlogFormatError(f"{where}: text {text!r:.80}; expected a string")
    if text is not None and len(text) > chatlog.MAX_MESSAGE_CHARS:
        raise chatlog.ChatlogFormatError(
            f"{where}: text of {len(text):,} characters; at most "
            f"{chatlog.MAX_MESSAGE_CHARS:,} are read"
        )
    raw_line = record.get("line")
    line = None
    if raw_line not in (None, ""):
        line = None if isinstance(raw_line, bool) else chatlog.line_number(str(raw_line).strip())
        if line is None:
            raise chatlog.ChatlogFormatError(
                f"{where}: line={raw_line!r:.40}; expected a 1-based integer"
            )
    return Message(
        ids["conversation_id"],
        line,
        ids["author"],
        text or "",
        chatlog.time_of(record, where),
        where,
    )


def file_messages(path: Path) -> Iterator[Message]:
    """Messages of a chat-log file (checked whole by the chat-log reader), in row order."""
    messages, _, report = chatlog.read_chatlog(path, require_labels=False)
    log.info("%s: %d rows read (%d empty texts kept)", path, report.rows, report.empty_texts)
    for row, (cid, line, author, text, time) in enumerate(
        zip(
            messages["conversation_id"].tolist(),
            messages["line"].tolist(),
            messages["author"].tolist(),
            messages["text"].tolist(),
            messages["time"].tolist(),
            strict=True,
        )
    ):
        yield Message(cid, int(line), author, text, time, f"{path}: row {row + 1}")


@dataclass(slots=True)
class ConversationState:
    """A conversation's count and warning state (and, for the window method, its last messages).

    The same object serves the conversation from its first message until it is forgotten:
    closing it drops only what the model had read (`recent`), so a warning raised by records
    still to be written in the batch is there when it reopens. The Spark stream
    (`grooming_detect.scoring.spark`) keeps one per conversation in its state store and applies
    the same `count` and `record`."""

    k: int = 0
    run: int = 0
    warned_at: int | None = None
    score: float | None = None
    last_line: int | None = None
    # The window method's last messages while open (None while closed, and for the incremental
    # method, whose model state is held by `ConversationStreams`).
    recent: deque[Message] | None = None

    def count(self, message: Message) -> int:
        """Count `message` in the conversation; its number ``k``. Refuses a line number that
        does not follow the last one."""
        if message.line is not None:
            if self.last_line is not None and message.line <= self.last_line:
                raise chatlog.ChatlogFormatError(
                    f"{message.where}: line={message.line} of conversation "
                    f"{message.conversation_id!r} after its line {self.last_line}; expected lines "
                    "in increasing order (messages in the order they were sent)"
                )
            self.last_line = message.line
        self.k += 1
        return self.k

    def record(
        self,
        message: Message,
        k: int,
        reopened: bool,
        score: float | None,
        threshold: float,
        patience: int,
    ) -> dict[str, Any]:
        """The warning rule, and the output record of the `k`-th message: `score` None when it
        is not scored (the window method between steps: the last risk stands). A warning is
        raised when the risk has reached `threshold` in `patience` consecutive scored steps,
        and stays raised. Records are written in input order, so the state here is the one
        left by the conversation's earlier messages."""
        if reopened:
            # What the model had read is gone: the run and the last risk start again (the
            # count and a raised warning are kept).
            self.run, self.score = 0, None
        if score is not None:
            self.score = score
            self.run = self.run + 1 if score >= threshold else 0
            if self.warned_at is None and self.run >= patience:
                self.warned_at = k
        record = {
            "conversation_id": message.conversation_id,
            "line": k if message.line is None else message.line,
            "author": message.author,
            "k": k,
            "score": None if self.score is None else round(self.score, 6),
            "warning": self.warned_at is not None,
            "new_warning": self.warned_at == k,
        }
        if reopened:
            record["reopened"] = True
        return record


@dataclass(frozen=True, slots=True)
class _Step:
    """A message as it was read: its conversation's count, whether it reopened it, and the
    window to score at it. Read for a whole batch before any of its records is written, so a
    record takes these, not the state, which later messages of the batch have moved on."""

    message: Message
    state: ConversationState
    k: int
    reopened: bool
    window: list[Message] | None  # the window method at a step; None otherwise


class RiskStream:
    """The warning policy over a model's per-message risk, conversation by conversation.

    A conversation closed to stay within `max_open` and seen again is *reopened*: its message
    count and any warning it raised are kept (a raised warning stays raised), but what the
    model had read is gone, so its risk starts again from that message; the first record after
    it says ``"reopened": true``.

    Records are the same whatever the batch (`run`): a batch is read first (counts, windows,
    opening and closing), then scored, then its records are written in input order, each from
    what was read at its own message and the warning state its earlier records left."""

    def __init__(
        self,
        model: Any,
        meta: dict[str, Any],
        lexicons: dict[str, list[str]],
        separator: str,
        threshold: float,
        window: int = 50,
        step: int = 1,
        patience: int = 1,
        max_open: int = 100_000,
    ) -> None:
        for name, value in (
            ("window", window),
            ("step", step),
            ("patience", patience),
            ("max-open", max_open),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name} {value}: expected a positive whole number")
        if not (isinstance(threshold, float | int) and math.isfinite(threshold)):
            raise ValueError(f"--threshold {threshold}: expected a finite number")
        self.model, self.meta = model, meta
        self.lexicons, self.separator = lexicons, separator
        self.threshold, self.window, self.step, self.patience = threshold, window, step, patience
        self.max_open = max_open
        self.calibrator = ScoreCalibrator.from_dict(meta.get("calibration", {"method": "none"}))
        scorer = prefix_scorer(model, separator)
        unit = str(meta.get("unit", "author"))
        self.streams = None if scorer is None else ConversationStreams(scorer, unit, max_open)
        self.method = "window" if scorer is None else "incremental"
        self._open: OrderedDict[str, ConversationState] = OrderedDict()
        # Closed conversations, kept for their count and warning should they reopen (up to
        # CLOSED_MEMORY_FACTOR x max_open, the oldest forgotten first).
        self._closed: OrderedDict[str, ConversationState] = OrderedDict()
        self.closed = 0
        self.reopened = 0

    def _read(self, message: Message) -> _Step:
        """Count the message in its conversation, opened (or reopened) when needed, and take
        its window when the window method scores at it; refuses a line number that does not
        follow the last one."""
        conversation_id = message.conversation_id
        state = self._open.get(conversation_id)
        reopened = False
        if state is None:
            state = self._closed.pop(conversation_id, None)
            if len(self._open) >= self.max_open:
                closed_id, closed = self._open.popitem(last=False)
                closed.recent = None
                self._closed[closed_id] = closed
                if len(self._closed) > CLOSED_MEMORY_FACTOR * self.max_open:
                    self._closed.popitem(last=False)
                self.closed += 1
            if state is None:
                state = ConversationState()
            else:
                reopened = True
                self.reopened += 1
            self._open[conversation_id] = state
        else:
            self._open.move_to_end(conversation_id)
        k = state.count(message)
        window = None
        if self.streams is None:
            if state.recent is None:
                state.recent = deque(maxlen=self.window)
            state.recent.append(message)
            if k % self.step == 0:
                window = list(state.recent)
        return _Step(message, state, k, reopened, window)

    def run(self, messages: Iterable[Message], batch: int) -> Iterator[dict[str, Any]]:
        """One output record per message, in input order; `batch` messages are read before
        the window method scores their windows together (1: each message at once). The
        records do not depend on `batch`, nor does what is written before a bad input line:
        the messages read before it are scored and written, then the error is raised."""
        pending: list[Message] = []
        source = iter(messages)
        while True:
            try:
                message = next(source)
            except StopIteration:
                break
            except ValueError:
                yield from self._score(pending)
                raise
            pending.append(message)
            if len(pending) >= max(1, batch):
                yield from self._score(pending)
                pending = []
        if pending:
            yield from self._score(pending)

    def _score(self, messages: list[Message]) -> Iterator[dict[str, Any]]:
        steps: list[_Step] = []
        error = None
        for message in messages:
            try:
                steps.append(self._read(message))
            except chatlog.ChatlogFormatError as refused:
                # The messages before it get their records first, as one at a time they would.
                error = refused
                break
        for step, score in zip(steps, self._scores(steps), strict=True):
            yield self._emit(step, score)
        if error is not None:
            raise error

    def _scores(self, steps: list[_Step]) -> list[float | None]:
        """The risk at each message: the incremental method's after every one, the window
        method's at its steps (their windows scored in one call) and None between them."""
        if self.streams is None:
            scored = iter(self._window_scores([s.window for s in steps if s.window is not None]))
            return [None if s.window is None else next(scored) for s in steps]
        raw = self.streams.add_many(
            [(s.message.conversation_id, s.message.author, s.message.text) for s in steps]
        )
        return [float(p) for p in self.calibrator.transform(np.asarray(raw, dtype=float))]

    def _window_scores(self, windows: list[list[Message]]) -> list[float]:
        if not windows:
            return []
        from grooming_detect.scoring.messages import SPLIT, score_messages

        frames = []
        for index, window in enumerate(windows):
            frames.append(
                pd.DataFrame(
                    {
                        "conversation_id": f"w{index}",
                        "line": list(range(1, len(window) + 1)),
                        "author": [f"{m.author}\x1fw{index}" for m in window],
                        "time": [m.time for m in window],
                        "text": [m.text for m in window],
                        "split": SPLIT,
                    }
                )
            )
        _, conversations = score_messages(
            self.model,
            self.meta,
            pd.concat(frames, ignore_index=True),
            self.lexicons,
            self.separator,
        )
        by_window = conversations.set_index("conversation_id")["score"]
        return [float(by_window[f"w{index}"]) for index in range(len(windows))]

    def _emit(self, step: _Step, score: float | None) -> dict[str, Any]:
        """The record of one message (`ConversationState.record`)."""
        return step.state.record(
            step.message, step.k, step.reopened, score, self.threshold, self.patience
        )


def stream_file(stream: RiskStream, source: str, out: IO[str]) -> dict[str, int]:
    """Score `source` (a chat-log path, or ``-`` for JSON lines on standard input) into `out`
    as JSON lines; return counts of messages, conversations warned and conversations closed."""
    if source == "-":
        messages: Iterable[Message] = stdin_messages(sys.stdin)
        batch = 1
    else:
        messages, batch = file_messages(Path(source)), FILE_BATCH
    counts = {"messages": 0, "warnings": 0}
    for record in stream.run(messages, batch):
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        if source == "-":
            out.flush()
        counts["messages"] += 1
        counts["warnings"] += bool(record["new_warning"])
    counts["closed"] = stream.closed
    counts["reopened"] = stream.reopened
    return counts


def warning_policy(
    threshold: str | None, patience: int | None, meta: dict[str, Any], location: str
) -> tuple[float, int]:
    """The stream's warning threshold and patience from ``--threshold``/``--patience``."""
    if threshold in (None, "model"):
        return float(meta["threshold"]), 1 if patience is None else patience
    if threshold == "early":
        summary_path = Path(location).parent / "evaluation" / "evaluation.json"
        early = read_json(summary_path).get("early") if summary_path.is_file() else None
        if not early:
            raise ValueError(
                f"--threshold early: no early-detection evaluation at {summary_path}; evaluate "
                "this model with experiment=early (a local model folder), or give a number"
            )
        if early.get("skepticism") is not None and patience is None:
            # The stream applies patience only: eSPD's skepticism would need its own state.
            raise ValueError(
                f"--threshold early: the evaluation at {summary_path} warned by eSPD's "
                f"skepticism ({early['skepticism']} of the last {early['skepticism_window']} "
                "steps), which the stream does not apply; give --patience to warn by "
                "consecutive steps instead"
            )
        return float(early["threshold"]), int(early["patience"]) if patience is None else patience
    try:
        value = float(threshold)
    except ValueError:
        raise ValueError(
            f"--threshold {threshold!r}: expected a number, 'model' or 'early'"
        ) from None
    return value, 1 if patience is None else patience


PARTIAL_STREAM = "stream.partial.jsonl"


def stream_to_folder(risk: Any, source: str, out: Path) -> dict[str, int]:
    """Stream into ``<out>/stream.jsonl``, complete or not at all. When the input turns bad
    midway, the records scored before the bad line are kept in ``stream.partial.jsonl`` (as
    standard output would have shown them), and the error says so."""
    out.mkdir(parents=True, exist_ok=True)
    (out / PARTIAL_STREAM).unlink(missing_ok=True)
    with atomic_path(out / "stream.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as handle:
        try:
            return stream_file(risk, source, handle)
        except ValueError as error:
            handle.flush()
            if tmp.stat().st_size == 0:  # nothing scored (a file is checked whole first)
                raise
            kept = _keep_partial(tmp, out / PARTIAL_STREAM)
            raise ValueError(
                f"{error}; the {kept:,} records scored before it are in "
                f"{out / PARTIAL_STREAM} (stream.jsonl is written only for a whole input)"
            ) from None


def _keep_partial(tmp: Path, target: Path) -> int:
    """Copy the records written so far to `target`; how many there are."""
    write_with(target, partial(shutil.copyfile, tmp))
    with open(tmp, "rb") as handle:
        return sum(1 for _ in handle)
