"""Generic chat logs: both label levels, every documented error, and the whole pipeline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import FIXTURES, ComposeFn, recomputed_measures
from grooming_detect import pipeline
from grooming_detect.data import chatlog
from grooming_detect.data.chatlog import ChatlogFormatError
from grooming_detect.stage import dataset_dir, latest_dir

CSV = FIXTURES / "chatlog" / "author_labels.csv"
JSONL = FIXTURES / "chatlog" / "conversation_labels.jsonl"


def test_csv_with_author_labels() -> None:
    messages, predators, report = chatlog.read_chatlog(CSV)
    assert predators == {"u1"}
    assert report.rows == 7 and report.empty_texts == 1
    assert report.ignored_columns == ["channel"]
    assert messages["time"].tolist()[:5] == ["21:10", "21:11", "21:12", "23:59", "00:01"]
    assert messages["text"].tolist()[3] == 'gg, "nice" game'
    assert messages["text"].tolist()[5] == "multi\nline text"


def test_predator_id_list_instead_of_a_column(tmp_path: Path) -> None:
    unlabelled = tmp_path / "chat.csv"
    pd.read_csv(CSV).drop(columns=["is_predator"]).to_csv(unlabelled, index=False)
    _, predators, report = chatlog.read_chatlog(
        unlabelled, FIXTURES / "chatlog" / "predator_ids.txt"
    )
    assert predators == {"u1", "u9"}
    assert report.predator_ids_not_in_data == ["u9"]


def test_jsonl_with_conversation_labels_numbers_lines_in_file_order() -> None:
    messages, labels, report = chatlog.read_chatlog(JSONL)
    assert labels == {"k1": True, "k2": False}
    assert report.label_level == "conversation"
    assert report.lines_numbered_in_file_order
    assert messages["line"].tolist() == [1, 2, 1, 2]
    assert messages["time"].tolist()[:3] == ["20:00", "20:01", "09:15"]
    assert messages["time"].isna().tolist() == [False, False, False, True]


def _bad(tmp_path: Path, text: str, suffix: str = ".csv") -> Path:
    path = tmp_path / f"bad{suffix}"
    path.write_text(text, encoding="utf-8")
    return path


HEADER = "conversation_id,line,author,text,is_predator\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("conversation_id,author\nc,a\n", r"bad.csv:1: header lacks column\(s\) \['text'\]"),
        (HEADER + "c,1,a,hi,maybe\n", r"bad.csv:2: is_predator='maybe' is not a label"),
        (HEADER + "c,1,a,hi,0\nc,1,b,yo,0\n", r"bad.csv:3: .*line=1\) duplicates row 2"),
        (HEADER + "c,1,a,hi,1\nd,1,a,yo,0\n", r"bad.csv:3: author 'a' is labelled False here"),
        (HEADER + "c,x,a,hi,0\n", r"bad.csv:2: line='x'; expected a 1-based integer"),
        (HEADER + "c,1,,hi,0\n", r"bad.csv:2: empty conversation_id or author"),
        (HEADER + "c,1,a,hi,0,extra\n", r"bad.csv:2: 6 fields where the header has 5"),
        (
            "conversation_id,author,text,time,is_predator\nc,a,hi,9pm,0\n",
            r"bad.csv:2: time='9pm' is not HH:MM",
        ),
        (
            "conversation_id,author,text,split,is_predator\nc,a,hi,dev,0\n",
            r"bad.csv:2: split='dev'; expected one of",
        ),
        ("conversation_id,author,text\nc,a,hi\n", "found 0 kinds of labels"),
        (HEADER, "no records"),
    ],
)
def test_bad_csv_rows_are_named(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(ChatlogFormatError, match=expected):
        chatlog.read_chatlog(_bad(tmp_path, body))


def test_bad_jsonl_records_are_named(tmp_path: Path) -> None:
    path = _bad(tmp_path, '{"conversation_id": "c", "author": "a", "text": "x"}\n{oops\n', ".jsonl")
    with pytest.raises(ChatlogFormatError, match=r"bad.jsonl:2: invalid JSON"):
        chatlog.read_chatlog(path)
    path = _bad(tmp_path, '{"conversation_id": "c", "text": "x"}\n', ".jsonl")
    with pytest.raises(
        ChatlogFormatError, match=r"bad.jsonl:1: record lacks key\(s\) \['author'\]"
    ):
        chatlog.read_chatlog(path)


def test_non_utf8_bytes_are_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(HEADER.encode() + "c,1,a,caf\u00e9,0\n".encode("latin-1"))
    with pytest.raises(ChatlogFormatError, match=r"latin1.csv:2: byte 0xe9 is not UTF-8"):
        chatlog.read_chatlog(path)


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ChatlogFormatError, match=r"use \.csv or \.jsonl"):
        chatlog.read_chatlog(_bad(tmp_path, "x", ".xlsx"))


def test_a_conversation_in_two_splits_is_refused(tmp_path: Path) -> None:
    body = "conversation_id,author,text,split,is_predator\nc,a,hi,train,0\nc,b,yo,test,0\n"
    with pytest.raises(ChatlogFormatError, match="rows in several splits"):
        chatlog.read_chatlog(_bad(tmp_path, body))


@pytest.fixture
def conversation_labelled_log(tiny_run, tmp_path: Path) -> Path:
    """A JSONL chat log with conversation labels only, made from the tiny synthetic corpus (the
    tables of `conftest.tiny_run`, read only)."""
    cfg, _ = tiny_run
    processed = dataset_dir(cfg)
    messages = pd.read_parquet(processed / "messages.parquet")
    labels = pd.read_parquet(processed / "conversations.parquet").set_index("conversation_id")
    records = messages.assign(
        conversation_label=messages["conversation_id"].map(labels["has_predator"])
    ).drop(columns=["split"])
    path = tmp_path / "team-chat.jsonl"
    records.to_json(path, orient="records", lines=True)
    return path


@pytest.mark.pipeline
def test_pipeline_on_conversation_labels_scores_conversations(
    compose_cfg: ComposeFn, conversation_labelled_log: Path
) -> None:
    cfg = compose_cfg("data=chatlog", f"data.path={conversation_labelled_log}")
    result = pipeline.run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    evaluate = client.get_run(
        next(
            r.info.run_id
            for r in client.search_runs([result.experiment_id])
            if r.data.tags.get("stage") == "evaluate"
            and r.data.tags.get("mlflow.parentRunId") == result.run_id
        )
    )
    metrics = evaluate.data.metrics
    evaluation = latest_dir(cfg.paths.run_dir, "evaluation")
    expected = recomputed_measures(evaluation, "test", "conversation")
    for name in ("pr_auc", "precision", "recall", "f0_5"):
        assert metrics[f"test/conversation/{name}"] == pytest.approx(expected[name], abs=1e-12)
    assert not any("/author/" in key for key in metrics), "author measures are skipped, not zero"
    assert "conversation-level labels only" in evaluate.data.tags["author_metrics"]
    report = result.report_path.read_text()
    assert "Conversation-level results" in report and "author-level measures skipped" in report
    manifest = result.stages["data"].outputs["manifest"].read_text()
    assert '"label_level": "conversation"' in manifest


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    """JSON writers leave U+2028, U+2029 and U+0085 raw inside strings: a record holding them
    is one record, not a broken line."""
    import json

    path = tmp_path / "chat.jsonl"
    records = [
        {"conversation_id": "c1", "author": "a", "text": "one\u2028two\u2029three\x85four"},
        {"conversation_id": "c1", "author": "b", "text": "reply"},
    ]
    path.write_text(
        "\r\n".join(json.dumps({**r, "is_predator": 0}, ensure_ascii=False) for r in records),
        encoding="utf-8",
    )
    messages, _, report = chatlog.read_chatlog(path)
    assert report.rows == 2
    assert messages["text"].tolist()[0] == "one\u2028two\u2029three\x85four"
