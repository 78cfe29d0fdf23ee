"""TF-IDF vectorisers at a real vocabulary: hashed TF-IDF equals exact TF-IDF without
collisions, and saved models stay linear in size with no NumPy scalars in a vocabulary."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.feature_extraction.text import TfidfVectorizer

from grooming_detect.evaluation.error_analysis import linear_explanations
from grooming_detect.models.baselines import make_tfidf_logreg
from grooming_detect.models.persistence import load_model, save_model
from grooming_detect.models.vectorizers import CompactTfidfVectorizer, HashingTfidfVectorizer

DOCS = [
    "how old r u",
    "we should meet at the park",
    "the park is nice today",
    "how was school today",
    "nice, the park again",
]


def _random_documents(n_terms: int, n_documents: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    terms = [f"w{index:06d}" for index in range(n_terms)]
    # Every term appears in two documents (min_df=2 keeps them all).
    documents: list[list[str]] = [[] for _ in range(n_documents)]
    for term in terms:
        for document in rng.sample(range(n_documents), 2):
            documents[document].append(term)
    return [" ".join(words) for words in documents]


def test_hashed_tfidf_equals_exact_tfidf_without_collisions() -> None:
    hashed = HashingTfidfVectorizer(ngram_range=(1, 2), n_features=2**22, min_df=1)
    exact = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32)
    ours = hashed.fit_transform(DOCS).toarray()
    theirs = exact.fit_transform(DOCS).toarray()
    for row_ours, row_theirs in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(
            np.sort(row_ours[row_ours > 0]), np.sort(row_theirs[row_theirs > 0]), rtol=1e-5
        )
    assert hashed.idf_.dtype == np.float32


def test_hashed_min_df_drops_rare_terms() -> None:
    vectorizer = HashingTfidfVectorizer(n_features=2**20, min_df=2).fit(DOCS)
    matrix = vectorizer.transform(["park zebra"])
    names = vectorizer.term_map(["park zebra"], matrix.indices)
    assert set(names.values()) == {"park"}, "zebra (seen in no document) carries no weight"


def test_term_map_names_only_the_asked_columns() -> None:
    vectorizer = HashingTfidfVectorizer(n_features=2**20).fit(DOCS)
    column = vectorizer.transform(["park"]).indices[0]
    assert vectorizer.term_map(DOCS, [column]) == {int(column): "park"}


def test_explanations_name_hashed_terms() -> None:
    frame = pd.DataFrame({"text": DOCS * 4})
    labels = np.array([True, True, False, False, False] * 4)
    model = make_tfidf_logreg(min_df=1, max_iter=200).fit(frame, labels)
    explanation = linear_explanations(model, frame.head(2), top=3)[1]
    assert explanation and "column " not in explanation
    assert any(
        part.split(" (+")[0].startswith(("word__", "char__")) for part in explanation.split("; ")
    )


def test_compact_vocabulary_holds_plain_ints() -> None:
    vectorizer = CompactTfidfVectorizer(max_features=10).fit(DOCS)
    assert vectorizer.vocabulary_
    assert all(type(index) is int for index in vectorizer.vocabulary_.values())


@pytest.mark.parametrize("vectorizer", ["hashing", "vocabulary"])
def test_default_model_keeps_no_numpy_scalars(vectorizer: str) -> None:
    frame = pd.DataFrame({"text": _random_documents(3000, 200, seed=0)})
    labels = np.arange(200) % 5 == 0
    model = make_tfidf_logreg(vectorizer=vectorizer, max_features=2000, max_iter=100)
    model.fit(frame, labels)
    for _, block, _ in model.named_steps["features"].transformers_:
        vocabulary = getattr(block, "vocabulary_", None)
        if vectorizer == "hashing":
            assert vocabulary is None, "hashed blocks keep no vocabulary"
        else:
            assert vocabulary and all(type(v) is int for v in vocabulary.values())


def test_saved_size_grows_linearly_with_the_vocabulary(tmp_path: Path) -> None:
    sizes = {}
    for n_terms in (20_000, 40_000):
        frame = pd.DataFrame({"text": _random_documents(n_terms, 400, seed=1)})
        labels = np.arange(400) % 4 == 0
        model = make_tfidf_logreg(
            vectorizer="vocabulary", word_ngram_range=(1, 1), char_ngram_range=(2, 2), max_iter=50
        ).fit(frame, labels)
        words = model.named_steps["features"].named_transformers_["word"].vocabulary_
        assert len(words) == n_terms
        path = tmp_path / f"model-{n_terms}.skops"
        sio.dump(model, path)
        sizes[n_terms] = path.stat().st_size
    assert 1.6 < sizes[40_000] / sizes[20_000] < 2.4, sizes


def test_default_model_round_trips_through_persistence(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": DOCS * 4})
    labels = np.array([True, False, False, True, False] * 4)
    model = make_tfidf_logreg(min_df=1, max_iter=100).fit(frame, labels)
    save_model(model, {"threshold": 0.5}, tmp_path)
    loaded, meta = load_model(tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(frame), model.predict_proba(frame))
    assert meta["format"] == "skops"
    # A hashed model is small: two float32 idf arrays and sparse-friendly coefficients.
    assert (tmp_path / "model.skops").stat().st_size < 5_000_000


def test_terms_of_one_author_are_withheld_on_request() -> None:
    frame = pd.DataFrame({"text": [*DOCS, "zyxwv park"] * 4})
    labels = np.array([True, True, False, False, False, True] * 4)
    model = make_tfidf_logreg(min_df=1, max_iter=200).fit(frame, labels)
    # "zyxwv" is in one reference row only; "park" in many.
    reference = pd.DataFrame({"text": [*DOCS, "zyxwv park"]})
    open_ = linear_explanations(model, frame.tail(1), top=50)[0]
    private = linear_explanations(
        model, frame.tail(1), top=50, reference=reference, min_term_rows=2
    )[0]
    assert "word__zyxwv" in open_ and "char__" in open_
    assert "word__zyxwv" not in private and "word__park" in private
    # Character n-grams are fragments of words: summed, never named one by one.
    assert "char__" not in private and "character n-grams" in private


def _assert_equal_to_scikit_learn(count: Any, texts: list[str], **settings: Any) -> Any:
    """`count(texts, hasher)` has exactly the columns and counts of ``hasher.transform``."""
    from sklearn.feature_extraction.text import HashingVectorizer

    hasher = HashingVectorizer(
        n_features=2**18, alternate_sign=False, norm=None, dtype=np.float32, **settings
    )
    expected = hasher.transform(texts)
    got = count(texts, hasher)
    assert got.shape == expected.shape
    assert (got != expected).nnz == 0
    return hasher


@pytest.mark.parametrize("ngram_range", [(2, 5), (1, 3), (4, 4), (3, 9)])
def test_char_wb_counts_by_word_type_equal_scikit_learn(ngram_range: tuple[int, int]) -> None:
    """The word-type path hashes each distinct word once; counts and columns stay exactly
    scikit-learn's, on Unicode case, odd whitespace, repeated words and empty documents."""

    from grooming_detect.models.vectorizers import _char_wb_counts

    texts = [
        "",
        "  lead and trail  ",
        "hi hi hi HI Hi",
        "\u0130stanbul \u017fecret K\u212a",
        "tab\there\x1cfile\u3000wide\u00a0nbsp",
        "a",
        "\U0001f600 sooo gooood",
        "word " * 300,
    ]
    rng = random.Random(11)
    printable = "abcXYZ019_-'!?.,:;()[]{}<>@#$%^&*+=/\\|~`\""
    texts += [
        " ".join(
            "".join(rng.choice(printable) for _ in range(rng.randrange(1, 13)))
            for _ in range(rng.randrange(0, 30))
        )
        for _ in range(300)
    ]
    _assert_equal_to_scikit_learn(
        _char_wb_counts, texts, analyzer="char_wb", ngram_range=ngram_range
    )


def test_char_wb_on_blank_documents_gives_empty_rows() -> None:
    vectorizer = HashingTfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3)).fit(["hi there"])
    assert vectorizer.transform(["", "   "]).nnz == 0
    assert vectorizer.transform(["", "   "]).shape == (2, vectorizer.n_features)


def test_shared_counts_hash_each_text_once_and_change_no_result(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Cross-fitting fits fold models on subsets of the same documents, handing each the
    counts hashed once (`HashedCounts`, `with_counts`): the matrices and scores equal those
    computed without them, each distinct text is hashed once per block setting (although every
    fit and transform weights its counts in place), texts outside the counts are hashed as
    usual, and the counts are neither cloned nor saved with the model."""
    from sklearn.base import clone

    from grooming_detect.models.vectorizers import HashedCounts, with_counts

    documents = _random_documents(500, 60, seed=3) + DOCS
    frame = pd.DataFrame({"text": documents})
    labels = np.arange(len(documents)) % 4 == 0
    subsets = [np.arange(len(documents)) % 3 != k for k in range(3)]
    unseen = pd.DataFrame({"text": ["never seen before", documents[0], "nor this one"]})

    def fits(counts: HashedCounts | None) -> list[np.ndarray]:
        out = []
        for rows in subsets:
            model = with_counts(make_tfidf_logreg(min_df=1, max_iter=50), counts)
            model.fit(frame[rows], labels[rows])
            out.append(model.named_steps["features"].transform(frame[~rows]).toarray())
            out.append(model.predict_proba(frame)[:, 1])
            out.append(model.predict_proba(unseen)[:, 1])
        return out

    expected = fits(None)
    hashed: list[str] = []
    original = HashingTfidfVectorizer._hashed_counts

    def spy(self: HashingTfidfVectorizer, texts: list[str]) -> object:
        hashed.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(HashingTfidfVectorizer, "_hashed_counts", spy)
    counts = HashedCounts.for_estimator(make_tfidf_logreg(), frame)
    # Two blocks (word and char), each hashing every distinct text once.
    assert sorted(hashed) == sorted(list(dict.fromkeys(documents)) * 2)
    hashed.clear()
    got = fits(counts)
    for ours, theirs in zip(got, expected, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # Only the texts the counts do not hold, once per block and scoring.
    assert set(hashed) == {"never seen before", "nor this one"}

    model = with_counts(make_tfidf_logreg(min_df=1, max_iter=50), counts).fit(frame, labels)
    assert clone(model).get_params()["features__word__counts"] is counts  # shared, not copied
    save_model(model, {"threshold": 0.5}, tmp_path)
    loaded, _ = load_model(tmp_path)
    blocks = loaded.named_steps["features"].named_transformers_
    assert blocks["word"].counts is None and blocks["char"].counts is None
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    with_counts(model, None)
    fitted = model.named_steps["features"].named_transformers_
    assert fitted["word"].counts is None and fitted["char"].counts is None


@pytest.mark.parametrize(
    ("ngram_range", "lowercase"), [((1, 2), True), ((1, 3), True), ((2, 3), False), ((1, 1), True)]
)
def test_word_counts_by_token_type_equal_scikit_learn(
    ngram_range: tuple[int, int], lowercase: bool
) -> None:
    """The word path tokenises each distinct word once and forms n-grams as integer pairs;
    counts and columns stay exactly scikit-learn's, on Unicode case (dotted I, final sigma,
    long s, Kelvin sign), punctuation inside words, odd whitespace, one-letter words, repeated
    n-grams and documents with no token."""

    from grooming_detect.models.vectorizers import _word_counts

    texts = [
        "",
        "  lead and trail  ",
        "hi hi hi HI Hi hi hi",
        "\u0130stanbul \u017fecret K\u212a \u03a3\u039f\u03a3 \u039f\u03a3\u03a3\u03a3a",
        "tab\there\x1cfile\u3000wide\u00a0nbsp\u2028line",
        "a b c",
        "don't-stop_me now!!! 2day u r 18? ok.ok",
        "\U0001f600 sooo gooood \u00e9t\u00e9 caf\u00e9\u0301",
        "word " * 300,
        "x",
        "end of one",
        "start of two",
    ]
    rng = random.Random(7)
    alphabet = "ab \u0130\u03a3\u00e9_-'1\t\u3000\u0301x"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(40))) for _ in range(200)]
    hasher = _assert_equal_to_scikit_learn(
        _word_counts, texts, ngram_range=ngram_range, lowercase=lowercase
    )
    assert _word_counts(["", "a"], hasher).nnz == 0


def test_compact_logistic_regression_equals_the_full_width_fit() -> None:
    """Solving over the filled columns only gives scikit-learn's model: the same coefficients
    (zero on the empty columns) and probabilities, on the full-width matrix."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    from grooming_detect.models.baselines import CompactLogisticRegression

    rng = np.random.default_rng(0)
    X = sparse.random(300, 5000, density=0.004, format="csr", random_state=1, dtype=np.float64)
    y = np.asarray(X[:, :40].sum(axis=1)).ravel() + rng.normal(0, 0.05, 300) > 0.05
    settings = {"C": 4.0, "class_weight": "balanced", "max_iter": 2000, "tol": 1e-10}
    ours = CompactLogisticRegression(**settings).fit(X, y)
    theirs = LogisticRegression(**settings).fit(X, y)
    assert ours.coef_.shape == theirs.coef_.shape == (1, 5000)
    empty = np.asarray(X.sum(axis=0)).ravel() == 0
    assert empty.any() and (ours.coef_[0, empty] == 0).all()
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-5)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)


def test_numpy_murmurhash_equals_scikit_learn_on_every_length() -> None:
    from sklearn.feature_extraction import FeatureHasher

    from grooming_detect.models.vectorizers import _murmur3_columns

    rng = np.random.default_rng(5)
    for length in range(1, 14):
        grams = rng.integers(0, 128, size=(500, length), dtype=np.uint8)
        strings = [bytes(row).decode("ascii") for row in grams]
        expected = FeatureHasher(
            n_features=2**20, input_type="string", alternate_sign=False
        ).transform([s] for s in strings)
        np.testing.assert_array_equal(_murmur3_columns(grams, 2**20), expected.indices)


def test_hostile_documents_hash_as_scikit_learn_or_fail_clearly() -> None:
    """Documents too short for the shortest n-gram, one huge token (hashed one by one, not
    through the per-length NumPy path), a lone surrogate between word tokens (which Arrow
    cannot hold): the same counts as scikit-learn; a missing text or an impossible n-gram range
    is an error, and so is a surrogate inside a character n-gram, as in scikit-learn."""

    def both(texts: list[str], **settings: object) -> tuple:
        ours = HashingTfidfVectorizer(n_features=2**18, **settings)  # type: ignore[arg-type]
        hasher = ours._hasher()
        return ours._hashed_counts(texts), hasher.transform(texts)

    for texts, settings in [
        (["hello", "x y", ""], {"ngram_range": (2, 3)}),
        (["x" * 100_000 + " hello " + "y" * 100_001 + " hello"], {"ngram_range": (1, 2)}),
        (["ab\ud800cd ef", "ok ok"], {"ngram_range": (1, 2)}),
    ]:
        got, expected = both(texts, **settings)
        assert got.shape == expected.shape and (got != expected).nnz == 0, (texts[0][:20], settings)
    with pytest.raises(UnicodeEncodeError):  # as scikit-learn: the n-gram holds the surrogate
        HashingTfidfVectorizer(analyzer="char_wb").fit_transform(["ab\ud800cd"])
    with pytest.raises(ValueError, match="invalid document"):
        HashingTfidfVectorizer().fit_transform(["fine", np.nan])
    with pytest.raises(ValueError, match="ngram_range"):
        HashingTfidfVectorizer(ngram_range=(3, 2)).fit_transform(["a b c d"])
    with pytest.raises(ValueError, match="ngram_range"):
        HashingTfidfVectorizer(analyzer="char_wb", ngram_range=(0, 2)).fit_transform(["abc"])


def test_vocabulary_is_saved_packed_and_restored_exactly(tmp_path: Path) -> None:
    """The vocabulary goes to the skops file as three arrays (one member each, not one node
    per term) and comes back as the same mapping of plain ints; saving leaves the live
    estimator untouched."""
    documents = [*DOCS, "h\u00e9llo w\u00f6rld \u4f60\u597d park", "\U0001f600 emoji park"] * 3
    frame = pd.DataFrame({"text": documents})
    labels = np.arange(len(documents)) % 2 == 0
    model = make_tfidf_logreg(vectorizer="vocabulary", min_df=1, max_iter=50).fit(frame, labels)
    blocks = model.named_steps["features"].named_transformers_
    before = {name: dict(blocks[name].vocabulary_) for name in ("word", "char")}
    save_model(model, {"threshold": 0.5}, tmp_path)
    assert {name: blocks[name].vocabulary_ for name in before} == before, "saving changed it"
    import zipfile

    with zipfile.ZipFile(tmp_path / "model.skops") as archive:
        schema = archive.read("schema.json").decode("utf-8")
    assert "vocabulary_packed_" in schema and '"park"' not in schema, "terms are not dict nodes"
    loaded, _ = load_model(tmp_path)
    for name, vocabulary in before.items():
        restored = loaded.named_steps["features"].named_transformers_[name].vocabulary_
        assert restored == vocabulary and all(type(v) is int for v in restored.values())
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))


def test_a_model_saved_before_shared_counts_existed_still_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model files written before `HashingTfidfVectorizer` had its `counts` parameter hold no
    such attribute; they load and score as they did."""
    texts = ["hello there how old are you", "nice day for a walk", "where do you live"]
    vectorizer = HashingTfidfVectorizer(n_features=2**10).fit(texts)
    expected = vectorizer.transform(texts).toarray()
    path = tmp_path / "old.skops"
    original = HashingTfidfVectorizer.__getstate__

    def without_counts(self: HashingTfidfVectorizer) -> dict[str, Any]:
        state = original(self)
        del state["counts"]
        return state

    monkeypatch.setattr(HashingTfidfVectorizer, "__getstate__", without_counts)
    sio.dump(vectorizer, path)
    monkeypatch.undo()
    loaded = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    assert loaded.counts is None
    np.testing.assert_array_equal(loaded.transform(texts).toarray(), expected)
