"""Baselines and the two-stage design: contracts, a case with a known answer, imbalance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
)

from grooming_detect.evaluation.metrics import tune_threshold
from grooming_detect.models.baselines import make_tfidf_logreg
from grooming_detect.models.stage import subsample_negatives
from grooming_detect.models.two_stage import TwoStageClassifier


def _rows() -> tuple[pd.DataFrame, np.ndarray]:
    """Author-in-conversation rows: two predator conversations, three innocent ones."""
    spec = [
        ("c1", "P1", "keep this our secret, meet me saturday", True),
        ("c1", "V1", "ok lol my mom is strict", False),
        ("c2", "P2", "our secret ok, don't tell, meet me at the mall", True),
        ("c2", "V2", "lol ok i have school", False),
        ("c3", "N1", "did you see the game last night", False),
        ("c3", "N2", "yeah the team played great", False),
        ("c4", "N3", "anyone know why gcc segfaults", False),
        ("c4", "N4", "check the logs and rebuild", False),
        ("c5", "N5", "pizza tonight?", False),
        ("c5", "N6", "sure, pizza and the game", False),
    ]
    frame = pd.DataFrame(spec, columns=["conversation_id", "author", "text", "label"])
    whole = frame.groupby("conversation_id")["text"].agg(" ".join)
    frame["conversation_text"] = frame["conversation_id"].map(whole)
    return frame.drop(columns=["label"]), frame["label"].to_numpy()


def _two_stage() -> TwoStageClassifier:
    return TwoStageClassifier(
        conversation_model=make_tfidf_logreg(min_df=1, C=10.0),
        author_model=make_tfidf_logreg(min_df=1, C=10.0),
    )


def test_two_stage_ranks_predator_over_partner_over_bystanders() -> None:
    X, y = _rows()
    model = _two_stage().fit(X, y)
    new = pd.DataFrame(
        {
            "conversation_id": ["n1", "n1", "n2", "n2"],
            "author": ["p", "v", "a", "b"],
            "text": ["keep it our secret and meet me", "ok lol", "the game was great", "pizza"],
        }
    )
    whole = new.groupby("conversation_id")["text"].agg(" ".join)
    new["conversation_text"] = new["conversation_id"].map(whole)
    scores = model.predict_proba(new)[:, 1]
    predator, partner, bystander_a, bystander_b = scores
    assert predator > partner > max(bystander_a, bystander_b)
    stage1 = model.suspicion(new)
    assert stage1[0] == stage1[1] > stage1[2] == stage1[3], "one suspicion per conversation"
    np.testing.assert_allclose(model.predict_proba(new).sum(axis=1), 1.0)


def test_two_stage_hard_gate_skips_stage_two() -> None:
    X, y = _rows()
    gated = _two_stage().set_params(suspicion_threshold=1.01).fit(X, y)
    assert np.all(gated.predict_proba(X)[:, 1] == 0.0)


def test_two_stage_follows_the_estimator_contract() -> None:
    check_no_attributes_set_in_init("TwoStageClassifier", _two_stage())
    check_get_params_invariance("TwoStageClassifier", _two_stage())
    with pytest.raises(ValueError, match="with and without"):
        X, y = _rows()
        _two_stage().fit(X, np.ones_like(y))


def test_negative_subsampling_keeps_every_positive() -> None:
    X = pd.DataFrame({"text": [str(i) for i in range(100)]})
    y = np.zeros(100, dtype=bool)
    y[:4] = True
    kept_X, kept_y, record = subsample_negatives(X, y, 5, seed=0)
    assert kept_y.sum() == 4 and (~kept_y).sum() == 20
    assert record == {
        "negatives_per_positive": 5,
        "positives": 4,
        "negatives_available": 96,
        "negatives_kept": 20,
    }
    again, _, _ = subsample_negatives(X, y, 5, seed=0)
    assert again.equals(kept_X), "seeded"
    same_X, _, record = subsample_negatives(X, y, None, seed=0)
    assert same_X is X and record["negatives_kept"] == 96


def test_recall_at_precision_objective() -> None:
    y_true = np.array([1, 1, 0, 1, 0, 0])
    scores = np.array([0.95, 0.9, 0.85, 0.6, 0.3, 0.1])
    # Precision >= 0.75 allows t=0.6 (P 3/4, R 1); >= 0.9 allows only t>=0.9 (R 2/3).
    assert tune_threshold(y_true, scores, "recall_at_precision", 0.75) == pytest.approx(0.6)
    assert tune_threshold(y_true, scores, "recall_at_precision", 0.9) == pytest.approx(0.9)


def test_row_scores_aggregate_to_units() -> None:
    from grooming_detect.models.units import aggregate_scores

    scores = pd.Series([0.9, 0.1, 0.5, 0.3, 0.2], index=["a", "a", "a", "a", "b"])
    assert aggregate_scores(scores, "max").to_dict() == {"a": 0.9, "b": 0.2}
    assert aggregate_scores(scores, "mean").to_dict() == pytest.approx({"a": 0.45, "b": 0.2})
    assert aggregate_scores(scores, "top3_mean").to_dict() == pytest.approx(
        {"a": (0.9 + 0.5 + 0.3) / 3, "b": 0.2}
    )
    with pytest.raises(ValueError, match=r"model\.aggregate"):
        aggregate_scores(scores, "median")
