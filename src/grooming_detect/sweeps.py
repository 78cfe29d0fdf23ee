"""Uncertainty that includes the procedure: a sweep over seeds, summarised as mean ± sd.

``grooming-detect experiment=seeds`` is a Hydra multirun over ``seed`` on one fixed corpus: each
job re-carves validation, re-assigns the cross-fitting folds, refits the model with its seed and
bootstraps with it. `SeedsSummary`, a Hydra callback, then

* writes ``seeds-summary.json`` and ``seeds-summary.md`` (a table of mean ± sd, min–max and
  every seed's value) into the sweep folder;
* logs one MLflow run, ``seeds-summary``, in the sweep's experiment, holding every measure's
  mean and sd (``seeds/<measure>/mean``, ``…/sd``) and the two files, tagged with the jobs'
  run ids;
* renders each job's model card again with the spread beside its bootstrap interval.

Jobs hand their results to the callback through a small JSON file in their sweep sub-folder,
so the summary works with the parallel (joblib) launcher too.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from grooming_detect import tracking
from grooming_detect.io import read_json, write_json, write_text

log = logging.getLogger(__name__)

#: Where a job leaves its record for the summary, inside its sweep sub-folder.
JOB_RECORD = "job-result.json"
#: Measures the Markdown table shows (when present), as ``<split>/{unit}/<name>``.
TABLE_MEASURES = (
    "test/{unit}/precision",
    "test/{unit}/recall",
    "test/{unit}/f0_5",
    "test/{unit}/pr_auc",
    "test/{unit}/roc_auc",
    "test/{unit}/ece",
    "test/{unit}/pan_f0_5",
    "test/conversation/f0_5",
    "test/line/f3",
    "test/line/f3_all_lines",
    "cv/{unit}/f0_5",
    "cv/{unit}/pr_auc",
    "test/{unit}/pr_auc_metadata_only",
)


def job_record(
    cfg: DictConfig,
    run_id: str,
    metrics: dict[str, float],
    manifest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What one job hands to the summary: its seed, run, resolved config, measures and data
    manifest (the jobs of a sweep share the dataset folder, whose manifest is the last job's)."""
    return {
        "seed": int(cfg.seed),
        "run_id": run_id,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "manifest": manifest,
    }


def what_varies(config: dict[str, Any]) -> str:
    """What a seed moves in this configuration, in words for the summary and the card."""
    crossfit = (config.get("decision") or {}).get("name") == "crossfit"
    data = config.get("data") or {}
    fixed = {
        "synthetic": "the corpus (corpus_seed) and its test split stay fixed",
        "pan12": "the official test corpus stays fixed",
        "chatlog": "the test split stays fixed only if the log has a split column (otherwise it "
        "is re-carved too)",
    }.get(str(data.get("source")), "the test split stays fixed")
    if crossfit:
        return (
            "each seed re-assigns the cross-fitting folds (so the calibrator and the threshold) "
            "and the model's and the bootstrap's seeds; the final model is refit on all of "
            "train + validation whatever the seed, so the spread measures how stable the "
            f"decisions are, not how much another training sample would change the model; {fixed}"
        )
    return (
        "each seed re-carves validation (so the training set, the calibrator and the "
        f"threshold) and reseeds the model and the bootstrap; {fixed}"
    )


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample sd (ddof 1), min and max of every measure finite in every record."""
    if not records:
        raise ValueError("no completed job to summarise")
    names = set.intersection(*(set(r["metrics"]) for r in records))
    measures = {}
    for name in sorted(names):
        values = np.array([r["metrics"][name] for r in records], dtype=float)
        if not np.isfinite(values).all():
            continue
        measures[name] = {
            "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
            "min": float(values.min()),
            "max": float(values.max()),
            "values": values.tolist(),
        }
    return {
        "n_runs": len(records),
        "seeds": [r["seed"] for r in records],
        "run_ids": [r["run_id"] for r in records],
        "varies": what_varies(records[0]["config"]),
        "measures": measures,
    }


def _cell(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def summary_markdown(summary: dict[str, Any], unit: str) -> str:
    """The table of mean ± sd over seeds, one row per headline measure."""
    seeds = summary["seeds"]
    header = "| measure | mean ± sd | min–max | " + " | ".join(f"seed {s}" for s in seeds) + " |"
    lines = [
        f"# Spread over {summary['n_runs']} seeds\n",
        f"{summary['varies'].capitalize()}.\n",
        header,
        "|" + "---|" * (3 + len(seeds)),
    ]
    for pattern in TABLE_MEASURES:
        name = pattern.format(unit=unit)
        stats = summary["measures"].get(name)
        if stats is None:
            continue
        lines.append(
            f"| `{name}` | {_cell(stats['mean'])} ± {_cell(stats['sd'])} "
            f"| {_cell(stats['min'])}–{_cell(stats['max'])} | "
            + " | ".join(_cell(v) for v in stats["values"])
            + " |"
        )
    return "\n".join(lines) + "\n"


class SeedsSummary(Callback):
    """Hydra callback of ``experiment=seeds`` (see the module docstring)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        launcher = str(config.hydra.launcher.get("_target_", ""))
        if "joblib" in launcher.lower():
            raise ValueError(
                "experiment=seeds: the jobs share the dataset folder and rebuild it per seed; "
                "run them one after another (the default launcher), not with hydra/launcher="
                "joblib"
            )
        self._started = time.time()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.COMPLETED or not job_return.return_value:
            return
        folder = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
        write_json(folder / JOB_RECORD, job_return.return_value)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        started = getattr(self, "_started", 0.0)
        records = [
            read_json(path)
            for path in sorted(sweep.glob(f"*/{JOB_RECORD}"))
            if path.stat().st_mtime >= started  # not a record of an earlier sweep here
        ]
        if not records:
            log.warning("seeds summary: no completed job under %s", sweep)
            return
        records.sort(key=lambda r: r["seed"])
        summary = summarize(records)
        unit = _unit(records[0])
        paths = [
            write_json(sweep / "seeds-summary.json", summary),
            write_text(sweep / "seeds-summary.md", summary_markdown(summary, unit)),
        ]
        run_id = _log_summary_run(records, summary, paths)
        log.info("Seeds summary of %d runs: %s (MLflow run %s)", len(records), paths[1], run_id)
        print(summary_markdown(summary, unit))


def _unit(record: dict[str, Any]) -> str:
    names = record["metrics"]
    return "author" if any(k.startswith("test/author/") for k in names) else "conversation"


def _log_summary_run(
    records: list[dict[str, Any]], summary: dict[str, Any], paths: list[Path]
) -> str:
    """One MLflow run in the sweep's experiment with every measure's mean and sd, the summary
    files, and each job's model card rendered again with the spread."""
    cfg = OmegaConf.create(records[0]["config"])
    experiment_id = tracking.setup(cfg.tracking)
    tags = {
        "seeds": ",".join(map(str, summary["seeds"])),
        "job_run_ids": ",".join(summary["run_ids"]),
        "dataset": str(cfg.data.name),
        "model": str(cfg.model.name),
    }
    with tracking.parent_run(experiment_id, "seeds-summary", tags) as run_id:
        metrics = {}
        for name, stats in summary["measures"].items():
            metrics[f"seeds/{name}/mean"] = stats["mean"]
            if not math.isnan(stats["sd"]):
                metrics[f"seeds/{name}/sd"] = stats["sd"]
        tracking.log_metrics(metrics)
        tracking.log_params({"n_runs": summary["n_runs"]})
        for path in paths:
            tracking.log_artifact(path)
        for record in records:
            card = _rewrite_card(record, {**summary, "summary_run_id": run_id})
            if card is not None:
                # The card with its HTML twin (figures inside): MLflow shows no relative image.
                for page in (card, card.with_suffix(".html")):
                    tracking.log_artifact(page, f"cards/{record['run_id']}")
    return run_id


def _rewrite_card(record: dict[str, Any], summary: dict[str, Any]) -> Path | None:
    """The job's model card again, with the spread over seeds beside its own interval."""
    from grooming_detect.reporting.stage import rewrite_model_card
    from grooming_detect.stage import StageContext

    cfg = OmegaConf.create(record["config"])
    if "report" not in cfg.stages:
        return None
    ctx = StageContext.from_config(cfg, parent_run_id=record["run_id"])
    return rewrite_model_card(cfg, ctx, summary, record.get("manifest"))
