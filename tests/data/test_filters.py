"""PAN-2012 conversation filters: hand-computed removals on the fixture, predators accounted for."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from grooming_detect.data import pan12
from grooming_detect.data.filters import FilterSettings, apply_filters

WINNERS_LIKE = FilterSettings(
    drop_single_author=True, drop_multi_party=True, min_messages_per_author=2
)


def _totals(account: list[dict], name: str) -> dict[str, int]:
    rows = pd.DataFrame(account)
    rows = rows[rows["filter"] == name]
    return rows[["conversations", "messages", "authors", "predators"]].sum().to_dict()


def test_filters_remove_and_account_exactly(pan12_copy: Path) -> None:
    tables, report = pan12.load_corpus(
        pan12.find_files(pan12_copy), 0.3, seed=0, show_progress=False, filters=WINNERS_LIKE
    )
    # c4 is a monologue; its author also speaks in c3, so no author disappears.
    assert _totals(report.filtered, "drop_single_author") == {
        "conversations": 1,
        "messages": 1,
        "authors": 0,
        "predators": 0,
    }
    # c3 has five authors who speak nowhere else.
    assert _totals(report.filtered, "drop_multi_party") == {
        "conversations": 1,
        "messages": 6,
        "authors": 5,
        "predators": 0,
    }
    # c2, c5 and c6 each have an author with one message; c6 is predator a2's only conversation.
    assert _totals(report.filtered, "min_messages_per_author") == {
        "conversations": 3,
        "messages": 7,
        "authors": 5,
        "predators": 1,
    }
    kept = tables.messages[tables.messages["split"] != "test"]
    assert sorted(kept["conversation_id"].unique()) == ["c0000000000000000000000000000001"]
    # The official test split is untouched by default.
    assert tables.counts()["test"]["messages"] == 5


def test_filters_off_by_default_change_nothing() -> None:
    messages = pd.DataFrame(
        {"conversation_id": ["c"], "author": ["a"], "split": ["train"], "line": [1]}
    )
    kept, account = apply_filters(messages, set(), FilterSettings())
    assert kept is messages and account == []


def test_apply_to_test_filters_the_test_split(pan12_copy: Path) -> None:
    settings = FilterSettings(
        drop_single_author=False, min_messages_per_author=2, apply_to_test=True
    )
    tables, report = pan12.load_corpus(
        pan12.find_files(pan12_copy), 0.3, seed=0, show_progress=False, filters=settings
    )
    test_rows = [r for r in report.filtered if r["split"] == "test"]
    # t1: a3 has 2 messages, b4 has 1 -> dropped, with predator a3; t2: one message each.
    assert test_rows[0]["conversations"] == 2 and test_rows[0]["predators"] == 1
    assert tables.counts()["test"]["messages"] == 0
