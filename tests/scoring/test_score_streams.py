"""The exact stream of the message-scoring models (``embedding_logreg``'s message_scores
design, ``sentinel``): after every message, the running scores give the model's own score of
the prefix document (up to float rounding: embeddings are float32, scored in batches of
another shape, and a sum runs in another order), per author and per conversation, whatever the
batch; the state holds numbers only."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from grooming_detect.data.schema import build_tables
from grooming_detect.evaluation.early import (
    EarlySettings,
    incremental_curves,
    ordered_messages,
    risk_curves,
)
from grooming_detect.features.text_views import conversation_texts
from grooming_detect.models import embeddings
from grooming_detect.models.message_scores import MessageScoreClassifier, RunningScores
from grooming_detect.models.sentinel import SentinelClassifier
from grooming_detect.scoring.incremental import prefix_scorer
from grooming_detect.scoring.score_streams import MessageScorePrefixScorer
from grooming_detect.scoring.stream import Message, RiskStream

RISKY = ["how old are you", "don't tell your parents", "add me on snap", "you look mature"]
PLAIN = ["hi there", "did you watch the game", "homework is due friday", "see you", "lol ok"]


def _hash_embed(texts, settings):
    """A deterministic 16-dimensional unit vector per text; risky words lean one way."""
    rows = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8])
        vector = np.random.default_rng(seed).normal(size=16)
        vector[0] += 3.0 * sum(w in text.lower() for w in ("old", "tell", "snap", "mature"))
        rows.append(vector / np.linalg.norm(vector))
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), 16), "hash-encoder"


@pytest.fixture(autouse=True)
def hash_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "embed_texts", _hash_embed)


def _units(n: int = 24) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    docs, labels = [], []
    for i in range(n):
        positive = i % 3 == 0
        lines = list(rng.choice(PLAIN, size=3 + i % 5))
        if positive:
            lines[1 + i % 2] = RISKY[i % len(RISKY)]
        docs.append("\n".join(f"{line} {i % 7}" for line in lines))
        labels.append(positive)
    return pd.DataFrame({"text": docs}), np.array(labels)


MODELS = {
    "profile": lambda: MessageScoreClassifier(profile_folds=3),
    "top_k": lambda: MessageScoreClassifier(pooling="top_k", top_k=2),
    "sentinel_skewness": lambda: SentinelClassifier(min_observations=3),
    "sentinel_p90": lambda: SentinelClassifier(aggregate="p90"),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request: pytest.FixtureRequest):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embeddings, "embed_texts", _hash_embed)
        return MODELS[request.param]().fit(*_units())


def _messages(n: int = 6) -> pd.DataFrame:
    """Two-person conversations; positives carry non-explicit markers from one side; an empty
    message and a two-line message in each."""
    rows = []
    for c in range(n):
        lines = [*(RISKY if c % 2 == 0 else PLAIN)[: 2 + c % 3], "", "ok\nsee you", "lol ok"]
        for line, text in enumerate(lines, start=1):
            author = f"a{c}" if line % 2 else f"b{c}"
            rows.append((f"c{c:02d}", line, author, None, text, "test"))
    return pd.DataFrame(
        rows, columns=["conversation_id", "line", "author", "time", "text", "split"]
    )


def test_the_message_scoring_models_have_an_exact_stream(model) -> None:
    assert isinstance(prefix_scorer(model, "\n"), MessageScorePrefixScorer)


def test_prefix_scores_equal_the_model_on_every_prefix(model) -> None:
    scorer = MessageScorePrefixScorer.from_model(model, "\n")
    texts = [*RISKY, "Hello  there, HOW old?", "two\nlines", "", "é ü 日本語 ok", *PLAIN * 3]
    streamed = scorer.score_stream(texts)
    prefixes = pd.DataFrame({"text": ["\n".join(texts[: k + 1]) for k in range(len(texts))]})
    np.testing.assert_allclose(streamed, model.predict_proba(prefixes)[:, 1], rtol=0, atol=1e-6)
    expected_empty = model.predict_proba(pd.DataFrame({"text": [""]}))[0, 1]
    assert scorer.empty_score() == pytest.approx(expected_empty, abs=1e-6)


def test_the_state_is_numbers_and_bounded_for_top_scores(model) -> None:
    scorer = MessageScorePrefixScorer.from_model(model, "\n")
    state = scorer.new_state()
    for text in PLAIN * 10:
        scorer.update(state, text)
    assert isinstance(state, RunningScores) and state.count == 50
    assert all(isinstance(v, float) for v in state.kept)
    # The message-score model keeps the highest scores its pooling reads; Sentinel every one.
    if isinstance(model, SentinelClassifier):
        assert len(state.kept) == 50
    else:
        assert len(state.kept) == (10 if model.pooling == "profile" else model.top_k)
        assert state.kept == sorted(state.kept, reverse=True)


def test_author_curve_takes_the_top_author_of_the_prefix(model) -> None:
    messages = _messages(3)
    scorer = prefix_scorer(model, "\n")
    curves = incremental_curves(scorer, "author", messages).set_index(["conversation_id", "k"])
    ordered = ordered_messages(messages)
    for (cid, k), row in curves.iterrows():
        prefix = ordered[(ordered["conversation_id"] == cid) & (ordered["k"] <= k)]
        nonempty = prefix[prefix["text"] != ""]
        docs = nonempty.groupby("author")["text"].agg("\n".join)
        scores = model.predict_proba(pd.DataFrame({"text": docs.to_numpy()}))[:, 1]
        empty_only = set(prefix["author"]) - set(docs.index)
        best = max([*scores, *([scorer.empty_score()] if empty_only else [])])
        assert row["raw_score"] == pytest.approx(best, abs=1e-6)


def test_conversation_curve_is_the_conversation_view_score_at_each_prefix(model) -> None:
    messages = _messages(3)
    curves = incremental_curves(prefix_scorer(model, "\n"), "conversation", messages)
    ordered = ordered_messages(messages)
    for cid, group in ordered.groupby("conversation_id"):
        for k in range(1, len(group) + 1):
            tables = build_tables(
                group.iloc[:k].drop(columns="k"), conversation_labels={cid: False}
            )
            view = conversation_texts(tables.messages, tables.conversations, "\n")
            expected = model.predict_proba(view[["text"]])[0, 1]
            got = curves[(curves["conversation_id"] == cid) & (curves["k"] == k)]["raw_score"]
            assert float(got.iloc[0]) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("batch", [1, 4, 1000])
def test_the_stream_equals_the_early_curves_whatever_the_batch(model, batch: int) -> None:
    """`grooming-detect-score --stream`'s records are the evaluate stage's early curves; the
    batch (how many messages are embedded in one call) changes no score."""
    meta = {
        "unit": "author",
        "calibration": {"method": "sigmoid", "a_": 2.0, "b_": -0.5},
        "threshold": 0.6,
        "model_name": "tiny",
    }
    log = _messages().sort_values(["line", "conversation_id"], kind="stable", ignore_index=True)
    stream = RiskStream(model, meta, {}, "\n", threshold=0.6, patience=1)
    assert stream.method == "incremental"
    messages = [
        Message(r.conversation_id, int(r.line), r.author, r.text)
        for r in log.itertuples(index=False)
    ]
    records = pd.DataFrame(stream.run(messages, batch=batch))
    settings = EarlySettings(method="incremental")
    curves, method = risk_curves(model, meta, log, settings, {}, "\n")
    assert method == "incremental"
    merged = records.merge(curves, on=["conversation_id", "k"])
    assert len(merged) == len(log)
    np.testing.assert_allclose(merged["score_x"], merged["score_y"], rtol=0, atol=1e-6)


def test_a_message_that_starts_with_a_speaker_marker_streams_like_the_batch(model) -> None:
    """A chat message may itself start with ``[S2] ``: the conversation view strips only the
    marker the view adds, and so does the stream (no lookup of a primed message fails)."""
    rows = [
        ("c1", 1, "alice", "hi there"),
        ("c1", 2, "bob", "[S1] see you at 5"),
        ("c1", 3, "alice", "[S2] how old are you"),
    ]
    log = pd.DataFrame(rows, columns=["conversation_id", "line", "author", "text"])
    log = log.assign(time=None, split="test")
    curves = incremental_curves(prefix_scorer(model, "\n"), "conversation", log)
    for k in range(1, len(rows) + 1):
        tables = build_tables(log.iloc[:k], conversation_labels={"c1": False})
        view = conversation_texts(tables.messages, tables.conversations, "\n")
        expected = model.predict_proba(view[["text"]])[0, 1]
        assert curves["raw_score"].iloc[k - 1] == pytest.approx(expected, abs=1e-6)
    meta = {"unit": "conversation", "calibration": {"method": "none"}, "threshold": 0.5}
    stream = RiskStream(model, meta, {}, "\n", threshold=0.5)
    records = list(stream.run([Message(*row) for row in rows], batch=2))
    assert [r["score"] for r in records] == pytest.approx(curves["raw_score"].tolist(), abs=1e-6)


def test_primed_scores_and_their_texts_are_dropped_after_each_batch(model) -> None:
    from grooming_detect.scoring.incremental import ConversationStreams

    scorer = prefix_scorer(model, "\n")
    streams = ConversationStreams(scorer, "author")
    streams.add_many([("c1", "a", "my address is 12 Elm St"), ("c1", "b", "ok")])
    assert scorer._primed == {}
    # An update outside a batch scores its message on its own and keeps nothing either.
    streams.add("c1", "a", "see you\nlater")
    assert scorer._primed == {}


def test_an_empty_separator_has_no_exact_stream(model) -> None:
    """With no separator a unit's document is one message: a stream of messages cannot
    reproduce it, so the stream re-reads windows instead."""
    from sklearn.base import clone

    whole = clone(model).set_params(separator="")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embeddings, "embed_texts", _hash_embed)
        whole.fit(*_units())
    assert prefix_scorer(whole, "") is None
    assert RiskStream(whole, {"unit": "author"}, {}, "", threshold=0.5).method == "window"
