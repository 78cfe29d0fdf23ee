"""The train stage: fit the configured model on `train`, tune its threshold on `validation`."""

from __future__ import annotations

import logging
import time

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from grooming_detect import tracking
from grooming_detect.evaluation.calibration import ScoreCalibrator
from grooming_detect.evaluation.metrics import scores_at_threshold, tune_threshold
from grooming_detect.models.persistence import save_model
from grooming_detect.models.units import load_view, require_split, unit_of
from grooming_detect.profiling import peak_rss_mib
from grooming_detect.stage import StageContext, StageResult

log = logging.getLogger(__name__)


def run_train(cfg: DictConfig, ctx: StageContext) -> StageResult:
    """Fit, tune the decision threshold on validation, save and log the model."""
    unit = unit_of(ctx)
    view = load_view(ctx, unit, "train")
    train = require_split(view, unit, "train", "train")
    validation = require_split(view, unit, "validation", "train")
    y_train = train[unit.label_column].to_numpy(dtype=bool)
    y_validation = validation[unit.label_column].to_numpy(dtype=bool)
    model = instantiate(cfg.model.estimator)
    log.info(
        "Training %s on %d %ss (%d positive)", cfg.model.name, len(train), unit.name, y_train.sum()
    )
    started = time.perf_counter()
    model.fit(train[["text"]], y_train)
    fit_seconds = time.perf_counter() - started
    raw_validation_scores = model.predict_proba(validation[["text"]])[:, 1]
    calibrator = ScoreCalibrator(str(cfg.model.calibration)).fit(
        raw_validation_scores, y_validation
    )
    validation_scores = calibrator.transform(raw_validation_scores)
    objective = str(cfg.model.threshold_objective)
    threshold = tune_threshold(y_validation, validation_scores, objective)
    at_threshold = scores_at_threshold(y_validation, validation_scores, threshold)
    log.info(
        "Threshold %.4f maximises validation %s = %.4f",
        threshold,
        objective,
        at_threshold[objective],
    )
    meta = {
        "model_name": str(cfg.model.name),
        "unit": unit.name,
        "threshold": threshold,
        "threshold_objective": objective,
        "threshold_fitted_on": "validation",
        "calibration": calibrator.to_dict(),
        "calibration_fitted_on": "validation",
        "validation_objective_value": at_threshold[objective],
        "settings": OmegaConf.to_container(cfg.model, resolve=True),
        "n_train": len(train),
        "n_train_positive": int(y_train.sum()),
        "imbalance_handling": f"class_weight={cfg.model.estimator.get('class_weight')}",
    }
    save_model(model, meta, ctx.model_dir)
    metrics = {
        "train/fit_seconds": fit_seconds,
        "train/peak_rss_mib": peak_rss_mib(),
        f"train/n_{unit.name}s": float(len(train)),
        "train/threshold": threshold,
        f"validation/{unit.name}/{objective}_at_tuned_threshold": at_threshold[objective],
    }
    tracking.log_params(
        {
            "calibration_method": calibrator.method,
            **{k: v for k, v in meta.items() if isinstance(v, str | int | float)},
        }
    )
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
