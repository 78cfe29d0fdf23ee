"""Generic chat logs (a team's own data) as CSV or JSONL, turned into the canonical tables.

One record per message. Columns (JSONL keys):

* required: ``conversation_id``, ``author``, ``text`` (may be empty);
* optional: ``line`` (1-based; when absent, messages are numbered in file order within each
  conversation), ``time`` (``HH:MM``) or ``timestamp`` (ISO 8601, reduced to ``HH:MM``),
  ``split`` (``train``, ``validation`` or ``test``);
* labels, exactly one kind: author level, as an ``is_predator`` column (the same value on every
  message of an author) or as a separate id list (``data.predator_ids``, one id a line); or
  conversation level, as a ``conversation_label`` column (the same value on every message of a
  conversation). Label values: ``1/0``, ``true/false``, ``yes/no`` (any case), JSON booleans.

Every problem is an error naming the file, the row (the line number in the file) and what was
expected. Nothing is dropped: empty texts are kept as ``""`` and counted in the report.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from grooming_detect.data.pan12 import CorpusFormatError, read_id_list
from grooming_detect.data.schema import SPLITS, Tables, build_tables
from grooming_detect.data.splits import (
    SplitSettings,
    holdout_conversations,
    positive_conversations_of,
)
from grooming_detect.progress import track

REQUIRED = ("conversation_id", "author", "text")
OPTIONAL = ("line", "time", "timestamp", "split", "is_predator", "conversation_label")
TRUE_VALUES = {"1", "true", "yes", "y", "t"}
FALSE_VALUES = {"0", "false", "no", "n", "f"}
log = logging.getLogger(__name__)
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class ChatlogFormatError(CorpusFormatError):
    """A chat-log file that does not follow the documented format."""


@dataclass
class ChatlogReport:
    """What reading a chat log found, for the manifest."""

    rows: int = 0
    empty_texts: int = 0
    lines_numbered_in_file_order: bool = False
    label_level: str = "author"
    split_source: str = "file"
    authors_in_several_splits: int = 0
    truncated_texts: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    predator_ids_not_in_data: list[str] = field(default_factory=list)
    #: `SplitReport` (as a dict) of each carved split (``test``, ``validation``), by name.
    split: dict[str, dict[str, Any]] = field(default_factory=dict)


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ChatlogFormatError(
            f"{path}:{line}: byte {raw[error.start]:#04x} is not UTF-8; expected a UTF-8 file"
        ) from None


#: Default longest message text, in characters (``data.max_message_chars``).
MAX_MESSAGE_CHARS = 65_536


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) pairs of a CSV or JSONL file."""
    text = _decode(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        # The csv module's own 128 KB cell limit fails with no file or row named: lift it, and
        # check message lengths against data.max_message_chars instead (read_chatlog).
        csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ChatlogFormatError(
                f"{path}:1: header lacks column(s) {missing}; expected at least {list(REQUIRED)}"
            )
        start = 2
        for record in reader:
            if None in record:
                raise ChatlogFormatError(
                    f"{path}:{start}: {len(reader.fieldnames or []) + len(record[None])} fields "
                    f"where the header has {len(reader.fieldnames or [])}"
                )
            yield start, record
            start = reader.line_num + 1
    elif suffix in (".jsonl", ".ndjson"):
        # Records end at "\n" only: str.splitlines would also cut at U+2028, U+2029 and U+0085,
        # which JSON writers leave raw inside strings (a valid record read as broken JSON).
        for number, line in enumerate(text.split("\n"), start=1):
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ChatlogFormatError(
                    f"{path}:{number}: invalid JSON at column {error.colno} ({error.msg})"
                ) from None
            if not isinstance(record, dict):
                raise ChatlogFormatError(f"{path}:{number}: expected a JSON object per line")
            missing = [c for c in REQUIRED if c not in record]
            if missing:
                raise ChatlogFormatError(
                    f"{path}:{number}: record lacks key(s) {missing}; expected {list(REQUIRED)}"
                )
            yield number, record
    else:
        raise ChatlogFormatError(f"{path}: unknown chat-log format {suffix!r}; use .csv or .jsonl")


def _label(value: Any, where: str, column: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise ChatlogFormatError(
        f"{where}: {column}={value!r} is not a label; expected 1/0, true/false or yes/no"
    )


def _time_of(record: dict[str, Any], where: str) -> str | None:
    """A record's ``HH:MM`` (from ``time``, or the hour and minute of ``timestamp``), or None."""
    if record.get("time") not in (None, ""):
        value = str(record["time"]).strip()
        if not _TIME.match(value):
            raise ChatlogFormatError(f"{where}: time={value!r} is not HH:MM")
        return value
    if record.get("timestamp") not in (None, ""):
        try:
            # ISO 8601 only: pd.Timestamp would also take "now" or "today" (the reader's clock).
            stamp = datetime.fromisoformat(str(record["timestamp"]).strip())
        except (ValueError, TypeError):
            raise ChatlogFormatError(
                f"{where}: timestamp={record['timestamp']!r} is not an ISO 8601 date-time"
            ) from None
        return f"{stamp.hour:02d}:{stamp.minute:02d}"
    return None


#: The public name of the time check (the streaming scorer's records use it too).
time_of = _time_of


def read_chatlog(
    path: str | Path,
    predator_ids_path: str | Path | None = None,
    require_labels: bool = True,
    max_message_chars: int | None = MAX_MESSAGE_CHARS,
    long_messages: str = "error",
) -> tuple[pd.DataFrame, dict[str, bool] | set[str], ChatlogReport]:
    """Read and check every record; return messages, labels and a report.

    With `require_labels` off (scoring new data), a file without labels yields an empty set.
    A text longer than `max_message_chars` is an error naming the file and line, or with
    `long_messages="truncate"` is cut to that length and counted in ``report.truncated_texts``.

    Returns:
        messages (split possibly null), then either the set of predator ids (author-level
        labels) or conversation_id -> label (conversation-level labels), then the report.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: chat-log file not found")
    return read_records(
        _records(source),
        source,
        predator_ids_path,
        require_labels,
        max_message_chars,
        long_messages,
    )


def read_records(
    records: Iterable[tuple[int, dict[str, Any]]],
    source: str | Path,
    predator_ids_path: str | Path | None = None,
    require_labels: bool = True,
    max_message_chars: int | None = MAX_MESSAGE_CHARS,
    long_messages: str = "error",
) -> tuple[pd.DataFrame, dict[str, bool] | set[str], ChatlogReport]:
    """`read_chatlog` on records already read: ``(number, record)`` pairs from `source` (a file,
    or a name such as ``request`` for a served model's input). Every check, message and default
    is the file reader's, so a served model reads its rows exactly as a file would be read."""
    name = source.name if isinstance(source, Path) else str(source)
    checker = _RecordChecker(source, max_message_chars, long_messages)
    for number, record in track(records, f"reading {name}", unit="rows"):
        checker.add(number, record)
    return checker.result(predator_ids_path, require_labels)


class _RecordChecker:
    """`read_records`' work: checks records one at a time (`add`), keeping each message's
    columns, the labels seen so far and the report, then checks the whole file (`result`)."""

    def __init__(
        self, source: str | Path, max_message_chars: int | None, long_messages: str
    ) -> None:
        self.source = source
        self.max_message_chars = max_message_chars
        self.long_messages = long_messages
        self.report = ChatlogReport()
        #: The messages frame's columns, in its column order.
        self.columns: dict[str, list[Any]] = {
            k: [] for k in ("conversation_id", "line", "author", "time", "text", "split")
        }
        #: id -> (label, row number where it was first seen), per label level.
        self.author_labels: dict[str, tuple[bool, int]] = {}
        self.conversation_labels: dict[str, tuple[bool, int]] = {}
        #: (conversation_id, line) -> row number, to refuse duplicates.
        self.seen_lines: dict[tuple[str, int], int] = {}
        #: conversation_id -> last line given, when lines are numbered in file order.
        self.next_line: dict[str, int] = {}
        self.columns_seen: set[str] = set()
        #: (column, id) -> (JSON type name, row number where it was first seen).
        self.id_kinds: dict[tuple[str, str], tuple[str, int]] = {}
        self.first_blank_split: int | None = None
        # What the first record holds decides for the whole file.
        self.has_line = self.has_author_label = self.has_conversation_label = False

    # -- one record ---------------------------------------------------------------------------
    def add(self, number: int, record: dict[str, Any]) -> None:
        """Check record `number` and keep its message. The checks run in this order, which
        decides the error a record with several problems is refused for."""
        where = f"{self.source}:{number}"
        if self.report.rows == 0:
            self.has_line = record.get("line") not in (None, "")
            self.has_author_label = "is_predator" in record
            self.has_conversation_label = "conversation_label" in record
        self.columns_seen.update(record)
        self.report.rows += 1
        self._check_id_types(record, number, where)
        conversation_id = str(record["conversation_id"] or "").strip()
        author = str(record["author"] or "").strip()
        if not conversation_id or not author:
            raise ChatlogFormatError(f"{where}: empty conversation_id or author")
        line = self._line(record, conversation_id, number, where)
        split = self._split(record, number, where)
        text = self._text(record, where)
        self._keep_labels(record, conversation_id, author, number, where)
        columns = self.columns
        columns["conversation_id"].append(conversation_id)
        columns["line"].append(line)
        columns["author"].append(author)
        columns["time"].append(_time_of(record, where))
        columns["text"].append(text)
        columns["split"].append(split)

    def _check_id_types(self, record: dict[str, Any], number: int, where: str) -> None:
        """Refuse an id written as a JSON number on one row and as a string on another."""
        for key in ("conversation_id", "author"):
            # JSONL: 7 and "7" are different JSON values; merging them silently is refused.
            value = record[key]
            kind = type(value).__name__
            first = self.id_kinds.setdefault((key, str(value).strip()), (kind, number))
            if first[0] != kind:
                raise ChatlogFormatError(
                    f"{where}: {key} {value!r} is a JSON {kind}, but line {first[1]} wrote "
                    f"the same id as a JSON {first[0]}; expected one type per id (quote ids)"
                )

    def _line(self, record: dict[str, Any], conversation_id: str, number: int, where: str) -> int:
        """The message's line: the record's own (a 1-based integer), or the next in file order
        within its conversation when the file has no ``line`` column; never one seen before."""
        if self.has_line:
            raw = str(record.get("line") or "").strip()
            if not raw.isdigit() or int(raw) < 1:
                raise ChatlogFormatError(f"{where}: line={raw!r}; expected a 1-based integer")
            line = int(raw)
        else:
            line = self.next_line.get(conversation_id, 0) + 1
            self.next_line[conversation_id] = line
        if (conversation_id, line) in self.seen_lines:
            raise ChatlogFormatError(
                f"{where}: (conversation_id={conversation_id!r}, line={line}) duplicates row "
                f"{self.seen_lines[(conversation_id, line)]}"
            )
        self.seen_lines[(conversation_id, line)] = number
        return line

    def _split(self, record: dict[str, Any], number: int, where: str) -> str | None:
        """The record's split, or None when blank (the first blank row is kept for `result`)."""
        split = str(record.get("split") or "").strip() or None
        if split is None and self.first_blank_split is None:
            self.first_blank_split = number
        if split is not None and split not in SPLITS:
            raise ChatlogFormatError(f"{where}: split={split!r}; expected one of {list(SPLITS)}")
        return split

    def _text(self, record: dict[str, Any], where: str) -> str:
        """The message text (``""`` for null), refused or cut when over the length limit."""
        text = "" if record["text"] is None else str(record["text"])
        limit = self.max_message_chars
        if limit is not None and len(text) > limit:
            if self.long_messages != "truncate":
                raise ChatlogFormatError(
                    f"{where}: text of {len(text):,} characters exceeds data.max_message_chars="
                    f"{limit:,}; raise the limit, or set data.long_messages=truncate"
                )
            text = text[:limit]
            self.report.truncated_texts += 1
        self.report.empty_texts += text == ""
        return text

    def _keep_labels(
        self, record: dict[str, Any], conversation_id: str, author: str, number: int, where: str
    ) -> None:
        """Keep the record's author and conversation labels, refusing one that disagrees with
        an earlier row of the same author or conversation."""
        if self.has_author_label:
            _consistent(
                self.author_labels,
                author,
                _label(record.get("is_predator"), where, "is_predator"),
                number,
                where,
                "author",
            )
        if self.has_conversation_label:
            _consistent(
                self.conversation_labels,
                conversation_id,
                _label(record.get("conversation_label"), where, "conversation_label"),
                number,
                where,
                "conversation",
            )

    # -- the whole file -----------------------------------------------------------------------
    def result(
        self, predator_ids_path: str | Path | None, require_labels: bool
    ) -> tuple[pd.DataFrame, dict[str, bool] | set[str], ChatlogReport]:
        """Check the file as a whole, then return messages, labels and the report (what
        `read_records` returns)."""
        if self.report.rows == 0:
            raise ChatlogFormatError(f"{self.source}: no records; expected one message per row")
        self.report.lines_numbered_in_file_order = not self.has_line
        self.report.ignored_columns = sorted(self.columns_seen - set(REQUIRED) - set(OPTIONAL))
        sources = [
            self.has_author_label,
            self.has_conversation_label,
            predator_ids_path is not None,
        ]
        if not require_labels and not any(sources):
            return pd.DataFrame(self.columns), set(), self.report
        if sum(sources) != 1:
            raise ChatlogFormatError(
                f"{self.source}: found {sum(sources)} kinds of labels; expected exactly one of "
                "an is_predator column, a conversation_label column, or data.predator_ids"
            )
        messages = pd.DataFrame(self.columns)
        self._check_splits(messages)
        return messages, self._labels(messages, predator_ids_path), self.report

    def _check_splits(self, messages: pd.DataFrame) -> None:
        """Refuse a conversation in several splits, and a split on some rows but not all."""
        per_conversation = messages.groupby("conversation_id")["split"].nunique()
        if (per_conversation > 1).any():
            raise ChatlogFormatError(
                f"{self.source}: conversation {per_conversation.index[per_conversation > 1][0]!r} "
                "has rows in several splits; a conversation belongs to one split"
            )
        splits = messages["split"]
        if splits.notna().any() and splits.isna().any():
            raise ChatlogFormatError(
                f"{self.source}:{self.first_blank_split}: split is empty while other rows have "
                "one; expected a split on every row or on none"
            )

    def _labels(
        self, messages: pd.DataFrame, predator_ids_path: str | Path | None
    ) -> dict[str, bool] | set[str]:
        """conversation_id -> label (conversation-level labels), or the set of predator ids
        (author-level labels, from the ``is_predator`` column or the id list)."""
        if self.has_conversation_label:
            self.report.label_level = "conversation"
            return {k: v for k, (v, _) in self.conversation_labels.items()}
        if predator_ids_path is not None:
            predators = set(read_id_list(predator_ids_path))
            self.report.predator_ids_not_in_data = sorted(predators - set(messages["author"]))
            return predators
        return {author for author, (label, _) in self.author_labels.items() if label}


def _consistent(
    labels: dict[str, tuple[bool, int]], key: str, label: bool, number: int, where: str, unit: str
) -> None:
    previous = labels.setdefault(key, (label, number))
    if previous[0] != label:
        raise ChatlogFormatError(
            f"{where}: {unit} {key!r} is labelled {label} here but {previous[0]} at row "
            f"{previous[1]}; labels must agree for the whole {unit}"
        )


def load_chatlog(
    path: str | Path,
    predator_ids_path: str | Path | None,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    max_message_chars: int | None = MAX_MESSAGE_CHARS,
    long_messages: str = "error",
    split_settings: SplitSettings | None = None,
) -> tuple[Tables, ChatlogReport]:
    """Read a chat log into the canonical tables.

    Without a ``split`` column, ``test`` and then ``validation`` are carved out by whole connected
    components of the author-conversation graph, stratified by positives; with only ``train`` and
    ``test`` in the file, ``validation`` is carved out of ``train`` the same way. Each carve
    follows `split_settings` (tolerance, override) and leaves its report in ``report.split``.

    Raises:
        SplitError: (a ValueError) a carved split that misses its target shares.
    """
    messages, labels, report = read_chatlog(
        path,
        predator_ids_path,
        max_message_chars=max_message_chars,
        long_messages=long_messages,
    )
    _carve_missing_splits(
        messages,
        labels,
        report,
        fractions={"test": test_fraction, "validation": validation_fraction},
        seed=seed,
        settings=split_settings,
    )
    report.authors_in_several_splits = int(
        (messages.groupby("author")["split"].nunique() > 1).sum()
    )
    if report.authors_in_several_splits:
        log.warning(
            "%s: %d author(s) appear in several splits (%s); scores on those splits are optimistic",
            path,
            report.authors_in_several_splits,
            "data.split_override=author"
            if any(r["override"] for r in report.split.values())
            else "of the file's own split column",
        )
    if isinstance(labels, dict):
        tables = build_tables(messages, conversation_labels=labels)
    else:
        tables = build_tables(messages, predators={split: labels for split in SPLITS})
    return tables, report


def _carve_missing_splits(
    messages: pd.DataFrame,
    labels: dict[str, bool] | set[str],
    report: ChatlogReport,
    *,
    fractions: dict[str, float],
    seed: int,
    settings: SplitSettings | None,
) -> None:
    """Fill `messages`' split column where the file leaves it out (see `load_chatlog`): ``test``
    (seed `seed`) when no row has a split, then ``validation`` out of ``train`` (seed + 1) when
    no row is in validation; each carve's report goes into ``report.split``.

    Args:
        messages: the chat log's messages, changed in place.
        labels: conversation labels (conversation_id -> label) or the predator ids.
        report: the reading report, given the split source and the carve reports.
        fractions: held-out share of ``test`` and of ``validation``.
        seed: seed of the test carve (the validation carve uses seed + 1).
        settings: tolerance and override of both carves.
    """
    pairs = messages[["conversation_id", "author"]].drop_duplicates()
    positives = (
        {c for c, label in labels.items() if label}
        if isinstance(labels, dict)
        else positive_conversations_of(pairs, labels)
    )
    predators = None if isinstance(labels, dict) else labels

    def carve(split: str, among: pd.DataFrame, fraction: float, carve_seed: int) -> set[str]:
        held, split_report = holdout_conversations(
            among,
            positives & set(among["conversation_id"]),
            fraction,
            carve_seed,
            split=split,
            settings=settings,
            positive_authors=predators,
        )
        report.split[split] = split_report.to_dict()
        return held

    if messages["split"].isna().all():
        report.split_source = "carved: test, then validation, by connected components"
        test = carve("test", pairs, fractions["test"], seed)
        messages["split"] = messages["conversation_id"].map(
            lambda c: "test" if c in test else "train"
        )
    if (messages["split"] == "validation").any():
        return
    if report.split_source == "file":
        report.split_source = "file; validation carved from train by connected components"
    in_train = messages["split"] == "train"
    train_pairs = pairs[
        pairs["conversation_id"].isin(set(messages.loc[in_train, "conversation_id"]))
    ]
    held = carve("validation", train_pairs, fractions["validation"], seed + 1)
    messages.loc[in_train & messages["conversation_id"].isin(held), "split"] = "validation"


def label_level_of(path: str | Path | None, predator_ids: str | Path | None = None) -> str | None:
    """The label level a chat log declares, read from its header (CSV) or first record (JSONL)
    without reading the file: ``conversation`` (a ``conversation_label`` column), ``author``
    (``is_predator`` or an id list), or None when it cannot tell (the data stage then reports
    what is wrong, naming the line)."""
    if path is None:
        return None
    source = Path(str(path)).expanduser()
    try:
        with open(source, encoding="utf-8-sig", newline="") as handle:
            if source.suffix.lower() in (".jsonl", ".ndjson"):
                first = next((line for line in handle if line.strip()), "")
                keys = set(json.loads(first)) if first else set()
            else:
                keys = set(next(csv.reader(handle), []))  # as csv.DictReader names them
    except (OSError, UnicodeDecodeError, ValueError, TypeError):
        return None
    kinds = [predator_ids is not None, "is_predator" in keys, "conversation_label" in keys]
    if sum(kinds) != 1:
        return None  # no labels, or several kinds: the data stage says which, naming the file
    return "conversation" if kinds[2] else "author"
