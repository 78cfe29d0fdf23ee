"""The input files of a chat-log dataset, checked with nothing but `pathlib` (the command line
refuses a missing file before it imports the data stage, pandas or scikit-learn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


def chatlog_files(data: Any) -> dict[str, Path]:
    """The chat log and its optional id list of the ``data`` config group (``data.path``,
    ``data.predator_ids``), by name; a file that is not there is named."""
    files = {"chatlog": Path(str(data.path)).expanduser()}
    if data.get("predator_ids"):
        files["predator_ids"] = Path(str(data.predator_ids)).expanduser()
    for path in files.values():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: chat-log input not found")
    return files


def refuse_absent_chatlog(data: Any) -> None:
    """The command line's early check: a chat log or id list named in the settings that does
    not exist at all. Whatever else is wrong (no ``data.path``, a folder) is left to the
    settings' checks, which name the setting and what it expects."""
    for key in ("path", "predator_ids"):
        if key not in data or OmegaConf.is_missing(data, key) or not data.get(key):
            continue
        path = Path(str(data.get(key))).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: chat-log input not found (data.{key}: expected a CSV or JSONL file)"
            )
