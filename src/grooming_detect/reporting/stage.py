"""The report stage: a Markdown run report from the evaluation summary and the data manifest."""

from __future__ import annotations

import base64
import html
import logging
import re
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from grooming_detect import tracking
from grooming_detect.data.schema import SPLITS
from grooming_detect.io import read_json, write_text, write_with
from grooming_detect.reporting.markdown import fmt, markdown_text, rate_text, render
from grooming_detect.reporting.model_card import (
    COUNT_COLUMNS,
    calibration_rows,
    decision_context,
    early_detection_section,
    metric_rows,
    pan12_caveats,
    render_model_card,
)
from grooming_detect.reporting.summary import MIN_POSITIVES, results_markdown
from grooming_detect.stage import MissingInputError, StageContext, StageResult

log = logging.getLogger(__name__)

#: The report folder's copy of the figures (and the tables they are drawn from) that the report
#: and the card show: links into it work on disk, in a moved folder and in the MLflow run that
#: logs the report folder.
FIGURES = "figures"

#: Error-table columns that say why an item scored high, by explanation strategy.
WHY_COLUMNS = ("top_terms", "top_changes", "top_conversation")


def _other_levels(metrics: dict, unit: str, splits: list[str]) -> list[list[str]]:
    """An author model's conversation and line (PAN-2012 Problem 2) measures, a row per split
    and level."""
    measures = ("precision", "recall", "f1", "f3", "pr_auc")
    return [
        [s, level, *(fmt(metrics.get(f"{s}/{level}/{k}")) for k in measures)]
        for s in splits
        for level in ("conversation", "line")
        if unit == "author" and f"{s}/{level}/precision" in metrics
    ]


def _false_positives(
    splits: list[str], evaluation_dir: Path, show_text: bool
) -> list[dict[str, Any]]:
    """The top five false positives of each split (its table file, columns and escaped rows),
    with why they scored."""
    tables = []
    for split in splits:
        path = evaluation_dir / f"{split}-false_positives.parquet"
        if not path.is_file():
            continue
        table = pd.read_parquet(path).head(5)
        why = next(c for c in WHY_COLUMNS if c in table.columns)
        columns = ["id", "score", "n_messages", "n_partners", why]
        if show_text and "example_text" in table.columns:
            columns.append("example_text")
        rows = [
            [markdown_text(f"{v:.3f}" if isinstance(v, float) else v) for v in row]
            for row in table[columns].itertuples(index=False)
        ]
        tables.append({"split": split, "file": path.name, "columns": columns, "rows": rows})
    return tables


def render_report(
    summary: dict,
    manifest: dict,
    run_id: str,
    experiment: str,
    tracking_uri: str,
    commit: str,
    evaluation_dir: Path,
    manifest_path: Path,
    show_text: bool = False,
) -> str:
    """The run report as Markdown (``templates/report.md.j2``); synthetic runs open with the
    synthetic-data warning."""
    metrics = summary["metrics"]
    unit = summary["unit"]
    # Metrics of other families (benign/…, audit/…) are not splits.
    splits = [s for s in ("validation", "test") if any(k.startswith(f"{s}/") for k in metrics)]
    rates = ("precision_at_recall_0_8", "precision_at_recall_0_9", "recall_at_fpr_1e-3")
    return render(
        "report.md.j2",
        **decision_context(summary),
        synthetic=summary["synthetic"],
        model=summary["model"],
        dataset=summary["dataset"],
        run_id=run_id,
        experiment=experiment,
        tracking_uri=tracking_uri,
        commit=commit,
        fingerprint=manifest["fingerprint"][:16],
        summary_table=results_markdown(
            metrics,
            summary["threshold"],
            str(summary.get("threshold_fitted_on", "validation")),
            int(summary.get("min_positives", MIN_POSITIVES)),
        ),
        skipped=summary.get("skipped", []),
        splits=splits,
        metric_rows=metric_rows(metrics, unit, splits),
        operating_rows=[
            [
                s,
                *(fmt(metrics.get(f"{s}/{unit}/{k}")) for k in rates),
                rate_text(metrics.get(f"{s}/{unit}/alerts_per_10k")),
            ]
            for s in splits
        ],
        calibration_rows=calibration_rows(metrics, unit, splits),
        other_levels=_other_levels(metrics, unit, splits),
        false_positives=_false_positives(splits, evaluation_dir, show_text),
        early_detection=early_detection_section(summary.get("early") or {}, metrics, FIGURES),
        figures=FIGURES,
        count_rows=[
            [split, *(manifest["counts"][split][k] for k in COUNT_COLUMNS)] for split in SPLITS
        ],
        split_method=manifest["split_method"],
        submissions=[f"../evaluation/{split}-problem1-predators.txt" for split in splits],
        manifest=manifest_path,
        caveats=pan12_caveats(manifest, short=True),
    )


def _ethics_card(root: Path, report_dir: Path) -> Path:
    """The ethics card the model card links to: a copy in the report folder, so that the link
    works on disk, moved, and in MLflow (the project's own ETHICS.md when it has none)."""
    checkout = Path(__file__).resolve().parents[3]  # src/grooming_detect/reporting/ -> root
    sources = [path for path in (root / "ETHICS.md", checkout / "ETHICS.md") if path.is_file()]
    if not sources:
        return root / "ETHICS.md"
    source = sources[0]
    copy = report_dir / "ETHICS.md"
    write_with(copy, partial(shutil.copyfile, source))
    return copy


def model_card_inputs(
    cfg: DictConfig, ctx: StageContext, seeds: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What `render_model_card` reads for the run of `ctx` (and a seeds summary, if any)."""
    summary = read_json(ctx.evaluation_dir / "evaluation.json")
    # The model the evaluation scored (its own run's, or the one it was pointed at).
    model_dir = Path(summary.get("model_dir") or ctx.model_dir)
    return {
        "summary": summary,
        "meta": read_json(model_dir / "model.json"),
        "manifest": read_json(ctx.manifest_path),
        "run_id": ctx.parent_run_id or "none",
        "experiment": str(cfg.tracking.experiment_name),
        "tracking_uri": str(cfg.tracking.uri),
        "commit": tracking.git_commit(Path(cfg.paths.root)),
        "evaluation_dir": ctx.evaluation_dir,
        "ethics_path": _ethics_card(Path(cfg.paths.root), ctx.report_dir),
        "seeds": seeds,
    }


#: An HTML image with a relative source (no scheme), as markdown-it renders ``![alt](src)``.
_RELATIVE_IMAGE = re.compile(r'<img src="(?P<src>(?![a-z][a-z0-9+.-]*:)[^"]+\.png)"')

#: A link to a Markdown file beside the page: pointed at its HTML twin in the HTML pages.
_RELATIVE_MARKDOWN_LINK = re.compile(r'href="(?P<href>(?![a-z][a-z0-9+.-]*:)[^"/]+\.md)"')

HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;
line-height:1.45}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.25em .5em}}
img{{max-width:100%}}code{{background:#f4f4f4}}blockquote{{border-left:4px solid #c33;margin:0;
padding:.25em 1em;background:#fff4f4}}</style></head>
<body>
{body}</body></html>
"""


def self_contained_html(markdown: str, folder: Path, title: str) -> str:
    """`markdown` (a report or card of `folder`) as one HTML page with its figures inside as
    ``data:`` URIs: MLflow's artifact viewer shows an HTML artifact whole, while it shows a
    relative image of a Markdown file as the text ``[alt](src)`` (and a Markdown file over
    100 KB as plain text). Raw HTML in the Markdown is escaped, never passed through."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)

    def embed(match: re.Match[str]) -> str:
        path = folder / html.unescape(match["src"])
        if not path.is_file():
            return match[0]
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img src="data:image/png;base64,{data}"'

    def twin(match: re.Match[str]) -> str:
        target = html.unescape(match["href"])
        if (folder / target).with_suffix(".md").is_file():
            return f'href="{html.escape(str(Path(target).with_suffix(".html")))}"'
        return match[0]

    body = _RELATIVE_MARKDOWN_LINK.sub(twin, _RELATIVE_IMAGE.sub(embed, body))
    return HTML_PAGE.format(title=html.escape(title), body=body)


def write_html_twins(report_dir: Path) -> dict[str, Path]:
    """Beside each Markdown file of the report folder, its self-contained HTML page."""
    return {
        markdown.stem: write_text(
            markdown.with_suffix(".html"),
            self_contained_html(
                markdown.read_text(encoding="utf-8"), report_dir, markdown.stem.replace("_", " ")
            ),
        )
        for markdown in sorted(report_dir.glob("*.md"))
    }


def copy_figures(evaluation_dir: Path, target: Path) -> Path:
    """Copy every figure of the evaluation (PNG) and the table it is drawn from (CSV, beside
    it) into `target`, keeping sub-folders; return `target`."""
    for figure in sorted(evaluation_dir.rglob("*.png")):
        for path in (figure, figure.with_suffix(".csv")):
            if not path.is_file():
                continue
            copy = target / path.relative_to(evaluation_dir)
            copy.parent.mkdir(parents=True, exist_ok=True)
            write_with(copy, partial(shutil.copyfile, path))
    return target


def rewrite_model_card(
    cfg: DictConfig,
    ctx: StageContext,
    seeds: dict[str, Any],
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Render the run's model card again, with the spread over a sweep's seeds (see
    `grooming_detect.sweeps`), from the data manifest the run used when given."""
    inputs = model_card_inputs(cfg, ctx, seeds)
    if manifest is not None:
        inputs["manifest"] = manifest
    figures_dir = copy_figures(ctx.evaluation_dir, ctx.report_dir / FIGURES)
    card = write_text(
        ctx.report_dir / "MODEL_CARD.md",
        render_model_card(**inputs, card_dir=ctx.report_dir, figures_dir=figures_dir),
    )
    write_html_twins(ctx.report_dir)
    return card


def run_report(cfg: DictConfig, ctx: StageContext) -> StageResult:
    """Render the run report into the run's report folder and log it."""
    summary_path = ctx.evaluation_dir / "evaluation.json"
    if not summary_path.is_file():
        raise MissingInputError("report", summary_path, "evaluate")
    if not ctx.manifest_path.is_file():
        raise MissingInputError("report", ctx.manifest_path, "data")
    summary = read_json(summary_path)
    text = render_report(
        summary,
        read_json(ctx.manifest_path),
        run_id=ctx.parent_run_id or "none",
        experiment=str(cfg.tracking.experiment_name),
        tracking_uri=str(cfg.tracking.uri),
        commit=tracking.git_commit(Path(cfg.paths.root)),
        evaluation_dir=ctx.evaluation_dir,
        manifest_path=ctx.manifest_path,
        show_text=bool(cfg.evaluate.show_text),
    )
    # The report and the card link their figures inside the report folder, which the report
    # stage's MLflow run logs whole: the links work on disk, moved, and in MLflow's viewer.
    figures_dir = copy_figures(ctx.evaluation_dir, ctx.report_dir / FIGURES)
    report_path = write_text(ctx.report_dir / "report.md", text)
    outputs = {"report": report_path}
    card_inputs = model_card_inputs(cfg, ctx)
    outputs["model_card"] = write_text(
        ctx.report_dir / "MODEL_CARD.md",
        render_model_card(**card_inputs, card_dir=ctx.report_dir, figures_dir=figures_dir),
    )
    if cfg.report.publish_dir:
        outputs["published_card"] = publish_card(card_inputs, Path(str(cfg.report.publish_dir)))
    write_html_twins(ctx.report_dir)
    tracking.log_artifact(ctx.report_dir, "report")
    log.info("Wrote the run report and model card to %s", ctx.report_dir)
    parent_tags = {}
    if cfg.tracking.register:
        parent_tags["registered_version"] = register(
            cfg, card_inputs["meta"], summary, outputs["model_card"].read_text(encoding="utf-8")
        )
    return StageResult(stage="report", outputs=outputs, parent_tags=parent_tags)


#: Test measures a registered version carries as tags (for a reviewer choosing what to promote).
REGISTRY_MEASURES = ("pr_auc", "f0_5", "precision", "recall", "ece", "roc_auc")


def register(cfg: DictConfig, meta: dict, summary: dict, card: str) -> str:
    """Register the evaluated model (``tracking.register``) with its test measures as tags,
    the model card as the version's description, and ``tracking.register_alias``."""
    train_run = meta.get("run_id")
    if not train_run:
        raise ValueError(
            "tracking.register: the model does not record its train run (saved before runs "
            "were recorded); train it again to register it"
        )
    unit = meta.get("unit", "author")
    metrics = summary.get("metrics", {})
    tags = {
        f"test/{unit}/{name}": metrics[f"test/{unit}/{name}"]
        for name in REGISTRY_MEASURES
        if f"test/{unit}/{name}" in metrics
    }
    tags |= {"threshold": meta["threshold"], "model": meta.get("model_name", ""), "unit": unit}
    tags["data"] = str(cfg.data.name)
    return tracking.register_model(
        train_run,
        str(cfg.tracking.registered_model_name),
        str(cfg.tracking.register_alias),
        tags,
        card,
    )


def publish_card(card_inputs: dict, publish_dir: Path) -> Path:
    """Write MODEL_CARD.md into `publish_dir`, its figures under ``docs/model-card/``."""
    figures_dir = copy_figures(
        Path(card_inputs["evaluation_dir"]), publish_dir / "docs" / "model-card"
    )
    # The published card links the repository's own ethics card, not the run's copy.
    inputs = {**card_inputs, "ethics_path": publish_dir / "ETHICS.md"}
    path = write_text(
        publish_dir / "MODEL_CARD.md",
        render_model_card(**inputs, card_dir=publish_dir, figures_dir=figures_dir),
    )
    log.info("Published the model card to %s", path)
    return path
