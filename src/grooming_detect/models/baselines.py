"""Classical baselines, each one scikit-learn ``Pipeline`` built from config by ``instantiate``.

Every baseline takes a DataFrame of one view's rows (a ``text`` column, plus ``f_``/``cue_``
feature columns) and returns probabilities with ``predict_proba``; thresholds and calibration
are fitted outside the model, on validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from grooming_detect.features.schema import FEATURE_PATTERN
from grooming_detect.models.vectorizers import make_text_vectorizer

TEXT_COLUMN = "text"


class CompactLogisticRegression(LogisticRegression):
    """``LogisticRegression`` that solves over the columns holding a value in its training
    matrix only, then stores full-width coefficients (zero elsewhere).

    A column that is zero in every training row has coefficient zero at the (regularised)
    optimum, so the fitted model is the same up to the solver's tolerance (bit for bit with
    lbfgs on the float32 TF-IDF matrix); but a hashed TF-IDF matrix has 2^21 columns
    of which a real corpus fills a fraction (min_df zeroes the rest), and lbfgs's per-iteration
    cost grows with the number of columns: fitting on the filled ones is several times faster.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> CompactLogisticRegression:
        # liblinear shuffles the columns it is given, so its iterates (not its optimum) depend
        # on their number: it keeps the full width, as do warm starts.
        if not sparse.issparse(X) or self.warm_start or self.solver == "liblinear":
            return super().fit(X, y, sample_weight)
        X = sparse.csr_matrix(X)
        width = X.shape[1]
        used = np.flatnonzero(np.bincount(X.indices, minlength=width))
        if len(used) == width or len(used) == 0:
            return super().fit(X, y, sample_weight)
        position = np.zeros(width, dtype=X.indices.dtype)
        position[used] = np.arange(len(used), dtype=X.indices.dtype)
        narrow = sparse.csr_matrix(
            (X.data, position[X.indices], X.indptr), shape=(X.shape[0], len(used))
        )
        super().fit(narrow, y, sample_weight)
        fitted: np.ndarray = getattr(self, "coef_")  # noqa: B009 (set by fit)
        coef = np.zeros((fitted.shape[0], width), dtype=fitted.dtype)
        coef[:, used] = fitted
        self.coef_ = coef
        self.n_features_in_ = width
        return self


@dataclass(frozen=True)
class TfidfSettings:
    """The TF-IDF text features every TF-IDF model shares (``conf/model/tfidf/default.yaml``
    holds the config's values; a test keeps these defaults equal to it).

    `vectorizer` is ``hashing`` (constant memory, small model; `n_features` hash columns per
    block) or ``vocabulary`` (exact terms; `max_features` caps each block, and only then: a
    hashing block has no cap to set, so the config file leaves `max_features` out)."""

    word_ngram_range: Sequence[int] = (1, 2)
    char_ngram_range: Sequence[int] = (2, 5)
    min_df: int = 2
    vectorizer: str = "hashing"
    n_features: int = 2**20
    max_features: int | None = 200_000

    def features(self) -> ColumnTransformer:
        """Word n-gram and character n-gram TF-IDF (sublinear tf) over the ``text`` column."""
        return ColumnTransformer(
            [
                (
                    name,
                    make_text_vectorizer(
                        self.vectorizer,
                        analyzer,
                        ngram_range,
                        self.min_df,
                        self.max_features,
                        self.n_features,
                    ),
                    TEXT_COLUMN,
                )
                for name, analyzer, ngram_range in (
                    ("word", "word", self.word_ngram_range),
                    ("char", "char_wb", self.char_ngram_range),
                )
            ],
            sparse_threshold=1.0,
        )


def make_tfidf_features(**tfidf: Any) -> ColumnTransformer:
    """`TfidfSettings` (keyword arguments: its fields) as a ``ColumnTransformer``."""
    return TfidfSettings(**tfidf).features()


def _logistic_regression(
    C: float, class_weight: str | None, max_iter: int, random_state: int
) -> CompactLogisticRegression:
    return CompactLogisticRegression(
        C=C, class_weight=class_weight, max_iter=max_iter, random_state=random_state
    )


def make_tfidf_logreg(
    C: float = 4.0,
    class_weight: str | None = "balanced",
    max_iter: int = 2000,
    random_state: int = 0,
    **tfidf: Any,
) -> Pipeline:
    """TF-IDF features (`tfidf`: `TfidfSettings` fields) and logistic regression
    (liblinear-free ``lbfgs``, L2)."""
    return Pipeline(
        [
            ("features", make_tfidf_features(**tfidf)),
            ("classifier", _logistic_regression(C, class_weight, max_iter, random_state)),
        ]
    )


#: Behavioural (``f_``) and lexicon (``cue_``) columns written by the features stage.
BEHAVIOUR_COLUMNS = FEATURE_PATTERN


def make_tfidf_svm(
    C: float = 0.5,
    class_weight: str | None = "balanced",
    cv: int = 3,
    random_state: int = 0,
    **tfidf: Any,
) -> Pipeline:
    """The TF-IDF features (`tfidf`: `TfidfSettings` fields) with a linear SVM; probabilities
    from sigmoid calibration fitted by internal `cv`-fold cross-validation on the training split
    (the pipeline's own validation-set calibration then applies on top)."""
    return Pipeline(
        [
            ("features", make_tfidf_features(**tfidf)),
            (
                "classifier",
                CalibratedClassifierCV(
                    LinearSVC(C=C, class_weight=class_weight, random_state=random_state),
                    method="sigmoid",
                    cv=cv,
                ),
            ),
        ]
    )


@dataclass(frozen=True)
class BoostingSettings:
    """Histogram gradient boosting's settings for the feature-column models
    (``conf/model/boosting/default.yaml`` holds the config's values; a test keeps these
    defaults equal to it)."""

    learning_rate: float = 0.1
    max_iter: int = 200
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 20
    l2_regularization: float = 1.0
    class_weight: str | None = "balanced"
    random_state: int = 0


def _boosting_on_columns(block: str, pattern: str, boosting: dict[str, Any]) -> Pipeline:
    """Histogram gradient boosting (`boosting`: `BoostingSettings` fields) on the feature
    columns matching `pattern` (missing values, such as reply gaps without times, are handled
    natively)."""
    settings = asdict(BoostingSettings(**boosting))
    return Pipeline(
        [
            (
                "features",
                ColumnTransformer([(block, "passthrough", make_column_selector(pattern=pattern))]),
            ),
            ("classifier", HistGradientBoostingClassifier(**settings)),
        ]
    )


def make_behaviour_gbm(**boosting: Any) -> Pipeline:
    """Histogram gradient boosting (`boosting`: `BoostingSettings` fields) on the behavioural
    and lexicon features."""
    return _boosting_on_columns("behaviour", BEHAVIOUR_COLUMNS, boosting)


#: Non-text facts only: activity, message length, partners, participants, conversation length and
#: hour of day (author level; at conversation level the conversation's own counterparts).
METADATA_COLUMNS = (
    r"^f_(?:messages|conversations|mean_chars|partners|participants|conversation_length|"
    r"authors|hour_sin|hour_cos)$"
)


def make_metadata_only(**boosting: Any) -> Pipeline:
    """Histogram gradient boosting (`boosting`: `BoostingSettings` fields) on metadata alone
    (no word of text, no lexicon cue).

    A shortcut detector, not a model to deploy: if it scores well, the labels can be read off
    how much, when and with whom people chat, and the text models' numbers are suspect."""
    return _boosting_on_columns("metadata", METADATA_COLUMNS, boosting)


def make_tfidf_plus_behaviour(
    behaviour_weight: float = 1.0,
    C: float = 4.0,
    class_weight: str | None = "balanced",
    max_iter: int = 2000,
    random_state: int = 0,
    **tfidf: Any,
) -> Pipeline:
    """Text and behaviour together: the TF-IDF blocks (`tfidf`: `TfidfSettings` fields) plus
    median-imputed, standardised behavioural and lexicon features (scaled by
    `behaviour_weight`) in one ColumnTransformer, then logistic regression."""
    text = make_tfidf_features(**tfidf)
    behaviour = Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
    )
    return Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        *text.transformers,
                        ("behaviour", behaviour, make_column_selector(pattern=BEHAVIOUR_COLUMNS)),
                    ],
                    transformer_weights={"behaviour": behaviour_weight},
                    sparse_threshold=1.0,
                ),
            ),
            ("classifier", _logistic_regression(C, class_weight, max_iter, random_state)),
        ]
    )
