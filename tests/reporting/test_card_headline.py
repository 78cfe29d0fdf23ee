"""The card's headline table: test first, PAN-exact where it differs, cv or in-sample validation;
the split shares and the train/test author overlap."""

from __future__ import annotations

import re

from grooming_detect.reporting.markdown import markdown_table
from grooming_detect.reporting.model_card import headline_rows, split_shares
from grooming_detect.reporting.summary import results_table

TEST = {
    "test/author/n": 100.0,
    "test/author/n_positive": 10.0,
    "test/author/precision": 0.8,
    "test/author/recall": 0.8,
    "test/author/f1": 0.8,
    "test/author/f0_5": 0.8,
    "test/author/pr_auc": 0.7,
    "test/author/roc_auc": 0.9,
    "validation/author/n": 50.0,
    "validation/author/n_positive": 5.0,
    "validation/author/precision": 1.0,
    "validation/author/recall": 1.0,
}


def _lines(rows: list[list[str]]) -> list[str]:
    """The table rows as the card writes them (below its header and separator)."""
    return markdown_table(["split", *("?" * 8)], rows).splitlines()[2:]


def test_pan_scorer_row_leads_when_truth_ids_are_missing_from_the_test_table() -> None:
    """Truth has 16 predators, 6 of them never speak in the test table: the PAN scorer's
    recall is 8/16, the table's 8/10; the headline is the PAN scorer's."""
    metrics = {
        **TEST,
        "test/author/pan_precision": 0.8,
        "test/author/pan_recall": 0.5,
        "test/author/pan_f1": 2 * 0.8 * 0.5 / 1.3,
        "test/author/pan_f0_5": 1.25 * 0.8 * 0.5 / (0.25 * 0.8 + 0.5),
    }
    summary = {"metrics": metrics, "unit": "author", "threshold_fitted_on": "validation"}
    rows = _lines(headline_rows(summary, {}))
    assert rows[0].startswith("| **test, PAN-2012 scorer (full truth file)** | n/a | n/a | 0.800")
    assert "| 0.500 | 0.615 | 0.714 | n/a | n/a |" in rows[0]
    assert rows[1].startswith("| test, authors in the test table only | 100 | 10 | 0.800 | 0.800")
    assert rows[2].startswith("| validation (tuning set, in-sample) | 50 | 5 |")


def test_crossfit_shows_the_cross_validated_row_and_hides_validation() -> None:
    metrics = {
        **TEST,
        **{
            f"test/author/pan_{k}": TEST[f"test/author/{k}"]
            for k in ("precision", "recall", "f1", "f0_5")
        },
    }
    fitted_on = "out-of-fold scores (5 grouped folds of train + validation)"
    summary = {"metrics": metrics, "unit": "author", "threshold_fitted_on": fitted_on}
    meta = {
        "selection": {"method": "crossfit", "folds": 5},
        "at_threshold": {"n": 500.0, "n_positive": 40.0, "precision": 0.9, "recall": 0.7},
    }
    rows = _lines(headline_rows(summary, meta))
    assert len(rows) == 2
    assert rows[0].startswith("| test (equals the PAN-2012 scorer) | 100 | 10 |")
    assert rows[1].startswith(
        "| cross-validated scores, threshold and calibrator fitted on them (5 grouped folds of "
        "train + validation) | 500 | 40 | 0.900 | 0.700 |"
    )
    cv_metrics = {k: v for k, v in metrics.items() if not k.startswith("validation/")}
    printed = results_table({**cv_metrics, "cv/author/precision": 0.9}, 0.5, fitted_on)
    assert "validation" not in printed.split("threshold")[0]
    assert "\ncv " in printed and "validation is training data (not shown)" in printed


def test_split_shares_and_author_overlap_are_stated() -> None:
    manifest = {
        "split": {
            "validation": {
                "share_conversations": 0.2,
                "share_positives": 0.25,
                "target_share": 0.2,
                "tolerance": 0.1,
                "largest_component": {"conversations": 30, "authors": 12, "positives": 1},
                "override": None,
            }
        },
        "author_overlap": {"authors": 7, "predators": 2, "share_of_test_authors": 0.05},
    }
    text = split_shares(manifest)
    assert (
        "- `validation` carving: 0.200 of the conversations and 0.250 of the positive "
        "conversations (target 0.200, tolerance 0.100); largest connected component 30 "
        "conversations, 12 authors, 1 positive; no author on both sides" in text
    )
    assert "Authors in both the training and the test files: 7 (2 predators; 0.050" in text
    assert split_shares({}) == ""


def test_the_closing_table_keeps_each_measure_in_its_column() -> None:
    """Lines are scored by F3: it sits in the F3 column, never under F0.5; positives lead."""
    metrics = {
        **TEST,
        "test/author/f0_5_ci_low": 0.7,
        "test/author/f0_5_ci_high": 0.9,
        "test/author/f3": 0.79,
        "test/author/alerts_per_10k": 157.2131,
        "test/line/precision": 0.6,
        "test/line/recall": 0.9,
        "test/line/f3": 0.883,
    }
    lines = results_table(metrics, min_positives=1).splitlines()
    # Columns as a reader sees them: the spans of the dashes under the header.
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]

    def row(unit: str) -> dict[str, str]:
        line = next(x for x in lines if x.startswith("test") and unit in x).ljust(len(lines[1]))
        return {lines[0][a:b].strip(): line[a:b].strip() for a, b in spans}

    assert [lines[0][a:b].strip() for a, b in spans][:4] == [
        "split",
        "unit",
        "positives",
        "precision",
    ]
    assert row("lines")["F3"] == "0.883" and row("lines")["F0.5 [95% CI]"] == "-"
    assert row("authors")["F0.5 [95% CI]"] == "0.800 [0.700, 0.900]"
    assert row("authors")["alerts/10k"] == "157.2" and row("authors")["positives"] == "10"


def test_few_positives_are_said_before_the_numbers() -> None:
    one = {**TEST, "test/author/n_positive": 1.0, "test/author/pr_auc": 1.0}
    printed = results_table(one, 0.5, "validation", min_positives=10)
    assert printed.startswith("FEW POSITIVES (under evaluate.min_positives = 10): the numbers")
    assert "rest on validation 5 positive authors, test 1 positive author." in printed
    assert not results_table(one, 0.5, "validation", min_positives=1).startswith("FEW")
