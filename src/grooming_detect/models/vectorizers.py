"""TF-IDF vectorisers that stay fast and small at a real chat vocabulary.

Why not plain ``TfidfVectorizer``: at a real vocabulary it holds every distinct n-gram in a
Python dict while fitting (gigabytes for PAN-2012-sized chat), and with ``max_features`` its
``vocabulary_`` keeps NumPy ``int64`` values, which skops writes one zip member each, checking
the member list before every write: saving is quadratic in the vocabulary (a 200k-term model
never finished saving). Two choices, selected by ``vectorizer`` in the model config:

* `HashingTfidfVectorizer` (default, ``vectorizer: hashing``): the hashing trick, so fitting
  needs no vocabulary at all and memory is constant in the number of distinct terms; the
  learned state is one ``float32`` idf array. ``min_df`` is applied to hashed columns (a column
  shared by colliding terms counts their documents together). Explanations name a column by the
  terms of the explained documents that hash to it (`term_map`).
* `CompactTfidfVectorizer` (``vectorizer: vocabulary``): scikit-learn's vectoriser with exact
  term names, whose vocabulary is stored with plain ``int`` values (linear to save).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import pyarrow.compute as pc
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from grooming_detect.features.text_kernels import arrow_strings
from grooming_detect.progress import track


class CompactTfidfVectorizer(TfidfVectorizer):
    """``TfidfVectorizer`` whose fitted vocabulary maps terms to plain ``int`` (not NumPy
    integers), so skops saves it as one JSON mapping, in time linear in its size."""

    def fit(self, raw_documents: Iterable[str], y: Any = None) -> CompactTfidfVectorizer:
        super().fit(raw_documents, y)
        self._compact()
        return self

    def fit_transform(self, raw_documents: Iterable[str], y: Any = None) -> sparse.csr_matrix:
        matrix = super().fit_transform(raw_documents, y)
        self._compact()
        return matrix

    def _compact(self) -> None:
        vocabulary: dict[str, Any] = getattr(self, "vocabulary_")  # noqa: B009 (set by fit)
        self.vocabulary_ = {term: int(index) for term, index in vocabulary.items()}


class HashingTfidfVectorizer(TransformerMixin, BaseEstimator):
    """TF-IDF over hashed n-grams: ``HashingVectorizer`` counts, then smooth idf learned on
    the training documents, sublinear tf (1 + log tf) and L2-normalised rows, in ``float32``.

    Parameters mirror ``TfidfVectorizer`` where they exist; `n_features` is the number of hash
    columns and `batch_size` the documents hashed at a time (bounds the temporary memory).
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "analyzer": [StrOptions({"word", "char", "char_wb"})],
        "ngram_range": [tuple, list],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "min_df": [Interval(Integral, 1, None, closed="left")],
        "sublinear_tf": ["boolean"],
        "lowercase": ["boolean"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        analyzer: str = "word",
        ngram_range: Sequence[int] = (1, 1),
        n_features: int = 2**20,
        min_df: int = 1,
        sublinear_tf: bool = True,
        lowercase: bool = True,
        batch_size: int = 4096,
    ) -> None:
        self.analyzer = analyzer
        self.ngram_range = ngram_range
        self.n_features = n_features
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.lowercase = lowercase
        self.batch_size = batch_size

    def _hasher(self) -> HashingVectorizer:
        return HashingVectorizer(
            analyzer=self.analyzer,
            ngram_range=tuple(self.ngram_range),
            n_features=int(self.n_features),
            lowercase=self.lowercase,
            alternate_sign=False,
            norm=None,
            dtype=np.float32,
        )

    def build_analyzer(self) -> Any:
        """The callable that turns a document into its n-grams (as ``TfidfVectorizer``)."""
        return self._hasher().build_analyzer()

    def _counts(self, documents: Iterable[str]) -> sparse.csr_matrix:
        texts = list(documents)
        hasher = self._hasher()
        if self.analyzer == "char_wb" and texts:
            return _char_wb_counts(texts, hasher)
        step = max(1, int(self.batch_size))
        batches = track(
            range(0, len(texts), step),
            f"hashing {self.analyzer} n-grams of {len(texts):,} documents",
            unit="batch",
            disable=len(texts) < PROGRESS_MIN_DOCUMENTS,
        )
        blocks = [hasher.transform(texts[i : i + step]) for i in batches]
        if not blocks:
            return sparse.csr_matrix((0, int(self.n_features)), dtype=np.float32)
        return sparse.vstack(blocks, format="csr", dtype=np.float32)

    def fit(self, raw_documents: Iterable[str], y: Any = None) -> HashingTfidfVectorizer:
        self.fit_transform(raw_documents, y)
        return self

    def fit_transform(self, raw_documents: Iterable[str], y: Any = None) -> sparse.csr_matrix:
        self._validate_params()
        counts = self._counts(raw_documents)
        n_documents = counts.shape[0]
        document_frequency = np.bincount(counts.indices, minlength=int(self.n_features))
        idf = np.log((1.0 + n_documents) / (1.0 + document_frequency)) + 1.0
        idf[document_frequency < max(1, int(self.min_df))] = 0.0
        self.idf_ = idf.astype(np.float32)
        self.n_features_in_ = 1
        return self._weight(counts)

    def transform(self, raw_documents: Iterable[str]) -> sparse.csr_matrix:
        check_is_fitted(self, "idf_")
        return self._weight(self._counts(raw_documents))

    def _weight(self, counts: sparse.csr_matrix) -> sparse.csr_matrix:
        if self.sublinear_tf:
            np.log(counts.data, out=counts.data)
            counts.data += 1.0
        counts.data *= self.idf_[counts.indices]
        counts.eliminate_zeros()
        return normalize(counts, norm="l2", copy=False)

    def term_map(self, documents: Iterable[str], columns: Iterable[int] | None = None) -> dict:
        """Column index -> the terms of `documents` that hash to it (``a|b`` on a collision),
        restricted to `columns` when given: names for the explained items' features only."""
        analyse = self.build_analyzer()
        terms = sorted({term for document in documents for term in analyse(document)})
        if not terms:
            return {}
        hashed = FeatureHasher(
            n_features=int(self.n_features), input_type="string", alternate_sign=False
        ).transform([[term] for term in terms])
        wanted = None if columns is None else set(int(c) for c in columns)
        names: dict[int, list[str]] = {}
        for term, column in zip(terms, hashed.tocsr().indices, strict=True):
            if wanted is None or int(column) in wanted:
                names.setdefault(int(column), []).append(term)
        return {column: "|".join(group) for column, group in names.items()}


#: Documents below which hashing shows no progress (a few seconds of work at most; explanations
#: score one document at a time and would print a line per call).
PROGRESS_MIN_DOCUMENTS = 20_000


def _char_wb_counts(texts: list[str], hasher: HashingVectorizer) -> sparse.csr_matrix:
    """``hasher.transform(texts)`` for the ``char_wb`` analyser, computed word type by word type.

    ``char_wb`` n-grams never cross a word (a ``str.split()`` item), so a document's counts are
    the sum of its words' counts. Each distinct word is analysed and hashed once, by
    scikit-learn's own analyser and hasher (so columns and counts are identical), and documents
    are then a sparse product: documents x word types times word types x hash columns. Real chat
    repeats its words, so this hashes about a tenth of the n-grams the plain path hashes."""
    words = pc.utf8_split_whitespace(pc.fill_null(arrow_strings(texts), ""))
    flat = pc.list_flatten(words)
    document = pc.list_parent_indices(words).to_numpy(zero_copy_only=False)
    kept = pc.greater(pc.binary_length(flat), 0)  # Arrow's empty items at leading/trailing space
    encoded = pc.dictionary_encode(flat.filter(kept))
    document = document[kept.to_numpy(zero_copy_only=False)]
    types = track(
        encoded.dictionary.to_pylist(),
        f"hashing char_wb n-grams of {len(texts):,} documents",
        unit="word",
        disable=len(texts) < PROGRESS_MIN_DOCUMENTS,
    )
    if not len(encoded.dictionary):  # every document blank: FeatureHasher cannot take 0 rows
        return sparse.csr_matrix((len(texts), hasher.n_features), dtype=np.float32)
    analyse = hasher.build_analyzer()
    per_type = FeatureHasher(
        n_features=hasher.n_features,
        input_type="string",
        alternate_sign=False,
        dtype=np.float32,
    ).transform(analyse(word) for word in types)
    occurrences = sparse.csr_matrix(
        (
            np.ones(len(document), dtype=np.float32),
            (document, encoded.indices.to_numpy(zero_copy_only=False)),
        ),
        shape=(len(texts), len(encoded.dictionary)),
    )
    counts = (occurrences @ per_type).tocsr()
    counts.sort_indices()
    return counts


def make_text_vectorizer(
    kind: str,
    analyzer: str,
    ngram_range: Sequence[int],
    min_df: int,
    max_features: int | None,
    n_features: int,
) -> TransformerMixin:
    """One TF-IDF block (sublinear tf, lower-cased, float32) of the configured `kind`."""
    if kind == "hashing":
        return HashingTfidfVectorizer(
            analyzer=analyzer, ngram_range=tuple(ngram_range), n_features=n_features, min_df=min_df
        )
    if kind == "vocabulary":
        return CompactTfidfVectorizer(
            analyzer=analyzer,
            ngram_range=tuple(ngram_range),
            min_df=min_df,
            max_features=max_features,
            sublinear_tf=True,
            lowercase=True,
            dtype=np.float32,
        )
    raise ValueError(f"vectorizer: {kind!r}; expected 'hashing' or 'vocabulary'")


__all__ = ["CompactTfidfVectorizer", "HashingTfidfVectorizer", "make_text_vectorizer"]
