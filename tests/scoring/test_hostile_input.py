"""Hostile chat-log input: long messages (a clear error with file and line, or a counted
truncation; features linear in one message's length) and ids of two JSON types."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grooming_detect.data.chatlog import ChatlogFormatError, read_chatlog

HEADER = "conversation_id,line,author,time,text,is_predator\n"


def _csv(tmp_path: Path, text_length: int) -> Path:
    path = tmp_path / "chat.csv"
    path.write_text(
        HEADER + "c1,1,a,10:00,hello,0\n" + f"c1,2,b,10:01,{'x' * text_length},0\n",
        encoding="utf-8",
    )
    return path


def test_cell_over_the_csv_module_limit_is_read(tmp_path: Path) -> None:
    # 200 KB is over the csv module's 128 KB default: read, not a bare _csv.Error.
    messages, _, _ = read_chatlog(_csv(tmp_path, 200_000), max_message_chars=None)
    assert messages["text"].str.len().max() == 200_000


def test_message_over_the_limit_names_file_and_line(tmp_path: Path) -> None:
    path = _csv(tmp_path, 70_000)
    with pytest.raises(ChatlogFormatError, match=rf"{path}:3: text of 70,000 characters"):
        read_chatlog(path)


def test_truncation_is_counted(tmp_path: Path) -> None:
    messages, _, report = read_chatlog(
        _csv(tmp_path, 70_000), max_message_chars=1000, long_messages="truncate"
    )
    assert messages["text"].str.len().max() == 1000
    assert report.truncated_texts == 1


FEATURES_OF_ONE_LONG_MESSAGE = textwrap.dedent(
    """
    import resource, sys
    import pandas as pd
    from grooming_detect.features.stage import build_views
    text = ("hello there friend " * 20_000)[: int(sys.argv[1])]
    messages = pd.DataFrame({"conversation_id": ["c1", "c1"], "line": [1, 2],
        "author": ["a", "b"], "time": ["10:00", "10:01"], "text": [text, "hi"],
        "split": ["train", "train"]})
    authors = pd.DataFrame({"author": ["a", "b"], "split": ["train"] * 2,
        "n_conversations": [1, 1], "n_messages": [1, 1], "is_predator": [True, False]})
    conversations = pd.DataFrame({"conversation_id": ["c1"], "split": ["train"],
        "n_messages": [2], "n_authors": [2], "has_predator": [True]})
    build_views(messages, authors, conversations, "\\n", {"secrecy": ["between us"]})
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """
)


@pytest.mark.pipeline
def test_feature_memory_is_linear_in_message_length() -> None:
    peaks = {}
    for length in (20_000, 300_000):
        out = subprocess.run(
            [sys.executable, "-c", FEATURES_OF_ONE_LONG_MESSAGE, str(length)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        peaks[length] = int(out.split()[-1])
    # Quadratic (a copy of the text per token) would need gigabytes for 300 KB.
    assert peaks[300_000] - peaks[20_000] < 300, peaks


def test_jsonl_ids_of_two_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text(
        '{"conversation_id": "c1", "author": 7, "text": "hi", "is_predator": 0}\n'
        '{"conversation_id": "c1", "author": "7", "text": "yo", "is_predator": 0}\n',
        encoding="utf-8",
    )
    with pytest.raises(ChatlogFormatError, match=rf"{path}:2: author '7' is a JSON str.*line 1"):
        read_chatlog(path)


def test_score_refuses_an_unwritable_out_before_scoring(tmp_path: Path, capsys) -> None:
    from grooming_detect.scoring.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    # The model does not exist either: the --out check comes first, before any loading.
    status = main([str(tmp_path / "chat.csv"), "--model", "nowhere", "--out", str(blocker / "x")])
    assert status == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_blank_split_names_the_file_line(tmp_path: Path) -> None:
    path = tmp_path / "chat.csv"
    path.write_text(
        "conversation_id,author,text,is_predator,split\n"
        'c1,a,"two\nlines",0,train\n'  # a quoted newline: record 1 spans file lines 2-3
        "c2,b,hi,0,\n",
        encoding="utf-8",
    )
    with pytest.raises(ChatlogFormatError, match=rf"{path}:4: split is empty"):
        read_chatlog(path)
