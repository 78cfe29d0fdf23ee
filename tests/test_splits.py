"""Validation carved by connected components: no author or conversation on both sides."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from grooming_detect.data import pan12
from grooming_detect.data.splits import carve_validation, conversation_components
from grooming_detect.data.synthetic import GeneratorSettings, generate_corpus


def test_components_follow_shared_authors() -> None:
    pairs = pd.DataFrame(
        {"conversation_id": ["c1", "c1", "c2", "c3", "c4"], "author": ["a", "b", "b", "c", "c"]}
    )
    labels = conversation_components(pairs)
    assert labels["c1"] == labels["c2"] != labels["c3"]
    assert labels["c3"] == labels["c4"]


@pytest.fixture(scope="module")
def synthetic_tables(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("splits")
    generate_corpus(
        root,
        GeneratorSettings(
            seed=11,
            n_train_conversations=1200,
            n_test_conversations=300,
            n_train_predators=None,  # predators from predator_share, not the YAML's counts
            n_test_predators=None,
        ),
    )
    tables, _ = pan12.load_corpus(pan12.find_files(root), 0.2, seed=5, show_progress=False)
    return tables


def test_splits_are_disjoint_by_author_and_conversation(synthetic_tables) -> None:
    messages = synthetic_tables.messages
    train = messages[messages["split"] == "train"]
    validation = messages[messages["split"] == "validation"]
    assert not set(train["author"]) & set(validation["author"])
    assert not set(train["conversation_id"]) & set(validation["conversation_id"])
    counts = synthetic_tables.counts()
    assert counts["validation"]["predators"] >= 1 and counts["train"]["predators"] >= 1
    share = counts["validation"]["conversations"] / (
        counts["validation"]["conversations"] + counts["train"]["conversations"]
    )
    assert 0.1 < share < 0.35


def test_same_seed_same_split(synthetic_tables, tmp_path: Path) -> None:
    pairs = synthetic_tables.messages.loc[
        synthetic_tables.messages["split"] != "test", ["conversation_id", "author"]
    ].drop_duplicates()
    predators = set(synthetic_tables.authors.loc[synthetic_tables.authors["is_predator"], "author"])
    first = carve_validation(pairs, predators, 0.2, seed=5)
    assert first == carve_validation(pairs, predators, 0.2, seed=5)
    assert first != carve_validation(pairs, predators, 0.2, seed=6)


def test_one_predator_component_is_an_error() -> None:
    pairs = pd.DataFrame({"conversation_id": ["c1", "c2"], "author": ["p", "n"]})
    with pytest.raises(ValueError, match="one component"):
        carve_validation(pairs, {"p"}, 0.5, seed=0)
