"""The PAN-2012 reader on hand-made fixtures in the exact official layout and quirks."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import PAN12_FIXTURE, flatten_layout
from grooming_detect.data import pan12
from grooming_detect.data.pan12 import CorpusFormatError

P1 = "a1000000000000000000000000000001"
P2 = "a2000000000000000000000000000002"
P3 = "a3000000000000000000000000000003"
TRAIN_XML = PAN12_FIXTURE / pan12.TRAIN_DIR / pan12.TRAIN_XML


def test_fixture_really_has_crlf_id_lists() -> None:
    raw = (PAN12_FIXTURE / pan12.TRAIN_DIR / pan12.TRAIN_PREDATORS).read_bytes()
    assert b"\r\n" in raw and b"  a2" in raw


def test_parse_counts_and_exact_unescaped_text() -> None:
    columns = pan12.parse_messages(TRAIN_XML, show_progress=False)
    assert columns.n_conversations == 6
    assert len(columns) == 18
    texts = dict(
        zip(zip(columns.conversation_id, columns.line, strict=True), columns.text, strict=True)
    )
    c = "c00000000000000000000000000000"
    assert texts[(f"{c}01", 3)] == "don't tell your parents we talk"
    assert texts[(f"{c}02", 1)] == "add me on the other app, mail me at <email/>"
    assert texts[(f"{c}02", 2)] == ""
    assert texts[(f"{c}03", 1)] == "anyone know why gcc segfaults? & it's only on arm"
    assert texts[(f"{c}03", 2)] == "check the logs \u2014 then rebuild"
    assert texts[(f"{c}03", 3)] == "works on my machine\nline two of the same message"
    assert texts[(f"{c}03", 4)] == '<3 "stable" branch'
    assert texts[(f"{c}05", 2)] == "yes caf\u00e9 was packed"


def test_padded_author_is_stripped_and_times_kept() -> None:
    columns = pan12.parse_messages(TRAIN_XML, show_progress=False)
    assert "e1000000000000000000000000000001" in columns.author
    assert all(author == author.strip() for author in columns.author)
    assert columns.time[columns.author.index("e1000000000000000000000000000001")] == "23:59"


def test_id_list_handles_crlf_and_padding() -> None:
    ids = pan12.read_id_list(PAN12_FIXTURE / pan12.TRAIN_DIR / pan12.TRAIN_PREDATORS)
    assert ids == [P1, P2]


def test_line_truth() -> None:
    pairs = pan12.read_line_truth(PAN12_FIXTURE / pan12.TEST_DIR / pan12.TEST_PROBLEM2)
    assert pairs == [
        ("t0000000000000000000000000000001", 1),
        ("t0000000000000000000000000000001", 3),
    ]


def test_line_truth_bad_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "truth.txt"
    path.write_text("t1\t1\nt1 x\n")
    with pytest.raises(CorpusFormatError, match=r"truth.txt:2: 't1 x'"):
        pan12.read_line_truth(path)


@pytest.mark.parametrize("flat", [False, True], ids=["official-subfolders", "flat"])
def test_load_corpus_in_both_layouts(pan12_copy: Path, flat: bool) -> None:
    root = flatten_layout(pan12_copy) if flat else pan12_copy
    files = pan12.find_files(root)
    assert files.test_problem2 is not None and files.diff is not None
    tables, report = pan12.load_corpus(files, validation_fraction=0.3, seed=0, show_progress=False)
    counts = tables.counts()
    assert counts["train"]["messages"] + counts["validation"]["messages"] == 18
    assert counts["train"]["conversations"] + counts["validation"]["conversations"] == 6
    assert counts["test"] == {
        "messages": 5,
        "conversations": 2,
        "authors": 4,
        "predators": 1,
        "predator_conversations": 1,
    }
    # Both training predators are found; their partners are authors but not predators.
    authors = tables.authors.set_index("author")
    assert authors.loc[P1, "is_predator"] and authors.loc[P2, "is_predator"]
    assert authors.loc[P1, "n_conversations"] == 2
    assert not authors.loc["b1000000000000000000000000000001", "is_predator"]
    five = tables.conversations.set_index("conversation_id").loc["c0000000000000000000000000000003"]
    assert five["n_authors"] == 5 and five["n_messages"] == 6
    assert report.diff_lines == 1
    assert report.truth_ids_not_in_corpus == {"train": [], "test": []}
    assert tables.predator_lines is not None and len(tables.predator_lines) == 2
    missing_time = tables.messages[tables.messages["time"].isna()]
    assert missing_time["author"].tolist() == ["f2000000000000000000000000000002"]


def test_missing_training_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=pan12.TRAIN_XML):
        pan12.find_files(tmp_path)


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "corpus.xml"
    path.write_text(body, encoding="utf-8")
    return path


def test_malformed_xml_names_file_line_and_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '<conversations>\n<conversation id="c1">\n<message line="1">\n<author>x</author>\n'
        "</conversation>\n</conversations>\n",
    )
    with pytest.raises(CorpusFormatError, match=r"corpus.xml:5:\d+: malformed XML: .*mismatch"):
        pan12.parse_messages(path, show_progress=False)


def test_truncated_xml_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, '<conversations>\n<conversation id="c1">\n<message line="1">\n<auth')
    with pytest.raises(CorpusFormatError, match=r"corpus.xml:\d+:\d+: malformed XML"):
        pan12.parse_messages(path, show_progress=False)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_doctype_after_a_comment_is_refused_in_any_encoding(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "corpus.xml"
    path.write_text(
        f'<?xml version="1.0" encoding="{encoding.removesuffix("-sig")}"?>\n<!-- a > b -->\n'
        '<!DOCTYPE conversations [<!ENTITY e "x">]>\n<conversations><conversation id="c1">'
        '<message line="1"><author>x</author><time>10:00</time><text>&e;</text></message>'
        "</conversation></conversations>\n",
        encoding=encoding,
    )
    with pytest.raises(CorpusFormatError, match=r"corpus.xml:3: a DOCTYPE/DTD is not part"):
        pan12.parse_messages(path, show_progress=False)


def test_doctype_after_a_prolog_too_long_to_check_is_refused_by_the_parse(tmp_path: Path) -> None:
    comment = "x" * (pan12._PROLOG_BYTES + 10)
    path = _write(
        tmp_path,
        f'<?xml version="1.0"?>\n<!-- {comment} -->\n<!DOCTYPE conversations>\n'
        '<conversations><conversation id="c1"><message line="1"><author>x</author>'
        "<time>10:00</time><text>hi</text></message></conversation></conversations>\n",
    )
    with pytest.raises(CorpusFormatError, match=r"corpus.xml:4: a DOCTYPE/DTD is not part"):
        pan12.parse_messages(path, show_progress=False)


def test_entity_expansion_bomb_is_refused(tmp_path: Path) -> None:
    # The classic "billion laughs": 10**11 copies of "ha" if the parser expanded entities.
    entities = '<!ENTITY e0 "ha">' + "".join(
        f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 12)
    )
    path = _write(
        tmp_path,
        f'<?xml version="1.0"?>\n<!DOCTYPE conversations [{entities}]>\n'
        '<conversations><conversation id="c1"><message line="1"><author>x</author>'
        "<time>10:00</time><text>&e11;</text></message></conversation></conversations>\n",
    )
    with pytest.raises(CorpusFormatError, match="DOCTYPE"):
        pan12.parse_messages(path, show_progress=False)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            '<message line="0"><author>x</author><time>10:00</time><text>a</text></message>',
            "1-based integer line",
        ),
        ('<message line="1"><time>10:00</time><text>a</text></message>', "has no <author>"),
        (
            '<message line="1"><author>x</author><time>25:00</time><text>a</text></message>',
            "is not HH:MM",
        ),
        (
            '<message line="1"><author>x</author><text>a</text></message>'
            '<message line="1"><author>y</author><text>b</text></message>',
            "appears twice",
        ),
    ],
)
def test_bad_message_fields_are_named(tmp_path: Path, message: str, expected: str) -> None:
    path = _write(
        tmp_path,
        f'<conversations>\n<conversation id="c1">\n{message}\n</conversation>\n</conversations>',
    )
    with pytest.raises(CorpusFormatError, match=rf"corpus.xml:3: .*{expected}"):
        pan12.parse_messages(path, show_progress=False)


def test_non_utf8_id_list_is_named(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_bytes(b"abc\n\xff\xfe\n")
    with pytest.raises(CorpusFormatError, match=r"ids.txt: byte 4 is not UTF-8"):
        pan12.read_id_list(path)


def test_conversation_id_in_train_and_test_is_refused(pan12_copy: Path) -> None:
    files = pan12.find_files(pan12_copy)
    test_xml = files.test_xml.read_text(encoding="utf-8")
    files.test_xml.write_text(
        test_xml.replace("t0000000000000000000000000000001", "c0000000000000000000000000000001"),
        encoding="utf-8",
    )
    with pytest.raises(pan12.CorpusFormatError, match=r"training-corpus.*test-corpus.*in both"):
        pan12.load_corpus(files, validation_fraction=0.3, seed=0, show_progress=False)
