"""data/filters=vtpan: exactly the VTPAN conversations of each PAN-2012 file, labelled per
conversation, on small fixtures in the official layout whose ids come from the packaged lists."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from omegaconf import OmegaConf

from conftest import ComposeFn
from grooming_detect import pipeline
from grooming_detect.config import ConfigError, config_dir
from grooming_detect.data import pan12, stage, vtpan
from grooming_detect.data.filters import FilterSettings
from grooming_detect.data.pan12 import CorpusFormatError

VTPAN = FilterSettings(vtpan=True)

TRAIN_LIST = sorted(vtpan.conversation_ids("train"))
TEST_LIST = sorted(vtpan.conversation_ids("test"))
# Listed ids spread over the lists (so the missing ones interleave with them), and ids of no list.
TRAIN_KEPT = [TRAIN_LIST[i] for i in (0, 3, 1000, 2500, 4000, 6587)]
TEST_KEPT = [TEST_LIST[i] for i in (1, 7000, 15328)]
TRAIN_EXTRA = ["f" * 31 + "1", "f" * 31 + "2"]
TEST_EXTRA = ["f" * 31 + "3"]

P1, P2, P3, Q1 = ("a" * 31 + str(n) for n in (1, 2, 3, 4))


def _author(n: int) -> str:
    return f"{n:032x}"


# Harmless small talk; positive conversations show only non-explicit behavioural markers.
TRAIN_CONVERSATIONS: dict[str, list[tuple[str, str]]] = {
    TRAIN_KEPT[0]: [
        (P1, "hey how old are you?"),
        (_author(1), "14"),
        (P1, "don't tell your parents"),
    ],
    TRAIN_KEPT[1]: [(P2, "how old are you"), (_author(2), "why?"), (P2, "just asking")],
    TRAIN_KEPT[2]: [(_author(3), "did you see the game"), (_author(4), "yes it was great")],
    TRAIN_KEPT[3]: [(_author(5), "anyone up for chess"), (_author(6), "sure, one round")],
    TRAIN_KEPT[4]: [(_author(7), "my cat knocked over a plant"), (_author(8), "classic cat")],
    TRAIN_KEPT[5]: [
        (_author(9), "what's for dinner"),
        (_author(10), "pasta again"),
        (_author(9), "nice"),
    ],
    # Not VTPAN: dropped, although P3 is a listed predator and P1 speaks in the first one.
    TRAIN_EXTRA[0]: [(P1, "hi"), (P3, "how old are you")],
    TRAIN_EXTRA[1]: [(_author(11), "rain again today"), (_author(12), "bring an umbrella")],
}
TEST_CONVERSATIONS: dict[str, list[tuple[str, str]]] = {
    TEST_KEPT[0]: [(Q1, "how old are you?"), (_author(21), "13"), (Q1, "keep this our secret")],
    TEST_KEPT[1]: [(_author(22), "homework done?"), (_author(23), "almost")],
    TEST_KEPT[2]: [(_author(24), "good morning"), (_author(25), "morning!")],
    TEST_EXTRA[0]: [(Q1, "hello"), (_author(26), "hi")],
}


def _xml(conversations: dict[str, list[tuple[str, str]]]) -> str:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', "<conversations>"]
    for conversation_id, messages in conversations.items():
        parts.append(f'<conversation id="{conversation_id}">')
        for line, (author, text) in enumerate(messages, start=1):
            parts += [
                f'<message line="{line}">',
                f"<author>{author}</author>",
                f"<time>20:{line:02d}</time>",
                f"<text>{escape(escape(text))}</text>",  # HTML- then XML-escaped, as official
                "</message>",
            ]
        parts.append("</conversation>")
    parts.append("</conversations>")
    return "\n".join(parts) + "\n"


def write_corpus(
    root: Path,
    train: dict[str, list[tuple[str, str]]] = TRAIN_CONVERSATIONS,
    test: dict[str, list[tuple[str, str]]] = TEST_CONVERSATIONS,
) -> Path:
    """A PAN-2012 download in the official sub-folder layout (CRLF id lists, as official)."""
    train_dir, test_dir = root / pan12.TRAIN_DIR, root / pan12.TEST_DIR
    train_dir.mkdir(parents=True)
    test_dir.mkdir(parents=True)
    (train_dir / pan12.TRAIN_XML).write_text(_xml(train), encoding="utf-8")
    (train_dir / pan12.TRAIN_PREDATORS).write_bytes(f"{P1}\r\n{P2}\r\n{P3}\r\n".encode())
    (test_dir / pan12.TEST_XML).write_text(_xml(test), encoding="utf-8")
    (test_dir / pan12.TEST_PROBLEM1).write_bytes(f"{Q1}\r\n".encode())
    first = next(iter(test))
    (test_dir / pan12.TEST_PROBLEM2).write_bytes(f"{first}\t1\r\n{first}\t3\r\n".encode())
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "pan12")


def _load(root: Path, filters: FilterSettings = VTPAN):
    return pan12.load_corpus(
        pan12.find_files(root), 0.3, seed=0, show_progress=False, filters=filters
    )


@pytest.mark.pipeline
def test_only_vtpan_conversations_are_kept_in_each_split(corpus: Path) -> None:
    tables, _ = _load(corpus)
    conversations = tables.conversations.set_index("conversation_id")["split"]
    held = set(conversations.index[conversations.isin(["train", "validation"])])
    assert held == set(TRAIN_KEPT)
    assert set(conversations.index[conversations == "test"]) == set(TEST_KEPT)
    assert set(tables.messages["conversation_id"]) == set(TRAIN_KEPT) | set(TEST_KEPT)
    # Validation is carved from VTPAN-train, with a positive conversation on each side.
    positives = tables.conversations[tables.conversations["has_predator"]]
    assert set(positives["split"]) == {"train", "validation", "test"}
    # P3 speaks only in a conversation VTPAN leaves out: no author row for it.
    assert P3 not in set(tables.authors["author"])


@pytest.mark.pipeline
def test_labels_are_per_conversation(corpus: Path) -> None:
    tables, report = _load(corpus)
    assert tables.label_level == "conversation"
    labels = tables.conversations.set_index("conversation_id")["has_predator"].to_dict()
    assert labels == {
        **{cid: cid in (TRAIN_KEPT[0], TRAIN_KEPT[1]) for cid in TRAIN_KEPT},
        **{cid: cid == TEST_KEPT[0] for cid in TEST_KEPT},
    }
    assert tables.authors["is_predator"].isna().all(), "authors carry no labels"
    # Problem-2 line truth is an author task: not read in this mode.
    assert tables.predator_lines is None
    assert report.truth_lines_not_in_corpus == 0


@pytest.mark.pipeline
def test_not_found_ids_are_counted_and_reported(
    corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        _, report = _load(corpus)
    train, test = report.vtpan["train"], report.vtpan["test"]
    assert train["ids"] == 6_588 and train["found"] == 6 and train["not_found"] == 6_582
    assert test["ids"] == 15_329 and test["found"] == 3 and test["not_found"] == 15_326
    assert train["not_found_first_20"] == sorted(set(TRAIN_LIST) - set(TRAIN_KEPT))[:20]
    assert test["not_found_first_20"] == sorted(set(TEST_LIST) - set(TEST_KEPT))[:20]
    assert train["other_conversations_dropped"] == 2 and test["other_conversations_dropped"] == 1
    assert "6582 of the 6588 VTPAN train conversation ids do not occur" in caplog.text
    assert "15326 of the 15329 VTPAN test conversation ids do not occur" in caplog.text


@pytest.mark.pipeline
def test_filter_off_keeps_everything_with_author_labels(corpus: Path) -> None:
    tables, report = _load(corpus, FilterSettings())
    assert tables.label_level == "author" and report.vtpan == {}
    assert tables.conversations["conversation_id"].nunique() == 12
    assert tables.predator_lines is not None


def test_a_corpus_without_vtpan_ids_is_refused_naming_the_file(tmp_path: Path) -> None:
    renamed = {f"e{n:031x}": messages for n, messages in enumerate(TRAIN_CONVERSATIONS.values())}
    root = write_corpus(tmp_path / "train", train=renamed)
    with pytest.raises(
        CorpusFormatError,
        match=rf"{pan12.TRAIN_XML}: none of the 6,588 VTPAN train conversation ids occurs in it; "
        "this is not the PAN-2012 corpus or not its training file",
    ):
        _load(root)
    renamed = {f"e{n:031x}": messages for n, messages in enumerate(TEST_CONVERSATIONS.values())}
    root = write_corpus(tmp_path / "test", test=renamed)
    with pytest.raises(CorpusFormatError, match=rf"{pan12.TEST_XML}: none of the 15,329"):
        _load(root)


@pytest.mark.pipeline
def test_vtpan_with_rule_filters_is_refused(corpus: Path) -> None:
    winners = OmegaConf.load(config_dir() / "data" / "filters" / "winners2012.yaml")
    settings = FilterSettings(**{**OmegaConf.to_container(winners), "vtpan": True})
    with pytest.raises(ValueError, match="vtpan defines the corpus by its conversation ids"):
        _load(corpus, settings)


def test_filter_configs_compose(compose_cfg: ComposeFn, tmp_path: Path) -> None:
    for option, on in (("none", False), ("winners2012", False), ("vtpan", True)):
        cfg = compose_cfg("data=pan12", f"data.root={tmp_path}", f"data/filters={option}")
        settings = FilterSettings(**cfg.data.filters)
        assert settings.vtpan is on
    assert not settings.active and not settings.apply_to_test


def test_vtpan_on_generated_data_is_refused_before_generating(compose_cfg: ComposeFn) -> None:
    cfg = compose_cfg("data/filters=vtpan", "stages=[data]")
    with pytest.raises(ConfigError, match="Use it with data=pan12"):
        stage.source_files(cfg)
    assert not (Path(cfg.paths.raw) / "synthetic").exists()


@pytest.mark.pipeline
def test_data_stage_records_label_level_and_vtpan_account(
    compose_cfg: ComposeFn, corpus: Path
) -> None:
    cfg = compose_cfg(
        "data=pan12",
        f"data.root={corpus}",
        "data/filters=vtpan",
        "stages=[data]",
        "data.validation_fraction=0.3",
    )
    result = pipeline.run(cfg)
    manifest = json.loads(result.stages["data"].outputs["manifest"].read_text())
    assert manifest["label_level"] == "conversation"
    assert manifest["config"]["filters"]["vtpan"] is True
    account = manifest["vtpan_ids"]
    assert account["train"]["found"] == 6 and account["test"]["found"] == 3
    assert account["train"]["not_found"] == 6_582
    # The packaged id lists are inputs: recorded with their checksums, and they key the cache.
    assert set(vtpan.FILES.values()) <= set(manifest["sources"])
    counts = manifest["counts"]
    assert counts["train"]["conversations"] + counts["validation"]["conversations"] == 6
    assert counts["test"]["conversations"] == 3
    assert counts["test"]["predator_conversations"] == 1
    checks = {c["item"]: c for c in manifest["verification"]["checks"]}
    assert checks["VTPAN train conversations"]["found"] == "6"
    assert checks["VTPAN test conversations"]["expected"] == "15,329"
    assert not any(item.startswith("training ") for item in checks), "no whole-corpus counts"
