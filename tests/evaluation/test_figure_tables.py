"""Every figure of the evaluate stage is drawn from a table saved beside it (CSV), computed from
the score table's own rows; the tables recompute the logged metrics exactly.

A figure drawn from a sorted score column beside unsorted labels looks plausible and is wrong
(a confusion matrix with no true positive): these tests read the tables back with pandas and
`csv` and check them against the metrics, on a score table sorted by score, where a
misalignment of rows would show."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import auc, average_precision_score, confusion_matrix, roc_auc_score

from conftest import stage_run
from grooming_detect.evaluation import plots
from grooming_detect.evaluation.calibration import expected_calibration_error


def _score_table(seed: int = 0, n: int = 400, threshold: float = 0.5) -> pd.DataFrame:
    """A score table as the evaluate stage writes it: highest score first, labels correlated
    with scores (so that sorting one column alone would break the figures)."""
    rng = np.random.default_rng(seed)
    label = rng.random(n) < 0.1
    raw = np.clip(0.6 * label + rng.normal(0.2, 0.15, n), 0, 1)
    score = np.clip(raw**1.5, 0, 1)
    table = pd.DataFrame(
        {
            "id": [f"a{i}" for i in range(n)],
            "label": label,
            "raw_score": raw,
            "score": score,
            "predicted": score >= threshold,
        }
    )
    return table.sort_values("score", ascending=False, ignore_index=True)


def _tp_fp_fn_tn(confusion: pd.DataFrame) -> tuple[int, int, int, int]:
    cell = confusion.set_index(["true", "predicted"])["count"]
    return (
        int(cell["positive", "positive"]),
        int(cell["negative", "positive"]),
        int(cell["positive", "negative"]),
        int(cell["negative", "negative"]),
    )


def test_confusion_table_counts_the_score_tables_rows() -> None:
    table = _score_table()
    tp, fp, fn, tn = _tp_fp_fn_tn(plots.confusion_table(table))
    expected = confusion_matrix(table["label"], table["predicted"], labels=[False, True])
    assert [[tn, fp], [fn, tp]] == expected.tolist()
    assert tp > 0  # the table is one where a misalignment would show


def test_histogram_and_reliability_tables_recompute_the_counts_and_the_ece() -> None:
    table = _score_table(seed=1)
    histogram = plots.score_histogram_table(table)
    assert histogram["positives"].sum() == table["label"].sum()
    assert histogram["negatives"].sum() == (~table["label"]).sum()
    positives = table.loc[table["label"], "score"]
    top = histogram[histogram["bin_low"] >= 0.5]
    assert top["positives"].sum() == (positives >= 0.5).sum()
    reliability = plots.reliability_table(table, n_bins=10, ece_bins=15)
    for column, curve in plots.RELIABILITY_CURVES:
        for binning in ("quantile", "equal_width"):
            part = reliability[
                (reliability["curve"] == curve) & (reliability["binning"] == binning)
            ]
            assert part["n"].sum() == len(table)
            assert (part["n"] * part["positive_rate"]).sum() == pytest.approx(table["label"].sum())
            assert (part["n"] * part["mean_score"]).sum() == pytest.approx(table[column].sum())
        bins = reliability[
            (reliability["curve"] == curve) & (reliability["binning"] == "equal_width")
        ]
        ece = (bins["n"] / len(table) * (bins["mean_score"] - bins["positive_rate"]).abs()).sum()
        assert ece == pytest.approx(expected_calibration_error(table["label"], table[column], 15))


def test_curve_tables_recompute_average_precision_and_roc_auc() -> None:
    splits = {"validation": _score_table(seed=2), "test": _score_table(seed=3)}
    pr = plots.precision_recall_table(splits)
    roc = plots.roc_table(splits)
    for split, table in splits.items():
        curve = pr[pr["split"] == split]
        area = (np.diff(curve["recall"], prepend=0.0) * curve["precision"]).sum()
        assert area == pytest.approx(average_precision_score(table["label"], table["score"]))
        assert curve["positive_rate"].iloc[0] == pytest.approx(table["label"].mean())
        part = roc[roc["split"] == split]
        area = auc(part["false_positive_rate"], part["true_positive_rate"])
        assert area == pytest.approx(roc_auc_score(table["label"], table["score"]))


def test_each_figure_is_saved_with_its_table(tmp_path: Path) -> None:
    table = _score_table(seed=4)
    figures = [
        plots.confusion_figure(table, "confusion", tmp_path / "c.png"),
        plots.score_histogram_figure(table, 0.5, "histogram", tmp_path / "h.png"),
        plots.reliability_figure(table, "reliability", tmp_path / "r.png", 10, 15),
        plots.precision_recall_figure({"test": table}, "pr", tmp_path / "pr.png"),
        plots.roc_figure({"test": table}, "roc", tmp_path / "roc.png"),
    ]
    for figure in figures:
        assert figure.read_bytes().startswith(b"\x89PNG")
        saved = plots.figure_table_path(figure)
        assert len(pd.read_csv(saved)) > 0
        with open(saved, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        assert len(rows) == len(pd.read_csv(saved)) + 1


def _read_figure_table(evaluation_dir: Path, name: str) -> pd.DataFrame:
    """A figure's table as a reader meets it: pandas, checked against the `csv` module."""
    path = evaluation_dir / name
    frame = pd.read_csv(path)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(frame.columns) and len(rows) == len(frame) + 1, name
    return frame


@pytest.mark.pipeline
def test_pipeline_figures_are_drawn_from_the_score_table(default_run) -> None:
    """On `make run`'s configuration: each figure's table equals what the split's score table
    gives, and agrees with the logged metrics (precision and recall from the confusion
    counts, label counts from the histogram, ECE from the reliability bins, PR-AUC and
    ROC-AUC from the curves)."""
    _, result, client = default_run
    evaluation = result.stages["evaluate"]
    metrics = evaluation.metrics
    evaluation_dir = evaluation.outputs["summary"].parent
    splits = [s for s in ("validation", "test") if f"{s}/author/n" in metrics]
    assert "test" in splits
    for split in splits:
        prefix = f"{split}/author"
        scores = pd.read_parquet(evaluation_dir / f"{split}-author-scores.parquet")
        confusion = _read_figure_table(evaluation_dir, f"{split}-confusion.csv")
        pd.testing.assert_frame_equal(confusion, plots.confusion_table(scores))
        tp, fp, fn, _ = _tp_fp_fn_tn(confusion)
        assert tp + fn == metrics[f"{prefix}/n_positive"]
        assert tp / (tp + fp) == pytest.approx(metrics[f"{prefix}/precision"], abs=1e-12)
        assert tp / (tp + fn) == pytest.approx(metrics[f"{prefix}/recall"], abs=1e-12)
        histogram = _read_figure_table(evaluation_dir, f"{split}-score-histogram.csv")
        assert histogram["positives"].sum() == metrics[f"{prefix}/n_positive"]
        assert histogram[["positives", "negatives"]].to_numpy().sum() == metrics[f"{prefix}/n"]
        reliability = _read_figure_table(evaluation_dir, f"{split}-reliability.csv")
        bins = reliability[reliability["binning"] == "equal_width"]
        for curve, suffix in (("after calibration", ""), ("before calibration", "_uncalibrated")):
            part = bins[bins["curve"] == curve]
            gap = (part["mean_score"] - part["positive_rate"]).abs()
            ece = (part["n"] / metrics[f"{prefix}/n"] * gap).sum()
            assert ece == pytest.approx(metrics[f"{prefix}/ece{suffix}"], abs=1e-9)
    pr = _read_figure_table(evaluation_dir, "pr_curve_author.csv")
    roc = _read_figure_table(evaluation_dir, "roc_curve_author.csv")
    assert list(dict.fromkeys(pr["split"])) == splits
    for split in splits:
        curve = pr[pr["split"] == split]
        area = (np.diff(curve["recall"], prepend=0.0) * curve["precision"]).sum()
        assert area == pytest.approx(metrics[f"{split}/author/pr_auc"], abs=1e-9)
        part = roc[roc["split"] == split]
        area = auc(part["false_positive_rate"], part["true_positive_rate"])
        assert area == pytest.approx(metrics[f"{split}/author/roc_auc"], abs=1e-9)
    evaluate_run = stage_run(client, result, "evaluate")
    logged = {a.path for a in client.list_artifacts(evaluate_run.info.run_id, "evaluation")}
    for name in ("test-confusion", "test-reliability", "test-score-histogram", "pr_curve_author"):
        assert {f"evaluation/{name}.png", f"evaluation/{name}.csv"} <= logged, name
