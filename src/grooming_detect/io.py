"""Atomic file output: every file is written to a temporary sibling, then renamed into place."""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # pandas is imported by the writers that take a frame: the commands' settings checks
    # (``--help``, a typo) import this module and answer without it.
    import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, else delete it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike[str], text: str, newline: str | None = None) -> Path:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline=newline) as handle:
        handle.write(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write `payload` as indented, key-sorted JSON atomically."""
    return write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(path: str | os.PathLike[str], frame: pd.DataFrame) -> Path:
    """Write `frame` to Parquet atomically, without the pandas index."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


#: Leading characters that make a spreadsheet read a cell as a formula (OWASP, "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def spreadsheet_safe(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula, prefixed with ``'`` (OWASP's
    advice); anything else unchanged. A plain signed number (``-1``, a phone number such as
    ``+447700900123``) is read as a number, never run, so it is kept as it is and still joins
    back to the input's ids."""
    if not isinstance(value, str) or not value.startswith(FORMULA_PREFIXES):
        return value
    if value[0] in "+-" and _is_number(value):
        return value
    return "'" + value


def write_csv(
    path: str | os.PathLike[str], frame: pd.DataFrame, neutralise_formulas: bool = True
) -> Path:
    """The project's one CSV writer, atomic, without the pandas index.

    Every text cell is quoted (so a delimiter, quote, CR or LF inside an id or a text can never
    start another field or row when the file is read back by pandas or `csv`), and a text cell
    starting with ``= + - @`` TAB or CR is prefixed with ``'`` so that spreadsheet tools show it
    instead of running it. Numbers and booleans are written bare. A chat log written for the
    project's own reader to read back (`neutralise_formulas` false) keeps its text as it is."""
    import pandas as pd

    safe = frame.copy()
    if neutralise_formulas:
        for column in safe.columns:
            if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
                safe[column] = safe[column].map(spreadsheet_safe).astype(object)
    with atomic_path(path) as tmp:
        safe.to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    return Path(path)


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Let `writer` fill a temporary file, then move it to `path`."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, naming the file when it is missing or malformed."""
    target = Path(path)
    try:
        return json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{target}: expected a JSON file written by an earlier stage"
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{target}: line {error.lineno} column {error.colno}: invalid JSON ({error.msg})"
        ) from None


def json_digest(payload: Any) -> str:
    """SHA-256 of `payload` as key-sorted JSON (cache fingerprints)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def sha256_file(path: str | os.PathLike[str], normalise_newlines: bool = False) -> str:
    """SHA-256 of a file, streamed; with `normalise_newlines`, of its bytes after CRLF -> LF."""
    digest = hashlib.sha256()
    pending_cr = False
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            if normalise_newlines:
                if pending_cr:
                    chunk = b"\r" + chunk
                pending_cr = chunk.endswith(b"\r")
                if pending_cr:
                    chunk = chunk[:-1]
                chunk = chunk.replace(b"\r\n", b"\n")
            digest.update(chunk)
    if pending_cr:
        digest.update(b"\r")
    return digest.hexdigest()


def file_digests(directory: Path, names: Iterable[str]) -> dict[str, str]:
    """SHA-256 of each file `names` in `directory` (what a manifest records of its outputs)."""
    return {name: sha256_file(Path(directory) / name) for name in names}


def outputs_intact(directory: Path, digests: dict[str, str] | None) -> bool:
    """True when every file a manifest recorded is present with the recorded SHA-256: a run
    killed between two writes leaves a mismatch, never a silent mix of old and new files."""
    if not digests:
        return False
    for name, digest in digests.items():
        path = Path(directory) / name
        if not path.is_file() or sha256_file(path) != digest:
            return False
    return True


def unwritable_reason(folder: str | os.PathLike[str]) -> str | None:
    """Why files cannot be written into `folder` (None when they can): checked before long work
    starts, on the folder or, when it does not exist yet, the nearest existing parent."""
    existing = Path(folder)
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


@contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold `folder`'s ``.lock`` exclusively (fcntl; released when the block ends or the
    process dies): one process at a time builds or checks what `folder` caches; another one
    waits, saying so, then finds it built."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logging.getLogger(__name__).info(
                "Waiting for another run that is building %s in %s", what, folder
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
