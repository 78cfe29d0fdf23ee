"""The evaluate stage: score validation and test authors, log PAN-2012 measures and submissions."""

from __future__ import annotations

import logging

import pandas as pd
from omegaconf import DictConfig

from grooming_detect import tracking
from grooming_detect.evaluation.metrics import ranking_scores, scores_at_threshold
from grooming_detect.evaluation.plots import precision_recall_figure
from grooming_detect.io import write_json, write_parquet, write_text
from grooming_detect.models.persistence import load_model
from grooming_detect.models.units import UNITS, load_view, require_split
from grooming_detect.stage import StageContext, StageResult

log = logging.getLogger(__name__)


AUTHOR_SKIP_REASON = (
    "author-level measures skipped: the dataset carries conversation-level labels only"
)


def submission_text(predictions: pd.DataFrame) -> str:
    """PAN-2012 Problem 1 submission: the ids named as predators, one a line."""
    named = predictions.loc[predictions["predicted"], "author"]
    return "".join(f"{author}\n" for author in sorted(named))


def run_evaluate(cfg: DictConfig, ctx: StageContext) -> StageResult:
    """Score each split in `evaluate.splits` with the trained model and its tuned threshold."""
    model, meta = load_model(ctx.model_dir)
    threshold = float(meta["threshold"])
    unit = UNITS[meta.get("unit", "author")]
    view = load_view(ctx, unit, "evaluate")
    if unit.name != "author":
        log.info(AUTHOR_SKIP_REASON)
        tracking.set_tags({"author_metrics": AUTHOR_SKIP_REASON})
    metrics: dict[str, float] = {}
    curves = {}
    outputs = {}
    for split in cfg.evaluate.splits:
        rows = require_split(view, unit, str(split), "evaluate")
        scores = model.predict_proba(rows[["text"]])[:, 1]
        y_true = rows[unit.label_column].to_numpy(dtype=bool)
        predictions = (
            rows.drop(columns=["text", "split"])
            .assign(score=scores, predicted=scores >= threshold)
            .sort_values("score", ascending=False, ignore_index=True)
        )
        tuned = scores_at_threshold(y_true, scores, threshold)
        default = scores_at_threshold(y_true, scores, 0.5)
        for name, value in tuned.items():
            metrics[f"{split}/{unit.name}/{name}"] = value
        for name, value in default.items():
            metrics[f"{split}/{unit.name}/{name}_at_0_5"] = value
        for name, value in ranking_scores(y_true, scores).items():
            metrics[f"{split}/{unit.name}/{name}"] = value
        metrics[f"{split}/{unit.name}/n"] = float(len(rows))
        metrics[f"{split}/{unit.name}/n_positive"] = float(y_true.sum())
        curves[str(split)] = (y_true, scores)
        outputs[f"{split}_predictions"] = write_parquet(
            ctx.evaluation_dir / f"{split}-{unit.name}-scores.parquet", predictions
        )
        if unit.name == "author":
            outputs[f"{split}_submission"] = write_text(
                ctx.evaluation_dir / f"{split}-problem1-predators.txt",
                submission_text(predictions),
            )
        log.info(
            "%s: %s precision %.3f recall %.3f F0.5 %.3f (threshold %.3f)",
            split,
            unit.name,
            tuned["precision"],
            tuned["recall"],
            tuned["f0_5"],
            threshold,
        )
    outputs["pr_curve"] = precision_recall_figure(
        curves,
        f"{unit.name.capitalize()}-level precision-recall: {meta['model_name']} on {cfg.data.name}",
        ctx.evaluation_dir / f"pr_curve_{unit.name}.png",
    )
    summary = {
        "dataset": str(cfg.data.name),
        "synthetic": bool(cfg.data.synthetic),
        "model": meta["model_name"],
        "unit": unit.name,
        "skipped": [] if unit.name == "author" else [AUTHOR_SKIP_REASON],
        "threshold": threshold,
        "threshold_objective": meta["threshold_objective"],
        "threshold_fitted_on": meta["threshold_fitted_on"],
        "metrics": metrics,
    }
    outputs["summary"] = write_json(ctx.evaluation_dir / "evaluation.json", summary)
    tracking.log_metrics(metrics)
    tracking.log_artifact(ctx.evaluation_dir, "evaluation")
    return StageResult(stage="evaluate", outputs=outputs, metrics=metrics)
