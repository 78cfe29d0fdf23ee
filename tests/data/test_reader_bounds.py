"""Hostile input to every reader (chat-log CSV and JSONL, the stream's standard input, the
PAN-2012 XML and its truth files, the config's data paths): each is a clear error naming the file,
the line and what was expected, never a traceback, merged rows or an unbounded read."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ComposeFn
from grooming_detect.data import chatlog, pan12
from grooming_detect.data.chatlog import ChatlogFormatError
from grooming_detect.data.pan12 import CorpusFormatError
from grooming_detect.scoring.stream import file_messages, stdin_messages

UNLABELLED = "conversation_id,author,text\n"
LABELLED = "conversation_id,line,author,text,is_predator\n"


def _write(tmp_path: Path, body: str, name: str = "chat.csv") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8", newline="")
    return path


def _rows(n: int, first: int = 0) -> list[str]:
    return [f"c{i % 5},a{i % 3},message {i}" for i in range(first, first + n)]


# -- 1. a quote left open ------------------------------------------------------------------------
def test_a_quote_left_open_to_the_end_names_the_line_it_opened(tmp_path: Path) -> None:
    # 300 messages; the quote opened on file line 5 swallowed the other 296 (read as 4 rows).
    rows = _rows(300)
    rows[3] = 'c1,a1,"oops, unclosed'
    path = _write(tmp_path, UNLABELLED + "\n".join(rows) + "\n")
    expected = rf"{path}:5: a quoted field opened here is never closed \(it runs to the end"
    with pytest.raises(ChatlogFormatError, match=expected):
        chatlog.read_chatlog(path, require_labels=False)
    with pytest.raises(ChatlogFormatError, match=expected):  # the stream's file reader
        list(file_messages(path))


def test_the_open_quote_is_found_after_a_real_multi_line_cell(tmp_path: Path) -> None:
    body = UNLABELLED + 'c1,a1,"two\r\nlines, fine"\r\nc1,a2,ok\r\nc1,a1,"never closed\r\n'
    path = _write(tmp_path, body + "\r\n".join(_rows(20)) + "\r\n")
    with pytest.raises(ChatlogFormatError, match=rf"{path}:5: a quoted field opened here"):
        chatlog.read_chatlog(path, require_labels=False)


def test_a_quote_closed_inside_another_row_names_both_lines(tmp_path: Path) -> None:
    rows = _rows(50)
    rows[2] = 'c1,a1,"oops'
    rows[40] = 'c2,a2,"quoted" text'
    path = _write(tmp_path, UNLABELLED + "\n".join(rows) + "\n")
    with pytest.raises(
        ChatlogFormatError,
        match=rf"{path}:42: malformed CSV \(in the record that starts at line 4\): "
        r"',' expected after '\"'",
    ):
        chatlog.read_chatlog(path, require_labels=False)


def test_a_cell_that_swallowed_whole_records_is_refused(tmp_path: Path) -> None:
    # The quote opened on line 4 is closed cleanly by the quote ending line 44: the row has
    # the header's three fields, so only the shape of its text gives it away.
    rows = _rows(50)
    rows[2] = 'c1,a1,"oops'
    rows[42] = 'c2,a2,closed here"'
    path = _write(tmp_path, UNLABELLED + "\n".join(rows) + "\n")
    with pytest.raises(
        ChatlogFormatError,
        match=rf"{path}:4: the quoted text cell of this row runs over 41 lines, 39 of them "
        r"shaped like records of this file \(3 fields\); a quote left open\?",
    ):
        chatlog.read_chatlog(path, require_labels=False)


def test_multi_line_messages_are_kept(tmp_path: Path) -> None:
    texts = [
        "first line\nsecond, with a comma\nthird",
        "shopping: apples, pears, plums\nbread, milk, eggs\nsoap, salt, rice\nok",  # spaces
        "a,b\nc,d\ne,f\ng,h",  # one comma fewer than a record has
        "x\r\ny\rz\n\n\nend",
    ]
    path = tmp_path / "chat.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["conversation_id", "author", "text"])
        writer.writerows([("c1", f"a{i}", text) for i, text in enumerate(texts)])
    messages, _, report = chatlog.read_chatlog(path, require_labels=False)
    assert report.rows == 4
    assert messages["text"].tolist() == texts


def _record_shaped(line: str) -> bool:
    fields = line.split(",")
    return len(fields) == 3 and all(f and not re.search(r"\s", f) for f in fields[:2])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet='ab ,"\n\r\u2028', max_size=30), min_size=1, max_size=6))
def test_csv_round_trip_or_the_swallowed_record_error(texts: list[str]) -> None:
    """A CSV file written by the csv module reads back exactly, unless a text really is two or
    more lines shaped like records of the file (then, and only then, it is refused)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gen.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["conversation_id", "author", "text"])
            writer.writerows([("c1", f"a{i}", text) for i, text in enumerate(texts)])
        _round_trip(path, texts)


def _round_trip(path: Path, texts: list[str]) -> None:
    swallowed = any(
        len(inner := [x for x in re.split(r"\r\n|\r|\n", text)[1:-1] if x]) >= 2
        and all(map(_record_shaped, inner))
        for text in texts
    )
    if swallowed:
        with pytest.raises(ChatlogFormatError, match="shaped like records"):
            chatlog.read_chatlog(path, require_labels=False)
    else:
        messages, _, _ = chatlog.read_chatlog(path, require_labels=False)
        assert messages["text"].tolist() == texts


# -- 2. short rows and a column named twice -------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (LABELLED + "c,1,a,hi,0\nc,2,a\n", r"chat.csv:3: 3 fields where the header has 5"),
        (LABELLED + "c,1,a,hi,0\nc\n", r"chat.csv:3: 1 field where the header has 5"),
        (
            UNLABELLED + 'c,a,"two\nlines"\nc,b\n',
            r"chat.csv:4: 2 fields where the header has 3",
        ),
        (
            "conversation_id,author,text,text,is_predator\nc,a,hi,yo,0\n",
            r"chat.csv:1: column 'text' appears twice in the header \(columns 3 and 4\)",
        ),
        (
            "conversation_id,author,text,notes,notes\nc,a,hi,x,y\n",
            r"chat.csv:1: column 'notes' appears twice",
        ),
    ],
)
def test_short_rows_and_repeated_columns_are_named(
    tmp_path: Path, body: str, expected: str
) -> None:
    with pytest.raises(ChatlogFormatError, match=expected):
        chatlog.read_chatlog(_write(tmp_path, body), require_labels=False)


# -- 3. predator ids that never speak -------------------------------------------------------------
def test_predator_ids_not_in_the_data_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, UNLABELLED + "\n".join(f"c{i},u{i},hi" for i in range(7)) + "\n")
    ids = tmp_path / "predators.txt"
    ids.write_text("\n".join(f"u{i}" for i in range(12)) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="grooming_detect.data.chatlog"):
        _, predators, report = chatlog.read_chatlog(path, ids)
    assert len(predators) == 12
    assert report.predator_ids_not_in_data == ["u10", "u11", "u7", "u8", "u9"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "5 of its 12 predator id(s) never speak" in warnings[0]
    assert str(ids) in warnings[0] and "u10, u11, u7, u8, u9" in warnings[0]


# -- 4. deep nesting and long lines ---------------------------------------------------------------
RECORD = '{"conversation_id": "c", "author": "a", "text": "hi"}\n'
DEEP = '{"conversation_id": "c", "author": "a", "text": "x", "z": ' + "[" * 100_000
DEEP += "]" * 100_000 + "}\n"


def test_deeply_nested_json_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, RECORD + DEEP, "chat.jsonl")
    expected = "JSON nested too deeply to read; expected one flat JSON object per line"
    with pytest.raises(ChatlogFormatError, match=rf"{path}:2: {expected}"):
        chatlog.read_chatlog(path, require_labels=False)
    with pytest.raises(ChatlogFormatError, match=rf"<stdin>:2: {expected}"):
        list(stdin_messages(io.StringIO(RECORD + DEEP)))


def test_a_json_line_longer_than_any_record_is_refused_before_parsing(tmp_path: Path) -> None:
    long_line = '{"conversation_id": "c", "author": "a", "text": "x", "pad": "'
    long_line += "p" * ((1 << 20) + 200) + '"}\n'
    path = _write(tmp_path, RECORD + long_line, "chat.jsonl")
    with pytest.raises(
        ChatlogFormatError,
        match=rf"{path}:2: a line of 1,048,839 characters, longer than any record with a text "
        r"within data.max_message_chars can be \(1,048,696\)",
    ):
        chatlog.read_chatlog(path, require_labels=False, max_message_chars=10)
    # Without a limit, or cutting long texts, the line is read (its text may be cut).
    for options in ({"max_message_chars": None}, {"long_messages": "truncate"}):
        _, _, report = chatlog.read_chatlog(path, require_labels=False, **options)  # type: ignore[arg-type]
        assert report.rows == 2


def test_standard_input_reads_no_line_past_the_longest_record() -> None:
    limit = 12 * chatlog.MAX_MESSAGE_CHARS + (1 << 20)  # 12 JSON characters a character
    stream = io.StringIO(RECORD + "x" * (3 * limit))
    messages = stdin_messages(stream)
    assert next(messages).text == "hi"
    with pytest.raises(ChatlogFormatError, match=rf"<stdin>:2: a line of more than {limit:,}"):
        next(messages)
    assert stream.tell() < 2 * limit  # the rest was never read


# -- 5. line values, long numbers and lone surrogates ---------------------------------------------
LONG = "1" * 5000
JSONL_CASES = [
    (
        f'{{"conversation_id": "c", "author": "a", "text": "x", "line": {LONG}}}',
        r"line is a JSON number of 5,000 digits; expected a 1-based integer",
    ),
    (
        f'{{"conversation_id": {LONG}, "author": "a", "text": "x", "line": 2}}',
        r"conversation_id is a JSON number of 5,000 digits; expected a string or an integer",
    ),
    (
        f'{{"conversation_id": "c", "author": "a", "text": "x", "line": "{LONG}"}}',
        r"line='1111111111111111111111111111111111111111'\.\.\. \(5,000 characters\); "
        r"expected a 1-based integer",
    ),
    (
        '{"conversation_id": "c", "author": "a", "text": "x", "line": "\u00b2"}',
        r"line='\u00b2'; expected a 1-based integer",
    ),
    (
        '{"conversation_id": "c", "author": "a", "text": "x", "line": "\u0663"}',
        r"line='\u0663'; expected a 1-based integer",
    ),
    (
        '{"conversation_id": "c", "author": "a", "text": "\\ud800", "line": 2}',
        r"text is not valid UTF-8",
    ),
    (
        '{"conversation_id": "c\\udc00", "author": "a", "text": "x", "line": 2}',
        r"conversation_id is not valid UTF-8",
    ),
    (
        '{"conversation_id": "c", "author": "\\udfff", "text": "x", "line": 2}',
        r"author is not valid UTF-8",
    ),
    (
        '{"conversation_id": "c", "author": "a", "text": ["x"], "line": 2}',
        r"text is a JSON array; expected a string",
    ),
]


@pytest.mark.parametrize(("record", "expected"), JSONL_CASES)
def test_bad_jsonl_values_name_the_line_and_the_field(
    tmp_path: Path, record: str, expected: str
) -> None:
    # The first record has a line: the file's later lines are then read, not numbered.
    first = RECORD.replace('"hi"', '"hi", "line": 1')
    path = _write(tmp_path, first + record + "\n", "chat.jsonl")
    with pytest.raises(ChatlogFormatError, match=rf"{path}:2: {expected}"):
        chatlog.read_chatlog(path, require_labels=False)
    with pytest.raises(ChatlogFormatError, match=rf"{path}:2: {expected}"):
        list(file_messages(path))


@pytest.mark.parametrize(("record", "expected"), JSONL_CASES)
def test_bad_stdin_values_name_the_line_and_the_field(record: str, expected: str) -> None:
    if "5,000 characters" in expected:
        expected = r"line='1111"  # the stream's own (shorter) wording
    with pytest.raises(ChatlogFormatError, match=rf"<stdin>:2: {expected}"):
        list(stdin_messages(io.StringIO(RECORD + record + "\n")))


def test_a_surrogate_column_name_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        RECORD + '{"conversation_id": "c", "author": "b", "text": "x", "\\ud800": 1}\n',
        "chat.jsonl",
    )
    with pytest.raises(ChatlogFormatError, match=rf"{path}:2: a column name .* is not valid"):
        chatlog.read_chatlog(path, require_labels=False)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (LONG, r"'1111111111111111111111111111111111111111'\.\.\."),
        ("\u00b2", "'\u00b2'"),
        ("\u0663", "'\u0663'"),
    ],
)
def test_bad_csv_line_values_name_the_line(tmp_path: Path, value: str, shown: str) -> None:
    path = _write(tmp_path, LABELLED + f"c,1,a,hi,0\nc,{value},b,yo,0\n")
    with pytest.raises(ChatlogFormatError, match=rf"{path}:3: line={shown}"):
        chatlog.read_chatlog(path)


def test_lines_are_read_up_to_the_int64_limit(tmp_path: Path) -> None:
    # The canonical tables store lines as int64, as the served model's check has it.
    largest = 2**63 - 1
    path = _write(tmp_path, LABELLED + f"c,1,a,hi,0\nc,{largest},b,yo,0\n")
    messages, _, _ = chatlog.read_chatlog(path)
    assert messages["line"].tolist() == [1, largest]
    path = _write(tmp_path, LABELLED + f"c,1,a,hi,0\nc,{largest + 1},b,yo,0\n")
    with pytest.raises(ChatlogFormatError, match=rf"{path}:3: line='{largest + 1}'; expected"):
        chatlog.read_chatlog(path)
    record = f'{{"conversation_id": "c", "author": "a", "text": "x", "line": {largest + 1}}}'
    with pytest.raises(ChatlogFormatError, match=rf"<stdin>:1: line={largest + 1}; expected"):
        list(stdin_messages(io.StringIO(record)))


def _xml(tmp_path: Path, message: str) -> Path:
    return _write(
        tmp_path,
        f'<conversations>\n<conversation id="c1">\n{message}\n</conversation>\n</conversations>',
        "corpus.xml",
    )


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (LONG, r"'1111111111111111111111111111111111111111'\.\.\."),
        ("\u00b2", "'\u00b2'"),
        ("\u0663", "'\u0663'"),
    ],
)
def test_bad_pan12_line_attributes_are_named(tmp_path: Path, line: str, shown: str) -> None:
    path = _xml(tmp_path, f'<message line="{line}"><author>x</author><text>a</text></message>')
    with pytest.raises(
        CorpusFormatError,
        match=rf"{path}:3: <message line={shown}.*> in conversation c1: expected a 1-based",
    ):
        pan12.parse_messages(path, show_progress=False)


@pytest.mark.parametrize("reference", ["&#xD800;", "&#55296;", "&#xDFFF;"])
def test_pan12_surrogate_references_are_refused(tmp_path: Path, reference: str) -> None:
    path = _xml(tmp_path, f'<message line="1"><author>x</author><text>{reference}</text></message>')
    with pytest.raises(CorpusFormatError, match=rf"{path}:3:\d+: malformed XML: .*CharRef"):
        pan12.parse_messages(path, show_progress=False)


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", LONG])
def test_bad_pan12_truth_lines_are_named(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, f"t1\t3\nt1\t{value}\n", "truth.txt")
    with pytest.raises(CorpusFormatError, match=rf"{path}:2: .*expected 'conversation_id<TAB>"):
        pan12.read_line_truth(path)


# -- 6. and 7. what a reader reads at most -------------------------------------------------------
def test_a_csv_without_a_header_line_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "conversation_id,author,text" + "," * ((1 << 20) + 5))
    with pytest.raises(ChatlogFormatError, match=rf"{path}:1: no line break in the first"):
        chatlog.read_chatlog(path, require_labels=False)


# Run apart, with its memory and time capped: before the fix, each of these read /dev/zero until
# the kernel stopped it, or waited for ever for a writer to open the FIFO.
NOT_REGULAR = textwrap.dedent(
    """
    import json, resource, sys
    from omegaconf import OmegaConf
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from grooming_detect.data import chatlog, pan12
    from grooming_detect.validation import validate_config

    def outcome(call, *args):
        try:
            return repr(call(*args))
        except Exception as error:
            return f"{type(error).__name__}: {error}"

    configs, fifo = json.loads(sys.stdin.read())
    for config in configs:
        print("config:", outcome(validate_config, OmegaConf.create(config)))
    for path in ("/dev/zero", fifo):
        print("label level:", outcome(chatlog.label_level_of, path))
        print("chat log:", outcome(chatlog.read_chatlog, path))
        print("id list:", outcome(pan12.read_id_list, path))
        print("xml:", outcome(pan12.parse_messages, path, False))
    """
)


@pytest.mark.pipeline
@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_inputs_that_are_not_regular_files_are_refused(
    compose_cfg: ComposeFn, tmp_path: Path
) -> None:
    from omegaconf import OmegaConf

    fifo = tmp_path / "pipe.fifo"
    os.mkfifo(fifo)
    file = _write(tmp_path, UNLABELLED + "c,a,hi\n")
    configs = [
        compose_cfg("data=chatlog", "data.path=/dev/zero"),
        compose_cfg("data=chatlog", f"data.path={fifo}"),
        compose_cfg("data=chatlog", f"data.path={file}", f"data.predator_ids={fifo}"),
    ]
    out = subprocess.run(
        [sys.executable, "-c", NOT_REGULAR],
        input=json.dumps([[OmegaConf.to_yaml(cfg) for cfg in configs], str(fifo)]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    kind = "is not a regular file; expected a file (a device or a pipe cannot be read as one)"
    assert out.stdout.splitlines() == [
        f"config: ConfigError: data.path: /dev/zero {kind}",
        f"config: ConfigError: data.path: {fifo} {kind}",
        f"config: ConfigError: data.predator_ids: {fifo} {kind}",
        *[
            line
            for path in ("/dev/zero", fifo)
            for line in (
                "label level: None",
                f"chat log: FileNotFoundError: {path}: chat-log file is not a regular file",
                f"id list: CorpusFormatError: {path}: not a regular file; expected a file",
                f"xml: CorpusFormatError: {path}: not a regular file; expected a file",
            )
        ],
    ]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (("data=chatlog", "data.path={tmp}"), r"data\.path: .* is not a regular file"),
        (
            ("data=chatlog", "data.path={file}", "data.predator_ids={tmp}"),
            r"data\.predator_ids: .* is not a regular file",
        ),
        (("data=pan12", "data.root={file}"), r"data\.root: .*chat.csv is not a directory"),
    ],
)
def test_data_paths_of_the_wrong_kind_fail_at_start(
    compose_cfg: ComposeFn, tmp_path: Path, overrides: tuple[str, ...], expected: str
) -> None:
    from grooming_detect.config import ConfigError
    from grooming_detect.validation import validate_config

    file = _write(tmp_path, UNLABELLED + "c,a,hi\n")
    cfg = compose_cfg(*(o.format(file=file, tmp=tmp_path) for o in overrides))
    with pytest.raises(ConfigError, match=expected):
        validate_config(cfg)
