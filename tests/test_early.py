"""eSPD measures against hand-computed values, and the packaged VTPAN id lists."""

from __future__ import annotations

import math

import pytest

from grooming_detect.data import vtpan
from grooming_detect.evaluation.early import (
    early_measures,
    first_warning,
    latency_penalty,
    speed,
)


def test_latency_penalty_and_speed_hand_computed() -> None:
    assert latency_penalty(1) == 0.0
    assert latency_penalty(90) == pytest.approx(0.5)
    p = math.log(3) / 89
    assert latency_penalty(10) == pytest.approx(-1 + 2 / (1 + math.exp(-p * 9)))
    # Median penalty over true positives: latencies 1, 90 and 179 -> median penalty(90) = 0.5.
    assert speed([1, 90, 179]) == pytest.approx(0.5)
    assert latency_penalty(179) == pytest.approx(0.8)  # -1 + 2/(1 + 1/9)
    with pytest.raises(ValueError, match="k >= 1"):
        latency_penalty(0)


def test_warning_needs_patience_consecutive_steps() -> None:
    steps, scores = [1, 2, 3, 4, 5], [0.9, 0.1, 0.8, 0.7, 0.95]
    assert first_warning(steps, scores, 0.5, patience=1) == 1
    assert first_warning(steps, scores, 0.5, patience=2) == 4
    assert first_warning(steps, scores, 0.5, patience=3) == 5
    assert first_warning(steps, scores, 0.99, patience=1) is None
    with pytest.raises(ValueError, match="patience"):
        first_warning(steps, scores, 0.5, patience=0)


def test_early_measures_hand_computed() -> None:
    # Positives warned at 1 and 90, one positive missed; one of three negatives warned.
    latencies = [1, 90, None, 5, None, None]
    labels = [True, True, True, False, False, False]
    m = early_measures(latencies, labels)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["speed"] == pytest.approx(1 - (0 + 0.5) / 2)
    assert m["latency_weighted_f1"] == pytest.approx(2 / 3 * 0.75)
    assert m["latency_median"] == pytest.approx(45.5)
    assert m["false_warnings_per_1k_negatives"] == pytest.approx(1000 / 3)


def test_packaged_vtpan_lists_have_the_published_sizes() -> None:
    assert len(vtpan.conversation_ids("train")) == 6_588
    assert len(vtpan.conversation_ids("test")) == 15_329
    assert not vtpan.conversation_ids("train") & vtpan.conversation_ids("test")
    assert (vtpan.FOLDER / "LICENSE").read_text().startswith("MIT License")
