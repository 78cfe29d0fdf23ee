"""The model card: every section, numbers equal to the MLflow run it names, synthetic warning."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pandas as pd
import pytest

import grooming_detect
from conftest import ComposeFn
from grooming_detect import pipeline
from grooming_detect.reporting.markdown import code_span, render
from grooming_detect.reporting.model_card import COUNT_COLUMNS, SECTIONS
from grooming_detect.reporting.stage import render_report


@pytest.fixture(scope="module")
def card(default_run) -> str:
    _, result, _ = default_run
    return result.stages["report"].outputs["model_card"].read_text()


@pytest.mark.pipeline
def test_card_has_every_section(card: str) -> None:
    headings = re.findall(r"^## (.+)$", card, re.MULTILINE)
    assert headings == list(SECTIONS)


@pytest.mark.pipeline
def test_synthetic_warning_is_the_first_line(card: str) -> None:
    first = card.splitlines()[0]
    assert first.startswith("> **Synthetic data.**")
    assert "says nothing about real-world performance" in first


@pytest.mark.pipeline
def test_card_numbers_equal_the_named_mlflow_run(default_run, card: str) -> None:
    _, result, client = default_run
    run_id = re.search(r"evaluation of MLflow run `([0-9a-f]{32})`", card).group(1)
    run = client.get_run(run_id)
    assert run.data.tags["stage"] == "evaluate"
    assert run.data.tags["mlflow.parentRunId"] == result.run_id
    assert f"pipeline run `{result.run_id}`" in card
    metrics = run.data.metrics
    rows = re.findall(
        r"^\| (test \([^|]*|cross-validated[^|]*) \| (\d+) \| (\d+) \| (.+) \|$", card, re.MULTILINE
    )
    # Test leads (it equals the PAN scorer on this corpus); under crossfit the decisions'
    # cross-validated row follows, and validation (training data) has no row.
    assert [row[0] for row in rows] == [
        "test (equals the PAN-2012 scorer)",
        "cross-validated scores, threshold and calibrator fitted on them (5 grouped folds of "
        "train + validation)",
    ]
    cv_cells = [cell.strip() for cell in rows[1][3].split("|")]
    for name, cell in zip(("precision", "recall", "f1", "f0_5"), cv_cells, strict=False):
        assert float(cell) == pytest.approx(metrics[f"cv/author/{name}"], abs=5e-4), name
    assert int(rows[1][1]) == metrics["cv/author/n"]
    headline = [("test", *row[1:]) for row in rows if "[" in row[3]]
    assert len(headline) == 1
    for split, n, positives, rest in headline:
        assert int(n) == metrics[f"{split}/author/n"]
        assert int(positives) == metrics[f"{split}/author/n_positive"]
        cells = [cell.strip() for cell in rest.split("|")]
        names = ("precision", "recall", "f1", "f0_5", "pr_auc", "roc_auc")
        for name, cell in zip(names, cells, strict=True):
            value, low, high = map(
                float, re.match(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", cell).groups()
            )
            key = f"{split}/author/{name}"
            assert value == pytest.approx(metrics[key], abs=5e-4), key
            assert low == pytest.approx(metrics[f"{key}_ci_low"], abs=5e-4), key
            assert high == pytest.approx(metrics[f"{key}_ci_high"], abs=5e-4), key
    threshold = float(re.search(r"Decision threshold \| ([\d.]+)", card).group(1))
    train = next(
        r
        for r in client.search_runs([result.experiment_id])
        if r.data.tags.get("stage") == "train"
        and r.data.tags.get("mlflow.parentRunId") == result.run_id
    )
    assert threshold == pytest.approx(train.data.metrics["train/threshold"], abs=5e-5)


@pytest.mark.pipeline
def test_card_is_logged_and_links_resolve(default_run, card: str, tmp_path: Path) -> None:
    """The report and the card link their figures relatively, inside the report folder: the
    links work on disk, in a moved copy of the folder, and in the MLflow run that logs it."""
    _, result, client = default_run
    report_run = next(
        r
        for r in client.search_runs([result.experiment_id])
        if r.data.tags.get("stage") == "report"
    )
    report_dir = result.stages["report"].outputs["model_card"].parent
    report = (report_dir / "report.md").read_text()
    logged = {
        a.path
        for folder in ("report", "report/figures")
        for a in client.list_artifacts(report_run.info.run_id, folder)
    }
    assert "report/MODEL_CARD.md" in logged
    moved = Path(shutil.copytree(report_dir, tmp_path / "moved"))
    for text in (card, report):
        links = re.findall(r"\]\(([^)]+\.png)\)", text)
        assert links
        for link in links:
            assert not Path(link).is_absolute() and ".." not in link, link
            assert (report_dir / link).is_file() and (moved / link).is_file(), link
            assert f"report/{link}" in logged, link
            assert (report_dir / link).with_suffix(".csv").is_file(), link
    assert str(report_dir.parent) not in report
    # MLflow's viewer shows a relative image of a Markdown file as the text "[alt](src)": the
    # report folder holds each Markdown file's self-contained HTML twin, figures inside, byte
    # for byte the files on disk, and the run logs it.
    import base64

    import mlflow

    for name, text in (("MODEL_CARD", card), ("report", report)):
        assert f"report/{name}.html" in logged
        page = Path(
            mlflow.artifacts.download_artifacts(
                run_id=report_run.info.run_id,
                artifact_path=f"report/{name}.html",
                tracking_uri=client.tracking_uri,
            )
        ).read_text()
        embedded = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]*)"', page)
        links = re.findall(r"!\[([^\]]*)\]\(([^)]+\.png)\)", text)
        assert [alt for _, alt in embedded] == [alt for alt, _ in links], name
        for (data, _), (_, link) in zip(embedded, links, strict=True):
            assert base64.b64decode(data) == (report_dir / link).read_bytes(), link
        assert "<script" not in page and 'src="figures/' not in page, name
    # Every relative link of the card (the ethics card too) works in the moved folder.
    for link in re.findall(r"\]\(([^)#:]+)\)", card):
        assert (moved / link).is_file(), link
    assert "](ETHICS.md)" in card or "](ETHICS.md)" in card.replace("`", "")


@pytest.mark.pipeline
def test_publish_writes_a_card_with_its_figures(tiny_run) -> None:
    cfg, _ = tiny_run
    publish = Path(cfg.report.publish_dir)
    card = (publish / "MODEL_CARD.md").read_text()
    links = re.findall(r"\]\(([^)]+\.png)\)", card)
    assert links and all(link.startswith("docs/model-card/") for link in links)
    assert all((publish / link).is_file() for link in links)


@pytest.mark.pipeline
@pytest.mark.slow
def test_prose_reads_the_interval_level_and_ece_bins_from_config(compose_cfg: ComposeFn) -> None:
    """Every setting the card or report names is the one used: a change of each changes them
    (and the bootstrap's seed and resample count change the intervals themselves)."""
    cfg = compose_cfg(
        "scale=tiny",
        "evaluate.ece_bins=10",
        "evaluate.reliability_bins=4",
        "evaluate.bootstrap.confidence=0.9",
        "evaluate.bootstrap.n_resamples=50",
        "evaluate.bootstrap.seed=7",
        "evaluate.min_positives=100000",
        "progress=false",
    )
    result = pipeline.run(cfg)
    card = result.stages["report"].outputs["model_card"].read_text()
    report = (result.stages["report"].outputs["model_card"].parent / "report.md").read_text()
    assert "Brackets hold 90 % percentile-bootstrap intervals" in card
    assert "50 resamples of authors (seed 7)" in card
    assert "ECE: 10 equal-width bins" in card
    assert "Brackets hold 90 % bootstrap intervals" in report
    assert "ECE uses 10 equal-width bins" in report
    assert "95 %" not in card + report and "15 equal-width" not in card + report
    assert "FEW POSITIVES" in card and "FEW POSITIVES" in report
    assert card.index("FEW POSITIVES") < card.index("| split |")
    evaluation_dir = result.stages["evaluate"].outputs["summary"].parent
    reliability = pd.read_csv(evaluation_dir / "test-reliability.csv")
    drawn = reliability[reliability["binning"] == "quantile"]
    assert drawn.groupby("curve").size().max() <= 4
    assert reliability[reliability["binning"] == "equal_width"]["bin"].max() < 10


@pytest.mark.pipeline
def test_card_sets_the_model_beside_the_metadata_only_baseline(default_run, card: str) -> None:
    _, result, _ = default_run
    metrics = result.stages["evaluate"].metrics
    baseline = metrics["test/author/pr_auc_metadata_only"]
    # Under crossfit validation is training data: the baseline is scored on test only.
    assert 0.0 <= baseline <= 1.0 and "validation/author/pr_auc_metadata_only" not in metrics
    assert (
        f"reaches PR-AUC {baseline:.3f} (chance: the positive rate, "
        f"{metrics['test/author/positive_rate']:.3f}), against "
        f"{metrics['test/author/pr_auc']:.3f} for this model" in card
    )


#: The least a report needs: one evaluated split, the data counts, the decision.
MINIMAL_SUMMARY = {
    "metrics": {"test/author/n": 20.0, "test/author/n_positive": 2.0, "test/author/precision": 1.0},
    "unit": "author",
    "synthetic": False,
    "model": "tfidf_logreg",
    "dataset": "team_<script>x</script>|chat",
    "threshold": 0.5,
    "threshold_objective": "f0_5",
}
MINIMAL_MANIFEST = {
    "counts": {split: dict.fromkeys(COUNT_COLUMNS, 1) for split in ("train", "validation", "test")},
    "fingerprint": "0123456789abcdef0123",
    "split_method": "grouped",
    "source": "chatlog",
}


def _minimal_report(evaluation_dir: Path) -> str:
    return render_report(
        MINIMAL_SUMMARY,
        MINIMAL_MANIFEST,
        run_id="r",
        experiment="e",
        tracking_uri="sqlite:///m.db",
        commit="c",
        evaluation_dir=evaluation_dir,
        manifest_path=Path("manifest.json"),
    )


def test_user_data_in_headings_and_code_spans_stays_inert(tmp_path: Path) -> None:
    report = _minimal_report(tmp_path)
    assert report.startswith("# Run report: tfidf\\_logreg on team\\_&lt;script&gt;x")
    assert "<script>" not in report.splitlines()[0]
    # A backtick in a value shown as code widens the fence instead of ending the span.
    assert code_span("f`b") == "`` f`b ``" and code_span("plain") == "`plain`"


def test_a_value_the_code_forgot_fails_instead_of_rendering_blank() -> None:
    with pytest.raises(jinja2.UndefinedError, match="is undefined"):
        render("report.md.j2", synthetic=False, model="m", dataset="d")


@pytest.mark.pipeline
def test_the_templates_render_from_the_package_alone(tmp_path: Path) -> None:
    """Rendered from a copy of the package outside the checkout (as installed from the wheel,
    which ships ``reporting/templates/``), the report is the checkout's own."""
    source = Path(grooming_detect.__file__).parent
    site = tmp_path / "site"
    shutil.copytree(source, site / "grooming_detect", ignore=shutil.ignore_patterns("__pycache__"))
    script = tmp_path / "render.py"
    script.write_text(
        "import json, sys\nfrom pathlib import Path\nimport grooming_detect\n"
        "from grooming_detect.reporting.stage import render_report\n"
        "assert grooming_detect.__file__.startswith(sys.argv[1]), grooming_detect.__file__\n"
        "summary, manifest = json.loads(sys.argv[2]), json.loads(sys.argv[3])\n"
        "print(render_report(summary, manifest, run_id='r', experiment='e', "
        "tracking_uri='sqlite:///m.db', commit='c', evaluation_dir=Path(sys.argv[4]), "
        "manifest_path=Path('manifest.json')), end='')\n"
    )
    completed = subprocess.run(
        [
            sys.executable,
            str(script),
            str(site),
            json.dumps(MINIMAL_SUMMARY),
            json.dumps(MINIMAL_MANIFEST),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=tmp_path,
        check=True,
    )
    assert completed.stdout == _minimal_report(tmp_path)


def test_design_chosen_names_each_fallback_and_says_none_when_there_is_none() -> None:
    from grooming_detect.reporting.model_card import design_chosen

    crossfit = {"selection": {"method": "crossfit", "folds": 5}, "fallbacks": {}}
    assert design_chosen({"split": {}}, crossfit).endswith(
        "no setting had to give way to the data."
    )
    manifest = {
        "split": {"test": {"override": "author"}},
        "fallbacks": {"data.split_override": "auto -> author: test split: one component"},
    }
    meta = {
        "selection": {"method": "holdout"},
        "fallbacks": {"decision": "crossfit -> holdout: 1 positive component"},
    }
    line = design_chosen(manifest, meta)
    assert line.startswith("held-out splits by author groups")
    assert "`data.split_override` auto -> author: test split: one component" in line
    assert "`decision` crossfit -> holdout: 1 positive component" in line
