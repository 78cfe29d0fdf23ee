"""Held-out splits carved by connected components: no author or conversation on both sides,
target shares reached by bin-packing or refused (`SplitError`), the author override disclosed,
and the PAN train/test author overlap counted. Fixture text is neutral small talk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grooming_detect.data import pan12
from grooming_detect.data.splits import (
    SplitError,
    SplitSettings,
    authors_on_both_sides,
    carve_validation,
    conversation_components,
    holdout_conversations,
    positive_conversations_of,
    split_report,
    unit_sizes,
)
from grooming_detect.data.stage import split_metrics
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


@pytest.mark.pipeline
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


@pytest.mark.pipeline
def test_same_seed_same_split(synthetic_tables, tmp_path: Path) -> None:
    pairs = synthetic_tables.messages.loc[
        synthetic_tables.messages["split"] != "test", ["conversation_id", "author"]
    ].drop_duplicates()
    predators = set(synthetic_tables.authors.loc[synthetic_tables.authors["is_predator"], "author"])
    first, _ = carve_validation(pairs, predators, 0.2, seed=5)
    assert first == carve_validation(pairs, predators, 0.2, seed=5)[0]
    assert first != carve_validation(pairs, predators, 0.2, seed=6)[0]


def test_one_predator_component_is_an_error() -> None:
    pairs = pd.DataFrame({"conversation_id": ["c1", "c2"], "author": ["p", "n"]})
    with pytest.raises(ValueError, match="one component"):
        carve_validation(pairs, {"p"}, 0.5, seed=0)


def random_graph(seed: int, n_groups: int = 150) -> tuple[pd.DataFrame, set[str]]:
    """Many small communities (1-12 conversations among 2-6 authors, none shared between
    communities), about a fifth with a predator: components of varied size."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str]] = []
    predators: set[str] = set()
    for group in range(n_groups):
        authors = [f"g{group}a{k}" for k in range(int(rng.integers(2, 7)))]
        if rng.random() < 0.2:
            predators.add(authors[0])
        for number in range(int(rng.integers(1, 13))):
            speakers = rng.choice(authors, size=2, replace=False)
            rows += [(f"g{group}c{number}", str(author)) for author in speakers]
    pairs = pd.DataFrame(rows, columns=["conversation_id", "author"]).drop_duplicates()
    return pairs, predators


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_packing_reaches_both_target_shares_on_a_random_graph(seed: int) -> None:
    pairs, predators = random_graph(seed)
    positives = positive_conversations_of(pairs, predators)
    held, report = holdout_conversations(pairs, positives, 0.2, seed, positive_authors=predators)
    assert report.share_conversations == pytest.approx(len(held) / pairs.conversation_id.nunique())
    assert abs(report.share_conversations - 0.2) <= 0.02
    assert report.share_positives is not None and abs(report.share_positives - 0.2) <= 0.03
    assert 0 < report.held_positives < report.positives  # positives on both sides


def test_seeds_change_the_carving_and_a_seed_repeats_it() -> None:
    pairs, predators = random_graph(3)
    positives = positive_conversations_of(pairs, predators)
    carvings = [holdout_conversations(pairs, positives, 0.2, seed)[0] for seed in range(4)]
    assert len({frozenset(held) for held in carvings}) > 1
    assert holdout_conversations(pairs, positives, 0.2, 2)[0] == carvings[2]


def test_no_author_on_both_sides_without_the_override() -> None:
    pairs, predators = random_graph(4)
    held, report = holdout_conversations(
        pairs, positive_conversations_of(pairs, predators), 0.3, 0, positive_authors=predators
    )
    inside = set(pairs.loc[pairs["conversation_id"].isin(held), "author"])
    outside = set(pairs.loc[~pairs["conversation_id"].isin(held), "author"])
    assert not inside & outside
    assert report.authors_on_both_sides == 0 and report.method == "connected components"


def dominant_corpus() -> tuple[pd.DataFrame, set[str]]:
    """1,000 conversations, 840 of them one component (ten hub authors in a ring, each
    conversation one hub pair and a partner) holding 19 of the 20 predators (95 of the 100
    positive conversations); the rest are pairs of strangers and one predator outside."""
    rows: list[tuple[str, str]] = []
    for number in range(840):
        partner = f"p{number // 5}" if number < 95 else f"u{number}"
        conversation = f"big{number}"
        rows += [(conversation, f"hub{number % 10}"), (conversation, f"hub{(number + 1) % 10}")]
        rows.append((conversation, partner))
    rows += [(f"lone{k}", author) for k in range(5) for author in ("p19", f"v{k}")]
    rows += [(f"pair{k}", author) for k in range(155) for author in (f"x{k}", f"y{k}")]
    predators = {f"p{k}" for k in range(20)}
    return pd.DataFrame(rows, columns=["conversation_id", "author"]), predators


def test_a_dominant_component_is_refused_naming_its_size_and_the_override() -> None:
    pairs, predators = dominant_corpus()
    with pytest.raises(SplitError) as raised:
        carve_validation(pairs, predators, 0.2, seed=0)
    message = str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert message.startswith("validation split:")
    assert "5.0% of the 100 positive conversations" in message and "expected 20.0%" in message
    assert "840 conversations (84% of them), 774 authors and 95 positive conversations" in message
    assert "data.split_override=author" in message and "data.split_tolerance=0.1" in message


def test_the_author_override_splits_it_and_discloses_the_leakage() -> None:
    pairs, predators = dominant_corpus()
    assignment, report = carve_validation(
        pairs, predators, 0.2, seed=0, settings=SplitSettings(override="author")
    )
    assert report.share_conversations == pytest.approx(0.2, abs=0.01)
    assert report.share_positives == pytest.approx(0.2)
    assert report.override == "author" and report.components_broken == 1
    crossing = authors_on_both_sides(pairs, {c for c, s in assignment.items() if s != "train"})
    assert report.authors_on_both_sides == len(crossing) > 0
    assert crossing <= {f"hub{k}" for k in range(10)}  # predators and partners stay whole
    assert report.positive_authors_on_both_sides == 0
    assert report.to_dict()["largest_component"]["conversations"] == 840


def test_auto_falls_back_to_authors_and_records_why(caplog: pytest.LogCaptureFixture) -> None:
    """``data.split_override: auto``: the components' SplitError becomes the author split, said
    in one line and recorded in the report's `fallback`; an explicit null keeps the error."""
    pairs, predators = dominant_corpus()
    with caplog.at_level("WARNING", logger="grooming_detect.data.splits"):
        _, report = carve_validation(
            pairs, predators, 0.2, seed=0, settings=SplitSettings(override="auto")
        )
    assert report.override == "author" and report.components_broken == 1
    assert report.fallback is not None
    assert report.fallback.startswith("components -> author: validation split: the held-out")
    chosen = [r.message for r in caplog.records if "Design chosen for this data" in r.message]
    assert len(chosen) == 1 and "data.split_override=null" in chosen[0]
    assert report.to_dict()["fallback"] == report.fallback
    with pytest.raises(SplitError, match=r"data\.split_override=author"):
        carve_validation(pairs, predators, 0.2, seed=0, settings=SplitSettings(override=None))


def test_auto_keeps_components_when_they_split() -> None:
    rows = [(f"c{k}", author) for k in range(40) for author in (f"a{k}", f"b{k}")]
    pairs = pd.DataFrame(rows, columns=["conversation_id", "author"])
    predators = {f"a{k}" for k in range(0, 40, 4)}
    _, report = carve_validation(
        pairs, predators, 0.2, seed=0, settings=SplitSettings(override="auto")
    )
    assert report.fallback is None and report.override is None
    assert report.method == "connected components"


def _chatlog_of(pairs: pd.DataFrame, predators: set[str], path: Path) -> Path:
    """`pairs` as an author-labelled chat-log CSV: one neutral message per author."""
    pairs.assign(
        text="hi, how was your day?", is_predator=pairs["author"].isin(predators).astype(int)
    ).to_csv(path, index=False)
    return path


def test_the_override_keeps_conversations_whole_in_a_chat_log(compose_cfg, tmp_path: Path) -> None:
    from grooming_detect.data.stage import load_tables

    path = _chatlog_of(*dominant_corpus(), tmp_path / "chat.csv")
    with pytest.raises(SplitError, match=r"test split: .*data\.split_override=author"):
        load_tables(compose_cfg("data=chatlog", f"data.path={path}", "data.split_override=null"))
    cfg = compose_cfg("data=chatlog", f"data.path={path}", "data.split_override=author")
    tables, details = load_tables(cfg)
    assert (tables.messages.groupby("conversation_id")["split"].nunique() == 1).all()
    assert set(details["split"]) == {"test", "validation"}
    assert all(report["override"] == "author" for report in details["split"].values())
    assert details["authors_in_several_splits"] > 0
    metrics = split_metrics(details)
    assert (
        metrics["data/test_share_conversations"] == details["split"]["test"]["share_conversations"]
    )
    assert metrics["data/validation_authors_on_both_sides"] > 0


def test_achieved_shares_by_hand() -> None:
    pairs = pd.DataFrame(
        [
            ("a1", "p"), ("a1", "x"), ("a2", "p"), ("a2", "y"), ("a3", "x"), ("a3", "z"),
            ("b1", "q"), ("b1", "w"),
            ("n1", "r"), ("n1", "s"), ("n2", "s"), ("n2", "t"),
            ("m1", "u"), ("m1", "v"),
            ("k1", "i"), ("k1", "j"),
        ],
        columns=["conversation_id", "author"],
    )  # fmt: skip
    positives = {"a1", "a2", "b1"}
    components = conversation_components(pairs)
    report = split_report(
        pairs,
        {"a1", "n1", "n2"},
        positives,
        split="validation",
        fraction=0.25,
        settings=SplitSettings(),
        units=5,
        component_sizes=unit_sizes(pairs, components, positives),
        positive_authors={"p", "q"},
    )
    assert report.share_conversations == 3 / 8 and report.share_positives == 1 / 3
    assert report.authors_on_both_sides == 2  # p and x speak in a1 and in a2 / a3
    assert report.positive_authors_on_both_sides == 1
    assert report.largest_component == {"conversations": 3, "positives": 2, "authors": 4}
    # Packing: {a1,a2,a3} (2 positives) stays, b1 is held out, then one of m1 and k1.
    held, packed = holdout_conversations(pairs, positives, 0.25, seed=0)
    assert "b1" in held and len(held) == 2 and held - {"b1"} <= {"m1", "k1"}
    assert (packed.held_conversations, packed.held_positives) == (2, 1)
    assert packed.share_conversations == 0.25 and packed.share_positives == 1 / 3


def _write_pan_xml(path: Path, conversations: dict[str, list[str]]) -> None:
    """A PAN-2012 XML file: each conversation's authors say one neutral line each."""
    body = ['<?xml version="1.0" encoding="UTF-8"?>', "<conversations>"]
    for conversation, authors in conversations.items():
        body.append(f'<conversation id="{conversation}">')
        for line, author in enumerate(authors, start=1):
            body.append(
                f'<message line="{line}"><author>{author}</author><time>18:0{line}</time>'
                "<text>did you finish the homework?</text></message>"
            )
        body.append("</conversation>")
    path.write_text("\n".join([*body, "</conversations>"]) + "\n", encoding="utf-8")


def test_pan_train_test_author_overlap_by_hand(tmp_path: Path) -> None:
    _write_pan_xml(
        tmp_path / pan12.TRAIN_XML,
        {
            "t1": ["a", "b"],
            "t2": ["p1", "c"],
            "t3": ["p2", "d"],
            "t4": ["e", "f"],
            "t5": ["g", "h"],
        },
    )
    (tmp_path / pan12.TRAIN_PREDATORS).write_text("p1\np2\n")
    _write_pan_xml(
        tmp_path / pan12.TEST_XML,
        {"s1": ["a", "x"], "s2": ["p1", "y"], "s3": ["z", "w"], "s4": ["p3", "e"]},
    )
    (tmp_path / pan12.TEST_PROBLEM1).write_text("p1\np3\n")
    _, report = pan12.load_corpus(pan12.find_files(tmp_path), 0.2, seed=0, show_progress=False)
    # a, p1 and e speak in both files; p1 is a predator; 8 authors speak in the test file.
    assert report.author_overlap == {"authors": 3, "predators": 1, "share_of_test_authors": 3 / 8}
    assert report.split["validation"]["held_conversations"] == 1
    metrics = split_metrics({"split": report.split, "author_overlap": report.author_overlap})
    assert metrics["data/train_test_author_overlap"] == 3
    assert metrics["data/train_test_predator_overlap"] == 1
    assert metrics["data/train_test_author_overlap_share"] == 3 / 8
    assert metrics["data/validation_share_conversations"] == 1 / 5


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "data.split_override=components",
            r"data.split_override: 'components'; expected one of \['null'",
        ),
        ("data.split_tolerance=2", r"data.split_tolerance: 2; expected a number in \[0, 1\]"),
    ],
)
def test_split_settings_are_checked_at_start(compose_cfg, override: str, expected: str) -> None:
    from grooming_detect.config import ConfigError
    from grooming_detect.validation import validate_config

    with pytest.raises(ConfigError, match=expected):
        validate_config(compose_cfg(override))


@pytest.mark.parametrize(
    "data", [("data=synthetic",), ("data=pan12", "data.root=/x"), ("data=chatlog", "data.path=/x")]
)
def test_split_keys_are_in_every_data_config_and_key_the_cache(compose_cfg, data) -> None:
    from grooming_detect.data.stage import fingerprint, split_settings
    from grooming_detect.stage import data_settings

    cfg = compose_cfg(*data)
    # Chat logs default to `auto` (components, falling back to author groups, recorded).
    default = "auto" if data[0] == "data=chatlog" else None
    assert split_settings(cfg) == SplitSettings(tolerance=0.1, override=default)
    overridden = compose_cfg(*data, "data.split_override=author")
    assert fingerprint({}, data_settings(cfg)) != fingerprint({}, data_settings(overridden))
