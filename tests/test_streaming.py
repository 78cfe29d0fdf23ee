"""``grooming-detect-score --stream``: per-message risk equals the evaluate stage's early
curves, warnings follow the policy, bad input names its line, and state stays bounded."""

from __future__ import annotations

import io
import json
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
    good = '{"conversation_id": "c1", "author": "a", "text": "hi"}\n\n'
    messages = list(
        stdin_messages(io.StringIO(good + '{"conversation_id": 7, "author": "b", "text": null}\n'))
    )
    assert messages == [Message("c1", 1, "a", "hi"), Message("7", 1, "b", "")]
    for bad, expected in (
        ("not json", "<stdin>:3: invalid JSON"),
        ('{"conversation_id": "c1", "text": "x"}', "<stdin>:3: record lacks key"),
        ('{"conversation_id": "", "author": "a", "text": "x"}', "<stdin>:3: conversation_id"),
        ('{"conversation_id": "c", "author": "a", "text": 5}', "<stdin>:3: text 5"),
        ('{"conversation_id": "c", "author": "a", "text": "x", "line": 0}', "<stdin>:3: line=0"),
        ("[1, 2]", "<stdin>:3: expected a JSON object"),
    ):
        with pytest.raises(ChatlogFormatError, match=expected):
            list(stdin_messages(io.StringIO(good + bad + "\n")))


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
