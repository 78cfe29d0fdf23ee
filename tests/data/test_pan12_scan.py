"""The fast PAN-2012 scan reads exactly what the lxml reader reads, and declines everything else.

Each document below is read twice: by `pan12.iter_message_batches` (the scan, falling back to
lxml where it declines) and by `pan12._lxml_batches` alone. Batches, columns and errors must be
identical, for several batch sizes and for chunks small enough to cut every document in many
places. Canonical documents must really be read by the scan (not by the fallback).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from conftest import PAN12_FIXTURE
from grooming_detect.data import pan12, pan12_scan
from grooming_detect.data.pan12 import CorpusFormatError

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<conversations>\n'
TAIL = "</conversations>\n"


def _message(line: int, author: str, text: str | None, time: str | None = "21:10") -> str:
    time_element = "" if time is None else ("<time/>" if time == "" else f"<time>{time}</time>")
    text_element = "<text/>" if text is None else f"<text>{text}</text>"
    return (
        f'<message line="{line}">\n<author>{author}</author>\n{time_element}\n'
        f"{text_element}\n</message>\n"
    )


def _conversation(cid: str, messages: list[str]) -> str:
    return f'<conversation id="{cid}">\n' + "".join(messages) + "</conversation>\n"


def _read(path: Path, batch: int | None) -> list[tuple]:
    return [
        (b.n_conversations, b.conversation_id, b.line, b.author, b.time, b.text)
        for b in pan12.iter_message_batches(path, batch, show_progress=False)
    ]


def _read_lxml(path: Path, batch: int | None) -> list[tuple]:
    return [
        (b.n_conversations, b.conversation_id, b.line, b.author, b.time, b.text)
        for b in pan12._lxml_batches(path, batch, show_progress=False)
    ]


def _outcome(read, path: Path, batch: int | None) -> object:  # type: ignore[no-untyped-def]
    try:
        return read(path, batch)
    except CorpusFormatError as error:
        return ("error", str(error))


def _scanned(path: Path) -> bool:
    """Whether the scan alone reads `path` (no fallback)."""
    try:
        with open(path, "rb") as handle:
            list(
                pan12_scan.scan_batches(
                    handle,
                    None,
                    pan12.MessageColumns,
                    lambda n: None,
                    pan12._TIME_PATTERN,
                    pan12.unescape_text,
                )
            )
    except pan12_scan.NotCanonical:
        return False
    return True


def _assert_same(path: Path) -> None:
    for batch in (None, 1, 2, 5):
        assert _outcome(_read, path, batch) == _outcome(_read_lxml, path, batch), (batch, path)


# Message texts as they appear between <text> and </text> in the file.
TEXTS = [
    "hi there",
    "don&amp;apos;t tell anyone",
    "&amp;quot;quoted&amp;quot; &amp;amp; more",
    "check &amp;#8212; dash and &amp;#x27; quote",
    "mail me at &lt;email/&gt;",
    "mail me at <email/> later",
    "two<email/><phone/>markers",
    "&lt;3 you",
    "caf\u00e9 \u00fcber \U0001f600 \u4e2d\u6587",
    "line one\nline two",
    "  padded text  ",
    "&#13;carriage by reference",
    "&#x1F600; by reference",
    "a &gt; b",
    "&amp;nbsp;html only entity",
    "&amp;amp;lt; twice",
    "&amp;AMP; upper",
    "&amp;copy",
    "",
]


def _document(rng: random.Random, n_conversations: int) -> str:
    parts = [HEAD]
    for c in range(n_conversations):
        messages = []
        for line in range(1, rng.randint(1, 5) + 1):
            author = rng.choice(["a1", "b2", "c3", " padded ", "d4"])
            text = rng.choice([*TEXTS, None])
            time = rng.choice(["21:10", "00:00", "23:59", "", None, " 09:05 "])
            messages.append(_message(line, author, text, time))
        parts.append(_conversation(f"conv{c:04d}", messages))
    parts.append(TAIL)
    return "".join(parts)


@pytest.fixture(params=[pan12_scan.CHUNK_BYTES, 64, 300])
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(pan12_scan, "CHUNK_BYTES", request.param)
    return int(request.param)


def test_official_fixtures_are_scanned_and_read_alike(chunk: int) -> None:
    for path in sorted(PAN12_FIXTURE.glob("*/*.xml")):
        assert _scanned(path), path
        _assert_same(path)


def test_random_canonical_documents_are_scanned_and_read_alike(tmp_path: Path, chunk: int) -> None:
    rng = random.Random(chunk)
    for i in range(30):
        path = tmp_path / f"doc{i}.xml"
        path.write_text(_document(rng, rng.randint(0, 12)), encoding="utf-8")
        assert _scanned(path), path.read_text(encoding="utf-8")
        _assert_same(path)


# (name, edit of a canonical document, whether the scan still reads it itself)
VARIANTS: list[tuple[str, object, bool]] = [
    ("crlf", lambda d: d.replace("\n", "\r\n"), True),
    ("lone cr", lambda d: d.replace("\n", "\r"), True),
    ("bom", lambda d: "\ufeff" + d, True),
    ("no declaration", lambda d: d.split("\n", 1)[1], True),
    ("single-quoted declaration", lambda d: d.replace('"1.0"', "'1.0'", 1), True),
    ("xml 1.1", lambda d: d.replace('"1.0"', '"1.1"', 1), False),
    ("standalone", lambda d: d.replace('"UTF-8"', '"utf-8" standalone="yes"', 1), True),
    ("comment", lambda d: d.replace("<message", "<!-- c --><message", 1), False),
    ("cdata", lambda d: d.replace("<text>hi", "<text><![CDATA[<b>]]>hi", 1), False),
    ("pi", lambda d: d.replace("<conversation ", "<?pi x?><conversation ", 1), False),
    ("doctype", lambda d: d.replace("<conversations>", "<!DOCTYPE c><conversations>"), False),
    ("single quotes", lambda d: d.replace('id="conv0001"', "id='conv0001'"), False),
    ("extra attribute", lambda d: d.replace('line="1">', 'line="1" x="y">', 1), False),
    (
        "child order",
        lambda d: d.replace(
            "<time>21:10</time>\n<text>hi there</text>",
            "<text>hi there</text><time>21:10</time>",
            1,
        ),
        False,
    ),
    ("no time", lambda d: d.replace("<time>21:10</time>", "", 1), True),
    ("space in tag", lambda d: d.replace("<author>", "<author >", 1), False),
    ("unknown child", lambda d: d.replace("</author>", "</author><x>1</x>", 1), False),
    ("empty author", lambda d: d.replace(">a1<", "><", 1), False),
    ("padded conversation id", lambda d: d.replace('id="conv0002"', 'id=" conv0002 "'), True),
    ("empty conversation id", lambda d: d.replace('id="conv0001"', 'id=""'), False),
    ("duplicate conversation", lambda d: d.replace('id="conv0002"', 'id="conv0001"'), False),
    ("duplicate line", lambda d: d.replace('line="2"', 'line="1"'), False),
    ("line zero", lambda d: d.replace('line="1"', 'line="0"', 1), False),
    ("line not a number", lambda d: d.replace('line="1"', 'line="x"', 1), False),
    ("bad time", lambda d: d.replace("21:10", "25:61", 1), False),
    ("control character", lambda d: d.replace("hi there", "hi\x01there", 1), False),
    ("noncharacter", lambda d: d.replace("hi there", "hi\ufffethere", 1), False),
    ("cdata end", lambda d: d.replace("hi there", "hi ]]> there", 1), False),
    ("bare ampersand", lambda d: d.replace("hi there", "hi & there", 1), False),
    ("unknown entity", lambda d: d.replace("hi there", "hi &nbsp; there", 1), False),
    ("forbidden reference", lambda d: d.replace("hi there", "hi &#1; there", 1), False),
    ("big reference", lambda d: d.replace("hi there", "hi &#x110000; there", 1), False),
    ("truncated", lambda d: d[: len(d) // 2], False),
    ("no root end", lambda d: d.replace(TAIL, ""), False),
    ("text after root", lambda d: d + "junk", False),
    ("second root", lambda d: d + "<conversations></conversations>", False),
    ("message outside", lambda d: d.replace(TAIL, _message(1, "z", "x") + TAIL), False),
    (
        "nested conversation",
        lambda d: d.replace("<message", '<conversation id="n"><message', 1),
        False,
    ),
    ("stray close", lambda d: d.replace("</message>", "</message></conversation>", 1), False),
    ("latin-1 declared", lambda d: d.replace("UTF-8", "ISO-8859-1", 1), False),
    ("tab in id", lambda d: d.replace('id="conv0001"', 'id="conv\t0001"'), False),
    ("gt in id", lambda d: d.replace('id="conv0001"', 'id="conv>0001"'), True),
    ("self-closing root", lambda d: HEAD.replace("<conversations>", "<conversations/>"), False),
    # lxml's reader reads <message/> and <conversation/> as elements (and refuses them there).
    ("message in text", lambda d: d.replace("hi there", "hi <message/> there", 1), False),
    ("conversation in text", lambda d: d.replace("hi there", "hi <conversation/>", 1), False),
    ("other element in text", lambda d: d.replace("hi there", "hi <a.b-c_d/> there", 1), True),
    # Longer than a canonical file holds: lxml decides (its limits are far beyond these).
    ("long author", lambda d: d.replace(">a1<", f">{'a' * 1001}<", 1), False),
    ("long id", lambda d: d.replace('id="conv0001"', f'id="{"c" * 1001}"'), False),
    ("long name in text", lambda d: d.replace("hi there", f"<{'e' * 102}/>", 1), False),
    ("long text", lambda d: d.replace("hi there", "x" * 100_001, 1), False),
    (
        "spaces before close",
        lambda d: d.replace("</conversation>", " " * 100_000 + "</conversation>", 1),
        False,
    ),
    (
        "spaces between",
        lambda d: d.replace("</conversation>\n", "</conversation>" + "\n" * 5000, 1),
        False,
    ),
    ("spaces in message", lambda d: d.replace("</author>", "</author>" + " " * 100_000, 1), False),
    ("some spaces", lambda d: d.replace("</author>", "</author>" + " " * 900, 1), True),
    ("huge reference", lambda d: d.replace("hi there", "&#" + "1" * 5000 + ";", 1), False),
    (
        "huge reference, escaped",
        lambda d: d.replace("hi there", "&amp;#" + "1" * 5000 + ";", 1),
        True,
    ),
    ("empty root", lambda d: HEAD + TAIL, True),
]


def _canonical() -> str:
    messages = [
        _message(1, "a1", "hi there"),
        _message(2, "b2", "don&amp;apos;t &amp;#8212; x"),
        _message(3, "a1", None, ""),
    ]
    conversations = [_conversation(f"conv{c:04d}", messages) for c in range(6)]
    return HEAD + "".join(conversations) + TAIL


@pytest.mark.parametrize("name, edit, scanned", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_variants_are_read_as_lxml_reads_them(
    tmp_path: Path,
    chunk: int,
    name: str,
    edit,
    scanned: bool | None,  # type: ignore[no-untyped-def]
) -> None:
    path = tmp_path / "variant.xml"
    path.write_text(edit(_canonical()), encoding="utf-8", newline="")
    if scanned is not None:
        assert _scanned(path) is scanned
    _assert_same(path)


def test_invalid_utf8_is_declined_and_reported_by_lxml(tmp_path: Path) -> None:
    path = tmp_path / "bytes.xml"
    path.write_bytes(_canonical().encode("utf-8").replace(b"hi there", b"hi \xff there", 1))
    assert not _scanned(path)
    with pytest.raises(CorpusFormatError, match=r"bytes\.xml:\d+:\d+"):
        _read(path, None)


def test_a_stop_after_yielded_batches_resumes_where_the_scan_stopped(tmp_path: Path) -> None:
    document = _canonical().replace(
        '<conversation id="conv0004">', '<conversation id="conv0004"><!-- late -->'
    )
    path = tmp_path / "late.xml"
    path.write_text(document, encoding="utf-8")
    batches = _read(path, 2)
    assert batches == _read_lxml(path, 2)
    assert [b[0] for b in batches] == [2, 2, 2, 0]


def test_a_negative_batch_size_is_refused_and_zero_is_one_batch() -> None:
    path = next(iter(sorted(PAN12_FIXTURE.glob("*/*.xml"))))
    with pytest.raises(ValueError, match="batch_conversations=-1: expected a positive number"):
        _read(path, -1)
    assert [batch[0] for batch in _read(path, 0)] == [batch[0] for batch in _read(path, None)]
