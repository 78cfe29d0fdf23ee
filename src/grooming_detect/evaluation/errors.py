"""False-positive analysis: who was flagged wrongly, who was missed, why, and where errors cluster.

Explanations:

* linear models (a final step with ``coef_`` after a step with ``get_feature_names_out``): the
  features with the largest ``coefficient × feature value`` in the item's document;
* any other model: message occlusion, a model-agnostic fallback: each message is removed in turn
  and the drop in score is measured; the messages whose removal lowers the score most are named
  by ``conversation_id:line``.

Message text appears only when ``show_text`` is set (default: synthetic data only), truncated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from grooming_detect.features.behaviour import slice_labels


def linear_parts(model: Any) -> tuple[Any, np.ndarray] | None:
    """(feature step, coefficients) when `model` is a pipeline ending in a linear classifier."""
    steps = getattr(model, "steps", None)
    if not steps or len(steps) < 2:
        return None
    features, classifier = steps[-2][1], steps[-1][1]
    coefficients = getattr(classifier, "coef_", None)
    if coefficients is None or not hasattr(features, "get_feature_names_out"):
        return None
    return features, np.asarray(coefficients).ravel()


def linear_explanations(model: Any, documents: pd.DataFrame, top: int = 5) -> list[str]:
    """Top features by coefficient × value for each document, as ``name (+contribution)``."""
    parts = linear_parts(model)
    if parts is None:
        raise ValueError("model is not a pipeline ending in a linear classifier")
    features, coefficients = parts
    names = features.get_feature_names_out()
    matrix = features.transform(documents[["text"]]).tocsr()
    explanations = []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        columns = matrix.indices[start:end]
        contributions = matrix.data[start:end] * coefficients[columns]
        order = np.argsort(-contributions)[:top]
        explanations.append(
            "; ".join(
                f"{names[columns[i]]} (+{contributions[i]:.3f})"
                for i in order
                if contributions[i] > 0
            )
        )
    return explanations


def occlusion_explanations(
    score: Any, messages: pd.DataFrame, separator: str, top: int = 3
) -> dict[str, str]:
    """Model-agnostic: for each item (messages grouped by ``id``), the messages whose removal
    lowers the score most, as ``conversation_id:line (-drop)``."""
    explanations: dict[str, str] = {}
    for identifier, group in messages[messages["text"] != ""].groupby("id", sort=False):
        texts = group["text"].tolist()
        variants = [separator.join(texts)] + [
            separator.join(texts[:i] + texts[i + 1 :]) for i in range(len(texts))
        ]
        scores = score(pd.DataFrame({"text": variants}))
        drops = scores[0] - scores[1:]
        order = np.argsort(-drops)[:top]
        rows = group.iloc[order]
        explanations[identifier] = "; ".join(
            f"{r.conversation_id}:{r.line} (-{d:.3f})"
            for r, d in zip(rows.itertuples(), drops[order], strict=True)
        )
    return explanations


def error_table(
    predictions: pd.DataFrame,
    profile: pd.DataFrame,
    which: str,
    top_k: int,
) -> pd.DataFrame:
    """The `top_k` highest-scoring negatives (``false_positives``) or lowest-scoring positives
    (``false_negatives``), with their behavioural profile."""
    negatives = ~predictions["label"].astype(bool)
    if which == "false_positives":
        rows = predictions[negatives].nlargest(top_k, "score")
    else:
        rows = predictions[~negatives].nsmallest(top_k, "score")
    extra = [c for c in profile.columns if c == "id" or c not in rows.columns]
    return rows.merge(profile[extra], on="id", how="left")


def slice_rates(predictions: pd.DataFrame, profile: pd.DataFrame) -> pd.DataFrame:
    """False-positive rate among negatives by conversation length, number of authors, hour of
    day and lexicon cue presence."""
    negatives = predictions[~predictions["label"].astype(bool)][["id", "predicted"]]
    labelled = negatives.merge(profile, on="id", how="left")
    buckets = slice_labels(labelled)
    rows = []
    for dimension in buckets.columns:
        grouped = labelled.groupby(buckets[dimension], observed=True)["predicted"]
        for bucket, flags in grouped:
            rows.append(
                {
                    "slice": dimension,
                    "bucket": str(bucket),
                    "negatives": int(flags.size),
                    "false_positives": int(flags.sum()),
                    "false_positive_rate": float(flags.mean()),
                }
            )
    return pd.DataFrame(rows)
