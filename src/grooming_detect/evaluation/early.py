"""Early sexual predator detection (eSPD) measures: warning policy, latency and the
latency-weighted F1 of Vogt, Leser and Akbik (ACL 2021).

A model reads a conversation message by message and produces a risk score after message
``k = 1, 2, ...`` (one curve per conversation). The warning policy raises a warning at the
first ``k`` where the score has reached the threshold in ``patience`` consecutive evaluated
steps (eSPD's "skepticism"); ``k`` is then the warning latency: the messages read before the
warning. Measures over conversations:

* precision, recall and F1 of warned conversations (a warning on a positive conversation is a
  true positive, on a negative one a false warning);
* latency over true positives: median and quantiles;
* ``penalty(k) = -1 + 2 / (1 + exp(-p (k - 1)))`` with ``p = ln(3) / 89``, so that
  ``penalty(1) = 0`` and ``penalty(90) = 0.5``; ``speed = 1 - median penalty`` over true
  positives; latency-weighted F1 = F1 × speed;
* false warnings per 1,000 negative conversations.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from grooming_detect.models.decision import ScoreCalibrator
from grooming_detect.scoring.incremental import ConversationStreams, LinearPrefixScorer
from grooming_detect.scoring.messages import feature_settings
from grooming_detect.stage import StageContext

log = logging.getLogger(__name__)

#: eSPD's penalty slope: a warning after 90 messages costs half of the F1.
P_DEFAULT = math.log(3) / 89


def latency_penalty(k: float | np.ndarray, p: float = P_DEFAULT) -> float | np.ndarray:
    """``-1 + 2 / (1 + exp(-p (k - 1)))``: 0 for a warning at the first message, towards 1
    for late ones."""
    k = np.asarray(k, dtype=float)
    if np.any(k < 1):
        raise ValueError("latency k counts messages read: expected k >= 1")
    value = -1.0 + 2.0 / (1.0 + np.exp(-p * (k - 1.0)))
    return float(value) if value.ndim == 0 else value


def speed(latencies: Sequence[float], p: float = P_DEFAULT) -> float:
    """``1 - median penalty`` over the true positives' latencies (NaN without any)."""
    if len(latencies) == 0:
        return float("nan")
    return float(1.0 - np.median(latency_penalty(np.asarray(latencies, dtype=float), p)))


def first_warning(
    steps: Sequence[int], scores: Sequence[float], threshold: float, patience: int = 1
) -> int | None:
    """Messages read (``k``) when the warning is raised: the step at which the score has been
    at or above `threshold` for `patience` consecutive evaluated steps; None if never.

    `steps` are the ``k`` at which the conversation was scored (increasing), `scores` the
    score after each."""
    if patience < 1:
        raise ValueError(f"patience {patience!r}: expected a positive number of steps")
    if len(steps) != len(scores):
        raise ValueError("steps and scores differ in length")
    run = 0
    for k, score in zip(steps, scores, strict=True):
        run = run + 1 if score >= threshold else 0
        if run >= patience:
            return int(k)
    return None


def early_measures(
    latencies: Sequence[int | None], labels: Sequence[bool], p: float = P_DEFAULT
) -> dict[str, float]:
    """The eSPD measures from each conversation's warning latency (None: no warning) and its
    label."""
    warned = np.array([k is not None for k in latencies], dtype=bool)
    y = np.asarray(labels, dtype=bool)
    true_positive = warned & y
    n_tp, n_warned, n_pos, n_neg = true_positive.sum(), warned.sum(), y.sum(), (~y).sum()
    precision = n_tp / n_warned if n_warned else 0.0
    recall = n_tp / n_pos if n_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    tp_latencies = np.array(
        [k for k, hit in zip(latencies, true_positive, strict=True) if hit], dtype=float
    )
    fast = speed(tp_latencies.tolist(), p)
    measures = {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "speed": fast,
        "latency_weighted_f1": float(f1 * fast) if np.isfinite(fast) else 0.0,
        "false_warnings_per_1k_negatives": float(1000 * (warned & ~y).sum() / n_neg)
        if n_neg
        else float("nan"),
        "n_conversations": float(len(y)),
        "n_positive": float(n_pos),
        "n_warned": float(n_warned),
    }
    for q in (0.25, 0.5, 0.75, 0.9):
        name = "latency_median" if q == 0.5 else f"latency_q{int(q * 100)}"
        measures[name] = float(np.quantile(tp_latencies, q)) if len(tp_latencies) else float("nan")
    return measures


# --------------------------------------------------------------------------- risk curves

#: How a model's risk curve is computed: ``incremental`` (exact prefix scores of a linear TF-IDF
#: model, `grooming_detect.scoring.incremental`), ``window`` (re-score the last `window`
#: messages every `step` messages: any model), or ``auto`` (incremental when the model allows).
METHODS = ("auto", "incremental", "window")
#: Pseudo-ids of windows join the original id and the step with this character (never in ids).
_JOIN = "\x1f"
#: Window messages scored at a time by the window method (bounds its memory).
WINDOW_CHUNK_MESSAGES = 200_000


@dataclass(frozen=True)
class EarlySettings:
    """``early`` in the config."""

    window: int = 50
    step: int = 1
    patience: int = 1
    method: str = "auto"
    #: ``tuned``: warning threshold maximising latency-weighted F1 on validation; ``model``:
    #: the model's own tuned decision threshold.
    threshold: str = "tuned"
    penalty_p: float = P_DEFAULT

    def __post_init__(self) -> None:
        for name in ("window", "step", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"early.{name} {value!r}: expected a positive whole number")
        if self.method not in METHODS:
            raise ValueError(f"early.method {self.method!r}: expected one of {list(METHODS)}")
        if self.threshold not in ("tuned", "model"):
            raise ValueError(f"early.threshold {self.threshold!r}: expected 'tuned' or 'model'")
        if not (isinstance(self.penalty_p, float | int) and self.penalty_p > 0):
            raise ValueError(f"early.penalty_p {self.penalty_p!r}: expected a positive number")


def ordered_messages(messages: pd.DataFrame) -> pd.DataFrame:
    """Messages in reading order (conversation, then line) with ``k``: messages read so far."""
    ordered = messages.sort_values(["conversation_id", "line"], kind="stable", ignore_index=True)
    return ordered.assign(k=ordered.groupby("conversation_id", sort=False).cumcount() + 1)


def incremental_curves(
    scorer: LinearPrefixScorer, unit: str, messages: pd.DataFrame
) -> pd.DataFrame:
    """Raw score of each conversation after every message, from exact prefix scores
    (`ConversationStreams`: the code ``grooming-detect-score --stream`` runs)."""
    ordered = ordered_messages(messages)
    streams = ConversationStreams(scorer, unit)
    scores = np.fromiter(
        (
            streams.add(cid, author, text)
            for cid, author, text in zip(
                ordered["conversation_id"].tolist(),
                ordered["author"].tolist(),
                ordered["text"].tolist(),
                strict=True,
            )
        ),
        dtype=np.float64,
        count=len(ordered),
    )
    return pd.DataFrame(
        {"conversation_id": ordered["conversation_id"], "k": ordered["k"], "raw_score": scores}
    )


def window_steps(n_messages: int, step: int) -> list[int]:
    """The ``k`` at which a conversation of `n_messages` is scored: every `step`, and the end."""
    steps = list(range(step, n_messages + 1, step))
    if not steps or steps[-1] != n_messages:
        steps.append(n_messages)
    return steps


def _runs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end positions of each run of equal consecutive `ids` (a conversation's rows)."""
    if not len(ids):
        return np.array([], dtype=int), np.array([], dtype=int)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return starts, np.r_[starts[1:], len(ids)]


def _window_index(
    ordered: pd.DataFrame, window: int, step: int
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Positions (in `ordered`) of every scored window's messages, the window's
    pseudo-conversation id for each position, and each window's ``k``."""
    ids = ordered["conversation_id"].to_numpy()
    starts, ends = _runs(ids)
    positions, pseudo, ks = [], [], []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        cid = ids[start]
        for k in window_steps(end - start, step):
            first = start + max(0, k - window)
            positions.append(np.arange(first, start + k))
            pseudo.extend([f"{cid}{_JOIN}{k}"] * (start + k - first))
            ks.append(k)
    index = np.concatenate(positions) if positions else np.array([], dtype=int)
    return index, pseudo, np.asarray(ks, dtype=int)


def window_messages(messages: pd.DataFrame, window: int, step: int) -> pd.DataFrame:
    """The messages each scored window holds: for step ``k`` of a conversation, messages
    ``max(1, k - window + 1) .. k`` under a pseudo-conversation ``<id>\\x1f<k>`` whose authors
    are ``<author>\\x1f<id>\\x1f<k>``, so every window is scored on its own."""
    ordered = ordered_messages(messages)
    index, pseudo, _ = _window_index(ordered, window, step)
    part = ordered.iloc[index].reset_index(drop=True)
    pseudo_ids = pd.Series(pseudo, dtype=object)
    return part.assign(
        conversation_id=pseudo_ids.to_numpy(),
        author=(part["author"].astype(str) + _JOIN + pseudo_ids).to_numpy(),
    )


def window_curves(
    model: Any,
    meta: dict[str, Any],
    messages: pd.DataFrame,
    settings: EarlySettings,
    lexicons: dict[str, list[str]],
    separator: str,
) -> pd.DataFrame:
    """Raw score of each conversation every `settings.step` messages (and at its end), the
    model reading the last `settings.window` messages, with the features the pipeline builds.
    Windows are scored in chunks of about `WINDOW_CHUNK_MESSAGES` messages."""
    from grooming_detect.scoring.messages import score_messages

    raw_meta = {**meta, "calibration": {"method": "none"}}
    ordered = ordered_messages(messages)
    starts, ends = _runs(ordered["conversation_id"].to_numpy())
    parts, chunk_start, size = [], 0, 0
    for position, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        size += sum(min(k, settings.window) for k in window_steps(end - start, settings.step))
        if size >= WINDOW_CHUNK_MESSAGES or position == len(starts) - 1:
            chunk = window_messages(
                ordered.iloc[starts[chunk_start] : end].drop(columns="k"),
                settings.window,
                settings.step,
            )
            _, scored = score_messages(
                model, raw_meta, chunk.drop(columns="k"), lexicons, separator
            )
            parts.append(scored)
            chunk_start, size = position + 1, 0
    if not parts:
        return pd.DataFrame(columns=["conversation_id", "k", "raw_score"])
    scored = pd.concat(parts, ignore_index=True)
    split = scored["conversation_id"].str.rsplit(_JOIN, n=1, expand=True)
    return pd.DataFrame(
        {
            "conversation_id": split[0],
            "k": split[1].astype(int),
            "raw_score": scored["score"].astype(float),
        }
    ).sort_values(["conversation_id", "k"], ignore_index=True)


def risk_curves(
    model: Any,
    meta: dict[str, Any],
    messages: pd.DataFrame,
    settings: EarlySettings,
    lexicons: dict[str, list[str]],
    separator: str,
) -> tuple[pd.DataFrame, str]:
    """Each conversation's calibrated risk after message ``k`` (columns ``conversation_id``,
    ``k``, ``raw_score``, ``score``) and the method used. The score at ``k`` is computed from
    messages ``1..k`` alone."""
    scorer = None
    if settings.method in ("auto", "incremental"):
        scorer = LinearPrefixScorer.from_pipeline(model, separator)
        if scorer is None and settings.method == "incremental":
            raise ValueError(
                "early.method=incremental needs a TF-IDF + logistic-regression model on text "
                f"alone; {meta.get('model_name', type(model).__name__)} is not one (use "
                "early.method=window)"
            )
    unit = str(meta.get("unit", "author"))
    if scorer is not None:
        curves, method = incremental_curves(scorer, unit, messages), "incremental"
    else:
        curves = window_curves(model, meta, messages, settings, lexicons, separator)
        method = "window"
    calibrator = ScoreCalibrator.from_dict(meta.get("calibration", {"method": "none"}))
    curves["score"] = calibrator.transform(curves["raw_score"].to_numpy())
    return curves, method


# ------------------------------------------------------------------ warnings and tuning


def _patient_running_max(curves: pd.DataFrame, patience: int) -> np.ndarray:
    """Per row: the highest score the conversation has held for `patience` consecutive scored
    steps up to this one (a warning at threshold t is raised at the first row where this
    reaches t)."""
    grouped = curves.groupby("conversation_id", sort=False)["score"]
    held = grouped.rolling(patience, min_periods=patience).min().reset_index(level=0, drop=True)
    held = held.reindex(curves.index).fillna(-np.inf)
    return held.groupby(curves["conversation_id"], sort=False).cummax().to_numpy()


def warning_latencies(curves: pd.DataFrame, threshold: float, patience: int) -> pd.Series:
    """Per conversation (in curve order): ``k`` of the first warning, NaN when none."""
    curves = curves.reset_index(drop=True)
    reached = _patient_running_max(curves, patience) >= threshold
    first = curves.loc[reached].groupby("conversation_id", sort=False)["k"].min()
    ids = curves["conversation_id"].drop_duplicates()
    return first.reindex(ids).astype(float)


def tune_warning_threshold(
    curves: pd.DataFrame, labels: pd.Series, patience: int, p: float = P_DEFAULT
) -> tuple[float, float]:
    """The threshold maximising latency-weighted F1 of `curves` (validation), and that value.

    Candidates are the scores at which a conversation's warning or its latency changes (the
    values of the patient running maximum), at most 400 quantiles of them."""
    curves = curves.reset_index(drop=True)
    held = _patient_running_max(curves, patience)
    peaks = pd.Series(held).groupby(curves["conversation_id"], sort=False).max()
    starts, ends = _runs(curves["conversation_id"].to_numpy())
    if len(starts) != len(peaks):
        raise ValueError("early detection: each conversation's curve rows must be contiguous")
    known = labels.reindex(peaks.index)
    if known.isna().any():
        missing = list(known.index[known.isna()][:3])
        raise ValueError(f"early detection: conversations without a label, e.g. {missing}")
    y = known.to_numpy(dtype=bool)
    n_pos = y.sum()
    candidates = np.unique(held[np.isfinite(held)])
    if len(candidates) > 400:  # observed scores only, never interpolated ones
        candidates = np.unique(np.quantile(candidates, np.linspace(0, 1, 400), method="higher"))
    ks = curves["k"].to_numpy(dtype=float)
    latency = np.full((len(peaks), len(candidates)), np.nan)
    for row, (a, b) in enumerate(zip(starts, ends, strict=True)):
        where = np.searchsorted(held[a:b], candidates, side="left")
        hit = where < b - a
        latency[row, hit] = ks[a:b][where[hit]]
    warned = ~np.isnan(latency)
    tp = (warned & y[:, None]).sum(axis=0)
    n_warned = warned.sum(axis=0)
    precision = np.divide(tp, n_warned, out=np.zeros(len(candidates)), where=n_warned > 0)
    recall = tp / n_pos if n_pos else np.zeros(len(candidates))
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall,
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    hits = warned & y[:, None]
    penalties = np.where(hits, latency_penalty(np.nan_to_num(latency, nan=1.0), p), np.nan)
    penalties[:, tp == 0] = 0.0  # no true positive: the objective is 0 below anyway
    median_penalty = np.nanmedian(penalties, axis=0)
    objective = np.where(tp > 0, f1 * (1.0 - median_penalty), 0.0)
    if len(candidates) == 0 or objective.max() <= 0:
        raise ValueError(
            f"early detection: no warning threshold warns a positive validation conversation "
            f"({int(n_pos)} positive of {len(y)}, patience {patience}), so none can be tuned; "
            "lower early.patience, or set early.threshold=model"
        )
    best = int(np.argmax(objective))  # the lowest threshold among equals: the earliest warnings
    return float(candidates[best]), float(objective[best])


def split_measures(
    curves: pd.DataFrame, labels: pd.Series, threshold: float, settings: EarlySettings
) -> tuple[dict[str, float], pd.DataFrame]:
    """The eSPD measures of one split at `threshold`, and the per-conversation warnings
    (``conversation_id``, ``label``, ``n_messages``, ``warned_at``: NaN when never)."""
    latencies = warning_latencies(curves, threshold, settings.patience)
    y = labels.reindex(latencies.index)
    if y.isna().any():
        missing = list(y.index[y.isna()][:3])
        raise ValueError(f"early detection: conversations without a label, e.g. {missing}")
    measures = early_measures(
        [None if np.isnan(k) else int(k) for k in latencies],
        y.to_numpy(dtype=bool).tolist(),
        settings.penalty_p,
    )
    lengths = curves.groupby("conversation_id", sort=False)["k"].max()
    table = pd.DataFrame(
        {
            "conversation_id": latencies.index,
            "label": y.to_numpy(dtype=bool),
            "n_messages": lengths.reindex(latencies.index).to_numpy(),
            "warned_at": latencies.to_numpy(),
        }
    )
    return measures, table


def evaluate_early(
    model: Any,
    meta: dict[str, Any],
    messages: pd.DataFrame,
    conversations: pd.DataFrame,
    splits: Sequence[str],
    settings: EarlySettings,
    lexicons: dict[str, list[str]],
    separator: str,
    out_dir: Path,
) -> tuple[dict[str, float], dict[str, Any], dict[str, Path]]:
    """Risk curves, the warning threshold (tuned on validation), the eSPD measures per split
    (``<split>/early/…``), the per-conversation warnings and curves (Parquet, no text) and the
    figures, under `out_dir`."""
    from grooming_detect.io import write_parquet

    out_dir.mkdir(parents=True, exist_ok=True)
    curves: dict[str, pd.DataFrame] = {}
    method = ""
    for split in splits:
        part = messages[messages["split"] == split]
        curves[split], method = risk_curves(model, meta, part, settings, lexicons, separator)
    labels = conversations.set_index("conversation_id")["has_predator"]
    threshold, fitted_on = _warning_threshold(meta, curves, labels, settings)
    metrics: dict[str, float] = {"early/threshold": threshold}
    outputs: dict[str, Path] = {}
    warnings: dict[str, pd.DataFrame] = {}
    for split, curve in curves.items():
        measures, warnings[split] = split_measures(curve, labels, threshold, settings)
        metrics.update({f"{split}/early/{name}": value for name, value in measures.items()})
        outputs[f"early_{split}_warnings"] = write_parquet(
            out_dir / f"{split}-warnings.parquet", warnings[split]
        )
        outputs[f"early_{split}_curves"] = write_parquet(out_dir / f"{split}-curves.parquet", curve)
    outputs.update(
        _early_figures(curves, warnings, threshold, meta.get("model_name", "model"), out_dir)
    )
    summary = {
        "method": method,
        "window": settings.window,
        "step": settings.step,
        "patience": settings.patience,
        "penalty_p": settings.penalty_p,
        "threshold": threshold,
        "threshold_fitted_on": fitted_on,
        "splits": list(curves),
    }
    return metrics, summary, outputs


def _warning_threshold(
    meta: dict[str, Any],
    curves: dict[str, pd.DataFrame],
    labels: pd.Series,
    settings: EarlySettings,
) -> tuple[float, str]:
    """The warning threshold and what it was fitted on: the model's decision threshold, or the
    one that maximises latency-weighted F1 on validation's risk curves."""
    if settings.threshold == "model":
        return float(meta["threshold"]), "the model's decision threshold"
    if "validation" not in curves:
        raise ValueError(
            "early.threshold=tuned tunes the warning threshold on validation; add "
            "validation to evaluate.splits or set early.threshold=model"
        )
    threshold, _ = tune_warning_threshold(
        curves["validation"], labels, settings.patience, settings.penalty_p
    )
    return threshold, "validation (latency-weighted F1)"


def _early_figures(
    curves: dict[str, pd.DataFrame],
    warnings: dict[str, pd.DataFrame],
    threshold: float,
    name: str,
    out_dir: Path,
) -> dict[str, Path]:
    """Warned share against messages read (every split), and for test (else the first split)
    the latency of correct warnings and example risk curves."""
    from grooming_detect.evaluation import plots

    outputs = {
        "early_warned_by": plots.warned_by_figure(
            warnings, f"Warnings against messages read ({name})", out_dir / "warned-by-messages.png"
        )
    }
    focus = "test" if "test" in warnings else next(iter(warnings))
    table = warnings[focus]
    hits = table.loc[table["label"] & table["warned_at"].notna(), "warned_at"].to_numpy()
    outputs["early_latency"] = plots.latency_histogram_figure(
        hits, f"{focus}: latency of correct warnings ({name})", out_dir / "latency-histogram.png"
    )
    outputs["early_examples"] = plots.risk_curve_figure(
        _examples(curves[focus], table),
        threshold,
        f"{focus}: risk as the conversation unfolds ({name})",
        out_dir / "risk-curves.png",
    )
    return outputs


def _examples(curves: pd.DataFrame, warnings: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One positive conversation (the correctly warned one at the median latency, else the
    highest-scoring) and the negative with the highest risk, by id only."""
    examples: dict[str, pd.DataFrame] = {}
    peaks = curves.groupby("conversation_id")["score"].max()
    positives = warnings[warnings["label"]]
    warned = positives.dropna(subset=["warned_at"]).sort_values("warned_at")
    if len(warned):
        pick = warned.iloc[len(warned) // 2]["conversation_id"]
    elif len(positives):
        pick = peaks.reindex(positives["conversation_id"]).idxmax()
    else:
        pick = None
    if pick is not None:
        examples[f"positive {pick}"] = curves[curves["conversation_id"] == pick]
    negatives = warnings.loc[~warnings["label"], "conversation_id"]
    if len(negatives):
        worst = peaks.reindex(negatives).idxmax()
        examples[f"negative {worst} (highest risk)"] = curves[curves["conversation_id"] == worst]
    return examples


def early_settings(section: Any) -> EarlySettings:
    """`EarlySettings` from the config's ``early`` section (checked)."""
    values = dict(section)
    p = values.get("penalty_p")
    return EarlySettings(
        window=values.get("window", 50),
        step=values.get("step", 1),
        patience=values.get("patience", 1),
        method=str(values.get("method", "auto")),
        threshold=str(values.get("threshold", "tuned")),
        penalty_p=P_DEFAULT if p is None else p,
    )


def early_from_config(
    cfg: DictConfig,
    ctx: StageContext,
    model: Any,
    meta: dict[str, Any],
    messages: pd.DataFrame,
    conversations: pd.DataFrame,
    metrics: dict[str, float],
    outputs: dict[str, Path],
) -> dict[str, Any]:
    """Early detection (`evaluation.early`) when ``early.enabled``: adds ``<split>/early/…`` to
    `metrics`, the curves, warnings and figures to `outputs`; returns the summary the model card
    reads."""
    if not cfg.early.enabled:
        return {}
    lexicons, separator = feature_settings(meta, None, None)
    early_metrics, summary, early_outputs = evaluate_early(
        model,
        meta,
        messages,
        conversations,
        [str(split) for split in cfg.evaluate.splits],
        early_settings(cfg.early),
        lexicons,
        separator,
        ctx.evaluation_dir / "early",
    )
    metrics.update(early_metrics)
    outputs.update(early_outputs)
    for split in summary["splits"]:
        prefix = f"{split}/early"
        log.info(
            "%s early detection (%s): latency-weighted F1 %.3f (F1 %.3f x speed %.3f), median "
            "latency %s messages, %.1f false warnings per 1,000 negative conversations "
            "(threshold %.3f)",
            split,
            summary["method"],
            metrics[f"{prefix}/latency_weighted_f1"],
            metrics[f"{prefix}/f1"],
            metrics[f"{prefix}/speed"],
            f"{metrics[f'{prefix}/latency_median']:g}",
            metrics[f"{prefix}/false_warnings_per_1k_negatives"],
            summary["threshold"],
        )
    return summary
