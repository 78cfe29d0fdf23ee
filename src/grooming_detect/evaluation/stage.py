"""The evaluate stage: every measure a reviewer needs, on validation and test, logged to MLflow.

Metric names are ``<split>/<level>/<measure>``, with level ``author`` (PAN-2012 Problem 1),
``conversation`` and ``line`` (Problem 2). For an author-level model, a conversation's score is
the highest score of its authors, so a conversation is flagged when one of its authors is.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from grooming_detect import tracking
from grooming_detect.data.schema import read_table
from grooming_detect.evaluation import errors, lines, plots
from grooming_detect.evaluation.calibration import ScoreCalibrator, calibration_scores
from grooming_detect.evaluation.metrics import (
    bootstrap_intervals,
    operating_points,
    ranking_scores,
    scores_at_threshold,
    set_scores,
)
from grooming_detect.features.behaviour import profiles
from grooming_detect.io import write_json, write_parquet, write_text
from grooming_detect.models.persistence import load_model
from grooming_detect.models.units import UNITS, Unit, load_view, require_split
from grooming_detect.stage import StageContext, StageResult

log = logging.getLogger(__name__)

AUTHOR_SKIP_REASON = (
    "author-level measures skipped: the dataset carries conversation-level labels only"
)


def submission_text(predictions: pd.DataFrame) -> str:
    """PAN-2012 Problem 1 submission: the ids named as predators, one a line."""
    return "".join(
        f"{author}\n" for author in sorted(predictions.loc[predictions["predicted"], "id"])
    )


def unit_metrics(
    y_true: np.ndarray,
    raw: np.ndarray,
    calibrated: np.ndarray,
    threshold: float,
    cfg: DictConfig,
    prefix: str,
) -> dict[str, float]:
    """Every measure of one split at one level, under `prefix` (e.g. ``test/author``)."""
    metrics: dict[str, float] = {}
    for name, value in scores_at_threshold(y_true, calibrated, threshold).items():
        metrics[f"{prefix}/{name}"] = value
    for name, value in scores_at_threshold(y_true, calibrated, 0.5).items():
        metrics[f"{prefix}/{name}_at_0_5"] = value
    metrics.update({f"{prefix}/{k}": v for k, v in ranking_scores(y_true, calibrated).items()})
    metrics.update(
        {f"{prefix}/{k}": v for k, v in operating_points(y_true, calibrated, threshold).items()}
    )
    for name, value in calibration_scores(y_true, calibrated, int(cfg.evaluate.ece_bins)).items():
        metrics[f"{prefix}/{name}"] = value
    for name, value in calibration_scores(y_true, raw, int(cfg.evaluate.ece_bins)).items():
        metrics[f"{prefix}/{name}_uncalibrated"] = value
    intervals = bootstrap_intervals(
        y_true,
        calibrated,
        threshold,
        n_resamples=int(cfg.evaluate.bootstrap.n_resamples),
        confidence=float(cfg.evaluate.bootstrap.confidence),
        seed=int(cfg.evaluate.bootstrap.seed),
    )
    for name, (low, high) in intervals.items():
        metrics[f"{prefix}/{name}_ci_low"] = low
        metrics[f"{prefix}/{name}_ci_high"] = high
    metrics[f"{prefix}/n"] = float(len(y_true))
    metrics[f"{prefix}/n_positive"] = float(np.sum(y_true))
    return metrics


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Scorer:
    """The trained model and its calibrator: raw and calibrated scores of text documents."""

    def __init__(self, model: Any, calibrator: ScoreCalibrator) -> None:
        self.model = model
        self.calibrator = calibrator

    def raw(self, documents: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(documents[["text"]])[:, 1]

    def calibrated(self, documents: pd.DataFrame) -> np.ndarray:
        return self.calibrator.transform(self.raw(documents))


def _error_analysis(
    split: str,
    unit: Unit,
    predictions: pd.DataFrame,
    messages: pd.DataFrame,
    scorer: _Scorer,
    cfg: DictConfig,
    ctx: StageContext,
    lexicons: dict[str, list[str]],
) -> dict[str, Path]:
    """False-positive and false-negative tables and slices, logged as MLflow tables.

    Each row names what pushed the score up: the top terms (coefficient × value) for a linear
    model, else the messages whose removal lowers the score most (occlusion). With
    ``evaluate.show_text`` the item's single highest-scoring message is shown, truncated.
    """
    profile = profiles(messages, unit.name, lexicons)
    linear = errors.linear_parts(scorer.model) is not None
    outputs: dict[str, Path] = {}
    own_messages = messages.rename(columns={unit.id_column: "id"})
    for which in ("false_positives", "false_negatives"):
        table = errors.error_table(predictions, profile, which, int(cfg.evaluate.top_k))
        if table.empty:
            continue
        own = own_messages[own_messages["id"].isin(set(table["id"]))].reset_index(drop=True)
        if linear:
            documents = table[["id"]].merge(
                load_view(ctx, unit, "evaluate")
                .loc[lambda v: v["split"] == split, [unit.id_column, "text"]]
                .rename(columns={unit.id_column: "id"}),
                on="id",
                how="left",
            )
            table["top_terms"] = errors.linear_explanations(scorer.model, documents)
        else:
            refs = errors.occlusion_explanations(
                scorer.calibrated, own, str(cfg.features.message_separator)
            )
            table["top_messages"] = table["id"].map(refs).fillna("")
        if cfg.evaluate.show_text:
            nonempty = own[own["text"] != ""].reset_index(drop=True)
            nonempty["message_score"] = scorer.calibrated(nonempty) if len(nonempty) else []
            best = nonempty.sort_values("message_score").groupby("id")["text"].last()
            table["example_text"] = [
                _truncate(text, int(cfg.evaluate.max_text_chars))
                for text in table["id"].map(best).fillna("")
            ]
        outputs[f"{split}_{which}"] = write_parquet(
            ctx.evaluation_dir / f"{split}-{which}.parquet", table
        )
        tracking.log_table(table, f"tables/{split}-{which}.json")
    rates = errors.slice_rates(predictions, profile)
    outputs[f"{split}_slices"] = write_parquet(
        ctx.evaluation_dir / f"{split}-fp-slices.parquet", rates
    )
    tracking.log_table(rates, f"tables/{split}-fp-slices.json")
    outputs[f"{split}_slice_plot"] = plots.slice_figure(
        rates,
        f"{split}: false-positive rate by slice ({unit.name}s)",
        ctx.evaluation_dir / f"{split}-fp-slices.png",
    )
    return outputs


def run_evaluate(cfg: DictConfig, ctx: StageContext) -> StageResult:
    """Score each split in `evaluate.splits` with the trained model, calibrator and threshold."""
    model, meta = load_model(ctx.model_dir)
    threshold = float(meta["threshold"])
    scorer = _Scorer(model, ScoreCalibrator.from_dict(meta.get("calibration", {"method": "none"})))
    unit = UNITS[meta.get("unit", "author")]
    view = load_view(ctx, unit, "evaluate")
    messages_all = read_table(ctx.dataset_dir, "messages")
    conversations_all = read_table(ctx.dataset_dir, "conversations")
    line_truth_path = ctx.dataset_dir / "predator_lines.parquet"
    line_truth = pd.read_parquet(line_truth_path) if line_truth_path.is_file() else None
    lexicons = OmegaConf.to_container(cfg.features.lexicons, resolve=True)
    skipped: list[str] = []
    if unit.name != "author":
        skipped.append(AUTHOR_SKIP_REASON)
        log.info(AUTHOR_SKIP_REASON)
        tracking.set_tags({"author_metrics": AUTHOR_SKIP_REASON})
    metrics: dict[str, float] = {}
    outputs: dict[str, Path] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in map(str, cfg.evaluate.splits):
        rows = require_split(view, unit, split, "evaluate")
        raw = scorer.raw(rows)
        calibrated = scorer.calibrator.transform(raw)
        y_true = rows[unit.label_column].to_numpy(dtype=bool)
        predictions = (
            rows.drop(columns=["text", "split"])
            .rename(columns={unit.id_column: "id", unit.label_column: "label"})
            .assign(raw_score=raw, score=calibrated, predicted=calibrated >= threshold)
            .sort_values("score", ascending=False, ignore_index=True)
        )
        prefix = f"{split}/{unit.name}"
        metrics.update(unit_metrics(y_true, raw, calibrated, threshold, cfg, prefix))
        curves[split] = (y_true, calibrated)
        messages = messages_all[messages_all["split"] == split]
        if unit.name == "author":
            metrics.update(
                _conversation_level(predictions, messages, conversations_all, split, threshold)
            )
            outputs[f"{split}_submission"] = write_text(
                ctx.evaluation_dir / f"{split}-problem1-predators.txt",
                submission_text(predictions),
            )
            named = set(predictions.loc[predictions["predicted"], "id"])
            predicted_lines = lines.predicted_lines(
                messages,
                named,
                str(cfg.evaluate.line_rule),
                scorer.calibrated,
                float(cfg.evaluate.line_threshold),
            )
            outputs[f"{split}_problem2"] = write_text(
                ctx.evaluation_dir / f"{split}-problem2-lines.txt",
                lines.submission_text(predicted_lines),
            )
            truth = (
                line_truth[line_truth["conversation_id"].isin(set(messages["conversation_id"]))]
                if line_truth is not None
                else None
            )
            if truth is not None and len(truth):
                line_scores = set_scores(
                    predicted_lines.itertuples(index=False, name=None),
                    truth.itertuples(index=False, name=None),
                )
                for name in ("precision", "recall", "f3"):
                    metrics[f"{split}/line/{name}"] = line_scores[name]
        outputs[f"{split}_predictions"] = write_parquet(
            ctx.evaluation_dir / f"{split}-{unit.name}-scores.parquet", predictions
        )
        label = f"{split}, {unit.name}s, {meta['model_name']}"
        outputs[f"{split}_reliability"] = plots.reliability_figure(
            y_true,
            raw,
            calibrated,
            f"Reliability ({label})",
            ctx.evaluation_dir / f"{split}-reliability.png",
            int(cfg.evaluate.reliability_bins),
        )
        outputs[f"{split}_histogram"] = plots.score_histogram_figure(
            y_true,
            calibrated,
            threshold,
            f"Scores by class ({label})",
            ctx.evaluation_dir / f"{split}-score-histogram.png",
        )
        outputs[f"{split}_confusion"] = plots.confusion_figure(
            y_true,
            calibrated >= threshold,
            f"Confusion at threshold {threshold:.3f} ({label})",
            ctx.evaluation_dir / f"{split}-confusion.png",
        )
        outputs.update(
            _error_analysis(split, unit, predictions, messages, scorer, cfg, ctx, lexicons)
        )
        log.info(
            "%s: %s precision %.3f recall %.3f F0.5 %.3f [%.3f, %.3f] PR-AUC %.3f (threshold %.3f)",
            split,
            unit.name,
            metrics[f"{prefix}/precision"],
            metrics[f"{prefix}/recall"],
            metrics[f"{prefix}/f0_5"],
            metrics[f"{prefix}/f0_5_ci_low"],
            metrics[f"{prefix}/f0_5_ci_high"],
            metrics[f"{prefix}/pr_auc"],
            threshold,
        )
    title = f"{unit.name.capitalize()}-level {{}}: {meta['model_name']} on {cfg.data.name}"
    outputs["pr_curve"] = plots.precision_recall_figure(
        curves, title.format("precision-recall"), ctx.evaluation_dir / f"pr_curve_{unit.name}.png"
    )
    outputs["roc_curve"] = plots.roc_figure(
        curves, title.format("ROC"), ctx.evaluation_dir / f"roc_curve_{unit.name}.png"
    )
    summary = {
        "dataset": str(cfg.data.name),
        "synthetic": bool(cfg.data.synthetic),
        "model": meta["model_name"],
        "unit": unit.name,
        "skipped": skipped,
        "threshold": threshold,
        "threshold_objective": meta["threshold_objective"],
        "threshold_fitted_on": meta["threshold_fitted_on"],
        "calibration": meta.get("calibration", {"method": "none"}),
        "line_rule": str(cfg.evaluate.line_rule),
        "bootstrap": OmegaConf.to_container(cfg.evaluate.bootstrap, resolve=True),
        "evaluate_run_id": tracking.active_run_id(),
        "metrics": metrics,
    }
    outputs["summary"] = write_json(ctx.evaluation_dir / "evaluation.json", summary)
    tracking.log_metrics(metrics)
    tracking.log_artifact(ctx.evaluation_dir, "evaluation")
    return StageResult(stage="evaluate", outputs=outputs, metrics=metrics)


def _conversation_level(
    predictions: pd.DataFrame,
    messages: pd.DataFrame,
    conversations: pd.DataFrame,
    split: str,
    threshold: float,
) -> dict[str, float]:
    """Conversation measures of an author-level model: a conversation scores its top author."""
    pairs = messages[["conversation_id", "author"]].drop_duplicates()
    scored = pairs.merge(predictions[["id", "score"]], left_on="author", right_on="id")
    top = scored.groupby("conversation_id")["score"].max()
    table = conversations[conversations["split"] == split].set_index("conversation_id")
    scores = top.reindex(table.index).fillna(0.0).to_numpy()
    y_true = table["has_predator"].to_numpy(dtype=bool)
    prefix = f"{split}/conversation"
    metrics = {
        f"{prefix}/{k}": v for k, v in scores_at_threshold(y_true, scores, threshold).items()
    }
    metrics.update({f"{prefix}/{k}": v for k, v in ranking_scores(y_true, scores).items()})
    metrics[f"{prefix}/alerts_per_10k"] = float(np.mean(scores >= threshold) * 10_000)
    metrics[f"{prefix}/n"] = float(len(y_true))
    metrics[f"{prefix}/n_positive"] = float(y_true.sum())
    return metrics
