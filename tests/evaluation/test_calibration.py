"""Calibration measures and calibrators against hand-computed cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from grooming_detect.evaluation.calibration import (
    MIN_SLOPE,
    ScoreCalibrator,
    calibration_scores,
    expected_calibration_error,
)


def test_ece_hand_computed() -> None:
    # 15 equal-width bins. Scores 0.1, 0.1 fall in bin 1 (mean .1, positive rate .5: gap .4);
    # 0.95 and 1.0 fall in bin 14 (mean .975, positive rate 1: gap .025).
    y = np.array([0, 1, 1, 1])
    scores = np.array([0.1, 0.1, 0.95, 1.0])
    # ECE = 2/4 * .4 + 2/4 * .025 = 0.2125
    assert expected_calibration_error(y, scores, n_bins=15) == pytest.approx(0.2125)


def test_perfect_calibration_has_zero_ece_and_known_brier() -> None:
    y = np.array([0, 0, 1, 1])
    scores = np.array([0.0, 0.0, 1.0, 1.0])
    measures = calibration_scores(y, scores)
    assert measures["ece"] == 0.0 and measures["brier"] == 0.0
    # Brier of constant 0.5 is 0.25; log-loss is ln 2.
    half = calibration_scores(y, np.full(4, 0.5))
    assert half["brier"] == pytest.approx(0.25)
    assert half["log_loss"] == pytest.approx(np.log(2))


@pytest.mark.parametrize("method", ["none", "sigmoid", "temperature", "isotonic"])
def test_calibrators_round_trip_through_json_and_keep_ranking(method: str) -> None:
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.1
    # Over-confident scores: logits three times too large.
    logits = np.where(y, 1.0, -1.5) + rng.normal(0, 1.2, size=y.size)
    scores = 1 / (1 + np.exp(-3 * logits))
    calibrator = ScoreCalibrator(method).fit(scores, y)
    restored = ScoreCalibrator.from_dict(calibrator.to_dict())
    probe = np.linspace(0.001, 0.999, 50)
    np.testing.assert_allclose(restored.transform(probe), calibrator.transform(probe))
    assert np.all(np.diff(calibrator.transform(probe)) >= -1e-12), "monotone"
    if method != "none":
        before = calibration_scores(y, scores)["log_loss"]
        after = calibration_scores(y, calibrator.transform(scores))["log_loss"]
        assert after < before


def test_temperature_scaling_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, size=20000)
    y = rng.random(true_logits.size) < 1 / (1 + np.exp(-true_logits))
    scores = 1 / (1 + np.exp(-2 * true_logits))  # logits doubled: T should be ~2
    calibrator = ScoreCalibrator("temperature").fit(scores, y)
    assert calibrator.temperature_ == pytest.approx(2.0, rel=0.1)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="calibration method"):
        ScoreCalibrator("platt").fit(np.array([0.1, 0.9]), np.array([0, 1]))


def test_platt_never_reverses_the_ranking(caplog: pytest.LogCaptureFixture) -> None:
    """One validation positive that scored low gives a negative Platt slope; calibration must
    still keep the model's ranking (it once sent the best test author to the bottom)."""
    scores = np.linspace(0.01, 0.9, 50)
    y = np.zeros(50, dtype=bool)
    y[2] = True  # the only positive, among the lowest scores
    calibrator = ScoreCalibrator("sigmoid").fit(scores, y)
    assert calibrator.slope_clamped_ and calibrator.a_ == MIN_SLOPE
    assert "do not rank positives higher" in caplog.text
    test_scores = np.array([0.02, 0.3, 0.95])
    calibrated = calibrator.transform(test_scores)
    assert np.all(np.diff(calibrated) > 0), "order kept"
    assert calibrated.mean() == pytest.approx(y.mean(), abs=0.01), "near the base rate"
    restored = ScoreCalibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    np.testing.assert_allclose(restored.transform(test_scores), calibrated)
    # With signal on validation the slope is fitted freely and nothing is clamped.
    assert not ScoreCalibrator("sigmoid").fit(scores, scores > 0.6).slope_clamped_
