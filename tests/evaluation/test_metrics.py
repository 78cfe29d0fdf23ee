"""PAN-2012 measures and threshold tuning against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grooming_detect.evaluation.metrics import (
    f_beta,
    ranking_scores,
    scores_at_threshold,
    set_scores,
    tune_threshold,
)


def test_set_scores_hand_computed() -> None:
    # 3 named, 2 of them true; 4 true in all: P = 2/3, R = 1/2.
    scores = set_scores(["a", "b", "c"], ["a", "b", "d", "e"])
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(0.5)
    # F0.5 = 1.25 * (2/3 * 1/2) / (0.25 * 2/3 + 1/2) = 0.416667 / 0.666667 = 0.625
    assert round(scores["f0_5"], 4) == 0.6250
    # F1 = 2PR/(P+R) = (2/3) / (7/6) = 0.5714
    assert round(scores["f1"], 4) == 0.5714
    # F3 = 10 * (1/3) / (9 * 2/3 + 1/2) = 3.3333 / 6.5 = 0.5128
    assert round(scores["f3"], 4) == 0.5128


def test_degenerate_cases_are_zero_not_errors() -> None:
    assert set_scores([], ["a"]) == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "f0_5": 0.0,
        "f3": 0.0,
    }
    assert set_scores(["a"], [])["recall"] == 0.0
    assert f_beta(0.0, 0.0, 0.5) == 0.0


def test_duplicates_in_a_submission_count_once() -> None:
    assert set_scores(["a", "a", "b"], ["a"])["precision"] == pytest.approx(0.5)


def test_scores_at_threshold_names_scores_at_or_above() -> None:
    y_true = np.array([1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.5, 0.2, 0.5])
    result = scores_at_threshold(y_true, scores, 0.5)
    assert result["n_predicted"] == 4
    assert result["precision"] == pytest.approx(0.5)
    assert result["recall"] == pytest.approx(1.0)


def test_tune_threshold_maximises_f05_and_prefers_fewer_alerts() -> None:
    y_true = np.array([1, 1, 0, 1, 0, 0])
    scores = np.array([0.95, 0.9, 0.85, 0.6, 0.3, 0.1])
    # Candidates: t=0.95 (P1,R1/3: F0.5=.714), t=0.9 (P1,R2/3: .909), t=0.85 (P2/3,R2/3: .667),
    # t=0.6 (P3/4,R1: .789). Best is 0.9.
    assert tune_threshold(y_true, scores, "f0_5") == pytest.approx(0.9)
    # F3 favours recall: t=0.6 gives F3 = 10*.75/(9*.75+1) = .968, the best.
    assert tune_threshold(y_true, scores, "f3") == pytest.approx(0.6)


def test_tune_threshold_refuses_a_split_without_positives() -> None:
    with pytest.raises(ValueError, match="without positives"):
        tune_threshold(np.zeros(4), np.linspace(0, 1, 4))
    with pytest.raises(ValueError, match="objective"):
        tune_threshold(np.array([0, 1]), np.array([0.1, 0.9]), "accuracy")


def test_ranking_scores_undefined_with_one_class() -> None:
    assert math.isnan(ranking_scores(np.zeros(3), np.array([0.1, 0.2, 0.3]))["pr_auc"])
    perfect = ranking_scores(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.3]))
    assert perfect == {"pr_auc": 1.0, "roc_auc": 1.0}


def test_operating_points_hand_computed() -> None:
    from grooming_detect.evaluation.metrics import operating_points

    y_true = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    points = operating_points(y_true, scores, threshold=0.65)
    # Recall >= 0.8 needs all 3 positives: threshold 0.6 names 4, precision 3/4.
    assert points["precision_at_recall_0_8"] == pytest.approx(0.75)
    assert points["precision_at_recall_0_9"] == pytest.approx(0.75)
    # With no false positive allowed (FPR <= 1e-3 of 7 negatives), recall is 2/3.
    assert points["recall_at_fpr_1e-3"] == pytest.approx(2 / 3)
    # 3 of 10 items score >= 0.65: 3,000 alerts per 10,000.
    assert points["alerts_per_10k"] == pytest.approx(3000)


def test_bootstrap_is_reproducible_and_brackets_the_estimate() -> None:
    from grooming_detect.evaluation.metrics import bootstrap_intervals

    rng = np.random.default_rng(3)
    y_true = rng.random(400) < 0.1
    scores = np.clip(0.5 * y_true + rng.random(400) * 0.6, 0, 1)
    first = bootstrap_intervals(y_true, scores, 0.5, n_resamples=200, seed=7)
    assert first == bootstrap_intervals(y_true, scores, 0.5, n_resamples=200, seed=7)
    assert first != bootstrap_intervals(y_true, scores, 0.5, n_resamples=200, seed=8)
    point = scores_at_threshold(y_true, scores, 0.5)
    for name in ("precision", "recall", "f0_5"):
        low, high = first[name]
        assert low <= point[name] <= high, name
    low, high = first["pr_auc"]
    assert low <= ranking_scores(y_true, scores)["pr_auc"] <= high


def test_vectorised_bootstrap_ranking_measures_equal_scikit_learn() -> None:
    """The vectorised AP and ROC-AUC of each resample equal scikit-learn's with sample weights
    (ties included): one resample, read back as its own 'interval'."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from grooming_detect.evaluation.metrics import bootstrap_intervals

    rng = np.random.default_rng(3)
    y_true = rng.random(300) < 0.2
    scores = np.round(rng.random(300) * 0.6 + 0.4 * y_true, 2)  # many ties
    low, high = bootstrap_intervals(y_true, scores, 0.5, n_resamples=1, seed=11)["pr_auc"]
    weights = np.bincount(np.random.default_rng(11).integers(0, 300, size=300), minlength=300)
    assert (
        low == high == pytest.approx(average_precision_score(y_true, scores, sample_weight=weights))
    )
    low, high = bootstrap_intervals(y_true, scores, 0.5, n_resamples=1, seed=11)["roc_auc"]
    assert low == high == pytest.approx(roc_auc_score(y_true, scores, sample_weight=weights))


def test_the_evaluate_stage_bootstraps_with_the_configured_seed_and_resamples(
    compose_cfg, monkeypatch
) -> None:
    """``evaluate.bootstrap.seed`` and ``n_resamples`` reach the bootstrap: two seeds give two
    sets of intervals (they were ignored: seeds 3 and 4 printed identical intervals)."""
    from grooming_detect.evaluation import stage

    rng = np.random.default_rng(0)
    y_true = rng.random(300) < 0.1
    scores = np.clip(0.5 * y_true + rng.random(300) * 0.6, 0, 1)

    def intervals(*overrides: str) -> dict[str, float]:
        metrics = stage.unit_metrics(
            y_true, scores, scores, 0.5, compose_cfg(*overrides), "test/author"
        )
        return {k: v for k, v in metrics.items() if "_ci_" in k}

    base = ("evaluate.bootstrap.n_resamples=200",)
    assert intervals(*base, "evaluate.bootstrap.seed=3") == intervals(
        *base, "evaluate.bootstrap.seed=3"
    )
    assert intervals(*base, "evaluate.bootstrap.seed=3") != intervals(
        *base, "evaluate.bootstrap.seed=4"
    )
    seen: dict[str, object] = {}
    real = stage.bootstrap_intervals

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(stage, "bootstrap_intervals", spy)
    intervals("evaluate.bootstrap.n_resamples=37", "evaluate.bootstrap.seed=11")
    assert seen["n_resamples"] == 37 and seen["seed"] == 11
