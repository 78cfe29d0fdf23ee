"""The processed splits as a Hugging Face DatasetDict (`grooming_detect.data.hf.load_splits`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

datasets = pytest.importorskip("datasets", reason="the 'datasets' extra is not installed")

from grooming_detect.data.hf import load_splits  # noqa: E402


def _processed(root: Path) -> Path:
    folder = root / "toy" / "0123456789abcdef"
    (folder / "features").mkdir(parents=True)
    messages = pd.DataFrame(
        {
            "conversation_id": ["c1", "c1", "c2", "c3", "c3"],
            "line": [1, 2, 1, 1, 2],
            "author": ["ann", "bob", "cy", "di", "ed"],
            "text": ["hi", "hello", "ok", "see you", "bye"],
            "split": ["train", "train", "test", "validation", "validation"],
        }
    )
    messages.to_parquet(folder / "messages.parquet")
    authors = pd.DataFrame(
        {
            "author": ["ann", "bob", "cy", "di", "ed"],
            "split": ["train", "train", "test", "validation", "validation"],
            "text": ["hi", "hello", "ok", "see you", "bye"],
            "is_predator": [True, False, False, False, True],
        }
    )
    authors.to_parquet(folder / "features" / "author_texts.parquet")
    (root / "toy" / "LATEST").write_text(f"{folder.name}\n")
    return folder


def test_splits_are_the_split_column_in_order(tmp_path: Path) -> None:
    folder = _processed(tmp_path)
    splits = load_splits("toy", table="authors", processed=tmp_path)
    assert isinstance(splits, datasets.DatasetDict)
    assert list(splits) == ["train", "validation", "test"]
    assert splits["train"]["author"] == ["ann", "bob"]
    assert splits["validation"]["is_predator"] == [False, True]
    assert splits["test"].num_rows == 1
    assert folder.name in splits["test"].info.description
    messages = load_splits(table="messages", dataset_dir=folder)
    assert sum(d.num_rows for d in messages.values()) == 5
    assert messages["validation"]["text"] == ["see you", "bye"]


def test_a_missing_table_or_name_is_named(tmp_path: Path) -> None:
    folder = _processed(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"conversation_texts\.parquet: no conversations"):
        load_splits(table="conversations", dataset_dir=folder)
    with pytest.raises(ValueError, match=r"table='lines': expected one of"):
        load_splits(table="lines", dataset_dir=folder)
    with pytest.raises(FileNotFoundError, match=r"no data stage has built dataset 'other'"):
        load_splits("other", processed=tmp_path)
