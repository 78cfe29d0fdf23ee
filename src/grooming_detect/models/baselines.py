"""Classical baselines, each one scikit-learn ``Pipeline`` built from config by ``instantiate``.

Every baseline takes a DataFrame with a ``text`` column (one document per author) and returns
probabilities with ``predict_proba``; thresholds are tuned outside the model, on validation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

TEXT_COLUMN = "text"


def make_tfidf_features(
    word_ngram_range: Sequence[int] = (1, 2),
    char_ngram_range: Sequence[int] = (2, 5),
    min_df: int = 2,
    max_features: int | None = 200_000,
) -> ColumnTransformer:
    """Word n-gram and character n-gram TF-IDF (sublinear tf) over the ``text`` column."""
    return ColumnTransformer(
        [
            (
                "word",
                TfidfVectorizer(
                    analyzer="word",
                    ngram_range=tuple(word_ngram_range),
                    min_df=min_df,
                    max_features=max_features,
                    sublinear_tf=True,
                    lowercase=True,
                    dtype=np.float32,
                ),
                TEXT_COLUMN,
            ),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=tuple(char_ngram_range),
                    min_df=min_df,
                    max_features=max_features,
                    sublinear_tf=True,
                    lowercase=True,
                    dtype=np.float32,
                ),
                TEXT_COLUMN,
            ),
        ],
        sparse_threshold=1.0,
    )


def make_tfidf_logreg(
    word_ngram_range: Sequence[int] = (1, 2),
    char_ngram_range: Sequence[int] = (2, 5),
    min_df: int = 2,
    max_features: int | None = 200_000,
    C: float = 4.0,
    class_weight: str | None = "balanced",
    max_iter: int = 2000,
    random_state: int = 0,
) -> Pipeline:
    """TF-IDF features and logistic regression (liblinear-free ``lbfgs``, L2)."""
    return Pipeline(
        [
            (
                "features",
                make_tfidf_features(word_ngram_range, char_ngram_range, min_df, max_features),
            ),
            (
                "classifier",
                LogisticRegression(
                    C=C, class_weight=class_weight, max_iter=max_iter, random_state=random_state
                ),
            ),
        ]
    )
