"""The input files of a chat-log dataset, checked with nothing but `pathlib` (the command line
refuses a missing file before it imports the data stage, pandas or scikit-learn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
