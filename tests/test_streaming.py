"""``grooming-detect-score --stream``: per-message risk equals the evaluate stage's early
curves, warnings follow the policy, bad input names its line, and state stays bounded."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grooming_detect import scoring
from grooming_detect.data.chatlog import ChatlogFormatError
from grooming_detect.evaluation.early import EarlySettings, first_warning, risk_curves
from grooming_detect.models.baselines import make_tfidf_logreg, make_tfidf_svm
from grooming_detect.models.persistence import save_model
from grooming_detect.streaming import Message, RiskStream, stdin_messages

LINES = {
    True: ["hi", "how old are you", "don't tell your parents", "add me on snap", "ok"],
    False: ["hi", "did you see the game", "homework is due friday", "", "see you"],
}


def _log(n: int = 10) -> pd.DataFrame:
    rows = []
    for c in range(n):
        for line, text in enumerate(LINES[c % 2 == 0], start=1):
            rows.append((f"c{c}", line, f"a{c}" if line % 2 else f"b{c}", None, text, "test"))
    frame = pd.DataFrame(
        rows, columns=["conversation_id", "line", "author", "time", "text", "split"]
    )
    # Interleave conversations as live traffic does (line order kept within each).
    return frame.sort_values(["line", "conversation_id"], kind="stable", ignore_index=True)


def _fit(factory) -> object:
    log = _log(20)
    docs = log[log["text"] != ""].groupby(["conversation_id", "author"])["text"].agg("\n".join)
    y = [int(cid[1:]) % 2 == 0 for cid, _ in docs.index]
    return factory(min_df=1, n_features=2**10).fit(pd.DataFrame({"text": docs.to_numpy()}), y)


META = {
    "unit": "author",
    "calibration": {"method": "sigmoid", "a_": 3.0, "b_": -1.0},
    "threshold": 0.6,
    "model_name": "tiny",
}


def _messages(frame: pd.DataFrame) -> list[Message]:
    return [
        Message(r.conversation_id, int(r.line), r.author, r.text)
        for r in frame.itertuples(index=False)
    ]


@pytest.mark.parametrize("factory", [make_tfidf_logreg, make_tfidf_svm])
def test_stream_scores_equal_the_early_curves(factory) -> None:
    model = _fit(factory)
    log = _log()
    stream = RiskStream(model, META, {}, "\n", threshold=0.6, window=3, step=1, patience=2)
    assert stream.method == ("incremental" if factory is make_tfidf_logreg else "window")
    records = pd.DataFrame(stream.run(_messages(log), batch=7))
    assert records[["conversation_id", "line"]].equals(log[["conversation_id", "line"]])
    settings = EarlySettings(window=3, step=1, method=stream.method)
    curves, _ = risk_curves(model, META, log, settings, {}, "\n")
    merged = records.merge(curves, on=["conversation_id", "k"])
    assert len(merged) == len(log)
    assert merged["score_x"].to_numpy() == pytest.approx(merged["score_y"].to_numpy(), abs=2e-6)
    for _cid, group in merged.groupby("conversation_id"):
        expected = first_warning(group["k"].tolist(), group["score_y"].tolist(), 0.6, 2)
        warned = group.loc[group["new_warning"], "k"].tolist()
        assert warned == ([] if expected is None else [expected])
        assert group["warning"].tolist() == [
            expected is not None and k >= expected for k in group["k"]
        ]


def test_window_stream_keeps_the_last_score_between_steps() -> None:
    model = _fit(make_tfidf_svm)
    stream = RiskStream(model, META, {}, "\n", threshold=0.6, window=2, step=2)
    records = list(stream.run(_messages(_log(2)), batch=1))
    first = [r for r in records if r["conversation_id"] == "c0"]
    assert first[0]["score"] is None  # nothing scored before the first step
    assert first[2]["score"] == first[1]["score"]  # k = 3 keeps k = 2's risk


def test_open_conversations_are_bounded() -> None:
    model = _fit(make_tfidf_logreg)
    stream = RiskStream(model, META, {}, "\n", threshold=0.6, max_open=3)
    records = list(stream.run(_messages(_log(8)), batch=100))
    assert len(records) == 40
    assert len(stream._open) == 3 and len(stream.streams) == 3
    assert stream.closed > 0


def test_stdin_records_are_checked_with_their_line_number() -> None:
    good = '\ufeff{"conversation_id": "c1", "author": "a", "text": "hi", "time": "18:02"}\n\n'
    second = '{"conversation_id": 7, "author": "b", "text": null, "line": 4}\n'
    messages = list(stdin_messages(io.StringIO(good + second)))
    assert messages == [
        Message("c1", None, "a", "hi", "18:02", "<stdin>:1"),
        Message("7", 4, "b", "", None, "<stdin>:3"),
    ]
    for bad, expected in (
        ("not json", "<stdin>:3: invalid JSON"),
        ('{"conversation_id": 1' + "0" * 5000 + ', "author": "a", "text": "x"}', "<stdin>:3: "),
        ('{"conversation_id": "c1", "text": "x"}', "<stdin>:3: record lacks key"),
        ('{"conversation_id": "", "author": "a", "text": "x"}', "<stdin>:3: conversation_id"),
        ('{"conversation_id": [1], "author": "a", "text": "x"}', "<stdin>:3: conversation_id"),
        ('{"conversation_id": "c", "author": "a", "text": 5}', "<stdin>:3: text 5"),
        ('{"conversation_id": "c", "author": "a", "text": "\\ud800"}', "<stdin>:3: text is not"),
        ('{"conversation_id": "c", "author": "a", "text": "x", "line": 0}', "<stdin>:3: line=0"),
        (
            '{"conversation_id": "c", "author": "a", "text": "x", "line": "\u00b2"}',
            "<stdin>:3: line=",
        ),
        (
            '{"conversation_id": "c", "author": "a", "text": "x", "time": "25:00"}',
            "<stdin>:3: time=",
        ),
        ("[1, 2]", "<stdin>:3: expected a JSON object"),
    ):
        with pytest.raises(ChatlogFormatError, match=re.escape(expected)):
            list(stdin_messages(io.StringIO(good + bad + "\n")))


def test_lines_must_follow_each_other_within_a_conversation() -> None:
    model = _fit(make_tfidf_logreg)
    stream = RiskStream(model, META, {}, "\n", threshold=0.6)
    messages = [
        Message("c", 5, "a", "hi", where="<stdin>:1"),
        Message("d", 1, "b", "hi", where="<stdin>:2"),
        Message("c", 5, "a", "again", where="<stdin>:3"),
    ]
    with pytest.raises(ChatlogFormatError, match=r"<stdin>:3: line=5 of conversation 'c' after"):
        list(stream.run(messages, batch=1))
    numbered = list(RiskStream(model, META, {}, "\n", 0.6).run(messages[:2], batch=1))
    assert [r["line"] for r in numbered] == [5, 1]
    unnumbered = [Message("c", None, "a", "hi"), Message("c", None, "b", "yo")]
    assert [r["line"] for r in RiskStream(model, META, {}, "\n", 0.6).run(unnumbered, 1)] == [1, 2]


def test_a_reopened_conversation_keeps_its_count_and_its_warning() -> None:
    model = _fit(make_tfidf_logreg)
    stream = RiskStream(model, META, {}, "\n", threshold=0.0, max_open=1)
    messages = [Message("c", None, "a", "hi"), Message("d", None, "b", "hi")]
    records = list(stream.run([*messages, Message("c", None, "a", "again")], batch=1))
    assert [r["k"] for r in records] == [1, 1, 2]
    assert [r["new_warning"] for r in records] == [True, True, False]
    assert records[2]["warning"] and records[2]["reopened"] is True
    assert stream.closed == 2 and stream.reopened == 1
    for bad in (0, -1):
        with pytest.raises(ValueError, match="--max-open"):
            RiskStream(model, META, {}, "\n", threshold=0.5, max_open=bad)
    with pytest.raises(ValueError, match="--threshold nan"):
        RiskStream(model, META, {}, "\n", threshold=float("nan"))


def test_threshold_early_reads_the_evaluation_beside_the_model(tmp_path: Path) -> None:
    folder = tmp_path / "run" / "model"
    folder.mkdir(parents=True)
    meta = {"threshold": 0.7}
    assert scoring.warning_policy(None, None, meta, str(folder)) == (0.7, 1)
    assert scoring.warning_policy("0.25", 3, meta, str(folder)) == (0.25, 3)
    with pytest.raises(ValueError, match="no early-detection evaluation"):
        scoring.warning_policy("early", None, meta, str(folder))
    (tmp_path / "run" / "evaluation").mkdir()
    summary = {"early": {"threshold": 0.159, "patience": 2}}
    (tmp_path / "run" / "evaluation" / "evaluation.json").write_text(json.dumps(summary))
    assert scoring.warning_policy("early", None, meta, str(folder)) == (0.159, 2)
    assert scoring.warning_policy("early", 1, meta, str(folder)) == (0.159, 1)
    with pytest.raises(ValueError, match="expected a number, 'model' or 'early'"):
        scoring.warning_policy("high", None, meta, str(folder))


def test_stream_command_writes_one_line_per_message(tmp_path: Path, capsys) -> None:
    model = _fit(make_tfidf_logreg)
    folder = tmp_path / "model"
    save_model(model, {**META, "features": {"lexicons": {}, "message_separator": "\n"}}, folder)
    log = _log(4)
    path = tmp_path / "log.jsonl"
    path.write_text(
        "".join(
            json.dumps({"conversation_id": r.conversation_id, "author": r.author, "text": r.text})
            + "\n"
            for r in log.itertuples()
        )
    )
    assert scoring.main([str(path), "--model", str(folder), "--stream", "--patience", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["conversation_id"], r["line"]) for r in lines] == list(
        zip(log["conversation_id"], log["line"], strict=True)
    )
    assert (
        scoring.main([str(path), "--model", str(folder), "--stream", "--out", str(tmp_path)]) == 0
    )
    written = (tmp_path / "stream.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in written] == lines
    assert np.all([0.0 <= r["score"] <= 1.0 for r in lines])
    assert scoring.main([str(path), "--model", str(folder), "--stream", "--window", "0"]) == 2
    assert "--window 0" in capsys.readouterr().err
