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

import re
from collections.abc import Callable, Iterable, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
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

    def __getstate__(self) -> dict[str, Any]:
        """The state to save, with the vocabulary packed into three arrays (its terms' UTF-8
        bytes end to end, their byte lengths, their columns): skops writes a dict one node
        per entry, so a 400k-term mapping took half a minute to save and to load; arrays are
        written as one member each, in well under a second."""
        state = dict(super().__getstate__())  # a copy: the live estimator keeps its vocabulary
        vocabulary = state.pop("vocabulary_", None)
        if vocabulary is not None:
            encoded = [term.encode("utf-8", "surrogatepass") for term in vocabulary]
            state["vocabulary_packed_"] = {
                "bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
                "lengths": np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)),
                "columns": np.fromiter(vocabulary.values(), dtype=np.int64, count=len(encoded)),
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        packed = state.pop("vocabulary_packed_", None)
        super().__setstate__(state)
        if packed is not None:
            data = np.asarray(packed["bytes"], dtype=np.uint8).tobytes()
            ends = np.cumsum(np.asarray(packed["lengths"], dtype=np.int64)).tolist()
            starts = [0, *ends[:-1]]
            terms = [
                data[a:b].decode("utf-8", "surrogatepass")
                for a, b in zip(starts, ends, strict=True)
            ]
            columns = np.asarray(packed["columns"], dtype=np.int64).tolist()
            self.vocabulary_ = dict(zip(terms, columns, strict=True))


class HashedCounts:
    """The hashed n-gram counts of a fixed set of texts, one matrix per hashing setting,
    computed once and read-only afterwards.

    Cross-fitting fits K fold models and a final one on subsets of the same documents; each fit
    learns its own idf, and only the stateless hashing is shared: `for_estimator` hashes every
    text of the pooled rows once, and `with_counts` hands the result to each model's
    `HashingTfidfVectorizer` blocks. Memory: the counts of the distinct texts, as long as a
    model holds them."""

    def __init__(self, texts: Iterable[str], matrices: dict[tuple, sparse.csr_matrix]) -> None:
        self.row_of = {text: row for row, text in enumerate(texts)}
        self.matrices = matrices

    @classmethod
    def for_estimator(cls, estimator: Any, X: pd.DataFrame) -> HashedCounts:
        """The counts of every distinct text that `estimator`'s hashing blocks read from `X`,
        per hashing setting (none for an estimator without such blocks)."""
        readers = [
            (vectorizer, column)
            for vectorizer, column in _hashing_blocks(estimator)
            if isinstance(column, str) and column in X
        ]
        texts = list(dict.fromkeys(text for _, column in readers for text in X[column].tolist()))
        matrices: dict[tuple, sparse.csr_matrix] = {}
        for vectorizer, _ in readers:
            settings = vectorizer.hashing_settings()
            if settings not in matrices:
                matrices[settings] = vectorizer.count(texts)
        return cls(texts, matrices)

    def counts_of(
        self,
        texts: list[str],
        settings: tuple,
        compute: Callable[[list[str]], sparse.csr_matrix],
    ) -> sparse.csr_matrix:
        """The counts of `texts` under `settings` (a new matrix: callers weight it in place);
        texts it does not hold are counted by `compute`."""
        matrix = self.matrices.get(settings)
        if matrix is None or not texts:
            return compute(texts)
        rows = np.fromiter((self.row_of.get(t, -1) for t in texts), np.int64, count=len(texts))
        known = rows >= 0
        if known.all():
            return matrix[rows]
        new = list(dict.fromkeys(t for t, k in zip(texts, known, strict=True) if not k))
        new_row = {text: row for row, text in enumerate(new)}
        stacked = sparse.vstack([matrix[rows[known]], compute(new)], format="csr", dtype=np.float32)
        position = np.empty(len(texts), dtype=np.int64)
        position[known] = np.arange(int(known.sum()))
        position[~known] = int(known.sum()) + np.array(
            [new_row[t] for t, k in zip(texts, known, strict=True) if not k], dtype=np.int64
        )
        return stacked[position]

    def __deepcopy__(self, memo: dict) -> HashedCounts:
        """Itself: read-only, so shared (``sklearn.base.clone`` deep-copies parameters)."""
        return self


class HashingTfidfVectorizer(TransformerMixin, BaseEstimator):
    """TF-IDF over hashed n-grams: ``HashingVectorizer`` counts, then smooth idf learned on
    the training documents, sublinear tf (1 + log tf) and L2-normalised rows, in ``float32``.

    Parameters mirror ``TfidfVectorizer`` where they exist; `n_features` is the number of hash
    columns and `batch_size` the documents hashed at a time (bounds the temporary memory).
    `counts` is an optional `HashedCounts` of documents this vectorizer will read: their counts
    are taken from it instead of being hashed again (cross-fitting passes one to every fold
    model and to the refit, see `with_counts`). Hashing is a pure function of the text and the
    settings, so the result is the same with or without it; it is never saved with the model.
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "analyzer": [StrOptions({"word", "char", "char_wb"})],
        "ngram_range": [tuple, list],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "min_df": [Interval(Integral, 1, None, closed="left")],
        "sublinear_tf": ["boolean"],
        "lowercase": ["boolean"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "counts": [None, HashedCounts],
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
        counts: HashedCounts | None = None,
    ) -> None:
        self.analyzer = analyzer
        self.ngram_range = ngram_range
        self.n_features = n_features
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.lowercase = lowercase
        self.batch_size = batch_size
        self.counts = counts

    def __getstate__(self) -> dict[str, Any]:
        """The state to save or copy, without `counts` (precomputed input, not learned state)."""
        return {**super().__getstate__(), "counts": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A model saved before `counts` existed loads with none."""
        super().__setstate__({"counts": None, **state})

    def hashing_settings(self) -> tuple:
        """What the hashed counts of a text depend on (besides the text)."""
        return (self.analyzer, tuple(self.ngram_range), int(self.n_features), bool(self.lowercase))

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

    def count(self, documents: Iterable[str]) -> sparse.csr_matrix:
        """The hashed n-gram counts of `documents` (``float32``, one row each): the stateless
        half of the transform, read from `counts` where it holds them."""
        texts = list(documents)
        low, high = self.ngram_range
        if not 1 <= low <= high:
            raise ValueError(
                f"ngram_range {tuple(self.ngram_range)}: expected (low, high) with 1 <= low <= high"
            )
        if not all(type(text) is str for text in texts):
            # scikit-learn's own path, which names the bad value (a missing text is an error,
            # never an empty document).
            return self._hasher().transform(texts)
        if self.counts is None:
            return self._hashed_counts(texts)
        return self.counts.counts_of(texts, self.hashing_settings(), self._hashed_counts)

    def _hashed_counts(self, texts: list[str]) -> sparse.csr_matrix:
        """The counts of `texts` (strings; `_counts` checks them and the n-gram range)."""
        hasher = self._hasher()
        try:
            if self.analyzer == "char_wb" and texts:
                return _char_wb_counts(texts, hasher)
            if self.analyzer == "word":
                return self._batched(texts, _word_counts, hasher)
        except UnicodeEncodeError:  # a lone surrogate, which Arrow cannot hold
            return hasher.transform(texts)
        return self._batched(texts, _plain_counts, hasher)

    def _batched(
        self,
        texts: list[str],
        count: Callable[[list[str], HashingVectorizer], sparse.csr_matrix],
        hasher: HashingVectorizer,
    ) -> sparse.csr_matrix:
        step = max(1, int(self.batch_size))
        batches = track(
            range(0, len(texts), step),
            f"hashing {self.analyzer} n-grams of {len(texts):,} documents",
            unit="batch",
            disable=len(texts) < PROGRESS_MIN_DOCUMENTS,
        )
        blocks = [count(texts[i : i + step], hasher) for i in batches]
        if not blocks:
            return sparse.csr_matrix((0, int(self.n_features)), dtype=np.float32)
        return sparse.vstack(blocks, format="csr", dtype=np.float32)

    def fit(self, raw_documents: Iterable[str], y: Any = None) -> HashingTfidfVectorizer:
        self.fit_transform(raw_documents, y)
        return self

    def fit_transform(self, raw_documents: Iterable[str], y: Any = None) -> sparse.csr_matrix:
        self._validate_params()
        counts = self.count(raw_documents)
        n_documents = counts.shape[0]
        document_frequency = np.bincount(counts.indices, minlength=int(self.n_features))
        idf = np.log((1.0 + n_documents) / (1.0 + document_frequency)) + 1.0
        idf[document_frequency < max(1, int(self.min_df))] = 0.0
        self.idf_ = idf.astype(np.float32)
        self.n_features_in_ = 1
        return self._weight(counts)

    def transform(self, raw_documents: Iterable[str]) -> sparse.csr_matrix:
        check_is_fitted(self, "idf_")
        return self._weight(self.count(raw_documents))

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


def _hashing_blocks(
    estimator: Any, fitted: bool = False
) -> list[tuple[HashingTfidfVectorizer, str | Any]]:
    """The `HashingTfidfVectorizer` blocks of `estimator` (a ``Pipeline`` or
    ``ColumnTransformer``, nested or not), with the columns each reads; `fitted` adds the
    fitted copies a ``ColumnTransformer`` keeps (``transformers_``)."""
    steps = [estimator, *estimator.get_params(deep=True).values()]
    found = []
    for step in steps:
        if isinstance(step, ColumnTransformer):
            lists = [step.transformers, *([getattr(step, "transformers_", [])] if fitted else [])]
            found += [
                (transformer, columns)
                for blocks in lists
                for _, transformer, columns in blocks
                if isinstance(transformer, HashingTfidfVectorizer)
            ]
    return found


def with_counts(estimator: Any, counts: HashedCounts | None) -> Any:
    """`estimator` (fitted or not) with `counts` set on each of its `HashingTfidfVectorizer`
    blocks (None takes them away again); returned for chaining."""
    vectorizers = (
        [estimator]
        if isinstance(estimator, HashingTfidfVectorizer)
        else [v for v, _ in _hashing_blocks(estimator, fitted=True)]
    )
    for vectorizer in vectorizers:
        vectorizer.set_params(counts=counts)
    return estimator


#: Documents below which hashing shows no progress (a few seconds of work at most; explanations
#: score one document at a time and would print a line per call).
PROGRESS_MIN_DOCUMENTS = 20_000


def _char_wb_counts(texts: list[str], hasher: HashingVectorizer) -> sparse.csr_matrix:
    """``hasher.transform(texts)`` for the ``char_wb`` analyser, computed word type by word type.

    ``char_wb`` n-grams never cross a word (a ``str.split()`` item), so a document's counts are
    the sum of its words' counts. Each distinct word is analysed and hashed once
    (`_char_wb_per_type`: columns and counts identical to scikit-learn's), and documents
    are then a sparse product: documents x word types times word types x hash columns. Real chat
    repeats its words, so this hashes about a tenth of the n-grams the plain path hashes."""
    document, codes, words = _whitespace_words(texts)
    if not words:  # every document blank
        return sparse.csr_matrix((len(texts), hasher.n_features), dtype=np.float32)
    per_type = _char_wb_per_type(words, hasher, show_progress=len(texts) >= PROGRESS_MIN_DOCUMENTS)
    occurrences = sparse.csr_matrix(
        (
            np.ones(len(document), dtype=np.float32),
            (document, codes),
        ),
        shape=(len(texts), len(words)),
    )
    # Columns in the order the product meets them, which depends on the document alone (its
    # words' canonical codes, see `_whitespace_words`): not sorted, which would cost more than
    # the product.
    return (occurrences @ per_type).tocsr()


def _char_wb_per_type(
    words: list[str], hasher: HashingVectorizer, show_progress: bool = False
) -> sparse.csr_matrix:
    """Word types x hash columns: the ``char_wb`` n-gram counts of each word, exactly as
    ``hasher`` counts them. ASCII words (nearly all of real chat) are padded, cut into n-grams
    and hashed with MurmurHash3 in NumPy, all words at once; any other word goes through
    scikit-learn's analyser and hasher."""
    n_features = int(hasher.n_features)
    low, high = (int(n) for n in hasher.ngram_range)
    plain = np.fromiter(map(str.isascii, words), dtype=bool, count=len(words))
    rows, columns, values = [], [], []
    ascii_rows = np.flatnonzero(plain)
    if len(ascii_rows):
        padded = [f" {words[i].lower() if hasher.lowercase else words[i]} " for i in ascii_rows]
        length = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
        start = np.cumsum(length) - length
        buffer = np.frombuffer("".join(padded).encode("ascii"), dtype=np.uint8)
        # scikit-learn's char_wb: every n-gram shorter than the padded word, for n in the
        # range, and the padded word itself once when it is no longer than the longest n.
        for n in range(low, high + 1):
            longer = np.flatnonzero(length > n)
            per_word = length[longer] - n + 1
            at = _spans(start[longer], per_word)
            rows.append(np.repeat(ascii_rows[longer], per_word))
            columns.append(_murmur3_columns(buffer[at[:, None] + np.arange(n)], n_features))
            values.append(np.ones(len(at), dtype=np.float32))
        whole = np.flatnonzero(length <= high)
        rows.append(ascii_rows[whole])
        columns.append(_string_columns([padded[i] for i in whole], n_features))
        values.append(np.ones(len(whole), dtype=np.float32))
    other = np.flatnonzero(~plain)
    if len(other):
        analyse = hasher.build_analyzer()
        hashed = FeatureHasher(
            n_features=n_features, input_type="string", alternate_sign=False, dtype=np.float32
        ).transform(
            analyse(words[i])
            for i in track(other, "hashing non-ASCII words", unit="word", disable=not show_progress)
        )
        rows.append(other[np.repeat(np.arange(len(other)), np.diff(hashed.indptr))])
        columns.append(hashed.indices.astype(np.int64))
        values.append(hashed.data.astype(np.float32))  # a word's repeated n-grams, summed
    per_type = sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
        shape=(len(words), n_features),
    )
    per_type.sum_duplicates()
    return per_type


_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)


def _rotl(value: np.ndarray, bits: int) -> np.ndarray:
    return (value << np.uint32(bits)) | (value >> np.uint32(32 - bits))


def _murmur3_columns(grams: np.ndarray, n_features: int) -> np.ndarray:
    """``FeatureHasher``'s unsigned column of each row of `grams` (byte strings of one length,
    ``uint8``): MurmurHash3 x86 32-bit with seed 0, as scikit-learn's
    ``murmurhash3_bytes_s32``, then ``|h| mod n_features``."""
    count, length = grams.shape
    data = grams.astype(np.uint32)
    h = np.zeros(count, dtype=np.uint32)
    for i in range(0, length - length % 4, 4):
        k = data[:, i] | data[:, i + 1] << 8 | data[:, i + 2] << 16 | data[:, i + 3] << 24
        h = _rotl(h ^ (_rotl(k * _C1, 15) * _C2), 13) * np.uint32(5) + np.uint32(0xE6546B64)
    tail = length % 4
    if tail:
        k = np.zeros(count, dtype=np.uint32)
        for j in range(tail):
            k ^= data[:, length - tail + j] << np.uint32(8 * j)
        h ^= _rotl(k * _C1, 15) * _C2
    h ^= np.uint32(length)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return np.abs(h.view(np.int32).astype(np.int64)) % n_features


def _whitespace_words(texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The words (``str.split()`` items) of `texts`: each occurrence's document and word-type
    code, in reading order, and the word types, sorted (by UTF-8 bytes).

    Sorted types make the codes canonical: a document's words have the same relative order
    whatever the other documents of its batch, so sparse products over them visit a document's
    terms, and sum its values, in the same order (its result is the same to the last bit)."""
    words = pc.utf8_split_whitespace(pc.fill_null(arrow_strings(texts), ""))
    flat = pc.list_flatten(words)
    document = pc.list_parent_indices(words).to_numpy(zero_copy_only=False)
    kept = pc.greater(pc.binary_length(flat), 0)  # Arrow's empty items at leading/trailing space
    encoded = pc.dictionary_encode(flat.filter(kept))
    order = pc.array_sort_indices(encoded.dictionary).to_numpy(zero_copy_only=False)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return (
        document[kept.to_numpy(zero_copy_only=False)],
        rank[encoded.indices.to_numpy(zero_copy_only=False)],
        encoded.dictionary.take(order).to_pylist(),
    )


#: scikit-learn's default ``token_pattern`` (the word analyser's tokens).
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def _spans(start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The positions ``start[i] + k`` for ``k < length[i]``, for every i in order."""
    offset = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
    return np.repeat(start, length) + offset


def _string_columns(strings: list[str], n_features: int) -> np.ndarray:
    """``FeatureHasher``'s unsigned column of each string (MurmurHash3 of its UTF-8 bytes)."""
    if not strings:
        return np.empty(0, dtype=np.int64)
    hashed = FeatureHasher(n_features=n_features, input_type="string", alternate_sign=False)
    return hashed.transform([string] for string in strings).indices.astype(np.int64)


def _plain_counts(texts: list[str], hasher: HashingVectorizer) -> sparse.csr_matrix:
    return hasher.transform(texts)


def _word_tokens(words: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The tokens (`_TOKEN` matches) of each word: how many per word, their type ids in word
    order, and the types (ids are first appearances in that order)."""
    found = [_TOKEN.findall(word) for word in words]
    length = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
    flat = np.array([token for group in found for token in group], dtype=object)
    ids, types = pd.factorize(flat)
    return length, ids.astype(np.int64), list(types)


def _word_counts(texts: list[str], hasher: HashingVectorizer) -> sparse.csr_matrix:
    """``hasher.transform(texts)`` for the ``word`` analyser (scikit-learn's default token
    pattern), computed token type by token type and n-gram type by n-gram type.

    Tokens never span whitespace, and lower-casing a text lower-cases each of its words alike,
    so a document's tokens are its words' tokens in order: each distinct word is lower-cased
    and tokenised once, each distinct token and n-gram is hashed once (by scikit-learn's
    hasher: columns and counts are identical), and n-grams are formed as integer pairs within
    each document."""
    n_features = int(hasher.n_features)
    low, high = (int(n) for n in hasher.ngram_range)
    document, codes, words = _whitespace_words(texts)
    word_length, word_tokens, token_types = _word_tokens(
        [word.lower() for word in words] if hasher.lowercase else words
    )
    if not token_types:
        return sparse.csr_matrix((len(texts), n_features), dtype=np.float32)
    n_types = len(token_types)
    word_start = np.cumsum(word_length) - word_length
    # Each word occurrence expanded into its tokens, in reading order.
    length = word_length[codes]
    tokens = word_tokens[_spans(word_start[codes], length)]
    token_document = np.repeat(document, length)
    rows, columns = [], []
    if low <= 1:
        rows.append(token_document)
        columns.append(_string_columns(token_types, n_features)[tokens])
    grams, gram_types = tokens, token_types
    for n in range(2, high + 1):
        starts = len(tokens) - n + 1
        if starts <= 0:
            break
        # The n-gram at i is (the (n-1)-gram at i, the token at i+n-1), numbered densely; its
        # text is the (n-1)-gram's, a space and the token's.
        grams, pairs = pd.factorize(grams[:starts] * n_types + tokens[n - 1 :])
        previous, last = np.divmod(np.asarray(pairs, dtype=np.int64), n_types)
        gram_types = [
            f"{gram_types[a]} {token_types[b]}"
            for a, b in zip(previous.tolist(), last.tolist(), strict=True)
        ]
        if n >= low:
            within = token_document[:starts] == token_document[n - 1 :]
            rows.append(token_document[:starts][within])
            columns.append(_string_columns(gram_types, n_features)[grams[within]])
    if not rows:  # no document is long enough for the shortest n-gram
        return sparse.csr_matrix((len(texts), n_features), dtype=np.float32)
    row = np.concatenate(rows)
    counts = sparse.csr_matrix(
        (np.ones(len(row), dtype=np.float32), (row, np.concatenate(columns))),
        shape=(len(texts), n_features),
    )
    counts.sum_duplicates()  # also sorts each row's columns, as HashingVectorizer's output
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


__all__ = [
    "CompactTfidfVectorizer",
    "HashedCounts",
    "HashingTfidfVectorizer",
    "make_text_vectorizer",
    "with_counts",
]
