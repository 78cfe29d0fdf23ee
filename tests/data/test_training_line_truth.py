"""The optional, unofficial training line truth (Problem 2): written by the generator, read by
the PAN-2012 loader into ``predator_lines`` with each conversation's split, keyed in the cache.

The hand-made PAN fixture holds neutral chat only; the lines written here name its messages."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from conftest import ComposeFn, flatten_layout, pretend_official
from grooming_detect import pipeline
from grooming_detect.data import pan12, verify
from grooming_detect.data.filters import FilterSettings
from grooming_detect.data.pan12 import CorpusFormatError
from grooming_detect.data.synthetic import GeneratorSettings, SplitTruth, generate_corpus
from grooming_detect.io import sha256_file

#: The tiny corpus of ``scale=tiny`` (predators from predator_share).
TINY = GeneratorSettings(
    seed=3,
    n_train_conversations=600,
    n_test_conversations=400,
    predator_share=0.04,
    n_train_predators=None,
    n_test_predators=None,
)
C1, C3 = "c0000000000000000000000000000001", "c0000000000000000000000000000003"
ABSENT = "zz000000000000000000000000000009"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, SplitTruth]]:
    root = tmp_path_factory.mktemp("tiny")
    return root, generate_corpus(root, TINY)


def _training_lines(root: Path, body: str) -> Path:
    path = root / pan12.TRAIN_DIR / pan12.TRAIN_PROBLEM2
    path.write_text(body, encoding="utf-8")
    return path


def _load(root: Path, filters: FilterSettings | None = None) -> tuple[pd.DataFrame, dict]:
    tables, report = pan12.load_corpus(
        pan12.find_files(root), 0.3, seed=0, show_progress=False, filters=filters
    )
    assert tables.predator_lines is not None
    return tables.predator_lines, report.training_line_truth


# --- the generator --------------------------------------------------------------------------


@pytest.mark.pipeline
def test_generator_writes_the_injected_marker_lines_of_training_predators(
    corpus: tuple[Path, dict[str, SplitTruth]],
) -> None:
    root, truths = corpus
    files = pan12.find_files(root)
    assert files.train_problem2 == root / pan12.TRAIN_DIR / pan12.TRAIN_PROBLEM2
    assert pan12.TRAIN_PROBLEM2 in files.present()
    train = truths["train"]
    assert train.marker_lines
    assert pan12.read_line_truth(files.train_problem2) == train.marker_lines
    # One rule for both corpora: the test truth file is written the same way.
    assert files.test_problem2 is not None
    assert pan12.read_line_truth(files.test_problem2) == truths["test"].marker_lines
    # Every line is a message of a predator the training truth lists.
    columns = pan12.parse_messages(files.train_xml, show_progress=False)
    author_of = dict(
        zip(zip(columns.conversation_id, columns.line, strict=True), columns.author, strict=True)
    )
    authors = {author_of[pair] for pair in train.marker_lines}
    assert authors <= set(train.predators) & set(train.labelled_predators)


@pytest.mark.pipeline
def test_data_stage_puts_train_and_validation_lines_with_their_split(
    compose_cfg: ComposeFn,
) -> None:
    cfg = compose_cfg("scale=tiny", "stages=[data]", "progress=false")
    result = pipeline.run(cfg)
    manifest_path = result.stages["data"].outputs["manifest"]
    dataset_dir = result.stages["data"].outputs["dataset_dir"]
    manifest = json.loads(manifest_path.read_text())
    lines = pd.read_parquet(dataset_dir / "predator_lines.parquet")
    assert list(lines.columns) == ["conversation_id", "line", "split"]
    assert set(lines["split"]) == {"train", "validation", "test"}
    conversations = pd.read_parquet(dataset_dir / "conversations.parquet")
    split_of = conversations.set_index("conversation_id")["split"]
    assert (lines["conversation_id"].map(split_of) == lines["split"]).all()
    # Every row is a message of the split's predators, and its file is a keyed source.
    messages = pd.read_parquet(dataset_dir / "messages.parquet")
    authors = pd.read_parquet(dataset_dir / "authors.parquet")
    joined = lines.merge(messages, on=["conversation_id", "line", "split"], how="left")
    predators = set(authors.loc[authors["is_predator"], "author"])
    assert joined["author"].isin(predators).all()
    source = manifest["sources"][pan12.TRAIN_PROBLEM2]
    assert source["sha256"] == sha256_file(Path(source["path"]), normalise_newlines=True)
    account = manifest["training_line_truth"]
    assert account["official"] is False and account["lines_not_in_corpus"] == 0
    assert account["rows_by_split"] == {
        split: int((lines["split"] == split).sum()) for split in ("train", "validation")
    }


# --- the loader on the hand-made PAN fixture --------------------------------------------------


def test_a_corpus_without_the_file_loads_as_before(pan12_copy: Path) -> None:
    assert pan12.find_files(pan12_copy).train_problem2 is None
    lines, account = _load(pan12_copy)
    assert account == {}
    assert set(lines["split"]) == {"test"} and len(lines) == 2


@pytest.mark.parametrize("flat", [False, True], ids=["official-subfolders", "flat"])
def test_rows_take_their_conversations_split(pan12_copy: Path, flat: bool) -> None:
    _training_lines(pan12_copy, f"{C1}\t1\r\n{C1}\t3\r\n{C3}\t2\r\n")
    root = flatten_layout(pan12_copy) if flat else pan12_copy
    assert pan12.find_files(root).train_problem2 is not None
    tables, report = pan12.load_corpus(pan12.find_files(root), 0.3, seed=0, show_progress=False)
    lines = tables.predator_lines
    assert lines is not None
    training = lines[lines["split"] != "test"]
    split_of = tables.conversations.set_index("conversation_id")["split"]
    assert sorted(training[["conversation_id", "line"]].itertuples(index=False, name=None)) == [
        (C1, 1),
        (C1, 3),
        (C3, 2),
    ]
    assert (training["conversation_id"].map(split_of) == training["split"]).all()
    assert set(training["split"]) <= {"train", "validation"}
    assert report.training_line_truth["rows"] == 3
    assert report.truth_lines_not_in_corpus == 0  # the test truth is read as before
    assert len(lines[lines["split"] == "test"]) == 2


def test_a_malformed_line_names_the_file_and_line(pan12_copy: Path) -> None:
    _training_lines(pan12_copy, f"{C1}\t1\n{C1}\tthree\n")
    with pytest.raises(CorpusFormatError, match=rf"{pan12.TRAIN_PROBLEM2}:2: "):
        _load(pan12_copy)


def test_unknown_conversations_and_lines_are_kept_and_counted(
    pan12_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As with the test truth: rows not in the corpus stay in predator_lines and are counted;
    here they are also listed and warned about, with no split for an absent conversation."""
    _training_lines(pan12_copy, f"{C1}\t1\n{C1}\t99\n{ABSENT}\t1\n")
    with caplog.at_level(logging.WARNING):
        lines, account = _load(pan12_copy)
    assert account["lines_not_in_corpus"] == 2
    assert account["conversations_not_in_corpus"] == 1
    assert account["conversations_not_in_corpus_first_20"] == [ABSENT]
    assert account["rows"] == 3 and sum(account["rows_by_split"].values()) == 2
    absent = lines[lines["conversation_id"] == ABSENT]
    assert len(absent) == 1 and absent["split"].isna().all()
    assert (C1, 99) in set(lines[["conversation_id", "line"]].itertuples(index=False, name=None))
    assert f"{pan12.TRAIN_PROBLEM2}: 2 of its 3 lines are not in the training files" in caplog.text


def test_rows_of_filtered_conversations_are_kept_and_counted(pan12_copy: Path) -> None:
    _training_lines(pan12_copy, f"{C1}\t1\n{C3}\t1\n")  # C3 has five authors
    lines, account = _load(pan12_copy, FilterSettings(drop_multi_party=True))
    assert account["rows_in_filtered_conversations"] == 1
    assert C3 in set(lines["conversation_id"])


@pytest.mark.pipeline
def test_the_file_keys_the_data_cache(compose_cfg: ComposeFn, pan12_copy: Path) -> None:
    cfg = compose_cfg(
        "data=pan12", f"data.root={pan12_copy}", "stages=[data]", "data.validation_fraction=0.4"
    )
    first = json.loads(pipeline.run(cfg).stages["data"].outputs["manifest"].read_text())
    assert pan12.TRAIN_PROBLEM2 not in first["sources"]
    assert first["training_line_truth"] is None
    _training_lines(pan12_copy, f"{C1}\t1\n")
    second = json.loads(pipeline.run(cfg).stages["data"].outputs["manifest"].read_text())
    assert pan12.TRAIN_PROBLEM2 in second["sources"]
    assert second["training_line_truth"]["rows"] == 1
    _training_lines(pan12_copy, f"{C1}\t1\n{C1}\t3\n")
    third = json.loads(pipeline.run(cfg).stages["data"].outputs["manifest"].read_text())
    assert len({first["fingerprint"], second["fingerprint"], third["fingerprint"]}) == 3


def test_verification_ignores_the_unofficial_file(
    pan12_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real download plus a team's training line truth still verifies as official."""
    _training_lines(pan12_copy, f"{C1}\t1\n")
    assert pan12.TRAIN_PROBLEM2 not in verify.PUBLISHED_SHA256
    pretend_official(monkeypatch, pan12_copy)
    assert verify.main([str(pan12_copy)]) == 0
    assert capsys.readouterr().out.strip().endswith(": official")
