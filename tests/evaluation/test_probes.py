"""The probe battery (`evaluation.probes`): hand-made tables for each probe's features, and the
bounds on a generated corpus (`test_generated_corpus_keeps_every_probe_within_its_bound`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from grooming_detect.evaluation.probes import (
    TARGETS,
    lookup_pattern,
    metadata_features,
    partner_texts,
    probe_battery,
    style_features,
    template_lookup_scores,
    training_wordings,
)


def _messages(rows: list[tuple[str, int, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["conversation_id", "line", "author", "time", "text"])


def test_features_see_only_what_their_probe_may_see() -> None:
    messages = _messages(
        [
            ("c1", 1, "a", "23:10", "Hello there."),
            ("c1", 2, "b", "23:11", "hiii :)"),
            ("c2", 1, "a", "10:00", "How old are you?"),
            ("c2", 2, "c", "10:01", "why"),
        ]
    )
    meta = metadata_features(messages)
    assert meta.loc["a", "n_conversations"] == 2 and meta.loc["a", "n_partners"] == 2
    assert meta.loc["a", "night_share"] == 0.5 and meta.loc["b", "night_share"] == 1.0
    style = style_features(messages)
    assert style.loc["a", "starts_upper"] == 1.0 and style.loc["b", "starts_upper"] == 0.0
    assert style.loc["b", "emoticon"] == 1.0 and style.loc["b", "elongation"] == 1.0
    assert style.loc["a", "end_question"] == 0.5 and style.loc["a", "end_period"] == 0.5
    # Partner texts never hold the author's own lines.
    partners = partner_texts(messages)
    assert partners["a"] in ("hiii :) why", "why hiii :)")
    assert partners["b"] == "Hello there." and partners["c"] == "How old are you?"


def test_template_lookup_matches_wordings_with_slots_in_normalised_text() -> None:
    pattern = lookup_pattern(["add me on {app}", "how old are you?"])
    assert pattern.search(" lol add me on kik later ")
    assert pattern.search(" so how old are you ")
    assert not pattern.search(" add me ")
    messages = _messages(
        [
            ("c1", 1, "a", "", "ADD me on Snap!!"),
            ("c1", 2, "b", "", "no thanks"),
            ("c1", 3, "a", "", "ok"),
        ]
    )
    scores = template_lookup_scores(messages, ["add me on {app}"])
    assert scores["a"] == 0.5 and scores["b"] == 0.0


def test_battery_refuses_tables_without_positives() -> None:
    messages = _messages([("c1", 1, "a", "", "hi"), ("c2", 1, "b", "", "hey")])
    authors = pd.DataFrame(
        {"author": ["a", "b"], "split": ["train", "test"], "is_predator": [False, False]}
    )
    with pytest.raises(ValueError, match="positives"):
        probe_battery(messages, authors)


@pytest.mark.pipeline
@pytest.mark.slow
def test_generated_corpus_keeps_every_probe_within_its_bound(tmp_path: Path) -> None:
    """The default corpus (60 test positives, so a bound means something): every probe blind to
    what it should not see stays within its bound (`TARGETS`)."""
    from grooming_detect.data import pan12
    from grooming_detect.data.synthetic import GeneratorSettings, generate_corpus

    # The default corpus (seed 42, the card's). Other seeds are not all within: seed 11's style
    # probe reaches 2.1x chance (the closing note of issue 34), so this pins the default, and a
    # change that makes it worse fails here.
    settings = GeneratorSettings(seed=42)
    generate_corpus(tmp_path, settings)
    tables, _ = pan12.load_corpus(
        pan12.find_files(tmp_path), validation_fraction=0.2, seed=0, show_progress=False
    )
    table = probe_battery(tables.messages, tables.authors, training_wordings("test"))
    assert set(table["probe"]) == set(TARGETS)
    assert (table["n_test_positives"] >= 50).all()
    failed = table[~table["within"]]
    assert failed.empty, failed.to_string()
