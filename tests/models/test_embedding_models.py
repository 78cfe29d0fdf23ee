"""The embedding models (``embedding_logreg``, ``sentinel``): the affinity score and its
aggregations by hand, pooling, the vector cache, the estimator contract, persistence, scoring
new messages, and a tiny pipeline run of each."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from omegaconf import OmegaConf
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
)

from conftest import recomputed_measures
from grooming_detect.config import config_dir
from grooming_detect.models import embeddings
from grooming_detect.models.embeddings import (
    COUNTERS,
    EncoderSettings,
    MessageEmbeddings,
    check_encoder,
    make_embedding_logreg,
    pool_units,
    split_units,
    unit_messages,
)
from grooming_detect.models.message_scores import MessageScoreClassifier, top_k_rank
from grooming_detect.models.persistence import TRUSTED_TYPES, load_model, save_model
from grooming_detect.models.sentinel import (
    SentinelClassifier,
    affinity_scores,
    aggregate_observations,
    make_sentinel,
)
from grooming_detect.models.units import reads_text_only

# -- the affinity score and its aggregations, by hand --------------------------------------------

POSITIVES = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
NEGATIVES = np.array([[0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
QUERIES = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]], dtype=np.float32)


def test_affinity_is_the_log_ratio_of_mean_exp_top_k_similarities() -> None:
    # k=1: q1 is nearest P (1.0) and N (0.0): log(e^1 / e^0) = 1; q2: 0.8 vs 1.0, a negative
    # log ratio, clipped to 0; q3: 0.96 vs 0.6 = 0.36.
    np.testing.assert_allclose(
        affinity_scores(QUERIES, POSITIVES, NEGATIVES, top_k=1, min_score=0.1),
        [1.0, 0.0, 0.36],
        atol=1e-6,
    )
    # k=2 (the whole index): q1 = log(((e^1 + e^0.6) / 2) / ((e^0 + e^-1) / 2)).
    expected = math.log((math.e + math.exp(0.6)) / (1 + math.exp(-1)))
    scores = affinity_scores(QUERIES, POSITIVES, NEGATIVES, top_k=2, min_score=0.1)
    assert scores[0] == pytest.approx(expected, abs=1e-6)
    # q3 = log((e^0.8 + e^0.96) / (e^0.6 + e^-0.8)), above 0.1.
    q3 = math.log((math.exp(0.8) + math.exp(0.96)) / (math.exp(0.6) + math.exp(-0.8)))
    assert scores[2] == pytest.approx(q3, abs=1e-6)
    # k larger than the index: every entry.
    np.testing.assert_allclose(
        affinity_scores(QUERIES, POSITIVES, NEGATIVES, top_k=5, min_score=0.1), scores
    )


def test_scores_under_the_minimum_are_zero() -> None:
    # q3's 0.36 is under a minimum of 0.5; q1's 1.0 is not; a negative minimum keeps the
    # clip at 0 (Sentinel zeroes ratios at or below 1 first).
    np.testing.assert_allclose(
        affinity_scores(QUERIES, POSITIVES, NEGATIVES, top_k=1, min_score=0.5),
        [1.0, 0.0, 0.0],
        atol=1e-6,
    )
    np.testing.assert_allclose(
        affinity_scores(QUERIES, POSITIVES, NEGATIVES, top_k=1, min_score=-1.0),
        [1.0, 0.0, 0.36],
        atol=1e-6,
    )


# Unit 0: ten scores (eight 0s, 1, 2); unit 1: three; unit 2: none; unit 3: ten equal scores.
SCORES = np.array([0.0] * 8 + [1.0, 2.0] + [0.5, 0.0, 0.2] + [0.3] * 10)
OWNERS = np.array([0] * 10 + [1] * 3 + [3] * 10)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        # (mean - median) / population sd = (0.3 - 0) / sqrt(0.5 - 0.09); under 10 scores or
        # sd 0: 0.
        ("skewness", [0.3 / math.sqrt(0.41), 0.0, 0.0, 0.0]),
        ("mean_of_positives", [1.5, 0.35, 0.0, 0.3]),
        ("topk_mean", [1.5, 0.35, 0.0, 0.3]),
        # Linear interpolation: unit 0 at position 8.1 of 0..9 -> 1 + 0.1 x (2 - 1); unit 1 at
        # 1.8 of [0, 0.2, 0.5] -> 0.2 + 0.8 x 0.3.
        ("p90", [1.1, 0.44, 0.0, 0.3]),
        ("max", [2.0, 0.5, 0.0, 0.3]),
    ],
)
def test_each_aggregation_by_hand(how: str, expected: list[float]) -> None:
    result = aggregate_observations(SCORES, OWNERS, 4, how, min_observations=10, top_k=2)
    np.testing.assert_allclose(result, expected, atol=1e-12)


def test_an_unknown_aggregation_is_named() -> None:
    with pytest.raises(ValueError, match=r"aggregate 'median': expected one of"):
        aggregate_observations(SCORES, OWNERS, 4, "median")


# -- messages and pooling ---------------------------------------------------------------------


def test_documents_split_back_into_messages() -> None:
    assert unit_messages("[S1] hi\n[S2] \n[S12] ok then\nplain", "\n") == [
        "hi",
        "ok then",
        "plain",
    ]
    messages, owners = split_units(["a\nb", "", "c"], "\n")
    assert messages == ["a", "b", "c"] and owners.tolist() == [0, 0, 2]


def test_pooling_by_hand() -> None:
    vectors = np.array([[1, 0], [0, 1], [0.5, 0.5], [2, -1]], dtype=np.float32)
    owners = np.array([0, 2, 0, 0])
    pooled = pool_units(vectors, owners, 3, top_k=2)
    # Unit 0: mean, max and top-2 mean per dimension; unit 1: no messages; unit 2: one message.
    np.testing.assert_allclose(pooled[0], [3.5 / 3, -0.5 / 3, 2, 0.5, 1.5, 0.25], rtol=1e-6)
    np.testing.assert_allclose(pooled[1], np.zeros(6))
    np.testing.assert_allclose(pooled[2], [0, 1, 0, 1, 0, 1])


def test_encoder_settings_defaults_are_the_config_file() -> None:
    raw = OmegaConf.to_container(
        OmegaConf.load(config_dir() / "model" / "encoder" / "default.yaml")
    )
    assert isinstance(raw, dict)
    assert raw.pop("cache_dir") == "${paths.data}/cache/embeddings"
    defaults = EncoderSettings()
    assert raw == {k: getattr(defaults, k) for k in raw}


def test_another_encoder_is_refused() -> None:
    check_encoder("abc", "abc", None)
    with pytest.raises(ValueError, match=r"fingerprint is def, but the model was fitted on .*abc"):
        check_encoder("def", "abc", "/some/encoder")


def test_a_folder_that_is_not_an_encoder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=rf"model.encoder.path='{tmp_path}': not a sentence-"):
        embeddings.resolve_encoder_path(str(tmp_path))


# -- the estimators on the packaged encoder (a few hundred messages) ----------------------------

#: Harmless chat on two topics: the "positive" units talk about baking, the others about
#: football and homework. Each unit joins a few messages, as an author document does.
BAKING = [
    "i baked bread this morning",
    "the dough needs to rise for an hour",
    "do you like banana cake",
    "my oven runs a bit hot",
    "add more flour if it is sticky",
    "cookies are cooling on the rack",
]
OTHER = [
    "did you watch the match last night",
    "our team scored in the last minute",
    "i still have maths homework to finish",
    "the science project is due friday",
    "practice starts at five",
    "the referee was terrible",
    "can you send me the reading list",
    "we won three nil",
]
SMALL_TALK = ["hi", "ok", "lol", "see you tomorrow", "how are you"]


def _units(n_units: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n_units) % 4 == 0
    texts = []
    for positive in labels:
        topic = BAKING if positive else OTHER
        picked = list(rng.choice(topic, size=3, replace=False))
        picked += list(rng.choice(SMALL_TALK, size=int(rng.integers(1, 9))))
        rng.shuffle(picked)
        texts.append("\n".join(picked))
    return pd.DataFrame({"text": texts, "f_messages": rng.random(n_units)}), labels


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("embedding-cache"))


def _embedding_logreg(cache_dir: str, design: str = "message_scores"):
    return make_embedding_logreg({"cache_dir": cache_dir}, design=design, C=1.0)


def _sentinel(cache_dir: str, **settings):
    """Sentinel with `max` per unit: these units hold fewer messages than skewness needs."""
    return make_sentinel({"cache_dir": cache_dir}, **{"top_k": 2, "aggregate": "max", **settings})


@pytest.mark.parametrize("design", ["message_scores", "pooled_vectors"])
def test_embedding_logreg_ranks_the_topic_and_caches_every_text(
    cache_dir: str, design: str
) -> None:
    X, y = _units(40, seed=0)
    before = COUNTERS.copy()
    model = _embedding_logreg(cache_dir, design).fit(X, y)
    first = COUNTERS.since(before, "t")
    assert first["t/embedding/cache_hits"] + first["t/embedding/cache_misses"] > 0
    X_new, y_new = _units(20, seed=1)
    scores = model.predict_proba(X_new)[:, 1]
    assert scores.shape == (20,) and np.all((scores > 0) & (scores < 1))
    assert scores[y_new].min() > scores[~y_new].max(), "the topic separates the units"
    assert reads_text_only(model)
    # A second fit reads every text from memory, and a fresh process (memory cleared) from
    # the disk: hits only.
    again = COUNTERS.copy()
    refit = _embedding_logreg(cache_dir, design).fit(X, y)
    second = COUNTERS.since(again, "t")
    assert second["t/embedding/cache_misses"] == 0 and second["t/embedding/cache_hits"] > 0
    embeddings.clear_memory()
    from_disk = COUNTERS.copy()
    np.testing.assert_allclose(
        _embedding_logreg(cache_dir, design).fit(X, y).predict_proba(X_new),
        refit.predict_proba(X_new),
        rtol=1e-6,
    )
    assert COUNTERS.since(from_disk, "t")["t/embedding/cache_misses"] == 0
    assert list(Path(cache_dir).glob("*/*.npz")), "shards on disk, one folder per encoder"


def test_embedding_logreg_follows_the_estimator_contract(cache_dir: str) -> None:
    check_no_attributes_set_in_init("MessageScoreClassifier", MessageScoreClassifier())
    scored = _embedding_logreg(cache_dir)
    check_get_params_invariance("MessageScoreClassifier", scored)
    assert clone(scored).get_params()["cache_dir"] == cache_dir
    for setting, message in [
        ({"top_k": 0}, r"top_k=0: expected an integer of at least 1"),
        ({"refine_iterations": -1}, r"refine_iterations=-1: expected an integer of at least 0"),
        ({"refine_percentile": 101}, r"refine_percentile=101: expected a number in \[0, 100\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            clone(scored).set_params(**setting).fit(*_units(8, seed=0))
    with pytest.raises(ValueError, match=r"design='mean': expected one of"):
        make_embedding_logreg({"cache_dir": cache_dir}, design="mean")
    model = _embedding_logreg(cache_dir, "pooled_vectors")
    check_no_attributes_set_in_init("MessageEmbeddings", MessageEmbeddings())
    check_get_params_invariance("Pipeline", model)
    cloned = clone(model)
    assert cloned.get_params()["embed__cache_dir"] == cache_dir
    with pytest.raises(ValueError, match=r"top_k=0: expected an integer of at least 1"):
        clone(model).set_params(embed__top_k=0).fit(*_units(8, seed=0))


def test_sentinel_scores_the_topic_and_explains_by_ids(cache_dir: str) -> None:
    X, y = _units(40, seed=0)
    model = _sentinel(cache_dir, negative_ratio=2).fit(X, y)
    assert len(model.negative_vectors_) == min(
        model.negatives_available_, math.ceil(2 * len(model.positive_vectors_))
    )
    X_new, y_new = _units(20, seed=1)
    proba = model.predict_proba(X_new)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-model.unit_scores(X_new))))
    assert proba[y_new, 1].min() > proba[~y_new, 1].max()
    assert reads_text_only(model)
    # A message's scores and its nearest entries: ids (SHA-256 prefixes), never text.
    scores = model.message_scores(["i baked bread this morning", "we won three nil", ""])
    assert scores[0] > 0 and scores[1] == 0 and scores[2] == 0
    near = model.neighbours(["i baked bread this morning"], n=3)
    assert list(near.columns) == ["message", "index", "rank", "row", "id", "similarity"]
    assert sorted(near["index"].unique()) == ["negative", "positive"]
    top = near[(near["index"] == "positive") & (near["rank"] == 1)].iloc[0]
    assert top["similarity"] == pytest.approx(1.0, abs=1e-5), "its own text is in the index"
    assert near["id"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert not near.isin(BAKING + OTHER + SMALL_TALK).any().any()
    # Seeded: the same negatives again.
    again = _sentinel(cache_dir, negative_ratio=2).fit(X, y)
    assert np.array_equal(again.negative_ids_, model.negative_ids_)


def test_sentinel_follows_the_estimator_contract(cache_dir: str) -> None:
    check_no_attributes_set_in_init("SentinelClassifier", SentinelClassifier())
    check_get_params_invariance("SentinelClassifier", _sentinel(cache_dir))
    assert clone(_sentinel(cache_dir)).get_params()["top_k"] == 2
    X, y = _units(8, seed=0)
    with pytest.raises(ValueError, match=r"with and without the rare class"):
        _sentinel(cache_dir).fit(X, np.ones(len(X), dtype=bool))
    # A missing or non-binary label is refused, not read as "positive" (bool(nan) is True).
    for bad in (np.where(np.arange(len(X)) == 0, np.nan, y), np.where(y, 2, 0)):
        with pytest.raises(ValueError, match=r"expected 0/1 or booleans, one per row"):
            _sentinel(cache_dir).fit(X, bad)
    with pytest.raises(ValueError, match=r"negative_ratio=0: expected a number above 0"):
        _sentinel(cache_dir, negative_ratio=0).fit(X, y)
    with pytest.raises(ValueError, match=r"aggregate 'mode'"):
        _sentinel(cache_dir, aggregate="mode").fit(X, y)


def test_top_k_rank_by_hand() -> None:
    scores = np.array([0.5, 2.0, -1.0, 3.0, 3.0, 0.0])
    owners = np.array([0, 0, 0, 1, 1, 2])
    assert top_k_rank(scores, owners).tolist() == [2, 1, 3, 1, 2, 1]


#: Two-dimensional "embeddings" of a few texts: the first axis is the risky direction.
TOY_VECTORS = {
    "risky one": [1.0, 0.0],
    "risky two": [0.9, 0.436],
    "plain one": [0.0, 1.0],
    "plain two": [-0.6, 0.8],
    "plain three": [-0.8, 0.6],
}


#: Two positive units (one risky message each, among plain ones) and two negative ones.
TOY_UNITS = [
    "risky one\nplain one\nplain two",
    "risky two\nplain three\nplain one",
    "plain one\nplain two",
    "plain three\nplain two\nplain one",
]
TOY_LABELS = np.array([True, True, False, False])


def _toy_embed(texts, settings):
    return np.array([TOY_VECTORS[t] for t in texts], dtype=np.float32), "toy-encoder"


def test_message_scores_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refinement keeps a positive unit's messages above the negatives' percentile or among
    its top `refine_keep`; a unit's score is the mean of its top-k message logits; a unit
    without messages gets the lowest training logit."""
    monkeypatch.setattr(embeddings, "embed_texts", _toy_embed)
    X = pd.DataFrame({"text": TOY_UNITS})
    y = TOY_LABELS
    model = MessageScoreClassifier(
        pooling="top_k", top_k=2, refine_iterations=1, refine_percentile=100.0, refine_keep=1
    ).fit(X, y)
    # One round: each positive unit keeps its one highest message (nothing beats the
    # negatives' maximum, as the plain texts are in both classes): the two risky ones.
    assert model.positive_messages_ == 2
    logits = {t: float(model.regression_.decision_function([v])[0]) for t, v in TOY_VECTORS.items()}
    assert logits["risky one"] > logits["plain one"] and logits["risky two"] > logits["plain two"]
    expected = [
        np.mean(sorted([logits["risky one"], logits["plain one"], logits["plain two"]])[-2:]),
        np.mean(sorted([logits["risky two"], logits["plain three"], logits["plain one"]])[-2:]),
        np.mean(sorted([logits["plain one"], logits["plain two"]])[-2:]),
    ]
    new = pd.DataFrame({"text": [*X["text"].tolist()[:3], ""]})
    scores = model.unit_scores(new)
    np.testing.assert_allclose(scores[:3], expected, rtol=1e-6)
    assert scores[3] == pytest.approx(min(logits.values()), rel=1e-6)
    np.testing.assert_allclose(model.predict_proba(new)[:, 1], 1 / (1 + np.exp(-scores)))
    np.testing.assert_allclose(
        model.message_scores(["risky one", ""]), [logits["risky one"], model.empty_score_]
    )


@pytest.mark.parametrize("model_name", ["embedding_logreg", "sentinel"])
def test_persistence_round_trip_scores_identically(
    model_name: str, cache_dir: str, tmp_path: Path
) -> None:
    from grooming_detect.scoring.messages import score_messages

    X, y = _units(40, seed=0)
    model = (_embedding_logreg if model_name == "embedding_logreg" else _sentinel)(cache_dir)
    model.fit(X, y)
    meta = {
        "unit": "author",
        "input": "author",
        "threshold": 0.5,
        "calibration": {"method": "none"},
        "features": {"lexicons": {}, "message_separator": "\n"},
    }
    save_model(model, meta, tmp_path / "model")
    types = set(sio.get_untrusted_types(file=tmp_path / "model" / "model.skops"))
    assert types <= TRUSTED_TYPES, types - TRUSTED_TYPES
    loaded, loaded_meta = load_model(tmp_path / "model")
    X_new, _ = _units(20, seed=1)
    assert np.array_equal(loaded.predict_proba(X_new), model.predict_proba(X_new))
    # New messages through the scorers' shared step: every author and conversation scored.
    rows = [
        ("c1", 1, "ann", "i baked bread this morning"),
        ("c1", 2, "bob", "nice, what kind"),
        ("c1", 3, "ann", "banana cake next"),
        ("c2", 1, "cy", "did you watch the match"),
        ("c2", 2, "di", ""),
    ]
    messages = pd.DataFrame(rows, columns=["conversation_id", "line", "author", "text"])
    authors, conversations = score_messages(
        loaded, loaded_meta, messages.assign(time=None, split="score"), {}, "\n"
    )
    assert sorted(authors["author"]) == ["ann", "bob", "cy", "di"]
    assert authors["score"].between(0, 1).all() and len(conversations) == 2
    by_author = authors.set_index("author")["score"]
    assert by_author["ann"] > by_author["cy"]


# -- a tiny pipeline run of each ----------------------------------------------------------------


@pytest.mark.pipeline
@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["embedding_logreg", "sentinel"])
def test_tiny_pipeline_run(model_name: str, tiny_sentence_encoder: Path, compose_cfg) -> None:
    """data -> report on the tiny corpus with a tiny random sentence encoder; the logged
    measures are those of the score tables; embedding metrics are logged; the model folder and
    its logged MLflow model score a chat log (batch and stream)."""
    import json

    import mlflow
    from mlflow import MlflowClient

    from grooming_detect import pipeline
    from grooming_detect.scoring.batch import score_file
    from grooming_detect.scoring.cli import main as score_main
    from grooming_detect.stage import latest_dir

    cfg = compose_cfg(
        "scale=tiny",
        f"model={model_name}",
        f"model.encoder.path={tiny_sentence_encoder}",
        "model.encoder.max_seq_length=64",
        "evaluate.bootstrap.n_resamples=20",
        "evaluate.top_k=5",
        "progress=false",
    )
    result = pipeline.run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    runs = {r.data.tags.get("stage"): r for r in client.search_runs([result.experiment_id])}
    evaluated = runs["evaluate"].data.metrics
    expected = recomputed_measures(latest_dir(cfg.paths.run_dir, "evaluation"), "test", "author")
    for name in ("precision", "recall", "f0_5", "pr_auc", "roc_auc"):
        assert evaluated[f"test/author/{name}"] == pytest.approx(expected[name], abs=1e-12)
    trained = runs["train"].data.metrics
    # Misses on a first run in this process, hits across the folds and the refit (a second
    # model in the same process reads every text from memory).
    assert trained["train/embedding/cache_hits"] > 0
    assert "train/embedding/messages_per_second" in trained
    assert evaluated["evaluate/embedding/cache_hits"] > 0
    model_dir = latest_dir(cfg.paths.run_dir, "model")
    assert json.loads((model_dir / "model.json").read_text())["format"] == "skops"
    chat = Path(cfg.paths.root) / "chat.csv"
    pd.DataFrame(
        {
            "conversation_id": ["c1", "c1", "c1", "c2"],
            "author": ["a", "b", "a", "c"],
            "text": ["how was school", "ok", "see you at practice", "gg"],
        }
    ).to_csv(chat, index=False)
    mlflow.set_tracking_uri(cfg.tracking.uri)
    for source in (str(model_dir), client.get_run(result.run_id).data.tags["model_uri"]):
        authors_csv, _ = score_file(source, chat, Path(cfg.paths.root) / "scores")
        scored = pd.read_csv(authors_csv)
        assert sorted(scored["author"]) == ["a", "b", "c"] and scored["score"].between(0, 1).all()
    out = Path(cfg.paths.root) / "stream"
    assert score_main([str(chat), "--model", str(model_dir), "--stream", "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "stream.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(0 <= r["score"] <= 1 for r in records)


def test_refinement_keeps_messages_above_the_negatives_percentile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a percentile cut that some of a positive unit's messages beat, those stay positive
    besides its `refine_keep` highest: recomputed from the first regression's scores."""
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setattr(embeddings, "embed_texts", _toy_embed)
    units, y = TOY_UNITS, TOY_LABELS
    model = MessageScoreClassifier(
        top_k=2, refine_iterations=1, refine_percentile=50.0, refine_keep=1
    ).fit(pd.DataFrame({"text": units}), y)
    messages, owners = split_units(units, "\n")
    vectors = np.array([TOY_VECTORS[m] for m in messages], dtype=np.float32)
    labels = y[owners]
    first = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=0)
    scores = first.fit(vectors, labels).decision_function(vectors)
    cut = np.percentile(scores[~labels], 50.0)
    best = {o: max(scores[owners == o]) for o in set(owners.tolist())}
    kept = [
        labels[i] and (scores[i] > cut or scores[i] == best[owners[i]])
        for i in range(len(messages))
    ]
    assert model.positive_messages_ == sum(kept)
    assert sum(kept) > 2, "the percentile branch keeps more than each unit's best message"


def test_score_profile_by_hand() -> None:
    """Top-k means (all messages when fewer), the mean, log count, log1p count above each
    message's cut and the share above; a unit without messages gets the empty profile."""
    from grooming_detect.models.message_scores import PROFILE_COLUMNS, score_profiles

    scores = np.array([1.0, 4.0, -2.0, 3.0, 0.5, 0.0])
    owners = np.array([0, 0, 0, 0, 1, 1])
    cuts = np.array([2.0, 2.0, 2.0, 2.0, 0.25, 0.25])
    empty = [-9.0] * 6 + [0.0, 0.0, 0.0]
    profiles = score_profiles(scores, owners, cuts, 3, empty)
    assert profiles.shape == (3, len(PROFILE_COLUMNS))
    # Unit 0, sorted 4, 3, 1, -2: top 1 = 4, top 2 = 3.5, top 3 = 8/3, top 5 and 10 = all = 1.5.
    np.testing.assert_allclose(
        profiles[0], [4.0, 3.5, 8 / 3, 1.5, 1.5, 1.5, math.log(4), math.log(3), 2 / 4]
    )
    np.testing.assert_allclose(
        profiles[1], [0.5, 0.25, 0.25, 0.25, 0.25, 0.25, math.log(2), math.log(2), 1 / 2]
    )
    assert profiles[2].tolist() == empty


def test_profile_pooling_is_a_regression_on_out_of_fold_profiles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pooling regression is fitted on profiles made by message regressions that did not
    see the unit (recomputed here fold by fold), and scores new units on the full regression's
    profile; too few rows of a class for two folds is refused by name."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    from grooming_detect.models.message_scores import score_profiles

    monkeypatch.setattr(embeddings, "embed_texts", _toy_embed)
    units = TOY_UNITS * 2
    y = np.concatenate([TOY_LABELS, TOY_LABELS])
    settings = dict(refine_iterations=0, profile_folds=2, random_state=3)
    model = MessageScoreClassifier(**settings).fit(pd.DataFrame({"text": units}), y)
    messages, owners = split_units(units, "\n")
    vectors = np.array([TOY_VECTORS[m] for m in messages], dtype=np.float32)
    regression = dict(C=1.0, class_weight="balanced", max_iter=2000, random_state=3)
    scores, cuts = np.empty(len(messages)), np.empty(len(messages))
    folds = StratifiedKFold(2, shuffle=True, random_state=3).split(np.zeros(len(y)), y)
    for train_units, held_units in folds:
        train, held = np.isin(owners, train_units), np.isin(owners, held_units)
        fold = LogisticRegression(**regression).fit(vectors[train], y[owners[train]])
        scores[held] = fold.decision_function(vectors[held])
        negatives = fold.decision_function(vectors[train])[~y[owners[train]]]
        cuts[held] = np.percentile(negatives, 95.0)
    profiles = score_profiles(scores, owners, cuts, len(y), model.empty_profile())
    scaler = StandardScaler().fit(profiles)
    pooling = LogisticRegression(C=1.0, max_iter=2000, random_state=3)
    pooling.fit(scaler.transform(profiles), y)
    np.testing.assert_allclose(model.profile_regression_.coef_, pooling.coef_, rtol=1e-6)
    # New units: the full regression's logits, profiled with its own cut, then the pooling.
    full = LogisticRegression(**regression).fit(vectors, y[owners])
    new = ["risky one\nplain two", "plain three", ""]
    new_messages, new_owners = split_units(new, "\n")
    new_scores = full.decision_function([TOY_VECTORS[m] for m in new_messages])
    cut = np.percentile(full.decision_function(vectors)[~y[owners]], 95.0)
    new_profiles = score_profiles(
        new_scores, new_owners, np.full(len(new_scores), cut), 3, model.empty_profile()
    )
    expected = pooling.decision_function(scaler.transform(new_profiles))
    np.testing.assert_allclose(model.unit_scores(pd.Series(new)), expected, rtol=1e-6)


def test_profile_pooling_falls_back_to_top_k_on_too_few_rows(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Fewer than 2 positive (or negative) rows *with messages*: no out-of-fold profiles, so
    the fit pools by top_k, says so, and scores exactly as a top_k model; a positive row
    without messages does not count (it gets the empty profile)."""
    monkeypatch.setattr(embeddings, "embed_texts", _toy_embed)
    settings = dict(refine_iterations=0, profile_folds=2, top_k=2, random_state=3)
    few = pd.DataFrame({"text": [*TOY_UNITS[1:], ""]})  # one positive with messages, one empty
    y = np.array([True, False, False, True])
    with caplog.at_level("WARNING"):
        model = MessageScoreClassifier(**settings).fit(few, y)
    assert model.pooling_ == "top_k" and not hasattr(model, "profile_regression_")
    assert "1 positive and 2 negative rows with messages" in caplog.text
    top_k = MessageScoreClassifier(**settings, pooling="top_k").fit(few, y)
    np.testing.assert_array_equal(model.unit_scores(few), top_k.unit_scores(few))
    # Enough rows: the profile, and a refit on too few drops the earlier fit's profile.
    model.fit(pd.DataFrame({"text": TOY_UNITS * 2}), np.concatenate([TOY_LABELS, TOY_LABELS]))
    assert model.pooling_ == "profile" and hasattr(model, "profile_regression_")
    model.fit(few, y)
    assert model.pooling_ == "top_k" and not hasattr(model, "profile_regression_")


@pytest.mark.parametrize("how", ["skewness", "mean_of_positives", "topk_mean", "p90", "max"])
def test_one_unit_aggregation_equals_the_grouped_one(how: str) -> None:
    """The stream's numpy aggregation of one unit equals the batch's grouped one."""
    from grooming_detect.models.sentinel import aggregate_one

    rng = np.random.default_rng(7)
    for n in (0, 1, 3, 9, 10, 11, 40):
        scores = np.where(rng.random(n) < 0.6, 0.0, rng.random(n))
        grouped = aggregate_observations(scores, np.zeros(n, dtype=np.int64), 1, how, 10, 3)
        assert aggregate_one(scores, how, 10, 3) == pytest.approx(grouped[0], abs=1e-12)
    assert aggregate_one(np.zeros(12), "skewness") == 0.0  # sd 0


def test_a_model_saved_before_the_profile_pooling_loads_as_top_k(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A fitted top-k model of the previous release (no pooling, pooling_, profile_* or cut_)
    loads and scores exactly as it did, in batch and in the stream."""
    from grooming_detect.scoring.score_streams import MessageScorePrefixScorer

    monkeypatch.setattr(embeddings, "embed_texts", _toy_embed)
    X = pd.DataFrame({"text": TOY_UNITS})
    model = MessageScoreClassifier(pooling="top_k", top_k=2).fit(X, TOY_LABELS)
    expected = model.unit_scores(X)
    for name in ("pooling", "profile_folds", "profile_C", "pooling_", "cut_"):
        del model.__dict__[name]
    meta = {"unit": "author", "threshold": 0.5, "calibration": {"method": "none"}}
    save_model(model, meta, tmp_path / "old")
    loaded, _ = load_model(tmp_path / "old")
    assert loaded.pooling == loaded.pooling_ == "top_k"
    np.testing.assert_array_equal(loaded.unit_scores(X), expected)
    streamed = MessageScorePrefixScorer.from_model(loaded, "\n").score_stream(
        TOY_UNITS[0].split("\n")
    )
    assert streamed[-1] == pytest.approx(1 / (1 + np.exp(-expected[0])), abs=1e-9)
