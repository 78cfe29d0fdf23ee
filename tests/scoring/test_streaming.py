"""``grooming-detect-score --stream``: per-message risk equals the evaluate stage's early
curves, warnings follow the policy, bad input names its line, and state stays bounded."""

from __future__ import annotations

import functools
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grooming_detect.data.chatlog import ChatlogFormatError
from grooming_detect.evaluation.early import EarlySettings, first_warning, risk_curves
from grooming_detect.models.baselines import make_tfidf_logreg, make_tfidf_svm
from grooming_detect.models.persistence import save_model
from grooming_detect.scoring import cli
from grooming_detect.scoring.stream import (
    Message,
    RiskStream,
    stdin_messages,
    stream_file,
    warning_policy,
)

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

    # A batch writes the records before a refused line too, as one message at a time does.
    for batch in (1, 10):
        written = []
        with pytest.raises(ChatlogFormatError, match=r"<stdin>:3: line=5"):
            for record in RiskStream(model, META, {}, "\n", 0.6).run(messages, batch):
                written.append(record)
        assert [r["conversation_id"] for r in written] == ["c", "d"]


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
    assert warning_policy(None, None, meta, str(folder)) == (0.7, 1)
    assert warning_policy("0.25", 3, meta, str(folder)) == (0.25, 3)
    with pytest.raises(ValueError, match="no early-detection evaluation"):
        warning_policy("early", None, meta, str(folder))
    (tmp_path / "run" / "evaluation").mkdir()
    summary = {"early": {"threshold": 0.159, "patience": 2}}
    (tmp_path / "run" / "evaluation" / "evaluation.json").write_text(json.dumps(summary))
    assert warning_policy("early", None, meta, str(folder)) == (0.159, 2)
    assert warning_policy("early", 1, meta, str(folder)) == (0.159, 1)
    with pytest.raises(ValueError, match="expected a number, 'model' or 'early'"):
        warning_policy("high", None, meta, str(folder))
    # eSPD's skepticism is not the stream's policy: refused unless --patience says what to use.
    skeptical = {"early": {**summary["early"], "skepticism": 3, "skepticism_window": 10}}
    (tmp_path / "run" / "evaluation" / "evaluation.json").write_text(json.dumps(skeptical))
    with pytest.raises(ValueError, match=r"skepticism \(3 of the last 10 steps\).*--patience"):
        warning_policy("early", None, meta, str(folder))
    assert warning_policy("early", 2, meta, str(folder)) == (0.159, 2)


@pytest.mark.pipeline
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
    assert cli.main([str(path), "--model", str(folder), "--stream", "--patience", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["conversation_id"], r["line"]) for r in lines] == list(
        zip(log["conversation_id"], log["line"], strict=True)
    )
    assert cli.main([str(path), "--model", str(folder), "--stream", "--out", str(tmp_path)]) == 0
    written = (tmp_path / "stream.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in written] == lines
    assert np.all([0.0 <= r["score"] <= 1.0 for r in lines])
    assert cli.main([str(path), "--model", str(folder), "--stream", "--window", "0"]) == 2
    assert "--window 0" in capsys.readouterr().err


@functools.cache
def _model(factory) -> object:
    """`_fit(factory)`, fitted once for the tests that run many streams."""
    return _fit(factory)


@pytest.mark.parametrize("max_open", [100_000, 2])
@pytest.mark.parametrize(("factory", "step"), [(make_tfidf_logreg, 1), (make_tfidf_svm, 2)])
def test_a_file_streams_as_its_lines_on_standard_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factory, step: int, max_open: int
) -> None:
    """A file is read in batches and standard input one message at a time: the same
    messages give the same lines, byte for byte, and the same counts (one warning per
    conversation warned), also when --max-open is below the batch."""
    log = _log(4)  # c0 and c2 groom, c1 and c3 do not; their lines interleaved
    path = tmp_path / "log.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {"conversation_id": r.conversation_id, "line": r.line, "author": r.author}
                | {"text": r.text}
            )
            + "\n"
            for r in log.itertuples()
        )
    )
    outputs, counts = [], []
    for source in (str(path), "-"):
        monkeypatch.setattr(sys, "stdin", io.StringIO(path.read_text()))
        stream = RiskStream(
            _model(factory), META, {}, "\n", 0.6, window=3, step=step, max_open=max_open
        )
        out = io.StringIO()
        counts.append(stream_file(stream, source, out))
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]
    assert counts[0] == counts[1]
    records = [json.loads(line) for line in outputs[1].splitlines()]
    assert [r["k"] for r in records] == log["line"].tolist()
    warned = {r["conversation_id"] for r in records if r["warning"]}
    assert counts[0]["warnings"] == len(warned) == sum(r["new_warning"] for r in records)
    if max_open > len(log):
        assert warned == {"c0", "c2"}
    else:
        assert counts[0]["reopened"] > 0


class _CheapWindows(RiskStream):
    """A stream whose window method scores a window by its share of grooming lines: the
    property tests run many streams and the model takes ~0.25 s a call; what they check is the
    stream's bookkeeping (the real model's windows: the tests above and the slow tier)."""

    def _window_scores(self, windows: list[list[Message]]) -> list[float]:
        grooming = set(LINES[True]) - set(LINES[False])
        return [sum(m.text in grooming for m in window) / len(window) for window in windows]


@st.composite
def _stream_cases(draw: st.DrawFn) -> tuple[list[Message], dict[str, Any], int]:
    """Interleaved conversations (grooming or not), numbered or not, with a batch of 2 to all
    the messages and a random --max-open, window, step, patience and threshold."""
    n = draw(st.integers(1, 5))
    lengths = draw(st.lists(st.integers(1, 6), min_size=n, max_size=n))
    order = draw(st.permutations([c for c in range(n) for _ in range(lengths[c])]))
    numbered = draw(st.booleans())
    counted = [0] * n
    messages = []
    for c in order:
        counted[c] += 1
        text = draw(st.sampled_from(LINES[c % 2 == 0]))
        author = f"a{c}" if counted[c] % 2 else f"b{c}"
        messages.append(Message(f"c{c}", counted[c] if numbered else None, author, text))
    options = {
        "threshold": draw(st.sampled_from([0.3, 0.5, 0.6, 0.9])),
        "window": draw(st.integers(1, 4)),
        "step": draw(st.integers(1, 3)),
        "patience": draw(st.integers(1, 3)),
        "max_open": draw(st.integers(1, n + 1)),
    }
    return messages, options, draw(st.integers(2, len(messages) + 1))


def _check_batches_change_nothing(
    case: tuple[list[Message], dict[str, Any], int], model_windows: bool
) -> None:
    """The records and counts of a batch equal those of one message at a time, for both
    methods."""
    messages, options, batch = case
    for factory in (make_tfidf_logreg, make_tfidf_svm):
        runs = []
        for size in (1, batch):
            kind = RiskStream if model_windows else _CheapWindows
            stream = kind(_model(factory), META, {}, "\n", **options)
            records = list(stream.run(messages, size))
            runs.append((records, stream.closed, stream.reopened))
        assert runs[1] == runs[0], factory.__name__


@settings(max_examples=25, deadline=None)
@given(case=_stream_cases())
def test_records_do_not_depend_on_the_batch(case) -> None:
    _check_batches_change_nothing(case, model_windows=False)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(case=_stream_cases())
def test_records_do_not_depend_on_the_batch_with_the_model_scoring_windows(case) -> None:
    _check_batches_change_nothing(case, model_windows=True)
