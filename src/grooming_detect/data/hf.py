"""The processed splits as a Hugging Face ``datasets.DatasetDict``, for researchers' own code.

One line, after any run's data and features stages (``make run``)::

    from grooming_detect.data.hf import load_splits
    splits = load_splits("synthetic", table="authors")   # DatasetDict: train, validation, test

Tables (`TABLES`): ``messages`` (one row per message: conversation_id, line, author, time,
text, split), ``authors`` (one row per author: its messages joined by the features'
``message_separator`` in ``text``, ``is_predator``, the behavioural features ``f_*`` and cue
counts ``cue_*``), ``conversations`` (one row per conversation, the same for conversations).
Each split is an Arrow-backed, memory-mapped ``datasets.Dataset`` read from the Parquet tables
the data and features stages wrote under ``data/processed/<name>/<settings key>/``; its
``info.description`` names that folder, whose name is the fingerprint of the settings that
built it (the same key the pipeline caches by). The Arrow cache lives beside the tables
(``<settings key>/hf-cache``), so ``datasets.map`` results on these splits are cached per
dataset version, never across versions.

`datasets` is an optional dependency (the ``datasets`` extra): the package imports it only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grooming_detect.stage import latest_dataset_dir

#: Table name -> its Parquet file, relative to the dataset's settings folder.
TABLES = {
    "messages": "messages.parquet",
    "authors": "features/author_texts.parquet",
    "conversations": "features/conversation_texts.parquet",
}
#: The order splits are listed in (others, e.g. ``score``, follow by name).
SPLIT_ORDER = ("train", "validation", "test")


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as error:
        from grooming_detect.errors import MissingExtraError, install_hint

        raise MissingExtraError(
            f"load_splits needs Hugging Face datasets ({error}), from the optional 'datasets' "
            f"extra: {install_hint('datasets')}"
        ) from error
    return datasets


def load_splits(
    name: str = "synthetic",
    table: str = "authors",
    dataset_dir: str | Path | None = None,
    processed: str | Path | None = None,
) -> Any:
    """The `table` of dataset `name` (the one the data stage built last under `processed`,
    default ``<project root>/data/processed``; or the settings folder `dataset_dir`) as a
    ``datasets.DatasetDict`` with one ``Dataset`` per value of its ``split`` column."""
    if table not in TABLES:
        raise ValueError(f"table={table!r}: expected one of {sorted(TABLES)}")
    if dataset_dir is None:
        if processed is None:
            from grooming_detect.config import project_root

            processed = project_root() / "data" / "processed"
        folder = latest_dataset_dir(processed, name)
    else:
        folder = Path(dataset_dir)
    path = folder / TABLES[table]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no {table} table here; expected the output of the data stage "
            f"(messages) or the features stage (authors, conversations) for {folder}"
        )
    datasets = _datasets()
    whole = datasets.Dataset.from_parquet(str(path), cache_dir=str(folder / "hf-cache"))
    if "split" not in whole.column_names:
        raise ValueError(f"{path}: no 'split' column; expected the processed tables' schema")
    rows: dict[str, list[int]] = {}
    for i, value in enumerate(whole["split"]):
        rows.setdefault(value, []).append(i)
    if None in rows:
        raise ValueError(f"{path}: rows without a split; expected every row in one split")
    names = [s for s in SPLIT_ORDER if s in rows] + sorted(set(rows) - set(SPLIT_ORDER))
    result = datasets.DatasetDict({split: whole.select(rows[split]) for split in names})
    label = name if dataset_dir is None else folder.parent.name
    for dataset in result.values():
        dataset.info.description = f"grooming-detect {label}: {table} of {folder}"
    return result
