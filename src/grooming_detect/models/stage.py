"""The train stage: fit the configured model on `train`, tune its threshold on `validation`."""

from __future__ import annotations

import logging
import time

import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from grooming_detect import tracking
from grooming_detect.evaluation.metrics import scores_at_threshold, tune_threshold
from grooming_detect.models.persistence import save_model
from grooming_detect.profiling import peak_rss_mib
from grooming_detect.stage import MissingInputError, StageContext, StageResult

log = logging.getLogger(__name__)


def load_author_view(ctx: StageContext, stage: str) -> pd.DataFrame:
    """The author-level text view written by the features stage."""
    path = ctx.features_dir / "author_texts.parquet"
    if not path.is_file():
        raise MissingInputError(stage, path, "features")
    return pd.read_parquet(path)


def require_split(view: pd.DataFrame, split: str, stage: str) -> pd.DataFrame:
    """Rows of `split`; a missing split or one without predators is an error, never a fallback."""
    rows = view[view["split"] == split]
    if rows.empty or not rows["is_predator"].any():
        raise ValueError(
            f"{stage} stage: split {split!r} has {len(rows)} authors and "
            f"{int(rows['is_predator'].sum())} predators; it needs both classes"
        )
    return rows


def run_train(cfg: DictConfig, ctx: StageContext) -> StageResult:
    """Fit, tune the decision threshold on validation, save and log the model."""
    view = load_author_view(ctx, "train")
    train = require_split(view, "train", "train")
    validation = require_split(view, "validation", "train")
    model = instantiate(cfg.model.estimator)
    log.info(
        "Training %s on %d authors (%d predators)",
        cfg.model.name,
        len(train),
        int(train["is_predator"].sum()),
    )
    started = time.perf_counter()
    model.fit(train[["text"]], train["is_predator"].to_numpy())
    fit_seconds = time.perf_counter() - started
    validation_scores = model.predict_proba(validation[["text"]])[:, 1]
    objective = str(cfg.model.threshold_objective)
    threshold = tune_threshold(validation["is_predator"].to_numpy(), validation_scores, objective)
    at_threshold = scores_at_threshold(
        validation["is_predator"].to_numpy(), validation_scores, threshold
    )
    log.info(
        "Threshold %.4f maximises validation %s = %.4f",
        threshold,
        objective,
        at_threshold[objective],
    )
    model_settings = OmegaConf.to_container(cfg.model, resolve=True)
    meta = {
        "model_name": str(cfg.model.name),
        "threshold": threshold,
        "threshold_objective": objective,
        "threshold_fitted_on": "validation",
        "validation_objective_value": at_threshold[objective],
        "settings": model_settings,
        "n_train_authors": len(train),
        "n_train_predators": int(train["is_predator"].sum()),
        "imbalance_handling": f"class_weight={cfg.model.estimator.get('class_weight')}",
    }
    save_model(model, meta, ctx.model_dir)
    metrics = {
        "train/fit_seconds": fit_seconds,
        "train/peak_rss_mib": peak_rss_mib(),
        "train/n_authors": float(len(train)),
        "train/threshold": threshold,
        f"validation/author/{objective}_at_tuned_threshold": at_threshold[objective],
    }
    tracking.log_params({"threshold_objective": objective, **meta_params(meta)})
    tracking.log_metrics(metrics)
    tracking.log_artifact(ctx.model_dir / "model.json", "model_meta")
    example = validation[["text"]].head(3).reset_index(drop=True)
    model_uri = tracking.log_sklearn_model(model, example, model.predict_proba(example))
    tracking.set_tags({"model_uri": model_uri})
    return StageResult(
        stage="train",
        outputs={"model_dir": ctx.model_dir},
        metrics=metrics,
        parent_tags={"model_uri": model_uri, "model": str(cfg.model.name)},
    )


def meta_params(meta: dict[str, object]) -> dict[str, object]:
    """The scalar entries of the model metadata, as MLflow params."""
    return {k: v for k, v in meta.items() if isinstance(v, str | int | float)}
