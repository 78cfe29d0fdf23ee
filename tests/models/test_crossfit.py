"""Cross-fitted decisions: grouped folds, fold isolation, and the train stage's record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import compose_config
from grooming_detect import pipeline
from grooming_detect.data.schema import read_table
from grooming_detect.models.crossfit import (
    CrossfitError,
    component_folds,
    crossfit,
    pooled_units,
    unit_components,
)
from grooming_detect.models.stage import model_input
from grooming_detect.stage import StageContext


def test_folds_keep_components_whole_and_spread_positives() -> None:
    rng = np.random.default_rng(0)
    components = rng.integers(0, 60, size=400)
    positive_components = set(range(0, 60, 6))  # 10 components hold positives
    labels = np.array([c in positive_components and rng.random() < 0.5 for c in components])
    labels[[np.flatnonzero(components == c)[0] for c in positive_components]] = True
    folds = component_folds(components, labels, 5, seed=1)
    # A component never straddles two folds.
    assert pd.Series(folds).groupby(components).nunique().max() == 1
    per_fold = pd.Series(labels).groupby(folds).sum()
    assert len(per_fold) == 5 and per_fold.min() > 0
    # Bin-packing: fold sizes within one largest component of each other.
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= np.bincount(components).max()
    # Another seed breaks ties differently but keeps the guarantees.
    other = component_folds(components, labels, 5, seed=2)
    assert pd.Series(other).groupby(components).nunique().max() == 1
    assert not np.array_equal(folds, other)


def test_fewer_positive_components_than_folds_lowers_the_folds_and_one_is_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    components = np.array([0, 0, 1, 1, 2, 3])
    labels = np.array([True, False, True, False, False, False])
    folds = component_folds(components, labels, 3, seed=0)
    assert sorted(set(folds)) == [0, 1] and "cross-fitting with 2 folds" in caplog.text
    # Each fold holds one of the two positive components.
    assert sorted(folds[labels]) == [0, 1]
    with pytest.raises(CrossfitError, match=r"have 1 such components\. Set decision=holdout"):
        component_folds(components, np.array([True, True, False, False, False, False]), 3, 0)
    with pytest.raises(CrossfitError, match="at least 2 folds"):
        component_folds(components, labels, 1, seed=0)


@pytest.fixture(scope="module")
def tiny_features(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("crossfit")
    cfg = compose_config(root, "scale=tiny", "stages=[data,features]", "progress=false")
    pipeline.run(cfg)
    return cfg, StageContext.from_config(cfg)


def spy_training_authors(inputs) -> list[set[str]]:
    """Record, fold by fold, the authors whose rows each fold model is fitted on."""
    trained_on: list[set[str]] = []
    original = inputs.input_rows_of

    def spy(units: pd.DataFrame) -> pd.DataFrame:
        trained_on.append(set(units["author"]))
        return original(units)

    inputs.input_rows_of = spy
    return trained_on


@pytest.mark.pipeline
def test_no_fold_model_sees_its_fold_or_anyone_who_shares_a_conversation(tiny_features) -> None:
    """Crossfit never lets an author's own fold see it: the rows each fold model is fitted on
    share no author and no conversation with the units it scores."""
    cfg, ctx = tiny_features
    inputs = model_input(cfg, ctx, "train")
    messages = read_table(ctx.dataset_dir, "messages", columns=["conversation_id", "author"])
    conversations_of = messages.groupby("author")["conversation_id"].agg(set)
    trained_on = spy_training_authors(inputs)
    fitted_rows: list[int] = []

    def fit(X: pd.DataFrame, y: np.ndarray, fold: int):
        from sklearn.dummy import DummyClassifier

        fitted_rows.append(len(X))
        return DummyClassifier(strategy="prior").fit(X, y)

    oof = crossfit(ctx, inputs, 3, seed=7, fit=fit)
    assert len(trained_on) == 3 and np.isfinite(oof.raw).all()
    for fold, authors in enumerate(trained_on):
        held = set(oof.units.loc[oof.folds == fold, "author"])
        assert held and not held & authors
        held_conversations = set().union(*conversations_of.loc[sorted(held)])
        seen_conversations = set().union(*conversations_of.loc[sorted(authors)])
        assert not held_conversations & seen_conversations
        # Everyone of train + validation outside the fold is trained on.
        assert authors | held == set(oof.units["author"])
    assert set(oof.units["split"]) == {"train", "validation"}
    assert fitted_rows == [len(trained_on[k]) for k in range(3)]


@pytest.mark.pipeline
def test_components_of_authors_follow_their_conversations(tiny_features) -> None:
    cfg, ctx = tiny_features
    inputs = model_input(cfg, ctx, "train")
    units = pooled_units(inputs)
    components = unit_components(ctx, inputs, units)
    messages = read_table(ctx.dataset_dir, "messages", columns=["conversation_id", "author"])
    component_of = dict(zip(units["author"], components, strict=True))
    # Two pooled authors of one conversation are in one component.
    pooled = messages[messages["author"].isin(component_of)]
    assert (
        pooled.groupby("conversation_id")["author"]
        .agg(lambda a: len({component_of[x] for x in a}))
        .max()
        == 1
    )


@pytest.mark.pipeline
def test_line_threshold_is_tuned_on_messages_scored_by_models_that_never_saw_the_author(
    tiny_features,
) -> None:
    """Problem 2 under crossfit: every named author's messages are scored by the fold model
    fitted without that author, and the threshold is the F3 optimum of those scores against
    the line truth of train + validation."""
    from grooming_detect.models.baselines import make_tfidf_logreg
    from grooming_detect.models.crossfit import line_threshold
    from grooming_detect.models.decision import ScoreCalibrator, truth_flags, tune_line_threshold

    cfg, ctx = tiny_features
    inputs = model_input(cfg, ctx, "train")
    trained_on = spy_training_authors(inputs)
    oof = crossfit(ctx, inputs, 3, 11, lambda X, y, fold: make_tfidf_logreg(min_df=1).fit(X, y))
    y = oof.units["is_predator"].to_numpy(dtype=bool)
    calibrator = ScoreCalibrator("sigmoid").fit(oof.raw, y)
    named = calibrator.transform(oof.raw) >= np.quantile(calibrator.transform(oof.raw), 0.9)
    scored: list[tuple[int, set[str], np.ndarray, pd.DataFrame]] = []
    original_messages = inputs.message_raw_scores

    def spy_messages(model, units: pd.DataFrame, messages: pd.DataFrame) -> np.ndarray:
        raw = original_messages(model, units, messages)
        scored.append((oof.models.index(model), set(messages["author"]), raw, messages))
        return raw

    inputs.message_raw_scores = spy_messages  # type: ignore[method-assign]
    tuned = line_threshold(ctx, inputs, oof, named, calibrator.transform)
    assert tuned is not None and scored
    for fold, authors, _, _ in scored:
        assert not authors & trained_on[fold], "a fold model scored an author it was fitted on"
    # The threshold is the F3 optimum of exactly these scores against the pooled line truth.
    candidates = pd.concat([m for *_, m in scored], ignore_index=True)
    scores = calibrator.transform(np.concatenate([raw for _, _, raw, _ in scored]))
    truth = pd.read_parquet(ctx.dataset_dir / "predator_lines.parquet")
    truth = truth[truth["split"].isin(["train", "validation"])]
    flags, missed = truth_flags(candidates, truth)
    assert tuned["threshold"] == tune_line_threshold(flags, scores, missed)
    assert tuned["truth_lines"] == len(truth[["conversation_id", "line"]].drop_duplicates())
