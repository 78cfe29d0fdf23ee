"""The shortcut baseline beside every model: `metadata_only` (gradient boosting on how much,
when and with whom people chat; no word of text, no lexicon cue) trained on the same train
split and scored on the same splits.

If metadata alone ranks the positives well, the labels can be read off the corpus's
structure and a text model's numbers are suspect; the gap between the model's PR-AUC and this
baseline's is what the text adds. Logged as ``<split>/<unit>/pr_auc_metadata_only`` (and
``roc_auc_metadata_only``), and printed by the model card beside the model's own PR-AUC.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from grooming_detect.evaluation.metrics import ranking_scores
from grooming_detect.models.baselines import METADATA_COLUMNS, make_metadata_only
from grooming_detect.models.units import ModelInput, features_of

log = logging.getLogger(__name__)


def metadata_baseline(
    inputs: ModelInput, splits: list[str], seed: int, trained_on: list[str] | None = None
) -> dict[str, float]:
    """PR-AUC and ROC-AUC of `metadata_only` fitted on the unit's rows of `trained_on` (the
    splits the model itself was fitted on; default train), per split; empty (with a log line)
    when the data has no metadata column to learn from."""
    unit = inputs.unit
    train = pd.concat([inputs.unit_rows(s) for s in trained_on or ["train"]], ignore_index=True)
    X = features_of(train, unit)
    if not X.columns.str.match(METADATA_COLUMNS).any():
        log.info("shortcut baseline skipped: no metadata column in the %s view", unit.name)
        return {}
    y = train[unit.label_column].to_numpy(dtype=bool)
    model = make_metadata_only(random_state=seed).fit(X, y)
    metrics: dict[str, float] = {}
    for split in splits:
        rows = inputs.unit_rows(split)
        scores = model.predict_proba(features_of(rows, unit))[:, 1]
        y_split = rows[unit.label_column].to_numpy(dtype=bool)
        for name, value in ranking_scores(y_split, scores).items():
            metrics[f"{split}/{unit.name}/{name}_metadata_only"] = value
        metrics[f"{split}/{unit.name}/positive_rate"] = float(np.mean(y_split))
    return metrics
