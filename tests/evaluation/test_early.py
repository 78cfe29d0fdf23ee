"""eSPD measures against hand-computed values, and the packaged VTPAN id lists."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from grooming_detect import pipeline
from grooming_detect.data import vtpan
from grooming_detect.data.schema import build_tables
from grooming_detect.evaluation.early import (
    P_ESPD,
    EarlySettings,
    early_measures,
    early_settings,
    espd_penalty_p,
    espd_steps,
    first_warning,
    incremental_curves,
    latency_penalty,
    nonempty_counts,
    ordered_messages,
    risk_curves,
    speed,
    split_measures,
    split_penalty,
    tune_warning_threshold,
    warning_latencies,
    window_steps,
)
from grooming_detect.features.text_views import conversation_texts
from grooming_detect.models.baselines import make_tfidf_logreg, make_tfidf_svm
from grooming_detect.reporting.model_card import early_detection_section
from grooming_detect.scoring.incremental import LinearPrefixScorer
from grooming_detect.stage import latest_dir


def test_latency_penalty_and_speed_hand_computed() -> None:
    assert latency_penalty(1) == 0.0
    assert latency_penalty(90) == pytest.approx(0.5)
    p = math.log(3) / 89
    assert latency_penalty(10) == pytest.approx(-1 + 2 / (1 + math.exp(-p * 9)))
    # Median penalty over true positives: latencies 1, 90 and 179 -> median penalty(90) = 0.5.
    assert speed([1, 90, 179]) == pytest.approx(0.5)
    assert latency_penalty(179) == pytest.approx(0.8)  # -1 + 2/(1 + 1/9)
    with pytest.raises(ValueError, match="k >= 1"):
        latency_penalty(0)


def test_warning_needs_patience_consecutive_steps() -> None:
    steps, scores = [1, 2, 3, 4, 5], [0.9, 0.1, 0.8, 0.7, 0.95]
    assert first_warning(steps, scores, 0.5, patience=1) == 1
    assert first_warning(steps, scores, 0.5, patience=2) == 4
    assert first_warning(steps, scores, 0.5, patience=3) == 5
    assert first_warning(steps, scores, 0.99, patience=1) is None
    with pytest.raises(ValueError, match="patience"):
        first_warning(steps, scores, 0.5, patience=0)


def test_early_measures_hand_computed() -> None:
    # Positives warned at 1 and 90, one positive missed; one of three negatives warned.
    latencies = [1, 90, None, 5, None, None]
    labels = [True, True, True, False, False, False]
    m = early_measures(latencies, labels)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["speed"] == pytest.approx(1 - (0 + 0.5) / 2)
    assert m["latency_weighted_f1"] == pytest.approx(2 / 3 * 0.75)
    assert m["latency_median"] == pytest.approx(45.5)
    assert m["false_warnings_per_1k_negatives"] == pytest.approx(1000 / 3)


def test_penalty_slope_by_espd_rule_hand_computed() -> None:
    # eSPD's rule: penalty(median) = 0.5 <=> exp(-p (m - 1)) = 1/3 <=> p = ln 3 / (m - 1).
    p = espd_penalty_p(10)
    assert p == pytest.approx(math.log(3) / 9)
    assert latency_penalty(10, p) == pytest.approx(0.5)
    assert latency_penalty(19, p) == pytest.approx(0.8)  # exp(-2 ln 3) = 1/9: -1 + 2/(10/9)
    assert espd_penalty_p(90) == pytest.approx(P_ESPD)
    assert espd_penalty_p(1.5) == pytest.approx(2 * math.log(3))  # an even count's median
    for bad in (1, 0.5, float("nan")):
        with pytest.raises(ValueError, match="more than one message"):
            espd_penalty_p(bad)


def _steps_frame(lengths: dict[str, int]) -> pd.DataFrame:
    """Curves of conversations whose every message has text, `lengths` messages each."""
    rows = [(cid, k, k, 0.1) for cid, n in lengths.items() for k in range(1, n + 1)]
    return pd.DataFrame(rows, columns=["conversation_id", "k", "nonempty_k", "score"])


def test_split_penalty_takes_the_median_of_the_positive_conversations() -> None:
    curves = _steps_frame({"p1": 4, "p2": 10, "p3": 30, "n1": 200, "n2": 300})
    # A positive conversation of empty messages alone is not a chat: left out of the median.
    empty = pd.DataFrame({"conversation_id": "p4", "k": [1, 2], "nonempty_k": 0, "score": 0.1})
    curves = pd.concat([curves, empty], ignore_index=True)
    labels = pd.Series({"p1": True, "p2": True, "p3": True, "p4": True, "n1": False, "n2": False})
    p, median = split_penalty(curves, labels, None)
    assert median == 10.0 and p == pytest.approx(math.log(3) / 9)
    assert split_penalty(curves, labels, "espd") == (pytest.approx(math.log(3) / 89), 10.0)
    assert split_penalty(curves, labels, 0.2) == (0.2, 10.0)
    negatives = labels.map(lambda _: False)
    p, median = split_penalty(curves, negatives, None)
    assert np.isnan(p) and np.isnan(median)
    short = _steps_frame({"p1": 1, "p2": 1, "p3": 5})
    with pytest.raises(ValueError, match=r"early\.penalty_p=null: .* median of 1 .* 'espd'"):
        split_penalty(short, pd.Series({"p1": True, "p2": True, "p3": True}), None)


def test_skepticism_counts_positive_steps_among_the_last_ten() -> None:
    # Positive steps (score >= 0.5) at 2, 5 and 9: three of the last ten at step 9.
    steps = list(range(1, 16))
    scores = [0.1] * 15
    for k in (2, 5, 9):
        scores[k - 1] = 0.9
    assert first_warning(steps, scores, 0.5, skepticism=3) == 9
    assert first_warning(steps, scores, 0.5, skepticism=4) is None
    assert first_warning(steps, scores, 0.5, skepticism=1) == 2
    # The window slides: positives at 1, 5 and 11 are never three within ten steps (step 11
    # looks back to step 2), a fourth at 12 makes 5, 11 and 12 three.
    spread = [0.9 if k in (1, 5, 11) else 0.1 for k in steps]
    assert first_warning(steps, spread, 0.5, skepticism=3) is None
    spread[11] = 0.9
    assert first_warning(steps, spread, 0.5, skepticism=3) == 12
    # A shorter window for the same rule.
    assert first_warning(steps, scores, 0.5, skepticism=2, skepticism_window=3) is None
    assert first_warning(steps, scores, 0.5, skepticism=2, skepticism_window=4) == 5
    frame = pd.DataFrame(
        {"conversation_id": ["a"] * 15 + ["b"] * 15, "k": steps * 2, "score": scores + spread}
    )
    assert warning_latencies(frame, 0.5, skepticism=3).to_dict() == {"a": 9.0, "b": 12.0}
    assert warning_latencies(frame, 0.5, skepticism=4).isna().all()
    with pytest.raises(ValueError, match="two warning policies"):
        first_warning(steps, scores, 0.5, patience=2, skepticism=3)
    with pytest.raises(ValueError, match="expected 1 to 10"):
        first_warning(steps, scores, 0.5, skepticism=11)


@pytest.mark.parametrize(
    "policy",
    [
        {"patience": 1},
        {"patience": 3},
        {"skepticism": 1},
        {"skepticism": 4},
        {"skepticism": 2, "skepticism_window": 3},
    ],
)
def test_vectorised_warnings_and_tuning_equal_the_step_by_step_rule(policy) -> None:
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 30, size=40)
    ids = np.repeat([f"c{i:02d}" for i in range(40)], lengths)
    steps = pd.DataFrame(
        {
            "conversation_id": ids,
            "k": np.concatenate([np.arange(1, n + 1) for n in lengths]),
            "score": rng.random(len(ids)).round(2),
        }
    )
    labels = pd.Series({f"c{i:02d}": i % 3 == 0 for i in range(40)})
    for threshold in (0.3, 0.6, 0.9):
        got = warning_latencies(steps, threshold, **policy)
        for cid, group in steps.groupby("conversation_id"):
            expected = first_warning(
                group["k"].tolist(), group["score"].tolist(), threshold, **policy
            )
            assert got[cid] == pytest.approx(np.nan if expected is None else expected, nan_ok=True)
    p = espd_penalty_p(10)
    threshold, value = tune_warning_threshold(steps, labels, p=p, **policy)
    latencies = warning_latencies(steps, threshold, **policy)
    measures = early_measures(
        [None if np.isnan(k) else int(k) for k in latencies],
        labels.reindex(latencies.index).tolist(),
        p,
    )
    assert value == pytest.approx(measures["latency_weighted_f1"])


def test_only_nonempty_messages_are_steps() -> None:
    messages = pd.DataFrame(
        {
            "conversation_id": ["c1"] * 5 + ["c2"] * 2,
            "line": [1, 2, 3, 4, 5, 1, 2],
            "author": ["a", "b", "a", "b", "a", "x", "y"],
            "text": ["hi", "", "so", " ", "ok", "", ""],
        }
    )
    counts = nonempty_counts(messages)
    # A space is text (eSPD's test is a non-empty string); "" is not.
    assert counts["nonempty_k"].tolist() == [1, 1, 2, 3, 4, 0, 0]
    curves = counts.assign(score=[0.1, 0.9, 0.2, 0.3, 0.8, 0.95, 0.95])
    steps = espd_steps(curves)
    # The empty message's 0.9 is not a step; c2, of empty messages alone, has none.
    assert steps.to_dict("list") == {
        "conversation_id": ["c1"] * 4,
        "k": [1, 2, 3, 4],
        "score": [0.1, 0.2, 0.3, 0.8],
    }
    # A window-method row at an empty message stands for the non-empty ones before it.
    window_rows = pd.DataFrame(
        {"conversation_id": "c1", "k": [2, 4, 5], "nonempty_k": [1, 3, 4], "score": [0.2] * 3}
    )
    assert espd_steps(window_rows)["k"].tolist() == [1, 3, 4]
    labels = pd.Series({"c1": True, "c2": True})
    measures, table = split_measures(curves, labels, 0.5, EarlySettings(penalty_p="espd"))
    # Latency 4 non-empty messages (the 5th message read), not 2 (the empty one scoring 0.9).
    assert table.set_index("conversation_id")["warned_at"].to_dict() == pytest.approx(
        {"c1": 4.0, "c2": np.nan}, nan_ok=True
    )
    assert table["n_messages"].tolist() == [4, 0]
    assert measures["n_conversations"] == 2 and measures["recall"] == 0.5
    assert measures["latency_median"] == 4.0
    assert measures["speed"] == pytest.approx(1 - latency_penalty(4, P_ESPD))
    assert measures["positive_median_length"] == 4.0 and measures["penalty_p"] == P_ESPD
    # The derived p: the only positive chat with text has 4 non-empty messages.
    derived, _ = split_measures(curves, labels, 0.5, EarlySettings())
    assert derived["penalty_p"] == pytest.approx(math.log(3) / 3)
    assert derived["speed"] == pytest.approx(0.5)  # latency 4 = the median: half the penalty


def test_risk_curves_carry_the_nonempty_count(text_model) -> None:
    messages = _messages(3)
    meta = {"unit": "author", "calibration": {"method": "none"}}
    curves, _ = risk_curves(text_model, meta, messages, EarlySettings(), {}, "\n")
    expected = nonempty_counts(messages)
    assert list(curves.columns) == ["conversation_id", "k", "nonempty_k", "raw_score", "score"]
    pd.testing.assert_frame_equal(
        curves[["conversation_id", "k", "nonempty_k"]], expected, check_dtype=False
    )
    # Each conversation of _messages has one empty message before its last: one step fewer.
    steps = espd_steps(curves)
    assert len(steps) == len(curves) - curves["conversation_id"].nunique()


def test_packaged_vtpan_lists_have_the_published_sizes() -> None:
    assert len(vtpan.conversation_ids("train")) == 6_588
    assert len(vtpan.conversation_ids("test")) == 15_329
    assert not vtpan.conversation_ids("train") & vtpan.conversation_ids("test")
    assert (vtpan.FOLDER / "LICENSE").read_text().startswith("MIT License")


# ----------------------------------------------------------------- risk curves on tiny models

POSITIVE_LINES = [
    "hi there",
    "how old are you",
    "you are so mature for your age",
    "don't tell your parents about our chat",
    "add me on snap, it is more private",
    "we could meet up after school",
]
NEGATIVE_LINES = [
    "hi there",
    "did you watch the game last night",
    "the homework for maths is due friday",
    "my dog chewed my shoe again",
    "see you at practice tomorrow",
    "ok bye",
]


def _messages(n_per_class: int = 12, split: str = "test") -> pd.DataFrame:
    """Two-person conversations; positives carry non-explicit grooming markers from one side."""
    rows = []
    for c in range(2 * n_per_class):
        positive = c % 2 == 0
        lines = POSITIVE_LINES if positive else NEGATIVE_LINES
        for line, text in enumerate([*lines[: 3 + c % 4], "", "lol ok"], start=1):
            author = f"a{c}" if line % 2 else f"b{c}"
            rows.append((f"c{c:02d}", line, author, None, text if c % 3 else text.upper(), split))
    return pd.DataFrame(
        rows, columns=["conversation_id", "line", "author", "time", "text", "split"]
    )


def _labels(messages: pd.DataFrame) -> pd.Series:
    ids = messages["conversation_id"].drop_duplicates()
    return pd.Series([int(i[1:]) % 2 == 0 for i in ids], index=ids.to_numpy())


@pytest.fixture(scope="module", params=["hashing", "vocabulary"])
def text_model(request: pytest.FixtureRequest):
    """A fitted default-style TF-IDF + logistic regression on author-in-conversation texts."""
    messages = _messages(split="train")
    nonempty = messages[messages["text"] != ""]
    docs = nonempty.groupby(["conversation_id", "author"], sort=False)["text"].agg("\n".join)
    y = [
        int(cid[1:]) % 2 == 0 and int(author[1:]) >= 0 and author.startswith("a")
        for cid, author in docs.index
    ]
    model = make_tfidf_logreg(min_df=1, vectorizer=request.param, n_features=2**12, C=10.0)
    return model.fit(pd.DataFrame({"text": docs.to_numpy()}), y)


def test_incremental_prefix_scores_equal_the_pipeline_on_every_prefix(text_model) -> None:
    scorer = LinearPrefixScorer.from_pipeline(text_model, "\n")
    assert scorer is not None
    texts = [m for m in [*POSITIVE_LINES, "Hello  there, HOW old?", "x", "", "é ü 日本語 ok"] if m]
    incremental = scorer.score_stream(texts)
    prefixes = pd.DataFrame({"text": ["\n".join(texts[: k + 1]) for k in range(len(texts))]})
    assert incremental == pytest.approx(text_model.predict_proba(prefixes)[:, 1], abs=1e-5)
    assert scorer.empty_score() == pytest.approx(
        text_model.predict_proba(pd.DataFrame({"text": [""]}))[0, 1], abs=1e-6
    )


def test_conversation_curve_is_the_conversation_view_score_at_each_prefix(text_model) -> None:
    """A conversation model's stream is the conversation view's document (speaker markers,
    empty messages kept): the score at k equals the pipeline on the view of messages 1..k."""
    messages = _messages(4)
    scorer = LinearPrefixScorer.from_pipeline(text_model, "\n")
    curves = incremental_curves(scorer, "conversation", messages)
    ordered = ordered_messages(messages)
    for cid, group in ordered.groupby("conversation_id"):
        for k in range(1, len(group) + 1):
            part = group.iloc[:k]
            tables = build_tables(part.drop(columns="k"), conversation_labels={cid: False})
            view = conversation_texts(tables.messages, tables.conversations, "\n")
            expected = text_model.predict_proba(view[["text"]])[0, 1]
            got = curves[(curves["conversation_id"] == cid) & (curves["k"] == k)]["raw_score"]
            assert float(got.iloc[0]) == pytest.approx(expected, abs=1e-5)


def test_author_curve_takes_the_top_author_of_the_prefix(text_model) -> None:
    messages = _messages(3)
    scorer = LinearPrefixScorer.from_pipeline(text_model, "\n")
    curves = incremental_curves(scorer, "author", messages).set_index(["conversation_id", "k"])
    ordered = ordered_messages(messages)
    for (cid, k), row in curves.iterrows():
        prefix = ordered[(ordered["conversation_id"] == cid) & (ordered["k"] <= k)]
        nonempty = prefix[prefix["text"] != ""]
        docs = nonempty.groupby("author")["text"].agg("\n".join)
        scores = text_model.predict_proba(pd.DataFrame({"text": docs.to_numpy()}))[:, 1]
        empty_only = set(prefix["author"]) - set(docs.index)
        best = max([*scores, *([scorer.empty_score()] if empty_only else [])])
        assert row["raw_score"] == pytest.approx(best, abs=1e-5)


def test_unsupported_pipelines_fall_back_to_windows() -> None:
    docs = pd.DataFrame({"text": ["how old are you", "nice dog", "don't tell", "hi"] * 3})
    y = [True, False, True, False] * 3
    model = make_tfidf_logreg(min_df=1, n_features=2**10).fit(docs, y)
    assert LinearPrefixScorer.from_pipeline(model, "\n") is not None
    # A separator that glues tokens together cannot be reproduced by the tail.
    assert LinearPrefixScorer.from_pipeline(model, "_") is None
    svm = make_tfidf_svm(min_df=1, n_features=2**10, cv=2).fit(docs, y)
    assert LinearPrefixScorer.from_pipeline(svm, "\n") is None


@pytest.mark.parametrize("method", ["incremental", "window"])
def test_scores_at_step_k_never_depend_on_later_messages(text_model, method: str) -> None:
    messages = _messages(4)
    meta = {"unit": "author", "calibration": {"method": "none"}, "model_name": "tiny"}
    settings = EarlySettings(window=3, step=1, method=method)
    lexicons = {"secrecy": ["don't tell"]}
    before, used = risk_curves(text_model, meta, messages, settings, lexicons, "\n")
    assert used == method
    k_cut = 3
    changed = ordered_messages(messages)
    later = changed["k"] > k_cut
    changed.loc[later, "text"] = "don't tell anyone, how old are you, add me on snap"
    after, _ = risk_curves(text_model, meta, changed.drop(columns="k"), settings, lexicons, "\n")
    early_before = before[before["k"] <= k_cut].reset_index(drop=True)
    early_after = after[after["k"] <= k_cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(early_before, early_after)
    assert not before["score"].equals(after["score"])  # later scores did see the change


def test_window_method_reads_only_the_last_messages(text_model) -> None:
    messages = _messages(2)
    meta = {"unit": "author", "calibration": {"method": "none"}}
    settings = EarlySettings(window=2, step=2, method="window")
    curves, _ = risk_curves(text_model, meta, messages, settings, {}, "\n")
    ordered = ordered_messages(messages)
    for cid, group in ordered.groupby("conversation_id"):
        assert curves.loc[curves["conversation_id"] == cid, "k"].tolist() == window_steps(
            len(group), 2
        )
        k = 4
        part = group[(group["k"] > k - 2) & (group["k"] <= k)]
        nonempty = part[part["text"] != ""]
        docs = nonempty.groupby("author")["text"].agg("\n".join)
        expected = text_model.predict_proba(pd.DataFrame({"text": docs.to_numpy()}))[:, 1].max()
        got = curves[(curves["conversation_id"] == cid) & (curves["k"] == k)]["raw_score"]
        assert float(got.iloc[0]) == pytest.approx(expected, abs=1e-6)


def test_warning_latencies_and_tuned_threshold_by_hand() -> None:
    curves = pd.DataFrame(
        {
            "conversation_id": ["p1"] * 4 + ["p2"] * 4 + ["n1"] * 4,
            "k": [1, 2, 3, 4] * 3,
            "nonempty_k": [1, 2, 3, 4] * 3,  # every message has text: the steps are the rows
            "score": [0.2, 0.9, 0.3, 0.95, 0.1, 0.2, 0.7, 0.8, 0.6, 0.1, 0.1, 0.1],
        }
    )
    labels = pd.Series({"p1": True, "p2": True, "n1": False})
    first = warning_latencies(curves, 0.5, patience=1)
    assert first.to_dict() == {"p1": 2.0, "p2": 3.0, "n1": 1.0}
    patient = warning_latencies(curves, 0.5, patience=2)
    assert patient["p1"] != patient["p1"]  # never two steps in a row above 0.5: NaN
    assert patient["p2"] == 4.0 and np.isnan(patient["n1"])
    for cid, group in curves.groupby("conversation_id"):
        expected = first_warning(group["k"].tolist(), group["score"].tolist(), 0.5, 2)
        assert (np.nan if expected is None else expected) == pytest.approx(
            patient[cid], nan_ok=True
        )
    # Threshold 0.7 warns both positives (at 2 and 3) and not the negative: F1 1, the best.
    threshold, value = tune_warning_threshold(curves, labels, patience=1)
    assert 0.6 < threshold <= 0.7
    assert value == pytest.approx(1.0 - float(np.median(latency_penalty(np.array([2, 3])))))
    measures, table = split_measures(curves, labels, threshold, EarlySettings())
    assert measures["f1"] == 1.0 and measures["false_warnings_per_1k_negatives"] == 0.0
    assert table.set_index("conversation_id")["warned_at"].to_dict() == pytest.approx(
        {"p1": 2.0, "p2": 3.0, "n1": np.nan}, nan_ok=True
    )


def test_no_threshold_is_tuned_where_no_positive_can_be_warned() -> None:
    curves = pd.DataFrame(
        {"conversation_id": ["n1", "n1", "n2"], "k": [1, 2, 1], "score": [0.1, 0.9, 0.3]}
    )
    with pytest.raises(ValueError, match="no warning threshold warns a positive"):
        tune_warning_threshold(curves, pd.Series({"n1": False, "n2": False}), patience=1)
    with pytest.raises(ValueError, match="without a label"):
        tune_warning_threshold(curves, pd.Series({"n1": True}), patience=1)
    # A one-message positive can never hold the risk for two steps.
    with pytest.raises(ValueError, match="patience 2"):
        tune_warning_threshold(curves, pd.Series({"n1": False, "n2": True}), patience=2)


def test_settings_are_checked() -> None:
    for bad in (
        {"window": 0},
        {"step": 1.5},
        {"patience": True},
        {"method": "x"},
        {"skepticism": 0},
        {"skepticism": 11},
        {"skepticism": 3, "skepticism_window": 2},
        {"skepticism": True},
        {"skepticism_window": 0},
        {"penalty_p": 0},
        {"penalty_p": -0.1},
        {"penalty_p": float("inf")},
        {"penalty_p": "fast"},
        {"penalty_p": True},
    ):
        with pytest.raises(ValueError, match="early"):
            EarlySettings(**bad)
    with pytest.raises(ValueError, match=r"set early\.patience=1 to use skepticism"):
        EarlySettings(patience=2, skepticism=3)
    assert EarlySettings(skepticism=3).rule() == (10, 3)
    assert EarlySettings(patience=2).rule() == (2, 2)
    assert EarlySettings(penalty_p="espd").penalty_p == "espd"
    assert EarlySettings(penalty_p=0.05).penalty_p == 0.05
    read = early_settings({"skepticism": 4, "skepticism_window": 8, "penalty_p": 0.1})
    assert (read.skepticism, read.skepticism_window, read.penalty_p) == (4, 8, 0.1)
    # null no longer means eSPD's ln 3 / 89: it derives p from the evaluated split.
    assert early_settings({"penalty_p": None}).penalty_p is None
    assert early_settings({"penalty_p": "espd"}).penalty_p == "espd"


def test_card_section_names_the_tuning_set_and_reads_the_settings() -> None:
    metrics = {}
    for split, f1 in (("validation", 0.8), ("test", 0.6)):
        values = {
            "precision": 0.7,
            "recall": 0.5,
            "f1": f1,
            "speed": 0.9,
            "latency_weighted_f1": f1 * 0.9,
            "latency_median": 7.0,
            "latency_q25": 3.0,
            "latency_q75": 12.0,
            "false_warnings_per_1k_negatives": 12.5,
            "n_conversations": 100.0,
            "n_positive": 10.0,
            "penalty_p": math.log(3) / 9,
            "positive_median_length": 10.0,
        }
        metrics.update({f"{split}/early/{k}": v for k, v in values.items()})
    settings = EarlySettings(window=20, step=5, patience=2)
    early = {
        "method": "window",
        "window": 20,
        "step": 5,
        "patience": 2,
        "skepticism": None,
        "warning_policy": settings.describe_policy(),
        "penalty_rule": "p = ln 3 / (m − 1), m the median",
        "threshold": 0.42,
        "threshold_fitted_on": "validation (latency-weighted F1)",
        "splits": ["validation", "test"],
    }
    section = early_detection_section(early, metrics, "figs")
    assert "| validation (tuning set, in-sample) | 100 (10) |" in section
    assert (
        "| test | 100 (10) | 0.700 | 0.500 | 0.600 | 0.900 | 0.540 | 7 | 3–12 | 12.5 "
        "| 0.12207 (10) |" in section
    )
    assert "last 20 messages every 5 message(s)" in section and "in 2 consecutive" in section
    assert "p = ln 3 / (m − 1)" in section and "non-empty messages" in section
    skeptical = EarlySettings(skepticism=3).describe_policy()
    section = early_detection_section({**early, "warning_policy": skeptical}, metrics, "figs")
    assert "at least 3 of its last 10 scored steps" in section and "skepticism 3" in section
    assert "0.4200" in section and "figs/early/warned-by-messages.png" in section
    assert early_detection_section({}, metrics, "figs") == ""


@pytest.mark.pipeline
@pytest.mark.slow
def test_early_experiment_logs_measures_figures_and_card(compose_cfg) -> None:
    cfg = compose_cfg(
        "experiment=early",
        "scale=tiny",
        "early.train_on_prefixes=2",
        "evaluate.bootstrap.n_resamples=50",
        "progress=false",
    )
    result = pipeline.run(cfg)
    metrics = result.stages["evaluate"].metrics
    meta = json.loads((result.stages["train"].outputs["model_dir"] / "model.json").read_text())
    prefixes = meta["train_on_prefixes"]
    # Two prefixes (of 1 .. n-1 messages) per training conversation of two messages or more.
    assert prefixes["per_conversation"] == 2 and prefixes["rows"] > 0
    assert 0 < prefixes["positive"] < prefixes["rows"]
    n_authors = result.stages["data"].metrics["train/authors"]
    assert result.stages["train"].metrics["train/n_rows"] == n_authors + prefixes["rows"]
    for split in ("validation", "test"):
        m = {k.split("/")[-1]: v for k, v in metrics.items() if k.startswith(f"{split}/early/")}
        assert m["latency_weighted_f1"] == pytest.approx(m["f1"] * m["speed"])
        assert m["n_conversations"] == result.stages["data"].metrics[f"{split}/conversations"]
        assert m["n_positive"] > 0 and "false_warnings_per_1k_negatives" in m
    evaluation = latest_dir(cfg.paths.run_dir, "evaluation")
    summary = json.loads((evaluation / "evaluation.json").read_text())
    assert summary["early"]["method"] == "incremental"
    assert summary["early"]["threshold"] == metrics["early/threshold"]
    warnings = pd.read_parquet(evaluation / "early" / "test-warnings.parquet")
    assert list(warnings.columns) == ["conversation_id", "label", "n_messages", "warned_at"]
    for figure in ("warned-by-messages.png", "latency-histogram.png", "risk-curves.png"):
        assert (evaluation / "early" / figure).stat().st_size > 0
        assert len(pd.read_csv((evaluation / "early" / figure).with_suffix(".csv"))) > 0
    # The figure's table recomputes the logged measures: its last positive share is the recall.
    warned_by = pd.read_csv(evaluation / "early" / "warned-by-messages.csv")
    for split in ("validation", "test"):
        part = warned_by[(warned_by["split"] == split) & (warned_by["class"] == "positive")]
        assert part["share_warned"].iloc[-1] == pytest.approx(metrics[f"{split}/early/recall"])
        assert part["conversations"].iloc[0] == metrics[f"{split}/early/n_positive"]
    latency = pd.read_csv(evaluation / "early" / "latency-histogram.csv")
    assert latency["conversations"].sum() == round(
        metrics["test/early/recall"] * metrics["test/early/n_positive"]
    )
    card = (latest_dir(cfg.paths.run_dir, "report") / "MODEL_CARD.md").read_text()
    assert "## Early detection" in card and "| test |" in card
