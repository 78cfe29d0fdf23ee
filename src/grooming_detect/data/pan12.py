"""Reader for the official PAN-2012 Sexual Predator Identification distribution.

The XML is read in chunks, so memory stays flat with corpus size: files in the official
canonical layout by a fast scan (`grooming_detect.data.pan12_scan`), anything else by lxml's
streaming parser, which clears each conversation once it is read. The scan reads only a strict
subset of XML and hands everything else to lxml, so what is read, and every error, is lxml's. The
parser refuses DTDs (no entity expansion), never touches the network, and reports malformed input
as ``file:line:column: what``.

Quirks of the official files handled here:

* message text was HTML-escaped before it was XML-escaped, so after XML parsing entities such as
  ``&amp;``, ``&#8212;`` and ``&apos;`` remain; they are unescaped once more;
* e-mail addresses were replaced by ``<email/>``; whether it arrives as escaped text or as an
  element, the text keeps the literal marker ``<email/>``;
* ``<text/>`` can be empty (read as the empty string), text can hold newlines and ``\\r``;
* author ids can carry padding spaces (stripped), id lists can have CRLF endings;
* times are ``HH:MM`` only; ``line`` is 1-based.

Beyond the official files, an optional training line truth (`TRAIN_PROBLEM2`) is read when it
sits next to the training predator list: it is NOT part of the PAN-2012 release, which publishes
Problem-2 line truth for the test corpus only. Real-corpus users do not have it; a team that
annotated the predators' lines of the training corpus can supply one, and the synthetic
generator writes one, so that a line threshold can be tuned without reading test.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
from lxml import etree

from grooming_detect.data import pan12_scan, vtpan
from grooming_detect.data.filters import FilterSettings, apply_filters
from grooming_detect.data.schema import Tables, build_tables
from grooming_detect.data.splits import SplitSettings, carve_validation
from grooming_detect.progress import Progress

log = logging.getLogger(__name__)

TRAIN_DIR = "pan12-sexual-predator-identification-training-corpus-2012-05-01"
TRAIN_XML = "pan12-sexual-predator-identification-training-corpus-2012-05-01.xml"
TRAIN_PREDATORS = "pan12-sexual-predator-identification-training-corpus-predators-2012-05-01.txt"
DIFF = "pan12-sexual-predator-identification-diff.txt"
TEST_DIR = "pan12-sexual-predator-identification-test-corpus-2012-05-21"
TEST_XML = "pan12-sexual-predator-identification-test-corpus-2012-05-17.xml"
TEST_PROBLEM1 = "pan12-sexual-predator-identification-groundtruth-problem1.txt"
TEST_PROBLEM2 = "pan12-sexual-predator-identification-groundtruth-problem2.txt"
#: NOT an official file: problem-2 line truth for the training corpus (``conversation_id<TAB>line``,
#: as `TEST_PROBLEM2`), optional, beside the training predator list.
TRAIN_PROBLEM2 = "pan12-sexual-predator-identification-training-corpus-lines-2012-05-01.txt"

#: Where each official file may sit below ``data.root``: the official sub-folder, or flat.
OFFICIAL_LOCATIONS: dict[str, tuple[str, ...]] = {
    TRAIN_XML: (TRAIN_DIR, ""),
    TRAIN_PREDATORS: (TRAIN_DIR, ""),
    TRAIN_PROBLEM2: (TRAIN_DIR, ""),
    DIFF: (TRAIN_DIR, ""),
    TEST_XML: (TEST_DIR, ""),
    TEST_PROBLEM1: (TEST_DIR, ""),
    TEST_PROBLEM2: (TEST_DIR, ""),
}

_TIME_PATTERN = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
#: The largest line number: the canonical tables store lines as int64.
MAX_LINE = 2**63 - 1


def line_number(raw: str | None) -> int | None:
    """`raw` as a line number in [1, `MAX_LINE`], or None: ASCII digits only (``isdigit``
    would pass ``"\u00b2"``, which int() refuses, and int() would read ``"\u0663"``, an
    Arabic-Indic digit), never more than `MAX_LINE` has (int() of thousands of digits fails)."""
    if raw is None or len(raw) > len(str(MAX_LINE)) or not (raw.isascii() and raw.isdecimal()):
        return None
    line = int(raw)
    return line if 1 <= line <= MAX_LINE else None


def shown(raw: str | None, limit: int = 40) -> str:
    """`raw` for an error message: its repr, cut after `limit` characters."""
    if raw is None or len(raw) <= limit:
        return repr(raw)
    return f"{raw[:limit]!r}... ({len(raw):,} characters)"


class CorpusFormatError(ValueError):
    """Input that does not follow the official format; the message names file, line and column."""


@dataclass(frozen=True)
class Pan12Files:
    """Resolved paths of one PAN-2012 download; optional files are None when absent."""

    root: Path
    train_xml: Path
    train_predators: Path
    test_xml: Path | None = None
    test_problem1: Path | None = None
    test_problem2: Path | None = None
    diff: Path | None = None
    #: The optional, unofficial training line truth (`TRAIN_PROBLEM2`).
    train_problem2: Path | None = None

    def present(self) -> dict[str, Path]:
        """Official file name -> path, for the files that exist."""
        pairs = {
            TRAIN_XML: self.train_xml,
            TRAIN_PREDATORS: self.train_predators,
            TRAIN_PROBLEM2: self.train_problem2,
            TEST_XML: self.test_xml,
            TEST_PROBLEM1: self.test_problem1,
            TEST_PROBLEM2: self.test_problem2,
            DIFF: self.diff,
        }
        return {name: path for name, path in pairs.items() if path is not None}


def locate(root: Path, name: str) -> Path | None:
    """Find an official file under `root`, in its official sub-folder or directly under it."""
    for sub in OFFICIAL_LOCATIONS[name]:
        candidate = root / sub / name if sub else root / name
        if candidate.is_file():
            return candidate
    return None


def find_files(root: str | Path) -> Pan12Files:
    """Resolve the official files below `root`; the training XML and predator list are required.

    The unofficial training line truth (`TRAIN_PROBLEM2`) is looked for where the training
    predator list may sit; it is optional, as are the test files and the diff.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"{base}: PAN-2012 data.root is not a directory")
    found = {name: locate(base, name) for name in OFFICIAL_LOCATIONS}
    missing = [name for name in (TRAIN_XML, TRAIN_PREDATORS) if found[name] is None]
    if missing:
        raise FileNotFoundError(
            f"{base}: missing {', '.join(missing)} (looked directly under it and in {TRAIN_DIR}/)"
        )
    if found[TEST_XML] is not None and found[TEST_PROBLEM1] is None:
        raise FileNotFoundError(
            f"{base}: the test corpus {TEST_XML} is present but its ground truth "
            f"{TEST_PROBLEM1} is not (looked directly under it and in {TEST_DIR}/)"
        )
    return Pan12Files(
        root=base,
        train_xml=found[TRAIN_XML],  # type: ignore[arg-type]
        train_predators=found[TRAIN_PREDATORS],  # type: ignore[arg-type]
        test_xml=found[TEST_XML],
        test_problem1=found[TEST_PROBLEM1],
        test_problem2=found[TEST_PROBLEM2],
        diff=found[DIFF],
        train_problem2=found[TRAIN_PROBLEM2],
    )


@dataclass
class MessageColumns:
    """Messages of one XML file as parallel columns (cheaper than one object per message)."""

    conversation_id: list[str] = field(default_factory=list)
    line: list[int] = field(default_factory=list)
    author: list[str] = field(default_factory=list)
    time: list[str | None] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    n_conversations: int = 0

    def __len__(self) -> int:
        return len(self.line)


class _ProgressReader:
    """File wrapper that advances a byte progress bar as the parser reads."""

    def __init__(self, handle: BinaryIO, bar: Progress) -> None:
        self._handle = handle
        self._bar = bar

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._bar.update(len(chunk))
        return chunk


def _element_text(element: etree._Element) -> str:
    """Text of `element` with child elements such as ``<email/>`` kept as literal markers."""
    parts = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str):
            parts.append(f"<{child.tag}/>")
            parts.append(child.text or "")
        parts.append(child.tail or "")
    return "".join(parts)


_HUGE_REFERENCE = re.compile(r"&#(?:0*[1-9][0-9]{7,}|[xX]0*[1-9a-fA-F][0-9a-fA-F]{6,});?")
#: The references the official files' second escaping is made of, ``&amp;`` last.
_SIMPLE_REFERENCES = (
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&quot;", '"'),
    ("&apos;", "'"),
    ("&amp;", "&"),
)


def unescape_text(raw: str) -> str:
    """Undo the HTML escaping the organisers applied before XML escaping (one more pass).

    Exactly `html.unescape`; when every ``&`` opens one of `_SIMPLE_REFERENCES` (the usual
    case), by plain replacements (``&amp;`` last, so that nothing is decoded twice).
    """
    if "&" not in raw:
        return raw
    if raw.count("&") != sum(raw.count(reference) for reference, _ in _SIMPLE_REFERENCES):
        try:
            return html.unescape(raw)
        except ValueError:
            # A numeric reference of thousands of digits overflows int()'s digit limit inside
            # html.unescape; any of more than 7 significant digits (6 in hex) is beyond
            # U+10FFFF, which html.unescape reads as U+FFFD.
            return html.unescape(_HUGE_REFERENCE.sub("\ufffd", raw))
    for reference, character in _SIMPLE_REFERENCES:
        raw = raw.replace(reference, character)
    return raw


def parse_messages(path: str | Path, show_progress: bool = True) -> MessageColumns:
    """Stream every message of a PAN-2012 XML file into columns (one batch).

    Raises:
        CorpusFormatError: malformed XML, a DTD, a missing or bad attribute or child, a time not
            in ``HH:MM``, or a (conversation, line) pair seen twice; the message names
            ``file:line:column``.
    """
    (batch,) = iter_message_batches(path, None, show_progress)
    return batch


def iter_message_batches(
    path: str | Path, batch_conversations: int | None, show_progress: bool = True
) -> Iterator[MessageColumns]:
    """Yield the messages of a PAN-2012 XML file in batches of whole conversations.

    A file in the official canonical layout is read by the fast scan of
    `grooming_detect.data.pan12_scan`; anything else (another valid layout, or an error) is read
    by lxml (`_lxml_batches`), from where the scan stopped, with the same results. With
    `batch_conversations` set, memory is bounded by one batch (plus the set of conversation ids
    seen, kept to refuse duplicates). None (or 0) yields one batch with everything.
    """
    if batch_conversations is not None and batch_conversations < 0:
        raise ValueError(
            f"batch_conversations={batch_conversations}: expected a positive number of "
            "conversations per batch, or 0 or None for one batch"
        )
    batch_conversations = batch_conversations or None
    source = Path(path)
    _require_regular_file(source)
    yielded = 0
    try:
        with open(source, "rb") as handle, _byte_progress(source, show_progress) as bar:
            for batch in pan12_scan.scan_batches(
                handle,
                batch_conversations,
                MessageColumns,
                bar.update,
                _TIME_PATTERN,
                unescape_text,
            ):
                yielded += batch.n_conversations
                yield batch
        return
    except pan12_scan.NotCanonical as why:
        log.info("%s: read with the full XML parser (the fast scan stopped: %s)", source, why)
    yield from _lxml_batches(source, batch_conversations, show_progress, skip=yielded)


def _byte_progress(source: Path, show_progress: bool) -> Progress:
    """A progress bar over the bytes of `source`."""
    return Progress(
        f"reading {source.name}", total=source.stat().st_size, unit="B", disable=not show_progress
    )


def _lxml_batches(
    source: Path, batch_conversations: int | None, show_progress: bool, skip: int = 0
) -> Iterator[MessageColumns]:
    """`iter_message_batches` by lxml, leaving out the first `skip` conversations (read and
    checked, not yielded: the fast scan yielded them).

    Only ``<conversation>`` and ``<message>`` events reach Python (lxml filters the rest in C);
    each conversation is cleared once read, so the tree never grows.
    """
    reader = _MessageReader(source)
    ended = 0
    with open(source, "rb") as handle, _byte_progress(source, show_progress) as bar:
        _refuse_doctype(source, handle)
        context = etree.iterparse(
            _ProgressReader(handle, bar),
            events=("start", "end"),
            tag=("conversation", "message"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        try:
            for event, element in context:
                if event == "end":
                    if element.tag == "message":
                        reader.message(element)
                        continue
                    reader.end_conversation(element)
                    ended += 1
                    full = (
                        batch_conversations is not None
                        and reader.columns.n_conversations >= batch_conversations
                    )
                    if full or ended == skip:
                        batch = reader.take()
                        if ended > skip:
                            yield batch
                elif element.tag == "conversation":
                    reader.start_conversation(element)
        except etree.XMLSyntaxError as error:
            line, column = error.position
            raise CorpusFormatError(
                f"{source}:{line}:{column}: malformed XML: {error.msg}"
            ) from None
    yield reader.take()


#: What may precede the root element besides a DOCTYPE: white space, the XML declaration and
#: other processing instructions, comments.
_PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
#: How much of a file's start `_refuse_doctype` reads at most (a longer prolog is left to lxml).
_PROLOG_BYTES = 1 << 20


def _refuse_doctype(source: Path, handle: BinaryIO) -> None:
    """Refuse a file whose prolog declares a DOCTYPE, before lxml reads it: a DTD is not part
    of the PAN-2012 format, and its entities are the expansion-bomb risk. (lxml is told not to
    resolve entities; newer libxml2 releases refuse an amplifying DTD with their own error.)
    Leaves `handle` at the start of the file."""
    head = handle.read(_PROLOG_BYTES)
    handle.seek(0)
    for bom, encoding in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if head.startswith(bom):
            head = head[len(bom) :].decode(encoding, errors="replace").encode("utf-8")
            break
    position = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    while (item := _PROLOG_ITEM.match(head, position)) is not None:
        position = item.end()
    if head.startswith(b"<!DOCTYPE", position):
        line = head.count(b"\n", 0, position) + 1
        raise _doctype_error(f"{source}:{line}")


def _doctype_error(where: str) -> CorpusFormatError:
    """The error for a DOCTYPE at `where` (``file:line``), from the prolog check or lxml's."""
    return CorpusFormatError(
        f"{where}: a DOCTYPE/DTD is not part of the PAN-2012 format and is refused "
        "(entity expansion risk)"
    )


class _MessageReader:
    """Checks and collects messages; repeated author ids and times share one string object."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.columns = MessageColumns()
        self.seen_conversations: set[str] = set()
        self.conversation_id: str | None = None
        self.lines: set[int] = set()
        self.strings: dict[str, str] = {}
        self.checked_doctype = False

    def take(self) -> MessageColumns:
        """Hand over the messages read so far and start a new batch."""
        batch, self.columns = self.columns, MessageColumns()
        return batch

    def start_conversation(self, element: etree._Element) -> None:
        where = f"{self.source}:{element.sourceline}"
        if not self.checked_doctype:
            if element.getroottree().docinfo.doctype:  # a prolog too long for the check above
                raise _doctype_error(where)
            self.checked_doctype = True
        conversation_id = (element.get("id") or "").strip()
        if not conversation_id:
            raise CorpusFormatError(f"{where}: <conversation> without an id attribute")
        if conversation_id in self.seen_conversations:
            raise CorpusFormatError(f"{where}: conversation id {conversation_id!r} appears twice")
        self.seen_conversations.add(conversation_id)
        self.conversation_id = conversation_id
        self.lines = set()

    def end_conversation(self, element: etree._Element) -> None:
        self.columns.n_conversations += 1
        self.conversation_id = None
        element.clear(keep_tail=True)
        parent = element.getparent()
        if parent is not None:
            while element.getprevious() is not None:
                del parent[0]

    def message(self, element: etree._Element) -> None:
        conversation_id = self.conversation_id
        if conversation_id is None:
            raise CorpusFormatError(
                f"{self.source}:{element.sourceline}: <message> outside a <conversation>"
            )
        raw_line = element.get("line")
        line = line_number(raw_line)
        if line is None:
            raise self._error(
                element,
                f"<message line={shown(raw_line)}> in conversation {conversation_id}: "
                "expected a 1-based integer line attribute",
            )
        if line in self.lines:
            raise self._error(
                element, f"line {line} appears twice in conversation {conversation_id}"
            )
        self.lines.add(line)
        author = time_value = ""
        text = None
        for child in element:
            tag = child.tag
            if tag == "author":
                author = (child.text or "").strip()
            elif tag == "time":
                time_value = (child.text or "").strip()
            elif tag == "text":
                text = _element_text(child) if len(child) else (child.text or "")
        if not author:
            raise self._error(
                element, f"message {line} of conversation {conversation_id} has no <author>"
            )
        if time_value and not _TIME_PATTERN.match(time_value):
            raise self._error(
                element,
                f"message {line} of conversation {conversation_id}: time {time_value!r} "
                "is not HH:MM",
            )
        strings = self.strings
        columns = self.columns
        columns.conversation_id.append(conversation_id)
        columns.line.append(line)
        columns.author.append(strings.setdefault(author, author))
        columns.time.append(strings.setdefault(time_value, time_value) if time_value else None)
        columns.text.append(unescape_text(text) if text else "")
        element.clear(keep_tail=True)

    def _error(self, element: etree._Element, what: str) -> CorpusFormatError:
        return CorpusFormatError(f"{self.source}:{element.sourceline}: {what}")


def _require_regular_file(path: Path) -> None:
    """Refuse a path that is not a regular file (a FIFO, or a device such as /dev/zero, would
    be read without end)."""
    if path.exists() and not path.is_file():
        raise CorpusFormatError(f"{path}: not a regular file; expected a file")


def _read_lines(path: Path) -> list[str]:
    _require_regular_file(path)
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CorpusFormatError(
            f"{path}: byte {error.start} is not UTF-8; expected a UTF-8 text file"
        ) from None
    return content.splitlines()


def read_id_list(path: str | Path) -> list[str]:
    """Read an author-id list (one id a line; CRLF, padding spaces and blank lines tolerated).

    Duplicates are kept once and reported in the log, never silently.
    """
    source = Path(path)
    ids: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(_read_lines(source), start=1):
        author = raw.strip()
        if not author:
            continue
        if any(char.isspace() for char in author):
            raise CorpusFormatError(
                f"{source}:{number}: {raw!r}: expected one author id a line, found several fields"
            )
        if author in seen:
            log.warning("%s:%d: author id %s listed twice; counted once", source, number, author)
            continue
        seen.add(author)
        ids.append(author)
    return ids


def read_line_truth(path: str | Path) -> list[tuple[str, int]]:
    """Read problem-2 ground truth: ``conversation_id<TAB>line`` pairs, one a line."""
    source = Path(path)
    pairs: list[tuple[str, int]] = []
    seen: set[tuple[str, int]] = set()
    for number, raw in enumerate(_read_lines(source), start=1):
        if not raw.strip():
            continue
        fields = raw.split()
        line = line_number(fields[1]) if len(fields) == 2 else None
        if line is None:
            raise CorpusFormatError(
                f"{source}:{number}: {shown(raw, 80)}: "
                "expected 'conversation_id<TAB>line' with a 1-based line"
            )
        pair = (fields[0], line)
        if pair in seen:
            log.warning("%s:%d: pair %s listed twice; counted once", source, number, pair)
            continue
        seen.add(pair)
        pairs.append(pair)
    return pairs


def messages_frame(columns: MessageColumns, split: str) -> pd.DataFrame:
    """The messages of `columns` as a frame; strings stay Python objects (the tables hold them
    so, see `schema.conform`: inferring Arrow strings first would convert them twice)."""
    return pd.DataFrame(
        {
            "conversation_id": pd.Series(columns.conversation_id, dtype=object),
            "line": np.asarray(columns.line, dtype=np.int64),
            "author": pd.Series(columns.author, dtype=object),
            "time": pd.Series(columns.time, dtype=object),
            "text": pd.Series(columns.text, dtype=object),
            "split": split,
        }
    )


@dataclass
class LoadReport:
    """What loading found beyond the tables: ids in a truth file that never speak, and so on."""

    truth_ids_not_in_corpus: dict[str, list[str]] = field(default_factory=dict)
    truth_lines_not_in_corpus: int = 0
    #: With the unofficial training line truth (`TRAIN_PROBLEM2`): see `read_training_lines`,
    #: plus ``rows_in_filtered_conversations``; empty without the file.
    training_line_truth: dict[str, Any] = field(default_factory=dict)
    diff_lines: int | None = None
    filtered: list[dict[str, Any]] = field(default_factory=list)
    #: With the VTPAN filter: per split (train, test), the ids it lists, how many the file holds,
    #: how many it lacks (and the first 20 of them), and how many other conversations it dropped.
    vtpan: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The carved split's `SplitReport` (``validation``), as a dict: achieved shares and more.
    split: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Authors of the training files who also speak in the test files (see
    #: `train_test_author_overlap`); empty without a test corpus.
    author_overlap: dict[str, Any] = field(default_factory=dict)


LINE_KEYS = ["conversation_id", "line"]


def read_training_lines(
    path: Path, training: pd.DataFrame, assignment: dict[str, str]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The unofficial training line truth at `path` as ``predator_lines`` rows, each with its
    conversation's split (``train`` or ``validation``), and an account of it for the report.

    No row is dropped: as with the test line truth, a row whose (conversation, line) is not in
    the training files is kept and counted; one whose conversation is absent keeps a null split.
    Both are warned about and the absent conversations listed (the first 20).

    Args:
        path: the `TRAIN_PROBLEM2` file (``conversation_id<TAB>line`` a line).
        training: the messages of the training files (``conversation_id``, ``line``).
        assignment: conversation_id -> ``train`` or ``validation``, for every training one.

    Returns:
        The rows (conversation_id, line, split) and the account: ``file``, ``official``
        (False), ``rows``, ``rows_by_split``, ``lines_not_in_corpus``,
        ``conversations_not_in_corpus`` and ``conversations_not_in_corpus_first_20``.

    Raises:
        CorpusFormatError: a malformed line, naming `path` and the line number.
    """
    rows = pd.DataFrame(read_line_truth(path), columns=LINE_KEYS)
    rows["split"] = rows["conversation_id"].map(assignment)
    known = pd.MultiIndex.from_frame(training[LINE_KEYS])
    not_in_corpus = int((~pd.MultiIndex.from_frame(rows[LINE_KEYS]).isin(known)).sum())
    absent = sorted(set(rows.loc[rows["split"].isna(), "conversation_id"]))
    account = {
        "file": path.name,
        "official": False,
        "rows": len(rows),
        "rows_by_split": {
            split: int((rows["split"] == split).sum()) for split in ("train", "validation")
        },
        "lines_not_in_corpus": not_in_corpus,
        "conversations_not_in_corpus": len(absent),
        "conversations_not_in_corpus_first_20": absent[:20],
    }
    if not_in_corpus:
        log.warning(
            "%s: %d of its %d lines are not in the training files, %d of them in %d "
            "conversation(s) that are not (kept, with no split; listed in the manifest)",
            path,
            not_in_corpus,
            len(rows),
            int(rows["split"].isna().sum()),
            len(absent),
        )
    return rows, account


def keep_vtpan(
    messages: pd.DataFrame, split: str, source: Path, report: LoadReport
) -> pd.DataFrame:
    """The messages of the VTPAN `split` (``train`` or ``test``) conversations in `messages`, read
    from `source`; the account goes into `report.vtpan[split]`.

    Raises:
        CorpusFormatError: naming `source`, when it holds none of the split's ids.
    """
    expected = vtpan.conversation_ids(split)
    present = set(messages["conversation_id"].unique())
    missing = sorted(expected - present)
    found = len(expected) - len(missing)
    file_kind = "training" if split == "train" else "test"
    if not found:
        raise CorpusFormatError(
            f"{source}: none of the {len(expected):,} VTPAN {split} conversation ids occurs in "
            f"it; this is not the PAN-2012 corpus or not its {file_kind} file"
        )
    report.vtpan[split] = {
        "ids": len(expected),
        "found": found,
        "not_found": len(missing),
        "not_found_first_20": missing[:20],
        "other_conversations_dropped": len(present) - found,
    }
    if missing:
        log.warning(
            "%s: %d of the %d VTPAN %s conversation ids do not occur (the first are listed in "
            "the manifest); the benchmark split is incomplete",
            source,
            len(missing),
            len(expected),
            split,
        )
    return messages[messages["conversation_id"].isin(expected)].reset_index(drop=True)


def conversation_labels_of(messages: pd.DataFrame, predators: set[str]) -> dict[str, bool]:
    """Conversation id -> whether one of `predators` speaks in it."""
    positive = set(messages.loc[messages["author"].isin(predators), "conversation_id"])
    return {
        conversation: conversation in positive
        for conversation in messages["conversation_id"].unique()
    }


def load_corpus(
    files: Pan12Files,
    validation_fraction: float,
    seed: int,
    show_progress: bool = True,
    filters: FilterSettings | None = None,
    split_settings: SplitSettings | None = None,
) -> tuple[Tables, LoadReport]:
    """Parse a PAN-2012 download into the canonical tables with a grouped validation split.

    The diff file (the organisers' anonymisation edits) is metadata only, never a label source.
    Optional `filters` (off by default) remove conversations after the split; the report
    accounts for every removal. `split_settings` (tolerance, override) shape the validation carve
    (`carve_validation`); its report and the train/test author overlap go into the report.
    ``predator_lines`` holds the test line truth (split ``test``) and, when `files` has the
    unofficial training line truth, its rows with their conversation's split
    (`read_training_lines`; accounted for in `LoadReport.training_line_truth`). With
    ``filters.vtpan`` the corpus is the VTPAN benchmark's instead (`load_vtpan_corpus`).

    Raises:
        ValueError: ``filters.vtpan`` combined with a rule filter.
        SplitError: (a ValueError) a validation split that misses its target shares.
        CorpusFormatError: malformed input, or (VTPAN) a file holding none of its split's ids.
    """
    if filters is not None and filters.vtpan:
        return load_vtpan_corpus(
            files, validation_fraction, seed, show_progress, filters, split_settings
        )
    report = LoadReport()
    train, train_predators = _read_training(files, show_progress, report)
    train_ids = set(train["conversation_id"].unique())
    assignment = _carve(train, train_predators, validation_fraction, seed, split_settings, report)
    frames = [train]
    predators = {"train": train_predators, "validation": train_predators}
    line_frames: list[pd.DataFrame] = []
    if files.train_problem2 is not None:
        rows, report.training_line_truth = read_training_lines(
            files.train_problem2, train, assignment
        )
        line_frames.append(rows)
    if files.test_xml is not None and files.test_problem1 is not None:
        test, predators["test"] = _read_test(
            files.test_xml, files.test_problem1, files.train_xml, train_ids, show_progress, report
        )
        frames.append(test)
        if files.test_problem2 is not None:
            line_frames.append(_test_line_truth(files.test_problem2, test, report))
    _read_diff_and_warn(files, report)
    messages = pd.concat(frames, ignore_index=True)
    if filters is not None:
        messages, report.filtered = apply_filters(
            messages, set().union(*predators.values()), filters
        )
    predator_lines = pd.concat(line_frames, ignore_index=True) if line_frames else None
    if report.training_line_truth and predator_lines is not None:
        report.training_line_truth["rows_in_filtered_conversations"] = _rows_filtered_out(
            predator_lines, messages
        )
    report.author_overlap = train_test_author_overlap(messages, set().union(*predators.values()))
    return build_tables(messages, predators, predator_lines), report


def load_vtpan_corpus(
    files: Pan12Files,
    validation_fraction: float,
    seed: int,
    show_progress: bool = True,
    filters: FilterSettings | None = None,
    split_settings: SplitSettings | None = None,
) -> tuple[Tables, LoadReport]:
    """The VTPAN benchmark's corpus (``filters.vtpan``): `load_corpus` with only the VTPAN
    conversations of each file kept (`keep_vtpan`; training ones before the validation carve),
    labelled per conversation: positive when an author of it is in that file's predator list.
    Problem-2 line truth (an author task) is not read; no rule filter applies.

    Raises:
        ValueError: `filters` with a rule filter on.
        SplitError: (a ValueError) a validation split that misses its target shares.
        CorpusFormatError: malformed input, or a file holding none of its split's ids.
    """
    if filters is not None and filters.active:
        raise ValueError(
            "data.filters: vtpan defines the corpus by its conversation ids; combined with "
            "drop_single_author, drop_multi_party or min_messages_per_author it would change the "
            "benchmark; turn those off (data/filters=vtpan does)"
        )
    report = LoadReport()
    train, train_predators = _read_training(files, show_progress, report)
    train_ids = set(train["conversation_id"].unique())
    train = keep_vtpan(train, "train", files.train_xml, report)
    _carve(train, train_predators, validation_fraction, seed, split_settings, report)
    frames = [train]
    predators = {"train": train_predators, "validation": train_predators}
    labels = conversation_labels_of(train, train_predators)
    if files.test_xml is not None and files.test_problem1 is not None:
        test, predators["test"] = _read_test(
            files.test_xml, files.test_problem1, files.train_xml, train_ids, show_progress, report
        )
        test = keep_vtpan(test, "test", files.test_xml, report)
        labels.update(conversation_labels_of(test, predators["test"]))
        frames.append(test)
    _read_diff_and_warn(files, report)
    messages = pd.concat(frames, ignore_index=True)
    report.author_overlap = train_test_author_overlap(messages, set().union(*predators.values()))
    return build_tables(messages, conversation_labels=labels), report


def _read_training(
    files: Pan12Files, show_progress: bool, report: LoadReport
) -> tuple[pd.DataFrame, set[str]]:
    """The training messages (split ``train``) and predator ids; ids that never speak go into
    `report`."""
    train = messages_frame(parse_messages(files.train_xml, show_progress), "train")
    predators = set(read_id_list(files.train_predators))
    report.truth_ids_not_in_corpus["train"] = sorted(predators - set(train["author"]))
    return train, predators


def _read_test(
    test_xml: Path,
    test_problem1: Path,
    train_xml: Path,
    train_ids: set[str],
    show_progress: bool,
    report: LoadReport,
) -> tuple[pd.DataFrame, set[str]]:
    """The test messages (split ``test``) and predator ids; ids that never speak go into
    `report`.

    Raises:
        CorpusFormatError: a conversation id in both the test file and the training file
            (`train_xml`, whose conversation ids are `train_ids`).
    """
    test = messages_frame(parse_messages(test_xml, show_progress), "test")
    shared = sorted(train_ids & set(test["conversation_id"]))
    if shared:
        raise CorpusFormatError(
            f"{train_xml} and {test_xml}: {len(shared)} conversation id(s) occur "
            f"in both, e.g. {shared[:3]}; expected disjoint training and test corpora"
        )
    predators = set(read_id_list(test_problem1))
    report.truth_ids_not_in_corpus["test"] = sorted(predators - set(test["author"]))
    return test, predators


def _carve(
    train: pd.DataFrame,
    predators: set[str],
    validation_fraction: float,
    seed: int,
    split_settings: SplitSettings | None,
    report: LoadReport,
) -> dict[str, str]:
    """Carve validation from `train` (its ``split`` column set in place; the split's report
    into `report`); the assignment, conversation id -> ``train`` or ``validation``."""
    pairs = train[["conversation_id", "author"]].drop_duplicates()
    assignment, split_report = carve_validation(
        pairs, predators, validation_fraction, seed, split_settings
    )
    report.split = {"validation": split_report.to_dict()}
    train["split"] = train["conversation_id"].map(assignment)
    return assignment


def _test_line_truth(path: Path, test: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
    """The official test line truth (split ``test``); rows not in `test` are counted in
    `report`."""
    test_lines = pd.DataFrame(read_line_truth(path), columns=LINE_KEYS)
    known = test.set_index(LINE_KEYS).index
    report.truth_lines_not_in_corpus = int(
        (~pd.MultiIndex.from_frame(test_lines).isin(known)).sum()
    )
    return test_lines.assign(split="test")


def _read_diff_and_warn(files: Pan12Files, report: LoadReport) -> None:
    """Count the diff file's lines (metadata only) and warn about truth ids that never speak."""
    if files.diff is not None:
        report.diff_lines = sum(1 for line in _read_lines(files.diff) if line.strip())
    for split, missing in report.truth_ids_not_in_corpus.items():
        if missing:
            log.warning(
                "%d %s ground-truth predator id(s) never speak in the corpus "
                "(listed in the manifest)",
                len(missing),
                split,
            )


def _rows_filtered_out(predator_lines: pd.DataFrame, messages: pd.DataFrame) -> int:
    """Training line-truth rows (train, validation) whose conversation the filters removed;
    they stay in ``predator_lines``, counted (and warned about) here."""
    training = predator_lines["split"].isin(["train", "validation"])
    removed = training & ~predator_lines["conversation_id"].isin(set(messages["conversation_id"]))
    if removed.any():
        log.warning(
            "%d training line-truth row(s) are in conversations the filters removed (kept in "
            "predator_lines, counted in the manifest)",
            int(removed.sum()),
        )
    return int(removed.sum())


def train_test_author_overlap(messages: pd.DataFrame, predators: set[str]) -> dict[str, Any]:
    """Authors who speak both in the training files (``train`` and ``validation``) and in the
    test files: the official PAN-2012 corpus has such authors, so test scores are not those of
    unseen authors. Disclosed (manifest, metrics, log), never refused.

    Args:
        messages: the messages of every split.
        predators: ids listed as predators in either ground truth.

    Returns:
        ``authors`` (how many overlap), ``predators`` (how many of them are in `predators`),
        ``share_of_test_authors``; empty when there is no test split.
    """
    in_test = (messages["split"] == "test").to_numpy()
    test_authors = set(messages.loc[in_test, "author"])
    if not test_authors:
        return {}
    shared = test_authors & set(messages.loc[~in_test, "author"])
    overlap = {
        "authors": len(shared),
        "predators": len(shared & predators),
        "share_of_test_authors": len(shared) / len(test_authors),
    }
    log.info(
        "%d of the %d test authors (%.1f%%), %d of them predators, also speak in the training "
        "files (disclosed in the manifest as author_overlap)",
        overlap["authors"],
        len(test_authors),
        100 * overlap["share_of_test_authors"],
        overlap["predators"],
    )
    return overlap
