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
from grooming_detect.models.stage import load_author_view, require_split
from grooming_detect.stage import StageContext, StageResult

log = logging.getLogger(__name__)


def submission_text(predictions: pd.DataFrame) -> str:
    """PAN-2012 Problem 1 submission: the ids named as predators, one a line."""
    named = predictions.loc[predictions["predicted"], "author"]
    return "".join(f"{author}\n" for author in sorted(named))


def run_evaluate(cfg: DictConfig, ctx: StageContext) -> StageResult:
    """Score each split in `evaluate.splits` with the trained model and its tuned threshold."""
    model, meta = load_model(ctx.model_dir)
    threshold = float(meta["threshold"])
    view = load_author_view(ctx, "evaluate")
    metrics: dict[str, float] = {}
    curves = {}
    outputs = {}
    for split in cfg.evaluate.splits:
        rows = require_split(view, str(split), "evaluate")
        scores = model.predict_proba(rows[["text"]])[:, 1]
        y_true = rows["is_predator"].to_numpy()
        predictions = pd.DataFrame(
            {
                "author": rows["author"].to_numpy(),
                "score": scores,
                "predicted": scores >= threshold,
                "is_predator": y_true,
                "n_messages": rows["n_messages"].to_numpy(),
                "n_conversations": rows["n_conversations"].to_numpy(),
            }
        ).sort_values("score", ascending=False, ignore_index=True)
        tuned = scores_at_threshold(y_true, scores, threshold)
        default = scores_at_threshold(y_true, scores, 0.5)
        for name, value in tuned.items():
            metrics[f"{split}/author/{name}"] = value
        for name, value in default.items():
            metrics[f"{split}/author/{name}_at_0_5"] = value
        for name, value in ranking_scores(y_true, scores).items():
            metrics[f"{split}/author/{name}"] = value
        metrics[f"{split}/author/n_authors"] = float(len(rows))
        metrics[f"{split}/author/n_predators"] = float(y_true.sum())
        curves[str(split)] = (y_true, scores)
        outputs[f"{split}_predictions"] = write_parquet(
            ctx.evaluation_dir / f"{split}-author-scores.parquet", predictions
        )
        outputs[f"{split}_submission"] = write_text(
            ctx.evaluation_dir / f"{split}-problem1-predators.txt", submission_text(predictions)
        )
        log.info(
            "%s: author precision %.3f recall %.3f F0.5 %.3f (threshold %.3f)",
            split,
            tuned["precision"],
            tuned["recall"],
            tuned["f0_5"],
            threshold,
        )
    outputs["pr_curve"] = precision_recall_figure(
        curves,
        f"Author-level precision-recall: {meta['model_name']} on {cfg.data.name}",
        ctx.evaluation_dir / "pr_curve_author.png",
    )
    summary = {
        "dataset": str(cfg.data.name),
        "synthetic": bool(cfg.data.synthetic),
        "model": meta["model_name"],
        "threshold": threshold,
        "threshold_objective": meta["threshold_objective"],
        "threshold_fitted_on": meta["threshold_fitted_on"],
        "metrics": metrics,
    }
    outputs["summary"] = write_json(ctx.evaluation_dir / "evaluation.json", summary)
    tracking.log_metrics(metrics)
    tracking.log_artifact(ctx.evaluation_dir, "evaluation")
    return StageResult(stage="evaluate", outputs=outputs, metrics=metrics)
