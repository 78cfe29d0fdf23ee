"""Cross-fitted decisions (``decision=crossfit``): the calibrator and the threshold are
fitted on out-of-fold scores of every train + validation unit, not on one small validation carve.

The units of train + validation are split into ``decision.folds`` folds of whole connected
components of the author-conversation graph (an author, and everyone who shares a conversation
with them, is in one fold only), bin-packed so that every fold gets a share of the positives and
of the units. For each fold a fresh copy of the estimator is fitted on the other folds and scores
the fold's units. The calibrator and threshold are fitted on those out-of-fold scores, and the
final model is refit on all of train + validation.

The out-of-fold scores come from K models that each saw (K-1)/K of the data; the final model saw
it all, so its raw scores can sit a little higher than the calibrator expects. That is the usual
price of cross-fitting and is small for linear models; `cv/<unit>/…` names these measures as
cross-validated, never as held out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from grooming_detect.data.schema import read_table
from grooming_detect.data.splits import conversation_components
from grooming_detect.errors import CrossfitError
from grooming_detect.models.decision import tune_lines
from grooming_detect.models.units import ModelInput, features_of
from grooming_detect.models.vectorizers import HashedCounts
from grooming_detect.stage import StageContext

log = logging.getLogger(__name__)

#: The splits cross-fitting pools; `test` is never among them.
POOL = ("train", "validation")
SELECTIONS = ("crossfit", "holdout")


@dataclass(frozen=True)
class OutOfFold:
    """The pooled unit rows, their fold and their out-of-fold raw scores."""

    units: pd.DataFrame
    folds: np.ndarray
    raw: np.ndarray
    #: The fold models (model k never saw fold k), for out-of-fold scores of anything else.
    models: list[Any]

    def fold_sizes(self, label_column: str) -> list[dict[str, int]]:
        """Units and positives per fold, for the record."""
        labels = self.units[label_column].to_numpy(dtype=bool)
        return [
            {"units": int((self.folds == k).sum()), "positive": int(labels[self.folds == k].sum())}
            for k in range(int(self.folds.max()) + 1)
        ]


def unit_components(ctx: StageContext, inputs: ModelInput, units: pd.DataFrame) -> np.ndarray:
    """The connected component of each unit row (authors through their conversations)."""
    pairs = read_table(ctx.dataset_dir, "messages", columns=["conversation_id", "author", "split"])
    pairs = pairs[pairs["split"].isin(POOL)][["conversation_id", "author"]].drop_duplicates()
    components = conversation_components(pairs)
    if inputs.unit.name == "conversation":
        of_unit = components
    else:
        of_unit = pairs.assign(c=pairs["conversation_id"].map(components)).groupby("author")["c"]
        of_unit = of_unit.first()
    labels = units[inputs.unit.id_column].map(of_unit)
    if labels.isna().any():
        missing = units.loc[labels.isna(), inputs.unit.id_column].iloc[0]
        raise CrossfitError(f"{inputs.unit.name} {missing!r} has no message in train/validation")
    return labels.to_numpy(dtype=np.int64)


def component_folds(
    components: np.ndarray, labels: np.ndarray, n_folds: int, seed: int
) -> np.ndarray:
    """Fold of each unit: whole components bin-packed into `n_folds` folds (fewer, with a
    warning, when fewer components hold a positive: every fold needs one).

    Components holding a positive go first, most positives first, each to the fold with the
    fewest positives (then the fewest units); then the others, largest first, to the fold with
    the fewest units. Ties are broken by a seeded shuffle.

    Raises:
        CrossfitError: when fewer than 2 folds are asked for, or fewer than 2 components hold
            a positive.
    """
    table = pd.DataFrame({"component": components, "positive": labels.astype(int), "units": 1})
    per = table.groupby("component")[["positive", "units"]].sum()
    n_positive_components = int((per["positive"] > 0).sum())
    if n_folds < 2 or n_positive_components < 2:
        raise CrossfitError(
            f"decision.folds={n_folds}: cross-fitting needs at least 2 folds, each with a "
            f"connected component that holds a positive; train + validation have "
            f"{n_positive_components} such components. Set decision=holdout"
        )
    if n_positive_components < n_folds:
        log.warning(
            "Design chosen for this data: cross-fitting with %d folds instead of "
            "decision.folds=%d, because only %d connected components of train + validation "
            "hold a positive",
            n_positive_components,
            n_folds,
            n_positive_components,
        )
        n_folds = n_positive_components
    order = np.random.default_rng(seed).permutation(len(per))
    per = per.iloc[order].sort_values(["positive", "units"], ascending=False, kind="stable")
    load = np.zeros((n_folds, 2), dtype=np.int64)  # positives, units
    fold_of: dict[int, int] = {}
    for component, positive, units in per.itertuples(name=None):
        key = load[:, 0] * (1 << 32) + load[:, 1] if positive else load[:, 1]
        fold = int(np.argmin(key))
        fold_of[int(component)] = fold
        load[fold] += (positive, units)
    return np.array([fold_of[int(c)] for c in components], dtype=np.int64)


def out_of_fold_scores(
    inputs: ModelInput,
    units: pd.DataFrame,
    folds: np.ndarray,
    fit: Callable[[pd.DataFrame, np.ndarray, int], Any],
) -> tuple[np.ndarray, list[Any]]:
    """Raw score of every unit row from a model fitted without its fold, and the fold models.

    Args:
        inputs: the model's input reader.
        units: the pooled unit rows.
        folds: the fold of each unit row.
        fit: ``fit(X, y, fold)`` returns a fitted estimator (with ``predict_proba``).
    """
    raw = np.full(len(units), np.nan)
    models = []
    for fold in range(int(folds.max()) + 1):
        held = folds == fold
        rows = inputs.input_rows_of(units[~held])
        model = fit(
            features_of(rows, inputs.kind),
            rows[inputs.kind.label_column].to_numpy(dtype=bool),
            fold,
        )
        raw[held] = inputs.scores_of(model, units[held])
        models.append(model)
        log.info("crossfit fold %d/%d scored %d units", fold + 1, folds.max() + 1, held.sum())
    return raw, models


def pooled_units(inputs: ModelInput) -> pd.DataFrame:
    """The unit rows of train + validation, each split checked to hold both classes."""
    return pd.concat([inputs.unit_rows(split) for split in POOL], ignore_index=True)


def pooled_counts(inputs: ModelInput, estimator: Any, *extra: pd.DataFrame) -> HashedCounts:
    """The hashed counts of every train + validation text that `estimator`'s hashing blocks
    read, and of the `extra` rows' (the refit's prefix rows): computed once and handed to each
    fold model and to the refit (`vectorizers.with_counts`), so that a cross-fit hashes each
    text once; each fit still learns its own idf."""
    rows = features_of(inputs.input_rows_of(pooled_units(inputs)), inputs.kind)
    return HashedCounts.for_estimator(estimator, pd.concat([rows, *extra], ignore_index=True))


def check_fold_shares(folds: np.ndarray, components: np.ndarray, tolerance: float) -> None:
    """Every fold's share of the units lies within `tolerance` of 1/K.

    Raises:
        CrossfitError: naming the largest connected component, when one is too big for its
            fold to be near 1/K (a giant component the data stage's author override split
            for the validation carve is still whole here).
    """
    n_folds = int(folds.max()) + 1
    shares = np.bincount(folds, minlength=n_folds) / len(folds)
    if np.abs(shares - 1 / n_folds).max() <= tolerance:
        return
    largest = int(np.bincount(pd.factorize(components)[0]).max())
    raise CrossfitError(
        f"cross-fitting folds hold {', '.join(f'{x:.2f}' for x in shares)} of the units, "
        f"expected {1 / n_folds:.2f} each within data.split_tolerance={tolerance}: the largest "
        f"connected component of train + validation holds {largest} of {len(folds)} units. "
        "Set decision=holdout"
    )


@dataclass(frozen=True)
class FoldPlan:
    """The pooled unit rows and their folds, planned before any model is fitted, so that data
    that cannot be cross-fitted is known at the start of the train stage."""

    units: pd.DataFrame
    folds: np.ndarray
    folds_requested: int

    @property
    def folds_used(self) -> int:
        return int(self.folds.max()) + 1

    @property
    def fallback(self) -> str | None:
        """``"<requested> -> <used>: <reason>"`` when fewer folds than asked could be made."""
        if self.folds_used >= self.folds_requested:
            return None
        return (
            f"{self.folds_requested} -> {self.folds_used}: only {self.folds_used} connected "
            "components of train + validation hold a positive"
        )


def plan_folds(
    ctx: StageContext, inputs: ModelInput, n_folds: int, seed: int, tolerance: float = 0.1
) -> FoldPlan:
    """The folds cross-fitting will use (`component_folds`, `check_fold_shares`); cheap: no
    model is fitted.

    Raises:
        CrossfitError: when the data cannot be cross-fitted (see those functions).
    """
    units = pooled_units(inputs)
    labels = units[inputs.unit.label_column].to_numpy(dtype=bool)
    components = unit_components(ctx, inputs, units)
    folds = component_folds(components, labels, n_folds, seed)
    check_fold_shares(folds, components, tolerance)
    return FoldPlan(units, folds, n_folds)


def without_advice(error: CrossfitError) -> str:
    """What a `CrossfitError` found, without its closing advice (for a fallback's reason)."""
    return str(error).split(". Set decision=holdout")[0].rstrip(".")


def crossfit(
    ctx: StageContext,
    inputs: ModelInput,
    n_folds: int,
    seed: int,
    fit: Callable[[pd.DataFrame, np.ndarray, int], Any],
    tolerance: float = 0.1,
    plan: FoldPlan | None = None,
) -> OutOfFold:
    """Out-of-fold raw scores of every train + validation unit (see the module docstring),
    over `plan`'s folds (planned here from `n_folds`, `seed` and `tolerance` when None)."""
    plan = plan or plan_folds(ctx, inputs, n_folds, seed, tolerance)
    raw, models = out_of_fold_scores(inputs, plan.units, plan.folds, fit)
    return OutOfFold(plan.units, plan.folds, raw, models)


def is_crossfit(meta: dict[str, Any]) -> bool:
    """Whether a model's metadata says its decisions were cross-fitted (validation is then
    training data)."""
    return (meta.get("selection") or {}).get("method") == "crossfit"


def line_threshold(
    ctx: StageContext, inputs: ModelInput, oof: OutOfFold, named: np.ndarray, calibrate: Any
) -> dict[str, Any] | None:
    """PAN-2012 Problem 2's message-score threshold, tuned for F3 on out-of-fold scores: each
    named author's messages are scored alone by the fold model that never saw the author, and
    compared with the line truth of train + validation. None (with the reason logged) where
    the model cannot score a message or there is no line truth outside test.

    Args:
        named: whether each pooled unit is named at the decision threshold (out of fold).
        calibrate: the fitted calibrator's ``transform``.
    """
    if inputs.aggregated or inputs.unit.name != "author":
        return None
    truth_path = ctx.dataset_dir / "predator_lines.parquet"
    columns = ["conversation_id", "author", "line", "text", "split"]
    messages = read_table(ctx.dataset_dir, "messages", columns=columns)
    messages = messages[messages["split"].isin(POOL)]
    truth = pd.read_parquet(truth_path) if truth_path.is_file() else pd.DataFrame()
    if not truth.empty:
        truth = truth[truth["conversation_id"].isin(set(messages["conversation_id"]))]
    if truth.empty:
        log.info("Problem 2 lines: no line truth in train + validation; nothing to tune on")
        return None
    fold_of = pd.Series(oof.folds[named], index=oof.units.loc[named, "author"].to_numpy())
    # An author on both sides of the split (data.split_override=author) is one component.
    fold_of = fold_of[~fold_of.index.duplicated()]
    candidates = messages[messages["author"].isin(fold_of.index)].reset_index(drop=True)
    if candidates.empty:
        return None
    candidate_folds = candidates["author"].map(fold_of).to_numpy()
    raw = np.empty(len(candidates))
    for fold, model in enumerate(oof.models):
        here = candidate_folds == fold
        if here.any():
            raw[here] = inputs.message_raw_scores(model, oof.units, candidates[here])
    tuned = tune_lines(candidates, calibrate(raw), truth)
    if tuned is None:
        log.info("Problem 2 lines: message scores never vary within an author; not tuned")
        return None
    fitted_on = (
        f"out-of-fold message scores of the {int(named.sum())} authors named out of fold, "
        f"against {int(tuned['truth_lines'])} truth lines of train + validation"
    )
    return {**tuned, "fitted_on": fitted_on}
