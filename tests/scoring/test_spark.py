"""``grooming-detect-score --engine spark``: the single-process scorer's numbers on Spark.

The Spark tests share one local[2] session (its JVM takes about 10 s to start), run in the slow
tier (``make test-slow``, which CI runs after ``make java``: together about two minutes on 2
cores) and are skipped, with the command that installs what is missing, where Java or pyspark is
absent. The tests of the stream's state machine and of the error translation need neither and
run in ``make test``.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from grooming_detect.data.chatlog import ChatlogFormatError, read_chatlog
from grooming_detect.models.baselines import make_tfidf_logreg, make_tfidf_plus_behaviour
from grooming_detect.models.persistence import save_model
from grooming_detect.models.units import INPUTS, features_of
from grooming_detect.scoring import cli
from grooming_detect.scoring import spark as spark_engine
from grooming_detect.scoring.incremental import ConversationTerms, LinearPrefixScorer
from grooming_detect.scoring.messages import SPLIT, model_rows

# Harmless invented chat; the risky authors use non-explicit markers only (an age question,
# asking for secrecy, moving to another app).
SMALL_TALK = [
    "hi",
    "how was school today",
    "we had a quiz in maths",
    "did you see the match",
    "the bus was late again",
    "i have football practice later",
    "what are you reading",
    "my sister made pancakes",
    'ok, see you "later"',
    "bye\nsee you tomorrow",
    "",
]
MARKERS = [
    "how old are you",
    "don't tell your parents we talk",
    "this is our secret ok",
    "add me on another app",
    "lets move to a private chat",
]
#: The scored log: sam, lee and kim write in two conversations each, c3 has three speakers, so
#: the authors' histories differ (sam {c0, c1}, lee {c0, c2}, kim {c2, c3}, ray {c1}, ...).
CONVERSATIONS = [
    ("c0", ["sam", "lee"], True),
    ("c1", ["ray", "sam"], True),
    ("c2", ["kim", "lee"], False),
    ("c3", ["kim", "ana", "bo"], True),
    *[(f"c{i}", [f"p{i}", f"q{i}"], i % 2 == 0) for i in range(4, 12)],
]
META = {
    "unit": "author",
    "calibration": {"method": "sigmoid", "a_": 2.0, "b_": -0.5},
    "threshold": 0.55,
    "model_name": "tiny",
    "features": {"lexicons": {"secrecy": ["our secret"]}, "message_separator": "\n"},
}


def _log(conversations: list[tuple[str, list[str], bool]], seed: int) -> pd.DataFrame:
    """Messages of `conversations`; the first author of a risky one writes the markers."""
    rng = random.Random(seed)
    rows = []
    for cid, authors, risky in conversations:
        for line in range(1, rng.randint(6, 11)):
            author = authors[(line - 1) % len(authors)]
            marker = risky and author == authors[0] and rng.random() < 0.5
            text = rng.choice(MARKERS if marker else SMALL_TALK)
            rows.append((cid, line, author, f"18:{10 + 4 * line:02d}", text))
    return pd.DataFrame(rows, columns=["conversation_id", "line", "author", "time", "text"])


def _training_log() -> tuple[pd.DataFrame, set[str]]:
    conversations = [
        (f"t{i}", [f"x{i}", f"y{i}", *([f"z{i}"] if i % 5 == 0 else [])], i % 3 == 0)
        for i in range(48)
    ]
    risky = {authors[0] for _, authors, is_risky in conversations if is_risky}
    return _log(conversations, seed=1), risky


def _fit_model(folder: Path, grouping: str) -> Path:
    """A model saved like the train stage's, of each grouping the Spark scorer has: authors
    with behavioural features too (``history``: they depend on the author's other
    conversations), authors by their own text (``author``), conversations (``conversation``)."""
    messages, risky = _training_log()
    unit = "conversation" if grouping == "conversation" else "author"
    meta = {**META, "unit": unit}
    lexicons = META["features"]["lexicons"] if grouping == "history" else {}
    _, _, rows = model_rows(meta, messages.assign(split=SPLIT), lexicons, "\n")
    if unit == "author":
        labels = rows["author"].isin(risky).to_numpy()
    else:
        speakers = messages.groupby("conversation_id")["author"].agg(set)
        labels = rows["conversation_id"].map(lambda c: bool(speakers[c] & risky)).to_numpy()
    if grouping == "history":
        model = make_tfidf_plus_behaviour(min_df=1, n_features=2**10)
    else:
        model = make_tfidf_logreg(min_df=1, n_features=2**10)
    model.fit(features_of(rows, INPUTS[unit]), labels)
    save_model(model, meta, folder)
    assert spark_engine.grouping_of(model, meta) == grouping
    return folder


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for the module's Spark tests."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.skip("pyspark is not installed: pip install 'grooming-detect[spark]' (make install)")
    if spark_engine.java_missing():
        pytest.skip("Java 17 is missing: make java (apt-get install openjdk-17-jre-headless)")
    settings = {
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    session = spark_engine.spark_session("local[2]", "grooming-detect-tests", settings)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _scores(folder: Path, name: str, key: str) -> pd.DataFrame:
    frame = (
        pd.read_parquet(folder / name)
        if (folder / name).is_dir()
        else pd.read_csv(folder / f"{name}.csv", dtype={key: str})
    )
    return frame.sort_values(key, ignore_index=True)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.pipeline
@pytest.mark.parametrize(
    ("grouping", "fmt"), [("history", "csv"), ("author", "jsonl"), ("conversation", "parquet")]
)
def test_spark_scores_equal_the_single_process_scorer(
    spark, tmp_path: Path, grouping: str, fmt: str
) -> None:
    """Authors who write in several conversations, a three-speaker conversation, empty texts,
    quotes and line breaks: the same author and conversation scores, counts and flags."""
    model = _fit_model(tmp_path / "model", grouping)
    unit = "conversation" if grouping == "conversation" else "author"
    log = _log(CONVERSATIONS, seed=7)
    csv_path = tmp_path / "log.csv"
    log.to_csv(csv_path, index=False)
    assert cli.main([str(csv_path), "--model", str(model), "--out", str(tmp_path / "local")]) == 0
    if fmt == "csv":
        # The command, on the test's session (it leaves a session it did not start running).
        args = [str(csv_path), "--model", str(model), "--out", str(tmp_path / "spark")]
        assert cli.main([*args, "--engine", "spark"]) == 0
    elif fmt == "jsonl":
        # Two files, each conversation whole in one (without a line column), by the Python
        # entry points a notebook uses.
        parts = tmp_path / "jsonl"
        parts.mkdir()
        first = log["conversation_id"].isin(["c0", "c2", "c5", "c7"])
        for name, part in (("a.jsonl", log[first]), ("b.jsonl", log[~first])):
            part.drop(columns="line").to_json(parts / name, orient="records", lines=True)
        scores = spark_engine.score(
            spark_engine.read_messages(spark, str(parts), "jsonl"), str(model), checked=True
        )
        assert scores.grouping == "author"
        spark_engine.write_scores(scores, str(tmp_path / "spark"))
    else:
        # A folder of Parquet files, a conversation's rows in both.
        parts = tmp_path / "parquet"
        parts.mkdir()
        log.iloc[::2].to_parquet(parts / "a.parquet")
        log.iloc[1::2].to_parquet(parts / "b.parquet")
        spark_engine.score_path(spark, str(parts), str(model), str(tmp_path / "spark"), "parquet")
    for name, key in (("author_scores", "author"), ("conversation_scores", "conversation_id")):
        local, distributed = (_scores(tmp_path / d, name, key) for d in ("local", "spark"))
        assert len(local) == len(distributed) > 0 or (unit, key) == ("conversation", "author")
        assert list(distributed.columns) == list(local.columns) or not len(local)
        assert local[key].tolist() == distributed[key].tolist()
        assert (
            np.abs(local["score"].to_numpy() - distributed["score"].to_numpy()).max(initial=0.0)
            <= 1e-12
        )
        for column in ("flagged", "n_messages", "n_conversations"):
            if column in local:
                assert local[column].tolist() == distributed[column].tolist()
    if unit == "author":
        authors = _scores(tmp_path / "spark", "author_scores", "author").set_index("author")
        assert authors.loc["sam", "n_conversations"] == 2
        assert authors["flagged"].any() and not authors["flagged"].all()
    # The model was loaded once in each Python worker that scored, whatever its groups.

    def loads_probe(batches):
        """mapInPandas: this Python worker's process id and its loads of any model."""
        for _ in batches:
            loads = max(spark_engine.LOADS.values(), default=0)
            yield pd.DataFrame({"pid": [os.getpid()], "loads": [loads]})

    probe = spark.range(8, numPartitions=8).mapInPandas(loads_probe, "pid long, loads long")
    loads = probe.toPandas().drop_duplicates("pid")
    assert (loads["loads"] <= 1).all() and (loads["loads"] == 1).any()


@pytest.mark.spark
@pytest.mark.slow
def test_spark_refuses_a_bad_row_naming_it_as_the_reader_does(spark, tmp_path: Path) -> None:
    model = _fit_model(tmp_path / "model", "author")
    log = _log(CONVERSATIONS[:3], seed=3).astype({"line": object})
    log.loc[3, "line"] = "x"
    path = tmp_path / "in" / "log.csv"
    path.parent.mkdir()
    log.to_csv(path, index=False)
    with pytest.raises(ChatlogFormatError) as single:
        read_chatlog(path, require_labels=False)
    assert str(single.value).startswith(f"{path}:5: line='x'")
    with pytest.raises(ChatlogFormatError) as distributed:
        spark_engine.score_path(spark, str(path), str(model), str(tmp_path / "out"))
    assert str(distributed.value).endswith(str(single.value).split(":", 1)[1])
    assert not (tmp_path / "out" / "conversation_scores").exists()
    # A conversation's line given in two files: both rows named.
    good = _log(CONVERSATIONS[:2], seed=3)
    good.to_json(path.with_suffix(".jsonl"), orient="records", lines=True)
    path.unlink()
    # By another author: a model of authors' own text groups by author, so the two rows meet
    # only in the check across the input.
    again = good.iloc[:2].assign(author="mo")
    again.to_json(path.with_name("again.jsonl"), orient="records", lines=True)
    twice = r"\w+\.jsonl:\d+: \(conversation_id='c0', line=\d+\) duplicates file:.*\.jsonl:\d+;"
    with pytest.raises(ChatlogFormatError, match=twice):
        spark_engine.score_path(spark, str(path.parent), str(model), str(tmp_path / "out"), "jsonl")
    # Nothing there, or nothing in it.
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv: \[PATH_NOT_FOUND\]"):
        spark_engine.read_messages(spark, str(tmp_path / "nowhere.csv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChatlogFormatError, match="no messages in the input"):
        spark_engine.score_path(spark, str(tmp_path / "empty"), str(model), str(tmp_path), "csv")
    # A Parquet row without its line.
    holes = good.astype({"line": "Int64"})
    holes.loc[2, "line"] = pd.NA
    holes.to_parquet(tmp_path / "holes.parquet")
    with pytest.raises(ChatlogFormatError, match=r"holes\.parquet:3: line is empty"):
        spark_engine.score_path(
            spark, str(tmp_path / "holes.parquet"), str(model), str(tmp_path / "out")
        )


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.pipeline
def test_spark_stream_records_equal_the_stream_command(spark, tmp_path: Path) -> None:
    """Two files, one micro-batch each: the state carried between them (the incremental term
    counts as JSON) gives the records ``--stream`` writes for the whole log."""
    model = tmp_path / "model"
    messages, risky = _training_log()
    docs = messages[messages["text"] != ""].groupby("author")["text"].agg("\n".join)
    fitted = make_tfidf_logreg(min_df=1, n_features=2**10).fit(
        pd.DataFrame({"text": docs.to_numpy()}), docs.index.isin(risky)
    )
    save_model(fitted, META, model)
    log = _log(CONVERSATIONS, seed=11).sort_values(["line", "conversation_id"], kind="stable")
    path = tmp_path / "live.jsonl"
    log.to_json(path, orient="records", lines=True)
    policy = ["--threshold", "0.5", "--patience", "2"]
    assert (
        cli.main([str(path), "--model", str(model), "--stream", "--out", str(tmp_path), *policy])
        == 0
    )
    # json, not pandas' reader, whose fast float parser is not exact ("0.033813" gives
    # 0.033812999999999996).
    lines = (tmp_path / "stream.jsonl").read_text(encoding="utf-8").splitlines()
    expected = pd.DataFrame([json.loads(line) for line in lines])
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    half = len(log) // 2
    for number, part in enumerate((log.iloc[:half], log.iloc[half:])):
        part_path = incoming / f"part-{number}.jsonl"
        part.to_json(part_path, orient="records", lines=True)
        os.utime(part_path, (1_700_000_000 + number, 1_700_000_000 + number))
    records = spark_engine.stream(
        spark_engine.read_jsonl_stream(spark, str(incoming), max_files_per_trigger=1),
        str(model),
        threshold="0.5",
        patience=2,
    )
    query = (
        records.writeStream.format("memory")
        .queryName("records")
        .outputMode("append")
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    assert query.lastProgress is not None and len(query.recentProgress) >= 2
    got = spark.table("records").toPandas()
    key = ["conversation_id", "line"]
    merged = expected.merge(got, on=key, suffixes=("", "_spark"), validate="one_to_one")
    assert len(merged) == len(expected) == len(got) == len(log)
    for column in ("author", "k", "score", "warning", "new_warning"):
        assert merged[column].tolist() == merged[f"{column}_spark"].tolist(), column
    assert merged["new_warning"].any() and not merged["reopened"].any()
    # The command: the files there now, in one micro-batch, to JSON lines.
    out = tmp_path / "command"
    command = [str(incoming), "--model", str(model), "--engine", "spark", "--stream"]
    assert cli.main([*command, "--out", str(out), "--available-now", *policy]) == 0
    written = [
        json.loads(line)
        for part in sorted((out / "records").glob("part-*.json"))
        for line in part.read_text(encoding="utf-8").splitlines()
    ]
    by_key = {(r["conversation_id"], r["line"]): r for r in written}
    assert len(by_key) == len(written) == len(expected)
    for record in expected.to_dict("records"):
        got_record = by_key[(record["conversation_id"], record["line"])]
        assert {k: got_record[k] for k in record} == record


# -- without Spark --------------------------------------------------------------------------------
class _State:
    """What applyInPandasWithState hands the function: enough of GroupState for it."""

    def __init__(self) -> None:
        self.value: tuple[Any, ...] | None = None
        self.hasTimedOut = False
        self.timeout_ms: int | None = None

    @property
    def exists(self) -> bool:
        return self.value is not None

    @property
    def get(self) -> tuple[Any, ...]:
        assert self.value is not None
        return self.value

    def update(self, value: tuple[Any, ...]) -> None:
        self.value = value

    def remove(self) -> None:
        self.value = None

    def setTimeoutDuration(self, ms: int) -> None:
        self.timeout_ms = ms


def test_an_idle_conversation_closes_keeps_its_warning_reopens_and_is_forgotten(tmp_path) -> None:
    messages, risky = _training_log()
    docs = messages[messages["text"] != ""].groupby("author")["text"].agg("\n".join)
    fitted = make_tfidf_logreg(min_df=1, n_features=2**10).fit(
        pd.DataFrame({"text": docs.to_numpy()}), docs.index.isin(risky)
    )
    save_model(fitted, META, tmp_path / "model")
    location = str(tmp_path / "model")

    def batch(lines: list[tuple[int, str, str]]) -> list[pd.DataFrame]:
        return [
            pd.DataFrame(
                {
                    "conversation_id": "c",
                    "line": [n for n, _, _ in lines],
                    "author": [a for _, a, _ in lines],
                    "text": [t for _, _, t in lines],
                    "time": None,
                    "where": [f"f:{n}" for n, _, _ in lines],
                    "source": "f",
                    "seq": [n for n, _, _ in lines],
                }
            )
        ]

    state = _State()
    step = spark_engine._stream_conversation
    first = pd.concat(step(location, 0.0, 1, 1000, ("c",), iter(batch([(1, "a", "hi")])), state))
    assert first[["k", "new_warning", "reopened"]].values.tolist() == [[1, True, False]]
    assert state.get[-1] is not None and state.timeout_ms == 1000
    state.hasTimedOut = True
    assert list(step(location, 0.0, 1, 1000, ("c",), iter([]), state)) == []
    assert state.get[-1] is None and state.get[0] == 1  # closed: count kept, terms dropped
    assert state.timeout_ms == spark_engine.FORGET_FACTOR * 1000
    state.hasTimedOut = False
    later = pd.concat(
        step(
            location, 0.0, 1, 1000, ("c",), iter(batch([(2, "a", "again"), (3, "b", "ok")])), state
        )
    )
    assert later[["k", "warning", "new_warning", "reopened"]].values.tolist() == [
        [2, True, False, True],
        [3, True, False, False],
    ]
    # A line that does not follow the last one is refused, naming it.
    with pytest.raises(
        ChatlogFormatError, match=r"f:3: line=3 of conversation 'c' after its line 3"
    ):
        list(step(location, 0.0, 1, 1000, ("c",), iter(batch([(3, "a", "late")])), state))
    state.hasTimedOut = True
    list(step(location, 0.0, 1, 1000, ("c",), iter([]), state))
    list(step(location, 0.0, 1, 1000, ("c",), iter([]), state))
    assert not state.exists  # closed, then forgotten


def test_saved_term_counts_score_as_if_never_saved() -> None:
    messages, risky = _training_log()
    docs = messages[messages["text"] != ""].groupby("author")["text"].agg("\n".join)
    fitted = make_tfidf_logreg(min_df=1, n_features=2**10).fit(
        pd.DataFrame({"text": docs.to_numpy()}), docs.index.isin(risky)
    )
    scorer = LinearPrefixScorer.from_pipeline(fitted, "\n")
    assert scorer is not None
    kept, saved = ConversationTerms(), ConversationTerms()
    for author, text in zip(messages["author"][:40], messages["text"][:40], strict=True):
        expected = kept.add(scorer, "author", author, text)
        saved = ConversationTerms.from_json(saved.to_json())
        assert saved.add(scorer, "author", author, text) == expected


@pytest.mark.pipeline
def test_the_command_refuses_what_the_spark_engine_cannot_do(tmp_path: Path, capsys) -> None:
    """Answered before any Spark session starts (no Java or pyspark needed)."""
    base = ["--model", "m", "--engine", "spark"]
    for argv, reason in (
        (["log.csv", *base], "--out is required with --engine spark"),
        (["-", *base, "--stream", "--out", str(tmp_path)], "reads a folder of JSONL files"),
        (["log.csv", *base, "--quantize", "int8", "--out", str(tmp_path)], "--engine local"),
    ):
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        assert exited.value.code == 2
        assert reason in capsys.readouterr().err


def test_a_worker_error_is_raised_as_itself() -> None:
    wrapped = RuntimeError(
        "An exception was thrown from the Python worker.\nTraceback (most recent call last):\n"
        '  File "x.py", line 1, in f\ngrooming_detect.errors.ChatlogFormatError: in.csv:4: '
        "line='x'; expected a 1-based integer\n"
    )
    error = spark_engine.worker_error(wrapped)
    assert isinstance(error, ChatlogFormatError)
    assert str(error) == "in.csv:4: line='x'; expected a 1-based integer"
    assert spark_engine.worker_error(RuntimeError("java.lang.OutOfMemoryError")) is None
    assert spark_engine.input_format(["a/b.JSONL"]) == "jsonl"
    with pytest.raises(ValueError, match=re.escape("--input-format")):
        spark_engine.input_format(["folder"])
    assert json.loads(ConversationTerms().to_json())["whole"] is None
