"""Uncertainty that includes the data and the procedure: a sweep over corpus seeds and seeds.

``grooming-detect experiment=seeds`` is a Hydra multirun over a grid of ``corpus_seed`` (each
value generates another embedded corpus, so other conversations, authors and test set) and
``seed`` (the procedure: each job re-carves validation, re-assigns the cross-fitting folds,
refits the model with its seed and bootstraps with it). `SeedsSummary`, a Hydra callback, then

* writes ``seeds-summary.json`` and ``seeds-summary.md`` into the sweep folder: every measure's
  mean ± sd over all jobs, split into the sd across corpus seeds (of the per-corpus-seed means)
  and the sd across procedure seeds (pooled within each corpus seed), and a table of the mean
  of each measure per corpus seed, also saved as ``seeds-by-corpus.csv``;
* logs one MLflow run, ``seeds-summary``, in the sweep's experiment, holding every measure's
  mean and sds (``seeds/<measure>/mean``, ``…/sd``, ``…/sd_corpus``, ``…/sd_procedure``) and
  the files, tagged with the jobs' run ids;
* renders each job's model card again, saying which corpus seed it shows and the spread across
  corpus seeds and procedure seeds beside its bootstrap interval.

For data that is not the embedded corpus (``data=pan12``, ``data=chatlog``) ``corpus_seed``
shapes nothing: the summary claims no data component, and jobs that differ only in it count
once.

Jobs hand their results to the callback through a small JSON file in their sweep sub-folder,
so the summary works with the parallel (joblib) launcher too.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from grooming_detect import tracking
from grooming_detect.io import read_json, write_csv, write_json, write_text

log = logging.getLogger(__name__)

#: Where a job leaves its record for the summary, inside its sweep sub-folder.
JOB_RECORD = "job-result.json"
#: The summary's files in the sweep folder.
SUMMARY_JSON = "seeds-summary.json"
SUMMARY_MARKDOWN = "seeds-summary.md"
#: The mean of every measure per corpus seed (beside the Markdown, which shows the headline ones).
BY_CORPUS = "seeds-by-corpus.csv"
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
    """What one job hands to the summary: its seeds, run, resolved config, measures and data
    manifest (the jobs of a sweep share the dataset folder, whose manifest is the last job's).
    ``corpus_seed`` is None for data the embedded generator does not write (pan12, chatlog)."""
    return {
        "seed": int(cfg.seed),
        "corpus_seed": int(cfg.corpus_seed) if cfg.data.get("synthetic") else None,
        "run_id": run_id,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "manifest": manifest,
    }


def what_varies(config: dict[str, Any], n_corpus_seeds: int = 1) -> str:
    """What a seed (and, over `n_corpus_seeds` corpus seeds, a corpus seed) moves in this
    configuration, in words for the summary and the card."""
    crossfit = (config.get("decision") or {}).get("name") == "crossfit"
    data = config.get("data") or {}
    fixed = {
        "synthetic": "the corpus (corpus_seed) and its test split stay fixed",
        "pan12": "the official test corpus stays fixed",
        "chatlog": "the test split stays fixed only if the log has a split column (otherwise it "
        "is re-carved too)",
    }.get(str(data.get("source")), "the test split stays fixed")
    seed, spread = "each seed", "the spread"
    if n_corpus_seeds > 1:
        seed, spread = "each procedure seed", "the spread over procedure seeds"
        fixed = (
            "within one corpus seed the corpus and its test split stay fixed; each corpus seed "
            "generates another corpus (other host conversations, authors, markers and test set)"
        )
    if crossfit:
        return (
            f"{seed} re-assigns the cross-fitting folds (so the calibrator and the threshold) "
            "and the model's and the bootstrap's seeds; the final model is refit on all of "
            f"train + validation whatever the seed, so {spread} measures how stable the "
            f"decisions are, not how much another training sample would change the model; {fixed}"
        )
    return (
        f"{seed} re-carves validation (so the training set, the calibrator and the "
        f"threshold) and reseeds the model and the bootstrap; {fixed}"
    )


def sample_sd(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof 1); nan for fewer than two values."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def variance_components(by_corpus_seed: Mapping[int, Sequence[float]]) -> dict[str, float]:
    """How a measure's spread splits between corpus seeds and procedure seeds, from its values
    grouped by corpus seed (one value per procedure seed in each group).

    ``sd_corpus`` is the sample sd of the per-corpus-seed means (nan below two corpus seeds; it
    still holds a share of the procedure's spread, sd_procedure² / seeds per corpus).
    ``sd_procedure`` is the pooled within-corpus sd, sqrt(Σ (n_i − 1) s_i² / Σ (n_i − 1)): the
    square root of the mean within-corpus variance (the one-way ANOVA estimate), weighted by
    each corpus seed's runs so that a grid with a failed job pools correctly (nan when no
    corpus seed has two runs)."""
    groups = [np.asarray(values, dtype=float) for values in by_corpus_seed.values()]
    within_df = sum(len(g) - 1 for g in groups)
    within_ss = sum(float(((g - g.mean()) ** 2).sum()) for g in groups)
    return {
        "sd_corpus": sample_sd([float(g.mean()) for g in groups]),
        "sd_procedure": math.sqrt(within_ss / within_df) if within_df else float("nan"),
    }


def _counted(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The records the summary counts and the run ids of repeats it leaves out: on data that
    `corpus_seed` does not shape, jobs that differ only in it repeat one configuration."""
    if all(r.get("corpus_seed") is not None for r in records):
        return records, []
    kept: dict[int, dict[str, Any]] = {}
    for record in records:
        kept.setdefault(record["seed"], record)
    repeats = [r["run_id"] for r in records if kept[r["seed"]] is not r]
    return list(kept.values()), repeats


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample sd (ddof 1), min and max over all jobs of every measure finite in every
    record, with the sd across corpus seeds and across procedure seeds (`variance_components`)
    and the mean per corpus seed. Without corpus seeds (data other than the embedded corpus)
    every sd is the procedure's and no data component is claimed."""
    if not records:
        raise ValueError("no completed job to summarise")
    records, repeats = _counted(records)
    data_variance = all(r.get("corpus_seed") is not None for r in records)
    corpus_seeds = sorted({r["corpus_seed"] for r in records}) if data_variance else []
    names = set.intersection(*(set(r["metrics"]) for r in records))
    measures = {}
    for name in sorted(names):
        values = np.array([r["metrics"][name] for r in records], dtype=float)
        if not np.isfinite(values).all():
            continue
        stats: dict[str, Any] = {
            "mean": float(values.mean()),
            "sd": sample_sd(values.tolist()),
            "min": float(values.min()),
            "max": float(values.max()),
            "values": values.tolist(),
        }
        if data_variance:
            groups = {
                seed: [v for r, v in zip(records, values, strict=True) if r["corpus_seed"] == seed]
                for seed in corpus_seeds
            }
            stats |= variance_components(groups)
            stats["by_corpus_seed"] = {str(s): float(np.mean(g)) for s, g in groups.items()}
        else:
            stats |= {"sd_corpus": None, "sd_procedure": stats["sd"]}
        measures[name] = stats
    return {
        "n_runs": len(records),
        "seeds": [r["seed"] for r in records],
        "corpus_seeds": [r.get("corpus_seed") for r in records],
        "run_ids": [r["run_id"] for r in records],
        "repeats_not_counted": repeats,
        "data_variance": data_variance,
        "corpus_seed_values": corpus_seeds,
        "procedure_seeds": sorted({r["seed"] for r in records}),
        "varies": what_varies(records[0]["config"], len(corpus_seeds)),
        "measures": measures,
    }


def _cell(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _table_names(summary: dict[str, Any], unit: str) -> list[str]:
    """The headline measures the summary holds, in the tables' order."""
    names = (pattern.format(unit=unit) for pattern in TABLE_MEASURES)
    return [name for name in names if name in summary["measures"]]


def by_corpus_seed_table(summary: dict[str, Any]) -> pd.DataFrame:
    """One row per corpus seed: its number of runs and the mean over its procedure seeds of
    every measure (a column each); empty without corpus seeds."""
    seeds = summary["corpus_seed_values"]
    runs = [sum(1 for s in summary["corpus_seeds"] if s == seed) for seed in seeds]
    table = pd.DataFrame({"corpus_seed": seeds, "n_runs": runs})
    columns = {
        name: [stats["by_corpus_seed"][str(seed)] for seed in seeds]
        for name, stats in summary["measures"].items()
        if "by_corpus_seed" in stats
    }
    return pd.concat([table, pd.DataFrame(columns)], axis=1)


def summary_markdown(summary: dict[str, Any], unit: str) -> str:
    """The summary as Markdown: what varies, a row per headline measure (mean ± sd over all
    jobs, its sd across corpus seeds and across procedure seeds, min–max) and, with corpus
    seeds, the mean of each headline measure per corpus seed."""
    names = _table_names(summary, unit)
    n_seeds = len(summary["procedure_seeds"])
    if summary["data_variance"]:
        n_corpus = len(summary["corpus_seed_values"])
        title = (
            f"# Spread over {summary['n_runs']} runs: {n_corpus} corpus seeds × "
            f"{n_seeds} procedure seeds\n"
        )
        note = (
            "sd across corpus seeds: sample sd of the per-corpus-seed means (each a mean over "
            "its procedure seeds). sd across procedure seeds: pooled sd within each corpus seed "
            "(square root of the mean within-corpus variance)."
        )
    else:
        title = f"# Spread over {summary['n_runs']} procedure seeds\n"
        note = (
            "`corpus_seed` shapes only the embedded corpus: this data's spread is the "
            "procedure's alone (no data component is measured)."
        )
        if summary["repeats_not_counted"]:
            note += (
                f" {len(summary['repeats_not_counted'])} job(s) repeated a procedure seed with "
                "another `corpus_seed` and are not counted: "
                + ", ".join(f"`{r}`" for r in summary["repeats_not_counted"])
                + "."
            )
    header = "| measure | mean ± sd (all runs) | sd across corpus seeds | sd across procedure "
    header += "seeds | min–max |"
    lines = [
        title,
        f"Procedure seeds (`seed`) {', '.join(map(str, summary['procedure_seeds']))}"
        + (
            " on corpus seeds (`corpus_seed`) " + ", ".join(map(str, summary["corpus_seed_values"]))
            if summary["data_variance"]
            else ""
        )
        + f". {summary['varies'].capitalize()}.\n",
        note + "\n",
        header,
        "|" + "---|" * 5,
    ]
    for name in names:
        stats = summary["measures"][name]
        lines.append(
            f"| `{name}` | {_cell(stats['mean'])} ± {_cell(stats['sd'])} "
            f"| {_cell(stats['sd_corpus'])} | {_cell(stats['sd_procedure'])} "
            f"| {_cell(stats['min'])}–{_cell(stats['max'])} |"
        )
    if summary["data_variance"]:
        table = by_corpus_seed_table(summary)
        lines += [
            "",
            f"## Mean per corpus seed (over its procedure seeds; every measure in `{BY_CORPUS}`)",
            "",
            "| corpus seed | runs | " + " | ".join(f"`{n}`" for n in names) + " |",
            "|" + "---|" * (2 + len(names)),
        ]
        for row in table.to_dict("records"):
            cells = [_cell(row[name]) for name in names]
            lines.append(f"| {row['corpus_seed']} | {row['n_runs']} | " + " | ".join(cells) + " |")
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
        if not config.data.get("synthetic") and _sweeps_corpus_seed(config):
            log.warning(
                "experiment=seeds on data=%s: corpus_seed shapes only the embedded corpus, so "
                "jobs that differ only in it repeat one run (the summary counts each seed "
                "once); add corpus_seed=0 to run each seed once",
                config.data.get("source"),
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
        summary, paths = write_summary(sweep, records)
        run_id = _log_summary_run(records, summary, paths)
        log.info("Seeds summary of %d runs: %s (MLflow run %s)", len(records), paths[1], run_id)
        print(paths[1].read_text(encoding="utf-8"))


def write_summary(sweep: Path, records: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Path]]:
    """Summarise `records` into the sweep folder: the JSON, the Markdown and (with corpus
    seeds) the per-corpus-seed CSV beside it; the summary and the files written."""
    records.sort(key=lambda r: (r.get("corpus_seed") or 0, r["seed"]))
    summary = summarize(records)
    paths = [
        write_json(sweep / SUMMARY_JSON, summary),
        write_text(sweep / SUMMARY_MARKDOWN, summary_markdown(summary, _unit(records[0]))),
    ]
    if summary["data_variance"]:
        paths.append(write_csv(sweep / BY_CORPUS, by_corpus_seed_table(summary)))
    return summary, paths


def _sweeps_corpus_seed(config: DictConfig) -> bool:
    """Whether the sweep runs several corpus seeds (the command line's value over the
    experiment's)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    candidates = [f"{k}={v}" for k, v in params.items()]
    candidates += [str(o) for o in config.hydra.overrides.task]
    parsed = OverridesParser.create().parse_overrides(candidates)
    corpus = [o for o in parsed if o.key_or_group == "corpus_seed"]
    return bool(corpus) and corpus[-1].is_sweep_override()


def _unit(record: dict[str, Any]) -> str:
    names = record["metrics"]
    return "author" if any(k.startswith("test/author/") for k in names) else "conversation"


#: The sds of a measure the summary run logs, as ``seeds/<measure>/<name>``.
LOGGED_SDS = ("sd", "sd_corpus", "sd_procedure")


def _log_summary_run(
    records: list[dict[str, Any]], summary: dict[str, Any], paths: list[Path]
) -> str:
    """One MLflow run in the sweep's experiment with every measure's mean and sds, the summary
    files, and each job's model card rendered again with the spread."""
    cfg = OmegaConf.create(records[0]["config"])
    experiment_id = tracking.setup(cfg.tracking)
    tags = {
        "seeds": ",".join(map(str, summary["seeds"])),
        "corpus_seeds": ",".join(map(str, summary["corpus_seed_values"])) or "none",
        "job_run_ids": ",".join(summary["run_ids"]),
        "dataset": str(cfg.data.name),
        "model": str(cfg.model.name),
    }
    with tracking.parent_run(experiment_id, "seeds-summary", tags) as run_id:
        metrics = {}
        for name, stats in summary["measures"].items():
            metrics[f"seeds/{name}/mean"] = stats["mean"]
            for sd in LOGGED_SDS:
                if stats[sd] is not None and not math.isnan(stats[sd]):
                    metrics[f"seeds/{name}/{sd}"] = stats[sd]
        tracking.log_metrics(metrics)
        tracking.log_params(
            {
                "n_runs": summary["n_runs"],
                "n_corpus_seeds": len(summary["corpus_seed_values"]),
                "n_procedure_seeds": len(summary["procedure_seeds"]),
            }
        )
        for path in paths:
            tracking.log_artifact(path)
        for record in records:
            this_run = {"seed": record["seed"], "corpus_seed": record.get("corpus_seed")}
            card = _rewrite_card(record, {**summary, "summary_run_id": run_id, "run": this_run})
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
