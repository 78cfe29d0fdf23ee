"""A fast reader for the canonical layout of PAN-2012 XML, with lxml as its referee.

The official files are machine-written: one ``<conversations>`` root, ``<conversation id="…">``
elements holding ``<message line="…">`` elements whose children are ``<author>``, ``<time>`` and
``<text>`` in that order. Reading them through lxml's ``iterparse`` costs about 10 µs per
message (an element and its children reach Python, then ``clear()``); this module cuts each chunk
at ``</conversation>``, reads each conversation's messages with one regular expression, and moves
the fields into columns a chunk at a time, in about half that (271,082 real-text messages: 1.3–1.5 s
against 2.6–3.1 s). Kept because that is well outside run-to-run noise at the data stage's scale:
on the 1x real-text corpus (903,607 messages; 2 shared cores, 5 interleaved pairs) the data stage
took 29.7 s with the scan and 36.2 s with lxml alone (medians; every pair slower without it).

It accepts only a strict subset of well-formed XML, and produces exactly what the lxml reader in
`grooming_detect.data.pan12` produces for it (the same values in the columns, and the same batch
boundaries):

* matches must tile each chunk end to end: any byte not covered (a comment, a DOCTYPE, CDATA, a
  processing instruction, another attribute, single quotes, other child order or whitespace
  inside a tag) stops the scan;
* characters XML 1.0 forbids, ``]]>`` in content, invalid UTF-8, an unknown entity or a character
  reference to a forbidden code point stop it; so does anything longer than a canonical file
  holds (a field or a run of whitespace over 1,000 characters, a text over 100,000), so that
  lxml's own limits decide there;
* so do the errors the lxml reader reports (a duplicate conversation id or line, a missing
  author, a bad time, line < 1).

On a stop it raises `NotCanonical`, and the caller re-reads the file with lxml, which either
reads it (the unusual but valid layouts) or raises the located error users see. The scan never
decides that input is bad; it only declines to read it.

Line endings are normalised as XML requires (``\\r\\n`` and ``\\r`` become ``\\n``) before
matching; entity and character references are decoded as an XML parser does; the text is then
HTML-unescaped once more, as the official files need (see `grooming_detect.data.pan12`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import BinaryIO, Generic, Protocol, TypeVar

import numpy as np

#: Bytes read per chunk; a chunk is cut after its last ``</conversation>``.
CHUNK_BYTES = 8 << 20
#: A longer stretch without ``</conversation>`` stops the scan (memory stays bounded; lxml streams).
MAX_PENDING_BYTES = 64 << 20
#: A longer text stops the scan, so that lxml decides on it (without ``huge_tree`` it refuses a
#: text node over 10,000,000 bytes).
MAX_TEXT_CHARACTERS = 100_000

_END = b"</conversation>"
_BOM = b"\xef\xbb\xbf"
# Every quantifier is bounded and possessive: a field, a name or a run of whitespace longer than
# a canonical file holds stops the scan (lxml then applies its own limits: without `huge_tree`
# it refuses text nodes over 10 MB and names over 50,000 characters), and nothing is matched
# twice (unbounded backtracking over a long whitespace run made the scan quadratic).
_SPACE = r"[ \t\n]{0,1000}+"
_FIELD = r"[^<]{0,1000}+"
_HEAD = re.compile(
    r"""(?:<\?xml[ \t\n]{1,1000}+version=(["'])1\.0\1"""
    r"""(?:[ \t\n]{1,1000}+encoding=(["'])(?i:utf-8)\2)?"""
    r"""(?:[ \t\n]{1,1000}+standalone=(["'])(?:yes|no)\3)?"""
    + _SPACE
    + r"""\?>)?"""
    + _SPACE
    + r"<conversations>"
)
_TAIL = re.compile(_SPACE + r"</conversations>" + _SPACE)
_OPEN = re.compile(_SPACE + r'<conversation id="([^"<&\t\n]{0,1000}+)">')
# Text: anything but markup, and empty elements such as <email/> kept literally (as lxml's
# reader keeps them), except <message/> and <conversation/>, which lxml's reader reads as
# elements of their own (and refuses there). Its length is checked in `_Scan.flush`.
_TEXT = r"[^<]*+(?:<(?!(?:message|conversation)/>)[A-Za-z_][A-Za-z0-9_.\-]{0,100}+/>[^<]*+)*+"
# A message; a run of whitespace (between messages, or before </conversation>); or any other
# character, or an over-long run of whitespace, caught by the last group: the matches of
# `findall` account for every character of a conversation, and none is skipped unmatched.
_MESSAGE = re.compile(
    _SPACE
    + r'<message line="([0-9]{1,9})">'
    + _SPACE
    + r"<author>("
    + _FIELD
    + r")</author>"
    + _SPACE
    + r"(?:(?:<time>("
    + _FIELD
    + r")</time>|<time/>)"
    + _SPACE
    + r")?"
    + r"(?:<text>("
    + _TEXT
    + r")</text>|<text/>)"
    + _SPACE
    + r"</message>"
    + r"|[ \t\n]{1,1000}+(?![ \t\n])"
    + r"|([^ \t\n]|[ \t\n]{1001})"
)
# Characters XML 1.0 forbids (besides surrogates, which strict UTF-8 decoding already refuses).
_FORBIDDEN_BYTES = bytes(range(0x09)) + b"\x0b\x0c" + bytes(range(0x0E, 0x20))
_FORBIDDEN_SEQUENCES = (b"\xef\xbf\xbe", b"\xef\xbf\xbf", b"]]>")
# Longer character references are out of range (lxml refuses them); they stop the scan.
_REFERENCE = re.compile(r"&(?:(amp|lt|gt|quot|apos)|#([0-9]{1,8})|#x([0-9a-fA-F]{1,8}));")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
# In raw text: a reference whose XML decoding is not one of the five simple HTML references
# (the official files' second escaping), so that the HTML decoding of it is not a replacement.
_COMPLEX = re.compile(r"&amp;(?!(?:lt|gt|quot|apos|amp);)|&#")


class NotCanonical(Exception):
    """The scan declines the input (not an error in it): read it with lxml instead."""


class _Columns(Protocol):
    conversation_id: list[str]
    line: list[int]
    author: list[str]
    time: list[str | None]
    text: list[str]
    n_conversations: int


ColumnsT = TypeVar("ColumnsT", bound=_Columns)


def _legal(code: int) -> bool:
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _reference(match: re.Match[str]) -> str:
    named, decimal, hexadecimal = match.groups()
    if named:
        return _NAMED[named]
    code = int(decimal) if decimal else int(hexadecimal, 16)
    if not _legal(code):
        raise NotCanonical(f"character reference {match.group()}")
    return chr(code)


def xml_unescape(raw: str) -> str:
    """Decode XML's predefined entities and character references as a parser does; anything
    else after an ``&`` (an undeclared entity, a bare ``&``) raises `NotCanonical`."""
    if "&" not in raw:
        return raw
    if "&#" in raw:
        decoded, count = _REFERENCE.subn(_reference, raw)
        if count != raw.count("&"):
            raise NotCanonical("an entity that is not predefined, or a bare '&'")
        return decoded
    if raw.count("&") != sum(raw.count(f"&{name};") for name in _NAMED):
        raise NotCanonical("an entity that is not predefined, or a bare '&'")
    return (
        raw.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&amp;", "&")
    )


def _chunks(handle: BinaryIO, advance: Callable[[int], None]) -> Iterator[tuple[str, bool]]:
    """Decoded chunks of the file, each cut just after a ``</conversation>`` (the last one
    holds the rest), with line endings normalised; yields (text, is_last)."""
    pending = b""
    first = True
    while True:
        block = handle.read(CHUNK_BYTES)
        advance(len(block))
        if first:
            first = False
            block = block.removeprefix(_BOM)
        data = pending + block
        if not block:
            yield _decode(data), True
            return
        cut = data.rfind(_END)
        if cut < 0:
            if len(data) > MAX_PENDING_BYTES:
                raise NotCanonical(f"no </conversation> in {len(data):,} bytes")
            pending = data
            continue
        cut += len(_END)
        pending = data[cut:]
        yield _decode(data[:cut]), False


def _decode(data: bytes) -> str:
    if len(data.translate(None, _FORBIDDEN_BYTES)) != len(data) or any(
        sequence in data for sequence in _FORBIDDEN_SEQUENCES
    ):
        raise NotCanonical("a character XML forbids, or ']]>' in content")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotCanonical(f"invalid UTF-8: {error}") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


class _Scan(Generic[ColumnsT]):
    """Messages scanned but not yet in columns: a conversation's rows are appended as they
    come, and moved into columns together (one pass per column in C, not per message)."""

    def __init__(
        self,
        new_columns: Callable[[], ColumnsT],
        time_pattern: re.Pattern[str],
        unescape: Callable[[str], str],
    ) -> None:
        self.new_columns = new_columns
        self.time_pattern = time_pattern
        self.unescape = unescape
        self.columns = new_columns()
        self.rows: list[tuple[str, ...]] = []
        self.owners: list[str] = []
        self.seen: set[str] = set()
        self.counts: list[int] = []
        # Raw author and time strings to their checked values: the rows of one author (or
        # time) share one string object, as with lxml's reader (which keys by the stripped value).
        self.authors: dict[str, str] = {}
        self.times: dict[str, str | None] = {"": None}

    def conversation(self, piece: str) -> None:
        """One conversation: its text from the opening tag to just before ``</conversation>``."""
        head = _OPEN.match(piece)
        if head is None:
            raise NotCanonical("not a canonical <conversation> opening")
        conversation_id = head.group(1).strip()
        if not conversation_id or conversation_id in self.seen:
            raise NotCanonical("a missing or repeated conversation id")
        self.seen.add(conversation_id)
        rows = _MESSAGE.findall(piece, head.end())
        n_messages = sum(1 for row in rows if row[0])
        self.rows += rows
        self.owners += [conversation_id] * n_messages
        self.counts.append(n_messages)
        self.columns.n_conversations += 1

    def take(self) -> ColumnsT:
        """Move the pending rows into columns; hand over the batch and start a new one."""
        self.flush()
        batch, self.columns = self.columns, self.new_columns()
        return batch

    def flush(self) -> None:
        if not self.rows:
            return
        rows, owners, counts = self.rows, self.owners, self.counts
        self.rows, self.owners, self.counts = [], [], []
        if any(map(itemgetter(4), rows)):
            raise NotCanonical("markup outside the canonical message layout")
        # Whitespace runs match with every group empty; a message always has its line.
        rows = [row for row in rows if row[0]]
        lines, authors, times, texts = (list(map(itemgetter(i), rows)) for i in range(4))
        del rows
        numbers = list(map(int, lines))
        # (conversation, line) pairs must be unique: conversation index * 2^32 + line, sorted.
        keys = np.repeat(np.arange(len(counts), dtype=np.int64) << 32, counts)
        keys += np.array(numbers, dtype=np.int64)
        keys.sort()
        if numbers and (min(numbers) < 1 or bool((keys[1:] == keys[:-1]).any())):
            raise NotCanonical("a bad or repeated line")
        if max(map(len, texts), default=0) > MAX_TEXT_CHARACTERS:
            raise NotCanonical("a very long text")
        for raw in set(authors).difference(self.authors):
            self.authors[raw] = self._author(raw)
        for raw in set(times).difference(self.times):
            self.times[raw] = self._time(raw)
        columns = self.columns
        columns.conversation_id += owners
        columns.line += numbers
        columns.author += map(self.authors.__getitem__, authors)
        columns.time += map(self.times.__getitem__, times)
        columns.text += self._texts(texts)

    @staticmethod
    def _author(raw: str) -> str:
        value = xml_unescape(raw).strip()
        if not value:
            raise NotCanonical("a message without an author")
        return value

    def _time(self, raw: str) -> str | None:
        value = xml_unescape(raw).strip()
        if value and not self.time_pattern.match(value):
            raise NotCanonical("a time not in HH:MM")
        return value or None

    def _texts(self, texts: list[str]) -> list[str]:
        """`texts` (raw, as in the file) XML-decoded and HTML-unescaped (`unescape`), in place.

        The texts holding an ``&`` are decoded together, joined by a form feed: XML forbids it
        in text (so no text holds one), neither decoder reads it as part of a reference, and the
        joined result is split again, unless the decoding made a form feed. Texts whose second
        escaping is not only the five simple references go one by one (`unescape` of a joined
        string would then take the slow path for all).
        """
        marked = [i for i, text in enumerate(texts) if "&" in text]
        if not marked:
            return texts
        joined = "\f".join([texts[i] for i in marked])
        if _COMPLEX.search(joined):
            starts = np.cumsum([0] + [len(texts[i]) + 1 for i in marked])
            complex_ = {
                marked[int(np.searchsorted(starts, m.start(), side="right")) - 1]
                for m in _COMPLEX.finditer(joined)
            }
            for i in complex_:
                texts[i] = self.unescape(xml_unescape(texts[i]))
            marked = [i for i in marked if i not in complex_]
            joined = "\f".join([texts[i] for i in marked])
        parts = self.unescape(xml_unescape(joined)).split("\f")
        if len(parts) != len(marked):
            parts = [self.unescape(xml_unescape(texts[i])) for i in marked]
        for i, part in zip(marked, parts, strict=True):
            texts[i] = part
        return texts


def scan_batches(
    handle: BinaryIO,
    batch_conversations: int | None,
    new_columns: Callable[[], ColumnsT],
    advance: Callable[[int], None],
    time_pattern: re.Pattern[str],
    unescape: Callable[[str], str],
) -> Iterator[ColumnsT]:
    """Batches of whole conversations, as the lxml reader yields them (a batch each
    `batch_conversations` conversations, then the rest, possibly empty).

    Raises:
        NotCanonical: the input is outside the subset this scan reads, or holds an error the
            lxml reader reports; nothing about the input is decided here.
    """
    scan = _Scan(new_columns, time_pattern, unescape)
    started = False
    for text, last in _chunks(handle, advance):
        if not started:
            head = _HEAD.match(text)
            if head is None:
                raise NotCanonical("not the canonical prologue and <conversations> root")
            text = text[head.end() :]
            started = True
        pieces = text.split("</conversation>")
        for piece in pieces[:-1]:
            scan.conversation(piece)
            if batch_conversations and scan.columns.n_conversations >= batch_conversations:
                yield scan.take()
        scan.flush()
        rest = pieces[-1]
        if last:
            if not _TAIL.fullmatch(rest):
                raise NotCanonical("not a canonical </conversations> ending")
            yield scan.take()
            return
        if rest:
            raise NotCanonical("text after the last </conversation> of a chunk")
