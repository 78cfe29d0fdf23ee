"""The evaluate stage: every measure a reviewer needs, on validation and test, logged to MLflow.

Metric names are ``<split>/<level>/<measure>``, with level ``author`` (PAN-2012 Problem 1),
``conversation`` and ``line`` (Problem 2). For an author-level model, a conversation's score is
the highest score of its authors, so a conversation is flagged when one of its authors is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from grooming_detect import tracking
from grooming_detect.config import to_dict
from grooming_detect.data.schema import read_table
from grooming_detect.evaluation import (
    audit,
    early,
    error_analysis,
    lines,
    pan_eval,
    plots,
    shortcut,
)
from grooming_detect.evaluation.calibration import ScoreCalibrator, calibration_scores
from grooming_detect.evaluation.metrics import (
    bootstrap_intervals,
    operating_points,
    ranking_scores,
    scores_at_threshold,
)
from grooming_detect.evaluation.profiles import profiles
from grooming_detect.features.schema import is_feature
from grooming_detect.io import read_json, write_json, write_parquet, write_text
from grooming_detect.models.crossfit import POOL, is_crossfit
from grooming_detect.models.decision import tune_lines
from grooming_detect.models.embeddings import COUNTERS as EMBEDDING_COUNTERS
from grooming_detect.models.persistence import load_model
from grooming_detect.models.units import (
    UNITS,
    ModelInput,
    Unit,
    conversation_scores,
    features_of,
    positive_scores,
)
from grooming_detect.stage import (
    StageContext,
    StageResult,
    check_same_data,
    check_same_features,
)

log = logging.getLogger(__name__)

#: Count columns of each unit's view that the score tables keep beside the scores.
COUNT_COLUMNS = {
    "author": ["n_messages", "n_conversations"],
    "conversation": ["n_messages", "n_authors"],
}
AUTHOR_SKIP_REASON = (
    "author-level measures skipped: the dataset carries conversation-level labels only"
)


def submission_text(predictions: pd.DataFrame) -> str:
    """PAN-2012 Problem 1 submission: the ids named as predators, one a line. An id that would
    split its line (a line break or other control character in it) is refused: the file would
    name someone else."""
    named = sorted(predictions.loc[predictions["predicted"], "id"])
    return "".join(f"{lines.one_line_id(author, 'author')}\n" for author in named)


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
    """The trained model, its calibrator and its input: calibrated scores of input rows."""

    def __init__(self, model: Any, calibrator: ScoreCalibrator, inputs: ModelInput) -> None:
        self.model = model
        self.calibrator = calibrator
        self.inputs = inputs

    def calibrated(self, rows: pd.DataFrame) -> np.ndarray:
        return self.calibrator.transform(positive_scores(self.model, rows))

    def unit_inputs(self, split: str) -> pd.DataFrame:
        """The unit's input rows of `split`, indexed by id (for occlusion and single messages)."""
        unit = self.inputs.unit
        rows = self.inputs.unit_rows(split)
        return features_of(rows, unit).set_index(rows[unit.id_column].to_numpy())

    def message_scores(self, messages: pd.DataFrame, split: str) -> np.ndarray:
        """Each message scored alone, as a document with its author's features (author inputs),
        calibrated."""
        raw = self.inputs.message_raw_scores(self.model, self.inputs.unit_rows(split), messages)
        return self.calibrator.transform(raw) if len(raw) else raw


def _explain(
    table: pd.DataFrame, split: str, scorer: _Scorer, messages: pd.DataFrame, cfg: DictConfig
) -> pd.DataFrame:
    """Add why-columns (and, with show_text, an example message) to an error table."""
    unit = scorer.inputs.unit
    own = messages.rename(columns={unit.id_column: "id"})
    own = own[own["id"].isin(set(table["id"]))].reset_index(drop=True)
    limit = int(cfg.evaluate.max_text_chars)
    if scorer.inputs.aggregated:
        rows = scorer.inputs.input_view
        rows = rows[(rows["split"] == split) & rows[unit.id_column].isin(set(table["id"]))]
        rows = rows.assign(row_score=scorer.calibrated(features_of(rows, scorer.inputs.kind)))
        best = rows.sort_values("row_score").groupby(unit.id_column).last()
        table["top_conversation"] = table["id"].map(
            lambda i: (
                f"{best.loc[i, 'conversation_id']} ({best.loc[i, 'row_score']:.3f})"
                if i in best.index
                else ""
            )
        )
        if cfg.evaluate.show_text:
            table["example_text"] = [
                _truncate(best.loc[i, "text"], limit) if i in best.index else ""
                for i in table["id"]
            ]
        return table
    base = scorer.unit_inputs(split)
    if error_analysis.linear_parts(scorer.model) is not None:
        documents = base.loc[table["id"]].reset_index(drop=True)
        # Privacy: on real data, no term used by fewer than min_term_authors authors (rows).
        min_rows = 0 if cfg.data.synthetic else int(cfg.evaluate.min_term_authors)
        table["top_terms"] = error_analysis.linear_explanations(
            scorer.model,
            documents,
            reference=base.reset_index(drop=True) if min_rows else None,
            min_term_rows=min_rows,
        )
    else:
        medians = base.select_dtypes("number").median().to_dict()
        medians = {k: v for k, v in medians.items() if is_feature(k)}
        refs = error_analysis.occlusion_explanations(
            scorer.calibrated,
            base.loc[table["id"]],
            own,
            str(cfg.features.message_separator),
            medians,
            speaker_markers=unit.name == "conversation",
        )
        table["top_changes"] = table["id"].map(refs).fillna("")
    if cfg.evaluate.show_text and unit.name == "author":
        nonempty = own[own["text"] != ""].reset_index(drop=True)
        nonempty["message_score"] = scorer.message_scores(
            nonempty.rename(columns={"id": "author"}), split
        )
        best_text = nonempty.sort_values("message_score").groupby("id")["text"].last()
        table["example_text"] = [
            _truncate(text, limit) for text in table["id"].map(best_text).fillna("")
        ]
    return table


def _error_analysis(
    split: str,
    predictions: pd.DataFrame,
    messages: pd.DataFrame,
    scorer: _Scorer,
    cfg: DictConfig,
    ctx: StageContext,
    lexicons: dict[str, list[str]],
) -> dict[str, Path]:
    """False-positive and false-negative tables and slices, logged as MLflow tables."""
    unit = scorer.inputs.unit
    profile = profiles(messages, unit.name, lexicons)
    outputs: dict[str, Path] = {}
    for which in ("false_positives", "false_negatives"):
        table = error_analysis.error_table(predictions, profile, which, int(cfg.evaluate.top_k))
        if table.empty:
            continue
        table = _explain(table, split, scorer, messages, cfg)
        outputs[f"{split}_{which}"] = write_parquet(
            ctx.evaluation_dir / f"{split}-{which}.parquet", table
        )
        tracking.log_table(table, f"tables/{split}-{which}.json")
    rates = error_analysis.slice_rates(predictions, profile)
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


@dataclass
class _Evaluation:
    """What every split's evaluation shares: the model and its decisions, the tables, the
    feature settings the model was trained with, and what has been computed so far."""

    cfg: DictConfig
    ctx: StageContext
    model: Any
    meta: dict[str, Any]
    scorer: _Scorer
    messages: pd.DataFrame
    conversations: pd.DataFrame
    line_truth: pd.DataFrame | None
    lexicons: dict[str, list[str]]
    metrics: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)
    line_decision: lines.LineDecision | None = None

    @property
    def unit(self) -> Unit:
        return self.scorer.inputs.unit

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])


def _load_evaluation(cfg: DictConfig, ctx: StageContext) -> _Evaluation:
    """The trained model (checked to be of this data), its scorer and the tables."""
    from grooming_detect.scoring.messages import feature_settings

    model, meta = load_model(ctx.model_dir)
    check_same_data(meta, read_json(ctx.manifest_path), ctx.model_dir, "evaluate")
    features_manifest = ctx.features_dir / "manifest.json"
    if features_manifest.is_file():
        check_same_features(meta, read_json(features_manifest), ctx.model_dir, "evaluate")
    unit = UNITS[meta.get("unit", "author")]
    inputs = ModelInput(
        ctx, unit, meta.get("input", unit.name), meta.get("aggregate") or "max", "evaluate"
    )
    scorer = _Scorer(
        model, ScoreCalibrator.from_dict(meta.get("calibration", {"method": "none"})), inputs
    )
    line_truth_path = ctx.dataset_dir / "predator_lines.parquet"
    # The lexicons the model was trained with (its metadata), not the current config's.
    lexicons, _ = feature_settings(meta, None, None)
    return _Evaluation(
        cfg=cfg,
        ctx=ctx,
        model=model,
        meta=meta,
        scorer=scorer,
        messages=read_table(ctx.dataset_dir, "messages"),
        conversations=read_table(ctx.dataset_dir, "conversations"),
        line_truth=pd.read_parquet(line_truth_path) if line_truth_path.is_file() else None,
        lexicons=lexicons,
    )


def _score_split(ev: _Evaluation, split: str) -> pd.DataFrame:
    """The split's score table (id, label, counts, raw and calibrated score, flag), highest
    score first; adds the split's unit measures. Every figure of the split is drawn from this
    table's rows, never from separate arrays."""
    unit = ev.unit
    rows, raw = ev.scorer.inputs.raw_scores(ev.model, split)
    calibrated = ev.scorer.calibrator.transform(raw)
    y_true = rows[unit.label_column].to_numpy(dtype=bool)
    predictions = (
        rows[[unit.id_column, unit.label_column, *COUNT_COLUMNS[unit.name]]]
        .rename(columns={unit.id_column: "id", unit.label_column: "label"})
        .assign(raw_score=raw, score=calibrated, predicted=calibrated >= ev.threshold)
        .sort_values("score", ascending=False, ignore_index=True)
    )
    ev.metrics.update(
        unit_metrics(y_true, raw, calibrated, ev.threshold, ev.cfg, f"{split}/{unit.name}")
    )
    return predictions


def _pan_submissions(ev: _Evaluation, split: str, predictions: pd.DataFrame) -> None:
    """An author-level model's conversation measures and PAN-2012 submissions: Problem 1 (the
    named authors) and Problem 2 (their lines, see `_problem2`), and on test their scores
    against the full truth files as the PAN scorer computes them."""
    ctx = ev.ctx
    messages = ev.messages[ev.messages["split"] == split]
    ev.metrics.update(
        _conversation_level(predictions, messages, ev.conversations, split, ev.threshold)
    )
    ev.outputs[f"{split}_submission"] = write_text(
        ctx.evaluation_dir / f"{split}-problem1-predators.txt", submission_text(predictions)
    )
    _problem2(ev, split, messages, set(predictions.loc[predictions["predicted"], "id"]))
    if split == "test":
        manifest = read_json(ctx.manifest_path)
        ev.metrics.update(
            pan_eval.pan_exact_scores(
                manifest,
                ev.outputs[f"{split}_submission"],
                ev.outputs[f"{split}_problem2"],
                ev.metrics,
            )
        )
        ev.metrics.update(
            pan_eval.pan_all_lines_scores(manifest, ev.outputs[f"{split}_problem2_all_lines"])
        )


def _problem2(ev: _Evaluation, split: str, messages: pd.DataFrame, named: set[str]) -> None:
    """Problem 2 of one split: the lines the run's rule (`ev.line_decision`) picks among the
    named authors' messages (``<split>-problem2-lines.txt``) and every such line, the all-lines
    baseline (``<split>-problem2-lines-all.txt``); scored against the split's line truth."""
    decision = ev.line_decision or lines.LineDecision("all_lines")
    candidates = lines.candidate_messages(messages, named)
    every = lines.as_lines(candidates)
    chosen = every
    if decision.rule == "scored" and decision.threshold is not None and len(candidates):
        scores = ev.scorer.message_scores(candidates, split)
        chosen = lines.as_lines(candidates[scores >= decision.threshold])
    directory = ev.ctx.evaluation_dir
    ev.outputs[f"{split}_problem2"] = write_text(
        directory / f"{split}-problem2-lines.txt", lines.submission_text(chosen)
    )
    ev.outputs[f"{split}_problem2_all_lines"] = write_text(
        directory / f"{split}-problem2-lines-all.txt", lines.submission_text(every)
    )
    truth = _split_line_truth(ev, messages)
    if truth is None or truth.empty:
        return
    rule_scores, baseline = lines.line_scores(chosen, truth), lines.line_scores(every, truth)
    for name in lines.LINE_MEASURES:
        ev.metrics[f"{split}/line/{name}"] = rule_scores[name]
        ev.metrics[f"{split}/line/{name}_all_lines"] = baseline[name]
    log.info(
        "%s: lines (%s) precision %.3f recall %.3f F3 %.3f; all lines of named authors: "
        "precision %.3f recall %.3f F3 %.3f",
        split,
        decision.rule if decision.threshold is None else f"scored >= {decision.threshold:.3f}",
        *(rule_scores[name] for name in lines.LINE_MEASURES),
        *(baseline[name] for name in lines.LINE_MEASURES),
    )


def _split_line_truth(ev: _Evaluation, messages: pd.DataFrame) -> pd.DataFrame | None:
    """The line truth of the conversations in `messages` (None without line truth)."""
    if ev.line_truth is None:
        return None
    return ev.line_truth[ev.line_truth["conversation_id"].isin(set(messages["conversation_id"]))]


def _line_decision(ev: _Evaluation) -> lines.LineDecision:
    """The Problem-2 rule this run applies, decided before any split is evaluated: the
    configured one, or ``all_lines`` (logged, with the reason) where ``scored`` cannot apply."""
    rule, setting = str(ev.cfg.evaluate.line_rule), ev.cfg.evaluate.line_threshold
    if rule == "all_lines":
        return lines.LineDecision("all_lines", note="evaluate.line_rule=all_lines")
    if ev.scorer.inputs.aggregated:
        return _line_fallback(
            f"the model reads {ev.scorer.inputs.kind.name} rows, not author documents, so it "
            "cannot score a single message"
        )
    threshold = lines.parse_line_threshold(setting)
    if isinstance(threshold, float):
        return lines.LineDecision("scored", threshold, "evaluate.line_threshold")
    return _tuned_line_decision(ev)


def _tuned_line_decision(ev: _Evaluation) -> lines.LineDecision:
    """The scored rule with the threshold that maximises F3 on validation's line truth, among
    the messages of the authors named on validation; the test split is never read here."""
    selection = ev.meta.get("selection") or {}
    if is_crossfit(ev.meta):
        # Crossfit: tuned by the train stage on out-of-fold message scores, or not at all
        # (validation's own message scores are in-sample for the refit model).
        tuned = selection.get("line_threshold")
        if tuned is None:
            return _line_fallback(
                "the model was refit on train + validation (decision=crossfit) and "
                "train + validation have no line truth to tune on out of fold (PAN-2012 "
                "publishes line truth for its test corpus only)"
            )
        note = f"tuned on {tuned['fitted_on']}"
        log.info("Problem 2 lines: threshold %.4f %s", tuned["threshold"], note)
        return lines.LineDecision("scored", float(tuned["threshold"]), note)
    messages = ev.messages[ev.messages["split"] == "validation"]
    truth = _split_line_truth(ev, messages)
    if truth is None or truth.empty:
        return _line_fallback(
            "the validation split has no line truth to tune evaluate.line_threshold on "
            "(PAN-2012 publishes line truth for its test corpus only)"
        )
    candidates = lines.candidate_messages(messages, _named_authors(ev, "validation"))
    if candidates.empty:
        return _line_fallback("no author is named on validation: no message to tune on")
    tuned = tune_lines(candidates, ev.scorer.message_scores(candidates, "validation"), truth)
    if tuned is None:
        return _line_fallback(
            "the model's message scores never vary within an author (it does not read the "
            "message text)"
        )
    note = (
        f"tuned on validation: best F3 over {len(candidates)} messages of named authors, "
        f"{int(tuned['truth_lines'])} truth lines ({int(tuned['missed'])} not among them)"
    )
    log.info("Problem 2 lines: threshold %.3f %s", tuned["threshold"], note)
    return lines.LineDecision("scored", tuned["threshold"], note)


def _line_fallback(reason: str) -> lines.LineDecision:
    log.info("Problem 2 lines: all lines of named authors instead of scored lines: %s", reason)
    return lines.LineDecision("all_lines", note=f"fallback from scored: {reason}")


def _named_authors(ev: _Evaluation, split: str) -> set[str]:
    """The authors of `split` the model names at its decision threshold."""
    rows, raw = ev.scorer.inputs.raw_scores(ev.model, split)
    named = ev.scorer.calibrator.transform(raw) >= ev.threshold
    return set(rows.loc[named, ev.unit.id_column])


def _split_figures(ev: _Evaluation, split: str, predictions: pd.DataFrame) -> None:
    """Reliability diagram, score histogram and confusion matrix of one split, each drawn from
    a table of the split's score table (saved beside the figure as CSV)."""
    directory, threshold = ev.ctx.evaluation_dir, ev.threshold
    label = f"{split}, {ev.unit.name}s, {ev.meta['model_name']}"
    ev.outputs[f"{split}_reliability"] = plots.reliability_figure(
        predictions,
        f"Reliability ({label})",
        directory / f"{split}-reliability.png",
        int(ev.cfg.evaluate.reliability_bins),
        int(ev.cfg.evaluate.ece_bins),
    )
    ev.outputs[f"{split}_histogram"] = plots.score_histogram_figure(
        predictions,
        threshold,
        f"Scores by class ({label})",
        directory / f"{split}-score-histogram.png",
    )
    ev.outputs[f"{split}_confusion"] = plots.confusion_figure(
        predictions,
        f"Confusion at threshold {threshold:.3f} ({label})",
        directory / f"{split}-confusion.png",
    )


def _evaluate_split(ev: _Evaluation, split: str) -> None:
    """Every measure, file and figure of one split."""
    unit = ev.unit
    predictions = _score_split(ev, split)
    if unit.name == "author":
        _pan_submissions(ev, split, predictions)
    ev.predictions[split] = predictions
    ev.outputs[f"{split}_predictions"] = write_parquet(
        ev.ctx.evaluation_dir / f"{split}-{unit.name}-scores.parquet", predictions
    )
    _split_figures(ev, split, predictions)
    messages = ev.messages[ev.messages["split"] == split]
    ev.outputs.update(
        _error_analysis(split, predictions, messages, ev.scorer, ev.cfg, ev.ctx, ev.lexicons)
    )
    prefix = f"{split}/{unit.name}"
    log.info(
        "%s: %s precision %.3f recall %.3f F0.5 %.3f [%.3f, %.3f] PR-AUC %.3f (threshold %.3f)",
        split,
        unit.name,
        ev.metrics[f"{prefix}/precision"],
        ev.metrics[f"{prefix}/recall"],
        ev.metrics[f"{prefix}/f0_5"],
        ev.metrics[f"{prefix}/f0_5_ci_low"],
        ev.metrics[f"{prefix}/f0_5_ci_high"],
        ev.metrics[f"{prefix}/pr_auc"],
        ev.threshold,
    )


def _summary(ev: _Evaluation, skipped: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """``evaluation.json``: the settings behind the numbers, and the numbers."""
    cfg, meta = ev.cfg, ev.meta
    return {
        "dataset": str(cfg.data.name),
        "synthetic": bool(cfg.data.synthetic),
        "model": meta["model_name"],
        "unit": ev.unit.name,
        "skipped": skipped,
        "threshold": ev.threshold,
        "threshold_objective": meta["threshold_objective"],
        "threshold_fitted_on": meta["threshold_fitted_on"],
        "selection": (meta.get("selection") or {"method": "holdout"}).get("method"),
        "calibration": meta.get("calibration", {"method": "none"}),
        "line_rule": ev.line_decision.rule if ev.line_decision else None,
        "line_threshold": ev.line_decision.threshold if ev.line_decision else None,
        "line_rule_note": ev.line_decision.note if ev.line_decision else "",
        "bootstrap": to_dict(cfg.evaluate.bootstrap),
        "ece_bins": int(cfg.evaluate.ece_bins),
        "reliability_bins": int(cfg.evaluate.reliability_bins),
        "min_positives": int(cfg.evaluate.min_positives),
        "evaluate_run_id": tracking.active_run_id(),
        "model_dir": str(ev.ctx.model_dir),
        "metrics": ev.metrics,
        **{key: value for key, value in extra.items() if value},
    }


def run_evaluate(cfg: DictConfig, ctx: StageContext) -> StageResult:
    """Score each split in `evaluate.splits` with the trained model, calibrator and threshold;
    then the audit and early detection when configured, the curves and the summary."""
    ev = _load_evaluation(cfg, ctx)
    embedding_before = EMBEDDING_COUNTERS.copy()
    unit = ev.unit
    skipped: list[str] = []
    if unit.name != "author":
        skipped.append(AUTHOR_SKIP_REASON)
        log.info(AUTHOR_SKIP_REASON)
        tracking.set_tags({"author_metrics": AUTHOR_SKIP_REASON})
    else:
        ev.line_decision = _line_decision(ev)
        if ev.line_decision.threshold is not None:
            ev.metrics["evaluate/line_threshold"] = ev.line_decision.threshold
    splits = [str(s) for s in cfg.evaluate.splits]
    trained_on = ["train"]
    if is_crossfit(ev.meta):
        # The decisions' cross-validated measures stand in for validation, which the model
        # was refit on: its scores would be in-sample, so it is not evaluated.
        ev.metrics.update(
            {f"cv/{ev.unit.name}/{k}": float(v) for k, v in ev.meta["at_threshold"].items()}
        )
        if "validation" in splits:
            log.info("validation is training data under decision=crossfit: not scored")
        splits = [s for s in splits if s != "validation"]
        trained_on = list(POOL)
    for split in splits:
        _evaluate_split(ev, split)
    if cfg.evaluate.get("shortcut_baseline", True):
        ev.metrics.update(
            shortcut.metadata_baseline(ev.scorer.inputs, splits, int(cfg.seed), trained_on)
        )
    audit_summary = audit.audit_from_config(
        cfg, ctx, ev.model, ev.meta, ev.predictions, ev.messages, ev.metrics, ev.outputs
    )
    early_summary = early.early_from_config(
        cfg, ctx, ev.model, ev.meta, ev.messages, ev.conversations, ev.metrics, ev.outputs
    )
    title = f"{unit.name.capitalize()}-level {{}}: {ev.meta['model_name']} on {cfg.data.name}"
    ev.outputs["pr_curve"] = plots.precision_recall_figure(
        ev.predictions,
        title.format("precision-recall"),
        ctx.evaluation_dir / f"pr_curve_{unit.name}.png",
    )
    ev.outputs["roc_curve"] = plots.roc_figure(
        ev.predictions, title.format("ROC"), ctx.evaluation_dir / f"roc_curve_{unit.name}.png"
    )
    # Embedding models: throughput and cache reuse over every split, audit and explanation.
    ev.metrics.update(EMBEDDING_COUNTERS.since(embedding_before, "evaluate"))
    summary = _summary(ev, skipped, {"audit": audit_summary, "early": early_summary})
    ev.outputs["summary"] = write_json(ctx.evaluation_dir / "evaluation.json", summary)
    tracking.set_tags({"model_dir": str(ctx.model_dir), "model_run": ctx.model_dir.parent.name})
    tracking.log_metrics(ev.metrics)
    tracking.log_artifact(ctx.evaluation_dir, "evaluation")
    return StageResult(stage="evaluate", outputs=ev.outputs, metrics=ev.metrics)


def _conversation_level(
    predictions: pd.DataFrame,
    messages: pd.DataFrame,
    conversations: pd.DataFrame,
    split: str,
    threshold: float,
) -> dict[str, float]:
    """Conversation measures of an author-level model: a conversation scores its top author."""
    pairs = messages[["conversation_id", "author"]].drop_duplicates()
    top = conversation_scores(pairs, predictions.set_index("id")["score"])
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
