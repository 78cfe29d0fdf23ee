"""Every behavioural feature on a tiny conversation computed by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from grooming_detect.features.behaviour import (
    FEATURE_DOCS,
    author_conversation_features,
    author_features,
    conversation_features,
)
from grooming_detect.features.text_views import (
    author_conversation_texts,
    author_texts,
    conversation_texts,
)

MESSAGES = pd.DataFrame(
    [
        ("c1", 1, "A", "23:58", "hi there :)"),
        ("c1", 2, "A", "23:59", "sooo bored"),
        ("c1", 3, "B", "00:01", "how old are you?"),
        ("c1", 4, "A", "00:04", "hi :P"),
        ("c1", 5, "B", "00:05", "don't tell anyone"),
        ("c2", 1, "A", "10:00", "hello"),
        ("c2", 2, "C", "10:10", "hey hey"),
    ],
    columns=["conversation_id", "line", "author", "time", "text"],
).assign(split="train")
LEXICONS = {"personal_info": ["how old are you"], "secrecy": ["don't tell"]}


@pytest.fixture(scope="module")
def per_conversation() -> pd.DataFrame:
    return author_conversation_features(MESSAGES, LEXICONS).set_index(["conversation_id", "author"])


def test_author_in_conversation_features_by_hand(per_conversation: pd.DataFrame) -> None:
    a = per_conversation.loc[("c1", "A")]
    expected_a = {
        "f_messages": 3,
        "f_words": 3 + 2 + 2,
        "f_message_share": 3 / 5,
        "f_starts": 1,
        "f_ends": 0,
        "f_mean_run": 1.5,
        "f_max_run": 2,
        "f_question_rate": 0,
        "f_mean_chars": (11 + 10 + 5) / 3,
        "f_max_chars": 11,
        "f_mean_gap_min": 3,  # only line 4 replies to B: 00:01 -> 00:04
        "f_night_share": 1.0,
        "f_vocab_richness": 6 / 7,  # "hi" twice among 7 words
        "f_emoticon_rate": 2 / 3,
        "f_elongation_rate": 1 / 3,
        "f_partners": 1,
        "cue_personal_info": 0,
        "cue_secrecy": 0,
    }
    for name, value in expected_a.items():
        assert a[name] == pytest.approx(value), name
    b = per_conversation.loc[("c1", "B")]
    expected_b = {
        "f_messages": 2,
        "f_words": 7,
        "f_starts": 0,
        "f_ends": 1,
        "f_mean_run": 1,
        "f_question_rate": 0.5,
        "f_mean_gap_min": (2 + 1) / 2,  # 23:59 -> 00:01 wraps past midnight: 2 minutes
        "cue_personal_info": 0.5,
        "cue_secrecy": 0.5,
        "f_emoticon_rate": 0,
    }
    for name, value in expected_b.items():
        assert b[name] == pytest.approx(value), name


def test_every_documented_feature_is_computed(per_conversation: pd.DataFrame) -> None:
    author_level = author_features(per_conversation.reset_index(), MESSAGES)
    conversation_level = conversation_features(MESSAGES, LEXICONS)
    produced = (
        set(per_conversation.columns) | set(author_level.columns) | set(conversation_level.columns)
    )
    assert set(FEATURE_DOCS) <= produced


def test_author_level_aggregation_by_hand(per_conversation: pd.DataFrame) -> None:
    authors = author_features(per_conversation.reset_index(), MESSAGES).set_index("author")
    a = authors.loc["A"]
    assert a["f_messages"] == 4 and a["f_words"] == 8 and a["f_conversations"] == 2
    assert a["f_partners"] == 2  # B and C
    assert a["f_night_share"] == pytest.approx((1.0 * 3 + 0.0 * 1) / 4)
    assert a["f_mean_gap_min"] == pytest.approx(3)  # c2 has no reply by A
    assert a["f_starts"] == pytest.approx(1.0) and a["f_ends"] == pytest.approx(0.0)
    assert a["f_max_run"] == 2
    assert authors.loc["C", "f_mean_gap_min"] == pytest.approx(10)


def test_conversation_features_by_hand() -> None:
    c1 = conversation_features(MESSAGES, LEXICONS).set_index("conversation_id").loc["c1"]
    assert c1["f_messages"] == 5 and c1["f_authors"] == 2
    assert c1["f_mean_gap_min"] == pytest.approx((2 + 3 + 1) / 3)
    assert c1["f_question_rate"] == pytest.approx(1 / 5)
    assert c1["cue_secrecy"] == pytest.approx(1 / 5)


def test_text_views() -> None:
    authors = pd.DataFrame(
        {
            "author": ["A", "B", "C"],
            "split": "train",
            "n_messages": [4, 2, 1],
            "n_conversations": [2, 1, 1],
            "is_predator": [False, True, False],
        }
    )
    view = author_texts(MESSAGES, authors, "\n").set_index("author")
    assert view.loc["A", "text"] == "hi there :)\nsooo bored\nhi :P\nhello"
    conversations = pd.DataFrame(
        {
            "conversation_id": ["c1", "c2"],
            "split": "train",
            "n_messages": [5, 2],
            "n_authors": [2, 2],
            "has_predator": [True, False],
        }
    )
    whole = conversation_texts(MESSAGES, conversations, "\n").set_index("conversation_id")
    assert whole.loc["c2", "text"] == "[S1] hello\n[S2] hey hey"
    per = author_conversation_texts(MESSAGES, authors, "\n").set_index(
        ["conversation_id", "author"]
    )
    assert per.loc[("c1", "B"), "text"] == "how old are you?\ndon't tell anyone"
    assert per.loc[("c1", "B"), "conversation_text"].startswith("[S1] hi there :)\n[S1] sooo")
    assert bool(per.loc[("c1", "B"), "is_predator"]) is True


def test_a_view_built_alone_equals_the_same_view_built_with_the_others() -> None:
    """Scoring builds only its model's view: each view must not depend on the others."""
    from grooming_detect.data.schema import build_tables
    from grooming_detect.features.stage import VIEWS, build_views

    tables = build_tables(MESSAGES, predators={"train": {"A"}})
    messages, authors, conversations = tables.messages, tables.authors, tables.conversations
    lexicons = LEXICONS
    every = build_views(messages, authors, conversations, "\n", lexicons)
    for name in VIEWS:
        alone = build_views(messages, authors, conversations, "\n", lexicons, {name})
        assert list(alone) == [name]
        pd.testing.assert_frame_equal(alone[name], every[name])
    with pytest.raises(ValueError, match="unknown view"):
        build_views(messages, authors, conversations, "\n", lexicons, {"bogus"})
