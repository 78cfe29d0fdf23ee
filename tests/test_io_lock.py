"""`grooming_detect.io.folder_lock`: one holder at a time; a second waits, then proceeds (the
data and features stages build their caches under it, so two jobs of a sweep never rewrite
what the other is reading)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from grooming_detect.io import folder_lock


def test_a_second_holder_waits_until_the_first_releases(tmp_path: Path) -> None:
    acquired = threading.Event()

    def second() -> None:
        with folder_lock(tmp_path / "views", "the feature views"):
            acquired.set()

    with folder_lock(tmp_path / "views", "the feature views"):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert not acquired.is_set(), "the second holder entered while the first held the lock"
    thread.join(timeout=10)
    assert acquired.is_set()
    assert (tmp_path / "views" / ".lock").is_file()
