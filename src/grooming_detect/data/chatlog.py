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
expected. Nothing is dropped: empty texts are kept as ``""`` and counted in the report. CSV
quoting is strict (a quote that opens a field closes it, a ``"`` inside a field is written
``""``), so that a quote left open cannot merge the rest of the file into one message.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from grooming_detect.data.pan12 import (
    line_number,
    read_id_list,
    shown,
)
from grooming_detect.data.schema import SPLITS, Tables, build_tables
from grooming_detect.data.splits import (
    SplitSettings,
    holdout_conversations,
    positive_conversations_of,
)
from grooming_detect.errors import ChatlogFormatError
from grooming_detect.progress import track

REQUIRED = ("conversation_id", "author", "text")
OPTIONAL = ("line", "time", "timestamp", "split", "is_predator", "conversation_label")
TRUE_VALUES = {"1", "true", "yes", "y", "t"}
FALSE_VALUES = {"0", "false", "no", "n", "f"}
log = logging.getLogger(__name__)
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


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


def _decode(raw: bytes, path: str | Path) -> str:
    """The text of a file's bytes `raw`, or an error naming `path` and the line of the first
    byte that is not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ChatlogFormatError(
            f"{path}:{line}: byte {raw[error.start]:#04x} is not UTF-8; expected a UTF-8 file"
        ) from None


#: Default longest message text, in characters (``data.max_message_chars``).
MAX_MESSAGE_CHARS = 65_536
#: Longest first line of a CSV file, in characters: a header is column names, so a longer first
#: line means another kind of file (binary data, a file without line breaks).
MAX_HEADER_CHARS = 1 << 20
#: JSON characters one text character can take at most (``"\ud83d\ude00"`` is 12 for one).
JSON_CHARS_PER_CHARACTER = 12
#: Room in a JSON line for a record's fields besides its text.
RECORD_OVERHEAD_CHARS = 1 << 20
#: The fields a record may have, and what each is expected to hold (for the errors).
EXPECTED = {
    "conversation_id": "a string or an integer",
    "author": "a string or an integer",
    "text": "a string",
    "line": "a 1-based integer",
    "time": "HH:MM",
    "timestamp": "an ISO 8601 date-time",
    "split": f"one of {list(SPLITS)}",
    "is_predator": "a label (1/0, true/false or yes/no)",
    "conversation_label": "a label (1/0, true/false or yes/no)",
}
_SURROGATE = re.compile("[\ud800-\udfff]")


def max_record_chars(max_message_chars: int | None) -> int | None:
    """Longest JSON line a record whose text is within `max_message_chars` can be (None: no
    bound); a longer line is refused before it is parsed."""
    if max_message_chars is None:
        return None
    return JSON_CHARS_PER_CHARACTER * max_message_chars + RECORD_OVERHEAD_CHARS


class _LongNumber(str):
    """The digits of a JSON integer longer than int() converts, kept so that the error can name
    its field (`check_fields`)."""


def _json_int(digits: str) -> int | _LongNumber:
    try:
        return int(digits)
    except ValueError:  # more than sys.get_int_max_str_digits() digits
        return _LongNumber(digits)


_JSON = json.JSONDecoder(parse_int=_json_int)


def parse_json_record(raw: str, where: str) -> dict[str, Any]:
    """One JSON line as a record holding the required keys, or an error naming `where`
    (``file:line``): invalid JSON, nesting deeper than the interpreter parses, not an object,
    a required key missing. The values are checked by `check_fields`."""
    try:
        record = _JSON.decode(raw)
    except json.JSONDecodeError as error:
        raise ChatlogFormatError(
            f"{where}: invalid JSON at column {error.colno} ({error.msg})"
        ) from None
    except RecursionError:
        raise ChatlogFormatError(
            f"{where}: JSON nested too deeply to read; expected one flat JSON object per line"
        ) from None
    if not isinstance(record, dict):
        raise ChatlogFormatError(f"{where}: expected a JSON object per line")
    missing = [c for c in REQUIRED if c not in record]
    if missing:
        raise ChatlogFormatError(
            f"{where}: record lacks key(s) {missing}; expected {list(REQUIRED)}"
        )
    return record


def check_fields(record: dict[str, Any], where: str) -> None:
    """Refuse a documented field (`EXPECTED`) holding what no check after this one can read:
    a JSON array or object, an integer of more digits than int() converts, or a string that
    cannot be written as UTF-8 (a lone surrogate, from a JSON escape such as ``"\\ud800"``)."""
    for key, value in record.items():
        if type(value) is str:  # the usual case first
            if not _SURROGATE.search(value) or key not in EXPECTED:
                continue
            raise ChatlogFormatError(
                f"{where}: {key} is not valid UTF-8 (invalid bytes, or an unpaired surrogate "
                "such as the JSON escape \\ud800); expected text that can be written as UTF-8"
            )
        if not isinstance(value, _LongNumber | dict | list) or key not in EXPECTED:
            continue
        if isinstance(value, _LongNumber):
            what = f"a JSON number of {len(value):,} digits"
        else:
            what = f"a JSON {'object' if isinstance(value, dict) else 'array'}"
        raise ChatlogFormatError(f"{where}: {key} is {what}; expected {EXPECTED[key]}")


def _records(
    path: str | Path, raw: bytes, max_line_chars: int | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) pairs of the bytes `raw` of a CSV or JSONL file named `path` (a
    local path, or any URI a distributed reader took them from); a JSONL line longer than
    `max_line_chars` is refused before it is parsed."""
    text = _decode(raw, path)
    suffix = PurePosixPath(str(path)).suffix.lower()
    if suffix == ".csv":
        yield from _csv_records(path, text)
    elif suffix in (".jsonl", ".ndjson"):
        yield from _checked(_jsonl_records(path, text, max_line_chars), path)
    else:
        raise ChatlogFormatError(f"{path}: unknown chat-log format {suffix!r}; use .csv or .jsonl")


def _jsonl_records(
    path: str | Path, text: str, max_line_chars: int | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """`_records` of a JSONL file, before `check_fields`."""
    # Records end at "\n" only: str.splitlines would also cut at U+2028, U+2029 and U+0085,
    # which JSON writers leave raw inside strings (a valid record read as broken JSON).
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        where = f"{path}:{number}"
        if max_line_chars is not None and len(line) > max_line_chars:
            raise ChatlogFormatError(
                f"{where}: a line of {len(line):,} characters, longer than any record with "
                f"a text within data.max_message_chars can be ({max_line_chars:,}); "
                "expected one JSON record per line"
            )
        yield number, parse_json_record(line, where)


def _csv_records(path: str | Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """`_records` of a CSV file: the header names each column once, every row has its fields,
    and every quote that opens a field closes it (`csv` strict mode)."""
    if len(text) > MAX_HEADER_CHARS and not _LINE_BREAK.search(text, 0, MAX_HEADER_CHARS + 1):
        raise ChatlogFormatError(
            f"{path}:1: no line break in the first {MAX_HEADER_CHARS:,} characters; expected a "
            "header line of column names"
        )
    # The csv module's own 128 KB cell limit fails with no file or row named: lift it, and
    # check message lengths against data.max_message_chars instead (read_chatlog).
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        header = next(reader, [])
        _check_header(path, header)
        start = reader.line_num + 1
        for row in reader:
            if not row:  # a blank line, as csv.DictReader skips it
                start = reader.line_num + 1
                continue
            if len(row) != len(header):
                raise ChatlogFormatError(
                    f"{path}:{start}: {len(row)} field{'s' * (len(row) != 1)} where the header "
                    f"has {len(header)}"
                )
            if reader.line_num > start:  # only a record over several lines can hold others
                _refuse_swallowed_records(path, start, header, row)
            yield start, dict(zip(header, row, strict=False))  # of equal lengths
            start = reader.line_num + 1
    except csv.Error as error:
        raise _csv_error(path, text, start, reader.line_num, error) from None


def _check_header(path: str | Path, header: list[str]) -> None:
    """Refuse a header without the required columns, or naming a column twice."""
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ChatlogFormatError(
            f"{path}:1: header lacks column(s) {missing}; expected at least {list(REQUIRED)}"
        )
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in seen:
            raise ChatlogFormatError(
                f"{path}:1: column {name!r} appears twice in the header (columns {seen[name]} "
                f"and {position}); expected each column once"
            )
        seen[name] = position


#: Embedded lines a quoted cell must hold, each like a complete record, to be refused as the
#: rest of the file swallowed by a quote left open (`_refuse_swallowed_records`).
SWALLOWED_LINES = 2
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_ID_LIKE = re.compile(r"\S+")


def _refuse_swallowed_records(
    path: str | Path, start: int, header: list[str], row: list[str]
) -> None:
    """Refuse a cell whose inner lines each look like a record of the file: the quote that
    opened it was left open, and the quote that closed it is another row's.

    A line looks like a record when it has the header's number of fields (as many commas as the
    header, less one) and an id-like (non-empty, no spaces) ``conversation_id`` and ``author``;
    the first line (the cell's own start) and the last (the row the closing quote came from)
    are not counted. A real multi-line message rarely has two such lines in a row."""
    ids = [header.index("conversation_id"), header.index("author")]
    commas = len(header) - 1
    for column, cell in zip(header, row, strict=True):
        if "\n" not in cell and "\r" not in cell:
            continue
        inner = [line for line in _LINE_BREAK.split(cell)[1:-1] if line]
        if len(inner) < SWALLOWED_LINES:
            continue
        for line in inner:
            fields = line.split(",")
            if len(fields) - 1 != commas or not all(_ID_LIKE.fullmatch(fields[i]) for i in ids):
                break
        else:
            raise ChatlogFormatError(
                f"{path}:{start}: the quoted {column} cell of this row runs over "
                f"{len(inner) + 2} lines, {len(inner)} of them shaped like records of this file "
                f"({len(header)} fields); a quote left open? expected a closing '\"' at the end "
                "of the cell (a '\"' inside a cell is written '\"\"')"
            )


def _csv_error(
    path: str | Path, text: str, start: int, line: int, error: csv.Error
) -> ChatlogFormatError:
    """The error for what the csv module refused in the record starting at line `start`, its
    reader at line `line`."""
    if str(error) == "unexpected end of data":
        opened = _unclosed_quote_line(text, start)
        return ChatlogFormatError(
            f"{path}:{opened}: a quoted field opened here is never closed (it runs to the end "
            f"of the file, line {line:,}); expected a closing '\"' (a '\"' inside a field is "
            "written '\"\"')"
        )
    record = f" (in the record that starts at line {start})" if start != line else ""
    return ChatlogFormatError(
        f"{path}:{line}: malformed CSV{record}: {error}; expected a quoted field to end with "
        "'\"' then ',' or the end of the line (a '\"' inside a field is written '\"\"')"
    )


_CSV_MARK = re.compile(r'[,"\r\n]')


def _unclosed_quote_line(text: str, start: int) -> int:
    """The line of the quote that opens the field left open at the end of `text`, in the
    record that starts at line `start` (the csv module says only that the data ended)."""
    offset = 0
    if start > 1:
        breaks = itertools.islice(_LINE_BREAK.finditer(text), start - 2, None)
        offset = next(breaks).end()
    opened = offset
    position, at_field_start = offset, True
    while (mark := _CSV_MARK.search(text, position)) is not None:
        if mark.group() == '"' and at_field_start and mark.start() == position:
            opened = mark.start()
            close = text.find('"', opened + 1)
            while close >= 0 and text.startswith('""', close):
                close = text.find('"', close + 2)
            if close < 0:
                break
            position, at_field_start = close + 1, False
            continue
        at_field_start = mark.group() != '"'
        position = mark.end()
    return start + len(_LINE_BREAK.findall(text, offset, opened))


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
        what = "is not a regular file" if source.exists() else "not found"
        raise FileNotFoundError(f"{source}: chat-log file {what}")
    line_limit = max_record_chars(max_message_chars) if long_messages != "truncate" else None
    return _read(
        _records(source, source.read_bytes(), line_limit),
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
    return _read(
        _checked(records, source),
        source,
        predator_ids_path,
        require_labels,
        max_message_chars,
        long_messages,
    )


def read_chatlog_content(
    content: bytes,
    name: str,
    require_labels: bool = False,
    max_message_chars: int | None = MAX_MESSAGE_CHARS,
    long_messages: str = "error",
) -> tuple[pd.DataFrame, dict[str, bool] | set[str], ChatlogReport]:
    """`read_chatlog` on the bytes of a chat-log file named `name` (a local path, or any URI a
    distributed reader such as Spark read them from): every check, message and default of the
    file reader, errors naming `name` and the line. The messages gain a ``row`` column, the
    line each message's record starts at, for checks made later across files."""
    line_limit = max_record_chars(max_message_chars) if long_messages != "truncate" else None
    rows: list[int] = []

    def numbered() -> Iterator[tuple[int, dict[str, Any]]]:
        for number, record in _records(name, content, line_limit):
            rows.append(number)
            yield number, record

    messages, labels, report = _read(
        numbered(), name, None, require_labels, max_message_chars, long_messages
    )
    # The checker keeps one message per record, in record order: nothing is dropped.
    return messages.assign(row=rows), labels, report


def _checked(
    records: Iterable[tuple[int, dict[str, Any]]], source: str | Path
) -> Iterator[tuple[int, dict[str, Any]]]:
    """`records`, each refused where `check_fields` refuses it or where a column name is not
    valid UTF-8 (CSV records, all strings from a strictly decoded file, need neither)."""
    names: set[str] = set()
    for number, record in records:
        where = f"{source}:{number}"
        check_fields(record, where)
        if not names.issuperset(record):
            for name in record.keys() - names:
                if isinstance(name, str) and _SURROGATE.search(name):
                    raise ChatlogFormatError(
                        f"{where}: a column name {name!r} is not valid UTF-8 (an unpaired "
                        "surrogate); expected names that can be written as UTF-8"
                    )
            names.update(record)
        yield number, record


def _read(
    records: Iterable[tuple[int, dict[str, Any]]],
    source: str | Path,
    predator_ids_path: str | Path | None,
    require_labels: bool,
    max_message_chars: int | None,
    long_messages: str,
) -> tuple[pd.DataFrame, dict[str, bool] | set[str], ChatlogReport]:
    """`read_records` on records already checked by `check_fields` (or from a CSV file)."""
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
            value = record.get("line")
            raw = "" if value is None else str(value).strip()
            given = line_number(raw)
            if given is None:
                raise ChatlogFormatError(f"{where}: line={shown(raw)}; expected a 1-based integer")
            line = given
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
            absent = sorted(predators - set(messages["author"]))
            self.report.predator_ids_not_in_data = absent
            if absent:
                log.warning(
                    "%s: %d of its %d predator id(s) never speak in %s (e.g. %s; all are listed "
                    "in the manifest as predator_ids_not_in_data); a wrong id list?",
                    predator_ids_path,
                    len(absent),
                    len(predators),
                    self.source,
                    ", ".join(absent[:5]),
                )
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
        if not source.is_file():  # a FIFO or a device (/dev/zero) could be read for ever
            return None
        with open(source, encoding="utf-8-sig", newline="") as handle:
            # Lines of bounded length: a file without line breaks is not read whole here.
            lines = iter(lambda: handle.readline(MAX_HEADER_CHARS), "")
            if source.suffix.lower() in (".jsonl", ".ndjson"):
                first = next((line for line in lines if line.strip()), "")
                keys = set(json.loads(first)) if first else set()
            else:
                keys = set(next(csv.reader(lines), []))  # as the reader names them
    except (OSError, UnicodeDecodeError, ValueError, TypeError, RecursionError, csv.Error):
        return None
    kinds = [predator_ids is not None, "is_predator" in keys, "conversation_label" in keys]
    if sum(kinds) != 1:
        return None  # no labels, or several kinds: the data stage says which, naming the file
    return "conversation" if kinds[2] else "author"
