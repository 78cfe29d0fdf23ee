"""False-positive analysis: explanations, tables, slices, and the problem-2 line rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.pipeline import make_pipeline

from grooming_detect.evaluation import error_analysis, lines
from grooming_detect.evaluation.profiles import profiles, slice_labels
from grooming_detect.models.baselines import make_tfidf_logreg

TEXTS = pd.DataFrame(
    {"text": ["keep this our secret", "gg nice shot", "our secret ok", "nice game gg"]}
)
LABELS = np.array([1, 0, 1, 0])


def test_linear_explanations_name_the_terms_that_raise_the_score() -> None:
    model = make_tfidf_logreg(min_df=1, C=10.0).fit(TEXTS, LABELS)
    explanations = error_analysis.linear_explanations(model, pd.DataFrame({"text": ["our secret"]}))
    assert "word__secret" in explanations[0] or "word__our secret" in explanations[0]
    assert "(+" in explanations[0]


def test_occlusion_finds_the_message_and_feature_that_matter() -> None:
    forest = make_pipeline(
        CountVectorizer(), RandomForestClassifier(n_estimators=50, random_state=0)
    )
    forest.fit(TEXTS["text"], LABELS)
    assert error_analysis.linear_parts(forest) is None

    def score(frame: pd.DataFrame) -> np.ndarray:
        # Text evidence plus a behavioural feature that raises the score by itself.
        return forest.predict_proba(frame["text"])[:, 1] * 0.5 + frame["f_night_share"] * 0.5

    messages = pd.DataFrame(
        {
            "id": ["a", "a", "a"],
            "conversation_id": ["c1", "c1", "c2"],
            "line": [1, 2, 5],
            "text": ["gg", "keep this our secret", "nice shot"],
        }
    )
    base = pd.DataFrame(
        {"text": ["gg\nkeep this our secret\nnice shot"], "f_night_share": [1.0]}, index=["a"]
    )
    explanation = error_analysis.occlusion_explanations(
        score, base, messages, "\n", medians={"f_night_share": 0.2}, top=2
    )
    parts = explanation["a"].split("; ")
    assert {part.split(" ")[0] for part in parts} == {"c1:2", "f_night_share"}


MESSAGES = pd.DataFrame(
    {
        "conversation_id": ["c1", "c1", "c1", "c2", "c2"],
        "line": [1, 2, 3, 1, 2],
        "author": ["p", "v", "p", "n1", "n2"],
        "time": ["23:00", "23:01", None, "10:00", "10:05"],
        "text": ["how old are you?", "14", "don't tell anyone", "hi", "hello there friend"],
        "split": ["test"] * 5,
    }
)
LEXICONS = {"personal_info": ["how old are you"], "secrecy": ["don't tell"]}


def test_profiles_hand_computed() -> None:
    table = profiles(MESSAGES, "author", LEXICONS).set_index("id")
    p = table.loc["p"]
    assert p["n_messages"] == 2 and p["n_conversations"] == 1 and p["n_partners"] == 1
    assert p["question_rate"] == pytest.approx(0.5)
    assert p["night_share"] == pytest.approx(0.5)  # one 23:00 message of two (one has no time)
    assert p["cues_per_message"] == pytest.approx(1.0)
    assert p["mean_words"] == pytest.approx((4 + 3) / 2)
    assert p["modal_hour"] == 23
    n2 = table.loc["n2"]
    assert n2["cues_per_message"] == 0 and n2["max_conversation_authors"] == 2
    buckets = slice_labels(table.reset_index())
    assert buckets.loc[0, "lexicon_cue"] == "lexicon cue present"


def test_error_tables_and_slices() -> None:
    predictions = pd.DataFrame(
        {
            "id": ["p", "v", "n1", "n2"],
            "label": [True, False, False, False],
            "score": [0.2, 0.9, 0.1, 0.6],
            "predicted": [False, True, False, True],
        }
    )
    profile = profiles(MESSAGES, "author", LEXICONS)
    false_positives = error_analysis.error_table(predictions, profile, "false_positives", top_k=2)
    assert false_positives["id"].tolist() == ["v", "n2"]
    assert error_analysis.error_table(predictions, profile, "false_negatives", 5)[
        "id"
    ].tolist() == ["p"]
    rates = error_analysis.slice_rates(predictions, profile)
    cue = rates[rates["slice"] == "lexicon_cue"].set_index("bucket")
    assert cue.loc["no lexicon cue", "negatives"] == 3
    assert cue.loc["no lexicon cue", "false_positive_rate"] == pytest.approx(2 / 3)


def test_line_rules() -> None:
    every = lines.predicted_lines(MESSAGES, {"p"}, "all_lines")
    assert list(every.itertuples(index=False, name=None)) == [("c1", 1), ("c1", 3)]

    def score(frame: pd.DataFrame) -> np.ndarray:
        return frame["text"].str.contains("tell").to_numpy(dtype=float)

    scored = lines.predicted_lines(MESSAGES, {"p"}, "scored", score, line_threshold=0.5)
    assert list(scored.itertuples(index=False, name=None)) == [("c1", 3)]
    assert lines.submission_text(scored) == "c1\t3\n"
    with pytest.raises(ValueError, match="line_rule"):
        lines.predicted_lines(MESSAGES, {"p"}, "best_lines")


def test_conversation_level_scores_take_the_top_author() -> None:
    from grooming_detect.evaluation.stage import _conversation_level

    predictions = pd.DataFrame({"id": ["p", "v", "n1", "n2"], "score": [0.9, 0.2, 0.1, 0.6]})
    conversations = pd.DataFrame(
        {"conversation_id": ["c1", "c2"], "split": ["test", "test"], "has_predator": [True, False]}
    )
    metrics = _conversation_level(predictions, MESSAGES, conversations, "test", threshold=0.5)
    # c1 scores max(0.9, 0.2) = 0.9 (flagged, right); c2 scores max(0.1, 0.6) = 0.6 (flagged,
    # wrong): precision 1/2, recall 1/1, two alerts in two conversations.
    assert metrics["test/conversation/precision"] == pytest.approx(0.5)
    assert metrics["test/conversation/recall"] == pytest.approx(1.0)
    assert metrics["test/conversation/alerts_per_10k"] == pytest.approx(10_000)
    assert metrics["test/conversation/roc_auc"] == pytest.approx(1.0)


def test_modal_hour_takes_the_earliest_on_ties() -> None:
    messages = pd.DataFrame(
        {
            "conversation_id": ["c", "c", "c", "d"],
            "line": [1, 2, 3, 1],
            "author": ["a", "a", "a", "b"],
            "time": ["10:00", "09:30", None, None],
            "text": ["x", "y", "z", "w"],
            "split": ["test"] * 4,
        }
    )
    table = profiles(messages, "author", LEXICONS).set_index("id")
    assert table.loc["a", "modal_hour"] == 9 and table.loc["b", "modal_hour"] == -1
