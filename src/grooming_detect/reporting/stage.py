"""The report stage: a Markdown run report from the evaluation summary and the data manifest."""

from __future__ import annotations

import logging
from pathlib import Path
from string import Template

from omegaconf import DictConfig

from grooming_detect import tracking
from grooming_detect.data.schema import SPLITS
from grooming_detect.io import read_json, write_text
from grooming_detect.stage import MissingInputError, StageContext, StageResult

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).with_name("templates") / "report.md"
SYNTHETIC_WARNING = (
    "> **Synthetic data.** Every number below comes from the embedded synthetic corpus. "
    "It says nothing about real-world performance.\n\n"
)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def render_report(
    summary: dict,
    manifest: dict,
    run_id: str,
    experiment: str,
    tracking_uri: str,
    commit: str,
    evaluation_dir: Path,
    manifest_path: Path,
) -> str:
    """Fill the report template; synthetic runs open with the synthetic-data warning."""
    metrics = summary["metrics"]
    unit = summary["unit"]
    splits = sorted({key.split("/")[0] for key in metrics}, key=["validation", "test"].index)
    metric_rows = "\n".join(
        f"| {split} | {int(metrics[f'{split}/{unit}/n'])} "
        f"| {int(metrics[f'{split}/{unit}/n_positive'])} | "
        + " | ".join(
            _fmt(metrics.get(f"{split}/{unit}/{name}"))
            for name in ("precision", "recall", "f1", "f0_5", "pr_auc", "roc_auc")
        )
        + " |"
        for split in splits
    )
    count_rows = "\n".join(
        f"| {split} | {c['conversations']} | {c['messages']} | {c['authors']} | {c['predators']} "
        f"| {c['predator_conversations']} |"
        for split, c in ((split, manifest["counts"][split]) for split in SPLITS)
    )
    if unit == "author":
        submissions = ", ".join(
            f"`{evaluation_dir / f'{split}-problem1-predators.txt'}`" for split in splits
        )
        results_heading = "Author-level results (PAN-2012 Problem 1)"
    else:
        submissions = "none (PAN-2012 submissions name authors; this run scores conversations)"
        results_heading = "Conversation-level results"
    skipped = "".join(f"\n> {reason}.\n" for reason in summary.get("skipped", []))
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        warning=SYNTHETIC_WARNING if summary["synthetic"] else "",
        model=summary["model"],
        dataset=summary["dataset"],
        run_id=run_id,
        experiment=experiment,
        tracking_uri=tracking_uri,
        commit=commit,
        fingerprint=manifest["fingerprint"][:16],
        threshold=f"{summary['threshold']:.4f}",
        objective=summary["threshold_objective"].replace("_", "."),
        results_heading=results_heading,
        skipped=skipped,
        unit=unit,
        unit_plural=f"{unit}s",
        metric_rows=metric_rows,
        pr_curve=evaluation_dir / f"pr_curve_{unit}.png",
        count_rows=count_rows,
        split_method=manifest["split_method"],
        evaluation_json=evaluation_dir / "evaluation.json",
        submissions=submissions,
        manifest=manifest_path,
    )


def run_report(cfg: DictConfig, ctx: StageContext) -> StageResult:
    """Render the run report into the run's report folder and log it."""
    summary_path = ctx.evaluation_dir / "evaluation.json"
    if not summary_path.is_file():
        raise MissingInputError("report", summary_path, "evaluate")
    if not ctx.manifest_path.is_file():
        raise MissingInputError("report", ctx.manifest_path, "data")
    text = render_report(
        read_json(summary_path),
        read_json(ctx.manifest_path),
        run_id=ctx.parent_run_id or "none",
        experiment=str(cfg.tracking.experiment_name),
        tracking_uri=str(cfg.tracking.uri),
        commit=tracking.git_commit(Path(cfg.paths.root)),
        evaluation_dir=ctx.evaluation_dir,
        manifest_path=ctx.manifest_path,
    )
    report_path = write_text(ctx.report_dir / "report.md", text)
    tracking.log_artifact(report_path, "report")
    log.info("Wrote the run report to %s", report_path)
    return StageResult(stage="report", outputs={"report": report_path})
