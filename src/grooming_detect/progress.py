"""Progress for long steps: one style everywhere, on stderr.

In a terminal a step shows a tqdm bar (count, rate, ETA); elsewhere (CI, SLURM and other logs)
it writes a plain log line when it starts, at most every `interval` seconds while it runs (with
the same count, rate and ETA) and when it ends. ``progress=false`` in the config (or
`configure(False)`) turns both off. Bars are left on screen only while they run, and log records
are written above a running bar (``logging_redirect_tqdm``), so Hydra's logging and the bars
do not garble each other.

tqdm draws the bars and formats their durations; the log lines are this module's own because
tqdm and rich write to a stream (carriage-return refreshes), never through `logging`, where
Hydra files each run's records.

Usage::

    with Progress("features", total=6, unit="step") as bar:
        ...
        bar.update()

    for batch in track(batches, "scoring", total=n):
        ...
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm.auto import tqdm

log = logging.getLogger("grooming_detect.progress")
T = TypeVar("T")

_settings = {"enabled": True, "interval": 10.0}


def configure(enabled: bool = True, interval: float | None = None) -> None:
    """Turn progress on or off for this process (the pipeline does this from ``progress``)."""
    _settings["enabled"] = bool(enabled)
    if interval is not None:
        _settings["interval"] = float(interval)
    # MLflow draws its own tqdm bars when it copies artifacts (logging a model validates its
    # input example by loading it back): none in a log file, and none when progress is off.
    if not (_settings["enabled"] and in_terminal()):
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"


def enabled() -> bool:
    return bool(_settings["enabled"])


def in_terminal() -> bool:
    """Whether stderr is a terminal (bars) rather than a file or pipe (log lines)."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def _fallback_size() -> tuple[int, int] | None:
    """None when stderr's terminal reports its size (tqdm then follows it), else (columns,
    lines) from COLUMNS and LINES, or 80 x 24."""
    try:
        reported = os.get_terminal_size(sys.stderr.fileno())
        if reported.columns > 0 and reported.lines > 0:
            return None
    except (OSError, ValueError, AttributeError):
        pass

    def number(name: str, default: int) -> int:
        value = os.environ.get(name, "")
        return int(value) if value.isdigit() and int(value) > 0 else default

    return number("COLUMNS", 80), number("LINES", 24)


class Progress:
    """One step's progress: a bar in a terminal, periodic log lines elsewhere, or nothing."""

    def __init__(
        self, desc: str, total: float | None = None, unit: str = "it", disable: bool = False
    ) -> None:
        self.desc = desc
        self.total = total
        self.unit = unit
        self.n = 0.0
        self._bar: Any = None
        self._redirect: Any = None
        self._mode = "off"
        if enabled() and not disable:
            # Bars only from the main thread: a bar redirects the logging handlers while it is
            # open, which two threads' bars would restore in the wrong order. A worker thread
            # (a TF-IDF block transformed beside another) writes log lines instead.
            main = threading.current_thread() is threading.main_thread()
            self._mode = "bar" if in_terminal() and main else "log"

    def __enter__(self) -> Progress:
        self._started = self._last = time.monotonic()
        if self._mode == "bar":
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
            size = _fallback_size()
            self._bar = tqdm(
                total=self.total,
                desc=self.desc,
                unit=self.unit,
                unit_scale=self.unit == "B",
                file=sys.stderr,
                # Follow resizes when the terminal reports its size; a pseudo-terminal that
                # reports 0 x 0 (some CI runners, a fresh pty) would otherwise draw nothing.
                dynamic_ncols=size is None,
                ncols=size[0] if size else None,
                nrows=size[1] if size else None,
                leave=False,
            )
        elif self._mode == "log":
            total = f" of {self._count(self.total)} {self.unit}" if self.total else ""
            log.info("%s: started%s", self.desc, total)
        return self

    def _count(self, value: float | None) -> str:
        if value is None:
            return "?"
        if self.unit == "B":
            return f"{value / 2**20:,.1f} MiB"
        return f"{value:,.0f}"

    def _line(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = self.n / elapsed
        shown_unit = "MiB" if self.unit == "B" else self.unit
        shown_rate = rate / 2**20 if self.unit == "B" else rate
        text = f"{self.desc}: {self._count(self.n)}"
        if self.total:
            text += f"/{self._count(self.total)} ({100 * self.n / self.total:.0f} %)"
        text += f", {shown_rate:,.1f} {shown_unit}/s, {tqdm.format_interval(elapsed)} elapsed"
        if self.total and rate > 0:
            text += f", ETA {tqdm.format_interval(max(self.total - self.n, 0) / rate)}"
        return text

    def update(self, n: float = 1) -> None:
        self.n += n
        if self._mode == "bar":
            self._bar.update(n)
        elif self._mode == "log":
            now = time.monotonic()
            if now - self._last >= float(_settings["interval"]):
                self._last = now
                log.info("%s", self._line(now))

    def __exit__(self, *exc: object) -> None:
        if self._mode == "bar":
            self._bar.close()
            self._redirect.__exit__(*exc)
        elif self._mode == "log" and exc[0] is None:
            log.info("%s (done)", self._line(time.monotonic()))


def track(
    iterable: Iterable[T],
    desc: str,
    total: float | None = None,
    unit: str = "it",
    disable: bool = False,
) -> Iterator[T]:
    """Iterate `iterable` with progress (one update per item); `disable` for work too small
    to be worth a line (callers pass their own size rule)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    try:
        with Progress(desc, total, unit, disable=disable) as bar:
            for item in iterable:
                yield item
                bar.update()
    finally:
        # A wrapped generator with progress of its own ends first, so bars and their logging
        # redirects close innermost first even when the consumer stops early or raises.
        close = getattr(iterable, "close", None)
        if callable(close):
            close()
