"""The train stage: fit the configured model, calibrate it and tune its threshold, never on `test`.

``decision=holdout`` fits the model on `train` and the calibrator and threshold on
`validation`. ``crossfit`` (the default for the scikit-learn models) fits them on out-of-fold
scores of grouped folds over train + validation and refits the model on both
(`grooming_detect.models.crossfit`)."""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from grooming_detect import tracking
from grooming_detect.config import to_dict
from grooming_detect.errors import CrossfitError
from grooming_detect.io import read_json
from grooming_detect.models.crossfit import (
    POOL,
    FoldPlan,
    crossfit,
    line_threshold,
    plan_folds,
    pooled_counts,
    without_advice,
)
from grooming_detect.models.decision import (
    ScoreCalibrator,
    ranking_scores,
    scores_at_threshold,
    tune_threshold,
)
from grooming_detect.models.embeddings import COUNTERS as EMBEDDING_COUNTERS
from grooming_detect.models.embeddings import uses_encoder
from grooming_detect.models.persistence import MODEL_FILE, save_model, trusted_types
from grooming_detect.models.units import ModelInput, resolve_input, unit_of
from grooming_detect.models.vectorizers import HashedCounts, with_counts
from grooming_detect.profiling import peak_rss_mib
from grooming_detect.scoring.pyfunc import log_pyfunc_model
from grooming_detect.stage import StageContext, StageResult, fallback_tags

log = logging.getLogger(__name__)


def subsample_negatives(
    X: pd.DataFrame, y: np.ndarray, negatives_per_positive: float | None, seed: int
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """Keep every positive and at most `negatives_per_positive` × positives negatives (seeded);
    None keeps everything. Returns what was kept, for the record."""
    n_positive, n_negative = int(y.sum()), int((~y).sum())
    record = {
        "negatives_per_positive": negatives_per_positive,
        "positives": n_positive,
        "negatives_available": n_negative,
    }
    if negatives_per_positive is None or n_negative <= negatives_per_positive * n_positive:
        record["negatives_kept"] = n_negative
        return X, y, record
    rng = np.random.default_rng(seed)
    keep_negative = rng.choice(
        np.flatnonzero(~y), size=int(negatives_per_positive * n_positive), replace=False
    )
    keep = np.sort(np.concatenate([np.flatnonzero(y), keep_negative]))
    record["negatives_kept"] = len(keep_negative)
    return X.iloc[keep].reset_index(drop=True), y[keep], record


#: Joins a conversation id (or author) and a prefix length in the ids of prefix rows.
_PREFIX_JOIN = "\x1f"


def _prefix_pieces(
    messages: pd.DataFrame, per_conversation: int, rng: np.random.Generator
) -> list[pd.DataFrame]:
    """Up to `per_conversation` distinct prefixes of each conversation of `messages` (sorted by
    conversation and line), each renamed as a conversation of its own: ``<id>\x1f<k>``, its
    authors ``<author>\x1f<id>\x1f<k>``."""
    position = messages.groupby("conversation_id", sort=False).cumcount().to_numpy() + 1
    lengths = messages.groupby("conversation_id", sort=False)["line"].transform("size").to_numpy()
    pieces = []
    for start in np.flatnonzero(position == 1):
        n = int(lengths[start])
        if n < 2:
            continue
        for k in rng.choice(np.arange(1, n), size=min(per_conversation, n - 1), replace=False):
            part = messages.iloc[start : start + int(k)]
            pseudo = f"{part['conversation_id'].iloc[0]}{_PREFIX_JOIN}{int(k)}"
            pieces.append(
                part.assign(
                    conversation_id=pseudo, author=part["author"] + f"{_PREFIX_JOIN}{pseudo}"
                )
            )
    return pieces


def prefix_rows(
    ctx: StageContext,
    inputs: ModelInput,
    per_conversation: int,
    seed: int,
    features: dict[str, Any],
) -> tuple[pd.DataFrame, np.ndarray]:
    """Training rows of conversation prefixes (``early.train_on_prefixes``): for each training
    conversation of at least two messages, up to `per_conversation` distinct prefix lengths
    ``k`` in ``1 .. n - 1`` (seeded), each prefix built into the model's input view as if it
    were a whole conversation, and labelled as its conversation (or its author) is."""
    from grooming_detect.data.schema import build_tables, read_table
    from grooming_detect.features.stage import build_views
    from grooming_detect.models.units import features_of

    messages = read_table(ctx.dataset_dir, "messages")
    messages = messages[messages["split"] == "train"].sort_values(
        ["conversation_id", "line"], kind="stable", ignore_index=True
    )
    pieces = _prefix_pieces(messages, per_conversation, np.random.default_rng(seed))
    if not pieces:
        return pd.DataFrame(), np.zeros(0, dtype=bool)
    prefixes = pd.concat(pieces, ignore_index=True)
    original = prefixes["conversation_id"].str.rsplit(_PREFIX_JOIN, n=1).str[0]
    if inputs.unit.name == "conversation":
        conversations = read_table(ctx.dataset_dir, "conversations")
        label_of = conversations.set_index("conversation_id")["has_predator"]
        labels = dict(zip(prefixes["conversation_id"], original.map(label_of), strict=True))
        tables = build_tables(prefixes, conversation_labels=labels)
    else:
        authors = read_table(ctx.dataset_dir, "authors")
        predators = set(authors.loc[authors["is_predator"].fillna(False).astype(bool), "author"])
        # <author>\x1f<conversation>\x1f<k>: the author is what precedes the last two joins.
        speaker = prefixes["author"].str.rsplit(_PREFIX_JOIN, n=2).str[0]
        tables = build_tables(
            prefixes, predators={"train": set(prefixes.loc[speaker.isin(predators), "author"])}
        )
    view = inputs.kind.view_file.removesuffix(".parquet")
    rows = build_views(
        tables.messages,
        tables.authors,
        tables.conversations,
        str(features["message_separator"]),
        features["lexicons"],
        {view},
    )[view]
    dropped = read_json(ctx.features_dir / "manifest.json").get("dropped_features", {})
    rows = rows.drop(columns=[c for c in dropped.get(view, []) if c in rows.columns])
    return features_of(rows, inputs.kind), rows[inputs.kind.label_column].to_numpy(dtype=bool)


def model_input(cfg: DictConfig, ctx: StageContext, stage: str) -> ModelInput:
    """The configured model's input rows, for the dataset's unit."""
    unit = unit_of(ctx)
    kind = resolve_input(cfg.model.get("input"), unit.name)
    if kind is None:
        raise ValueError(
            f"model={cfg.model.name} cannot train on data labelled per {unit.name} "
            f"(model.input: {OmegaConf.to_container(cfg.model.input)})"
        )
    return ModelInput(
        ctx,
        unit,
        kind,
        str(cfg.model.get("aggregate", "max")),
        stage,
    )


def _training_rows(
    cfg: DictConfig, ctx: StageContext, inputs: ModelInput, splits: tuple[str, ...]
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any], dict[str, Any]]:
    """The training rows: the input rows of `splits`, plus conversation prefixes
    (``early.train_on_prefixes``), less the negatives `model.imbalance` drops; with the record
    of both."""
    parts = [inputs.training(split) for split in splits]
    X = pd.concat([part[0] for part in parts], ignore_index=True)
    y = np.concatenate([part[1] for part in parts])
    per_conversation = int(cfg.early.get("train_on_prefixes", 0)) if "early" in cfg else 0
    prefixes = {"per_conversation": per_conversation, "rows": 0, "positive": 0}
    if per_conversation:
        features = to_dict(cfg.features)
        X_prefix, y_prefix = prefix_rows(ctx, inputs, per_conversation, int(cfg.seed), features)
        if len(X_prefix):
            X = pd.concat([X, X_prefix[X.columns]], ignore_index=True)
        y = np.concatenate([y, y_prefix])
        prefixes.update(rows=len(y_prefix), positive=int(y_prefix.sum()))
        log.info(
            "early.train_on_prefixes: %d prefix rows (%d positive) added to training",
            len(y_prefix),
            int(y_prefix.sum()),
        )
    X, y, sampling = subsample_negatives(X, y, _negatives_per_positive(cfg), int(cfg.seed))
    return X, y, prefixes, sampling


def _negatives_per_positive(cfg: DictConfig) -> float | None:
    imbalance = cfg.model.get("imbalance") or {}
    value = imbalance.get("negatives_per_positive")
    return None if value is None else float(value)


def selection_of(cfg: DictConfig) -> str:
    """``decision.name``: holdout or crossfit (holdout for a config without a decision)."""
    return str((cfg.get("decision") or {}).get("name") or "holdout")


@dataclass(frozen=True)
class Procedure:
    """The decision procedure the train stage runs on this data: ``decision.name``, or the
    fallback it took (`procedure_for_data`), with the folds planned for crossfit and the
    designs chosen in place of a setting (``{setting: "from -> to: reason"}``)."""

    selection: str
    plan: FoldPlan | None = None
    fallbacks: dict[str, str] = field(default_factory=dict)


def procedure_for_data(cfg: DictConfig, ctx: StageContext, inputs: ModelInput) -> Procedure:
    """``decision.name``, unless cross-fitting cannot be done on this data and
    ``decision.fallback`` names a procedure to fall back to (said in one log line, recorded).
    Run before any model is fitted, so that an impossible cross-fit stops the run early.

    Raises:
        CrossfitError: the data cannot be cross-fitted and ``decision.fallback`` is null.
    """
    selection = selection_of(cfg)
    if selection != "crossfit":
        return Procedure(selection)
    tolerance = float(cfg.data.get("split_tolerance", 0.1))
    try:
        plan = plan_folds(ctx, inputs, int(cfg.decision.folds), int(cfg.seed), tolerance)
    except CrossfitError as error:
        fallback = cfg.decision.get("fallback")
        if fallback is None:
            raise
        reason = without_advice(error)
        log.warning(
            "Design chosen for this data: decision crossfit -> %s, because %s. Set "
            "decision=%s to choose it yourself, or decision.fallback=null to insist on "
            "cross-fitting (the run then stops)",
            fallback,
            reason,
            fallback,
        )
        return Procedure(str(fallback), fallbacks={"decision": f"crossfit -> {fallback}: {reason}"})
    fallbacks = {"decision.folds": plan.fallback} if plan.fallback else {}
    return Procedure("crossfit", plan, fallbacks)


def _fit(
    cfg: DictConfig,
    inputs: ModelInput,
    X: pd.DataFrame,
    y: np.ndarray,
    counts: HashedCounts | None = None,
    selection: str = "holdout",
) -> tuple[Any, float]:
    """The configured estimator fitted on (X, y), and the seconds it took. Estimators that
    select and stop on validation themselves (the transformer) get the validation rows;
    `counts` are precomputed hashed counts of X's texts (cross-fitting's)."""
    model = with_counts(instantiate(cfg.model.estimator), counts)
    log.info(
        "Training %s on %d %s rows (%d positive)", cfg.model.name, len(X), inputs.kind.name, y.sum()
    )
    fit_kwargs = {}
    if "validation" in inspect.signature(model.fit).parameters:
        if selection == "crossfit":
            raise ValueError(
                f"model={cfg.model.name} selects and stops on validation itself, which "
                "decision=crossfit trains on; set decision=holdout"
            )
        fit_kwargs["validation"] = inputs.training("validation")
    started = time.perf_counter()
    model.fit(X, y, **fit_kwargs)
    return with_counts(model, None), time.perf_counter() - started


@dataclass(frozen=True)
class Decisions:
    """What is fitted after the model: the calibrator and the threshold, and on what."""

    calibrator: ScoreCalibrator
    threshold: float
    objective: str
    min_precision: float
    at_threshold: dict[str, float]
    fitted_on: str
    selection: dict[str, Any]


def _decisions(
    cfg: DictConfig, raw: np.ndarray, y: np.ndarray, fitted_on: str, selection: dict[str, Any]
) -> Decisions:
    """Fit the calibrator on (raw, y) and tune the threshold on the calibrated scores."""
    calibrator = ScoreCalibrator(str(cfg.decision.calibration)).fit(raw, y)
    scores = calibrator.transform(raw)
    objective = str(cfg.decision.threshold_objective)
    min_precision = float(cfg.decision.get("threshold_min_precision") or 0.0)
    threshold = tune_threshold(y, scores, objective, min_precision)
    at_threshold = {
        **scores_at_threshold(y, scores, threshold),
        **ranking_scores(y, scores),
        "n": float(len(y)),
        "n_positive": float(y.sum()),
    }
    log.info(
        "Threshold %.4f (%s on %s): precision %.3f recall %.3f F0.5 %.3f",
        threshold,
        objective,
        fitted_on,
        at_threshold["precision"],
        at_threshold["recall"],
        at_threshold["f0_5"],
    )
    return Decisions(
        calibrator, threshold, objective, min_precision, at_threshold, fitted_on, selection
    )


def _decide(cfg: DictConfig, inputs: ModelInput, model: Any) -> Decisions:
    """Holdout: calibrate the model's validation scores and tune the threshold on them."""
    validation, raw_validation = inputs.raw_scores(model, "validation")
    y_validation = validation[inputs.unit.label_column].to_numpy(dtype=bool)
    return _decisions(cfg, raw_validation, y_validation, "validation", {"method": "holdout"})


def _decide_crossfit(
    cfg: DictConfig,
    ctx: StageContext,
    inputs: ModelInput,
    counts: HashedCounts | None = None,
    plan: FoldPlan | None = None,
) -> Decisions:
    """Crossfit: calibrator and threshold fitted on out-of-fold scores of train + validation
    (`counts`: precomputed hashed counts of their texts, shared by the fold models; `plan`: the
    folds `procedure_for_data` planned)."""
    n_folds, seed = int(cfg.decision.folds), int(cfg.seed)

    def fit(X: pd.DataFrame, y: np.ndarray, fold: int) -> Any:
        X, y, _ = subsample_negatives(X, y, _negatives_per_positive(cfg), seed + 1 + fold)
        return with_counts(instantiate(cfg.model.estimator), counts).fit(X, y)

    tolerance = float(cfg.data.get("split_tolerance", 0.1))
    oof = crossfit(ctx, inputs, n_folds, seed, fit, tolerance, plan)
    y = oof.units[inputs.unit.label_column].to_numpy(dtype=bool)
    folds_used = int(oof.folds.max()) + 1
    selection = {
        "method": "crossfit",
        "folds": folds_used,
        "folds_requested": n_folds,
        "pool": list(POOL),
        "grouping": "connected components of the author-conversation graph",
        "fold_sizes": oof.fold_sizes(inputs.unit.label_column),
    }
    fitted_on = f"out-of-fold scores ({folds_used} grouped folds of train + validation)"
    decisions = _decisions(cfg, oof.raw, y, fitted_on, selection)
    named = decisions.calibrator.transform(oof.raw) >= decisions.threshold
    lines = line_threshold(ctx, inputs, oof, named, decisions.calibrator.transform)
    if lines is not None:
        selection["line_threshold"] = lines
        log.info("Problem 2 line threshold %.4f (%s)", lines["threshold"], lines["fitted_on"])
    return decisions


def _metadata(
    cfg: DictConfig,
    ctx: StageContext,
    inputs: ModelInput,
    decisions: Decisions,
    training: dict[str, Any],
) -> dict[str, Any]:
    """``model.json``: everything a scorer needs (unit, input, calibrator, threshold, feature
    settings) and the record of how the model was trained."""
    sampling, prefixes = training["sampling"], training["prefixes"]
    class_weight = cfg.model.estimator.get("class_weight")
    objective = decisions.objective
    return {
        "model_name": str(cfg.model.name),
        "unit": inputs.unit.name,
        "input": inputs.kind.name,
        "aggregate": inputs.aggregate if inputs.aggregated else None,
        "threshold": decisions.threshold,
        "threshold_objective": objective,
        "threshold_min_precision": (
            decisions.min_precision if objective == "recall_at_precision" else None
        ),
        "threshold_fitted_on": decisions.fitted_on,
        "calibration": decisions.calibrator.to_dict(),
        "calibration_fitted_on": decisions.fitted_on,
        "selection": decisions.selection,
        "at_threshold": decisions.at_threshold,
        "settings": to_dict(cfg.model),
        # The feature settings the model learned from: scoring new data rebuilds the same.
        "features": {
            **to_dict(cfg.features),
            # Columns the features stage dropped from this model's input view (no values in
            # the training dataset): scoring drops them too.
            "dropped": read_json(ctx.features_dir / "manifest.json")
            .get("dropped_features", {})
            .get(inputs.kind.view_file.removesuffix(".parquet"), []),
        },
        "n_train": training["n_rows"],
        "train_on_prefixes": prefixes,
        "n_train_positive": training["n_positive"],
        "imbalance": {"class_weight": class_weight, **sampling},
        "imbalance_handling": (
            f"class_weight={class_weight}; negatives kept {sampling['negatives_kept']} of "
            f"{sampling['negatives_available']}"
        ),
        # The refit alone, and every fit of the train stage (folds, refit, decisions).
        "fit_seconds": training["fit_seconds"],
        "total_fit_seconds": training["total_fit_seconds"],
        # What the model learned from: evaluate refuses tables of other data.
        "data_fingerprint": read_json(ctx.manifest_path).get("fingerprint"),
        # ... and views built with other feature settings.
        "features_fingerprint": read_json(ctx.features_dir / "manifest.json").get("fingerprint"),
        "peak_rss_mib_after_fit": peak_rss_mib(),
        # The train run: scores carry it as the model's version.
        "run_id": tracking.active_run_id(),
    }


#: The metadata keys the logged MLflow models carry.
LOGGED_METADATA = (
    "unit",
    "input",
    "aggregate",
    "threshold",
    "calibration",
    "model_name",
    "features",
    "run_id",
)


def _log_models(
    ctx: StageContext, model: Any, meta: dict[str, Any], X: pd.DataFrame
) -> tuple[str, str]:
    """Log the whole scorer (the run's ``model``, a pyfunc) and the bare estimator beside it
    (``estimator``, for researchers); their model URIs."""
    metadata = {k: meta[k] for k in LOGGED_METADATA}
    model_uri = log_pyfunc_model(ctx.model_dir, metadata, needs_torch=uses_encoder(model))
    if hasattr(model, "model_") and hasattr(model, "save"):
        estimator_uri = tracking.log_transformer_model(model, metadata, name="estimator")
    else:
        example = X.head(3).reset_index(drop=True)
        estimator_uri = tracking.log_sklearn_model(
            model,
            example,
            model.predict_proba(example),
            trusted=trusted_types(ctx.model_dir / MODEL_FILE),
            metadata=metadata,
            name="estimator",
        )
    tracking.set_tags({"model_uri": model_uri, "estimator_uri": estimator_uri})
    return model_uri, estimator_uri


def _decision_metrics(inputs: ModelInput, decisions: Decisions) -> dict[str, float]:
    """The fitted decisions' measures: ``cv/<unit>/…`` (out-of-fold, cross-validated) or
    ``validation/<unit>/…_at_tuned_threshold`` (holdout, in-sample for the threshold)."""
    unit = inputs.unit.name
    if decisions.selection["method"] == "crossfit":
        return {
            **{f"cv/{unit}/{k}": v for k, v in decisions.at_threshold.items()},
            f"cv/{unit}/folds": float(decisions.selection["folds"]),
        }
    return {
        f"validation/{unit}/{k}_at_tuned_threshold": v for k, v in decisions.at_threshold.items()
    }


def run_train(cfg: DictConfig, ctx: StageContext) -> StageResult:
    """Fit the model, calibrate it and tune its threshold (`decision`); save and log it."""
    inputs = model_input(cfg, ctx, "train")
    procedure = procedure_for_data(cfg, ctx, inputs)
    embedding_before = EMBEDDING_COUNTERS.copy()
    started = time.perf_counter()
    if procedure.selection == "crossfit":
        # The K fold models and the refit read subsets of the same documents: each text is
        # hashed once (each fit still learns its own idf).
        X, y, prefixes, sampling = _training_rows(cfg, ctx, inputs, POOL)
        counts = pooled_counts(inputs, instantiate(cfg.model.estimator), X)
        decisions = _decide_crossfit(cfg, ctx, inputs, counts, procedure.plan)
        model, fit_seconds = _fit(cfg, inputs, X, y, counts, procedure.selection)
        del counts
    else:
        X, y, prefixes, sampling = _training_rows(cfg, ctx, inputs, ("train",))
        model, fit_seconds = _fit(cfg, inputs, X, y, selection=procedure.selection)
        decisions = _decide(cfg, inputs, model)
    total_fit_seconds = time.perf_counter() - started
    training = {
        "n_rows": len(X),
        "n_positive": int(y.sum()),
        "prefixes": prefixes,
        "sampling": sampling,
        # The final fit on every training row alone ("refit" after cross-fitting) ...
        "fit_seconds": fit_seconds,
        # ... and the stage's whole fitting: reading and counting the training rows, the
        # cross-fitted folds, the refit, calibration and threshold.
        "total_fit_seconds": total_fit_seconds,
    }
    meta = _metadata(cfg, ctx, inputs, decisions, training)
    # Designs chosen in place of a setting, with the reason: the card reads them from here.
    meta["fallbacks"] = procedure.fallbacks
    save_model(model, meta, ctx.model_dir)
    metrics = {
        "train/fit_seconds": fit_seconds,
        "train/total_fit_seconds": total_fit_seconds,
        "train/peak_rss_mib": peak_rss_mib(),
        "train/n_rows": float(len(X)),
        "train/n_positive": float(y.sum()),
        "train/threshold": decisions.threshold,
        **_decision_metrics(inputs, decisions),
        # Embedding models: throughput and cache reuse over the folds and the refit.
        **EMBEDDING_COUNTERS.since(embedding_before, "train"),
    }
    tracking.log_params(
        {
            "calibration_method": decisions.calibrator.method,
            "negatives_per_positive": sampling["negatives_per_positive"],
            **{k: v for k, v in meta.items() if isinstance(v, str | int | float)},
        }
    )
    tracking.log_metrics(metrics)
    tracking.set_tags(fallback_tags(procedure.fallbacks))
    tracking.log_artifact(ctx.model_dir / "model.json", "model_meta")
    model_uri, estimator_uri = _log_models(ctx, model, meta, X)
    return StageResult(
        stage="train",
        outputs={"model_dir": ctx.model_dir},
        metrics=metrics,
        parent_tags={
            "model_uri": model_uri,
            "estimator_uri": estimator_uri,
            "model": str(cfg.model.name),
            **fallback_tags(procedure.fallbacks),
        },
    )
