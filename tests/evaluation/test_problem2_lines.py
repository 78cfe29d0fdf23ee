"""PAN-2012 Problem 2 from message-level scores: the tuned line threshold, the all-lines
baseline beside it, and the fallback where messages cannot be scored."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from conftest import ComposeFn
from grooming_detect.config import ConfigError
from grooming_detect.data.pan12 import TEST_PROBLEM2
from grooming_detect.evaluation import lines
from grooming_detect.evaluation.calibration import ScoreCalibrator
from grooming_detect.evaluation.pan_eval import pan_all_lines_scores, score_problem2
from grooming_detect.evaluation.stage import (
    _Evaluation,
    _line_decision,
    _load_evaluation,
    _named_authors,
    _problem2,
    _Scorer,
)
from grooming_detect.models import units
from grooming_detect.models.baselines import make_tfidf_logreg
from grooming_detect.models.units import INPUTS, UNITS, ModelInput, positive_scores
from grooming_detect.stage import StageContext, latest_dir
from grooming_detect.validation import validate_config

# --- tune_line_threshold ------------------------------------------------------------------------


def test_tuned_threshold_by_hand() -> None:
    # Candidates by score: truth, non-truth, truth, non-truth. Selecting scores >= t gives
    # F3 = 10·hits / (9·truth lines + selected):
    #   t=0.9: 10/(18+1)=0.526  t=0.8: 10/20=0.5  t=0.6: 20/21=0.952  t=0.2: 20/22=0.909
    y_true = np.array([True, False, True, False])
    scores = np.array([0.9, 0.8, 0.6, 0.2])
    assert lines.tune_line_threshold(y_true, scores) == 0.6
    # Order of the input does not matter.
    assert lines.tune_line_threshold(y_true[::-1], scores[::-1]) == 0.6


def test_truth_lines_outside_the_candidates_count_as_misses() -> None:
    # One truth line on top, 20 non-truth lines, one truth line at the bottom (22 candidates).
    y_true = np.array([True] + [False] * 20 + [True])
    scores = np.linspace(0.95, 0.05, 22)
    # Two truth lines in all: top alone 10/(18+1)=0.526 beats all 22: 20/(18+22)=0.5.
    assert lines.tune_line_threshold(y_true, scores) == pytest.approx(0.95)
    # Two more truth lines that no candidate covers (recall's denominator is 4):
    # top alone 10/(36+1)=0.270 loses to all 22: 20/(36+22)=0.345.
    assert lines.tune_line_threshold(y_true, scores, missed=2) == pytest.approx(0.05)


def test_ties_go_to_the_higher_threshold() -> None:
    # Top alone: 10/(18+1) = 10/19; down to the second truth line at position 20: 20/(18+20) =
    # 10/19 as well; the higher threshold wins.
    y_true = np.array([True] + [False] * 18 + [True])
    scores = np.linspace(0.9, 0.1, 20)
    assert lines.tune_line_threshold(y_true, scores) == pytest.approx(0.9)
    # Equal scores are one threshold: both lines or neither.
    assert lines.tune_line_threshold(np.array([True, False]), np.array([0.4, 0.4])) == 0.4


def test_tuning_needs_candidates() -> None:
    with pytest.raises(ValueError, match="expected equal, > 0"):
        lines.tune_line_threshold(np.array([], dtype=bool), np.array([]))


def test_truth_flags_count_uncovered_truth_lines() -> None:
    candidates = pd.DataFrame({"conversation_id": ["c1", "c1", "c2"], "line": [1, 2, 1]})
    truth = pd.DataFrame({"conversation_id": ["c1", "c2", "c3"], "line": [2, 5, 1]})
    flags, missed = lines.truth_flags(candidates, truth)
    assert flags.tolist() == [False, True, False]
    assert missed == 2  # (c2, 5) and (c3, 1) are no candidate's


def test_line_threshold_setting_is_tuned_or_a_probability() -> None:
    assert lines.parse_line_threshold("tuned") == "tuned"
    assert lines.parse_line_threshold(1) == 1.0
    for bad in ("tune", 1.5, -0.1, True, None):
        with pytest.raises(ValueError, match=r"evaluate\.line_threshold"):
            lines.parse_line_threshold(bad)


@pytest.mark.parametrize("value", ["tune", "1.5", "-0.1", "null"])
def test_a_bad_line_threshold_fails_at_start(compose_cfg: ComposeFn, value: str) -> None:
    with pytest.raises(ConfigError, match=r"evaluate\.line_threshold: .*expected 'tuned' or"):
        validate_config(compose_cfg(f"evaluate.line_threshold={value}"))
    validate_config(compose_cfg("stages=[data,features,train]", f"evaluate.line_threshold={value}"))
    validate_config(compose_cfg("evaluate.line_threshold=0.25"))


# --- the evaluate stage's decision, on a hand-made two-split corpus -----------------------------

#: Two conversations per split; author "p*" is the named predator, "k*" a partner. Messages
#: with "plan" are the truth lines; the stub model scores a message 0.8 with "plan", else 0.3.
MESSAGES = pd.DataFrame(
    {
        "split": ["validation"] * 6 + ["test"] * 6,
        "conversation_id": ["v1"] * 4 + ["v2"] * 2 + ["t1"] * 4 + ["t2"] * 2,
        "line": [1, 2, 3, 4, 1, 2] * 2,
        "author": ["pv", "kv", "pv", "pv", "pv", "kv", "pt", "kt", "pt", "pt", "pt", "kt"],
        "text": [
            "hi there",
            "hello",
            "we should plan the trip",
            "how was school",
            "plan for friday",
            "ok",
            "hey",
            "hi",
            "the plan is set",
            "nice weather",
            "busy today",
            "sure",
        ],
    }
)
TRUTH = pd.DataFrame(
    {"conversation_id": ["v1", "v2", "t1", "t2"], "line": [3, 1, 3, 1]}
)  # (t2, 1) "busy today" is a truth line the stub scores low


class StubScorer:
    """Scores authors from a table and messages from their text; records what it is given."""

    def __init__(self, aggregated: bool = False, reads_text: bool = True) -> None:
        self.inputs = SimpleNamespace(
            aggregated=aggregated,
            kind=INPUTS["author_conversation" if aggregated else "author"],
            unit=UNITS["author"],
            raw_scores=self.raw_scores,
        )
        self.calibrator = ScoreCalibrator("none")
        self.reads_text = reads_text
        self.splits_seen: list[str] = []

    def raw_scores(self, model: Any, split: str) -> tuple[pd.DataFrame, np.ndarray]:
        self.splits_seen.append(split)
        authors = sorted(set(MESSAGES.loc[MESSAGES["split"] == split, "author"]))
        rows = pd.DataFrame({"author": authors})
        return rows, rows["author"].str.startswith("p").to_numpy(dtype=float)

    def message_scores(self, messages: pd.DataFrame, split: str) -> np.ndarray:
        self.splits_seen.append(split)
        if not self.reads_text:
            return np.full(len(messages), 0.6)
        return np.where(messages["text"].str.contains("plan"), 0.8, 0.3)


def _evaluation(
    scorer: StubScorer,
    messages: pd.DataFrame = MESSAGES,
    truth: pd.DataFrame | None = TRUTH,
    threshold: object = "tuned",
    rule: str = "scored",
    out_dir: Path | None = None,
) -> _Evaluation:
    cfg = OmegaConf.create({"evaluate": {"line_rule": rule, "line_threshold": threshold}})
    return _Evaluation(
        cfg=cfg,
        ctx=SimpleNamespace(evaluation_dir=out_dir),  # type: ignore[arg-type]
        model=None,
        meta={"threshold": 0.5},
        scorer=scorer,  # type: ignore[arg-type]
        messages=messages,
        conversations=pd.DataFrame(),
        line_truth=truth,
        lexicons={},
    )


def test_tuned_threshold_reads_validation_only() -> None:
    scorer = StubScorer()
    decision = _line_decision(_evaluation(scorer))
    # Validation candidates (pv's 4 messages): scores 0.3, 0.8, 0.3, 0.8; truth (v1,3), (v2,1).
    # t=0.8 selects both truth lines: F3 1.0.
    assert decision == lines.LineDecision("scored", 0.8, decision.note)
    assert "tuned on validation" in decision.note
    assert set(scorer.splits_seen) == {"validation"}
    # Whatever the test split holds (texts shuffled, its truth dropped), the threshold is the same.
    test = MESSAGES["split"] == "test"
    shuffled = MESSAGES.copy()
    shuffled.loc[test, "text"] = (
        shuffled.loc[test, "text"].sample(frac=1, random_state=1).to_numpy()
    )
    changed = _line_decision(
        _evaluation(StubScorer(), shuffled, TRUTH[TRUTH["conversation_id"].str.startswith("v")])
    )
    assert changed.threshold == decision.threshold


@pytest.mark.parametrize(
    ("scorer", "truth", "reason"),
    [
        (StubScorer(aggregated=True), TRUTH, "reads author_conversation rows"),
        (StubScorer(reads_text=False), TRUTH, "never vary within an author"),
        (StubScorer(), TRUTH[TRUTH["conversation_id"].str.startswith("t")], "no line truth"),
        (StubScorer(), None, "no line truth"),
        (StubScorer(), TRUTH, "no line truth to tune on out of fold"),
    ],
    ids=[
        "conversation-rows model",
        "text-blind model",
        "no validation truth",
        "no truth",
        "crossfit",
    ],
)
def test_falls_back_to_all_lines_and_says_why(
    scorer: StubScorer, truth: pd.DataFrame | None, reason: str
) -> None:
    ev = _evaluation(scorer, truth=truth)
    if "out of fold" in reason:  # a model refit on train + validation, no tuned line threshold
        ev.meta["selection"] = {"method": "crossfit", "pool": ["train", "validation"]}
    decision = _line_decision(ev)
    assert decision.rule == "all_lines" and decision.threshold is None
    assert reason in decision.note and decision.note.startswith("fallback from scored")


def test_crossfit_takes_the_threshold_tuned_out_of_fold_by_the_train_stage() -> None:
    scorer = StubScorer()
    ev = _evaluation(scorer)
    ev.meta["selection"] = {
        "method": "crossfit",
        "pool": ["train", "validation"],
        "line_threshold": {"threshold": 0.42, "fitted_on": "out-of-fold message scores"},
    }
    decision = _line_decision(ev)
    assert decision == lines.LineDecision("scored", 0.42, "tuned on out-of-fold message scores")
    assert scorer.splits_seen == []  # validation's in-sample scores are never read


def test_fixed_threshold_and_all_lines_settings_are_kept() -> None:
    assert _line_decision(_evaluation(StubScorer(), threshold=0.25)).threshold == 0.25
    assert _line_decision(_evaluation(StubScorer(), rule="all_lines")).rule == "all_lines"


def test_written_files_and_both_rules_measures(tmp_path: Path) -> None:
    ev = _evaluation(StubScorer(), out_dir=tmp_path)
    ev.line_decision = lines.LineDecision("scored", 0.8)
    _problem2(ev, "test", MESSAGES[MESSAGES["split"] == "test"], {"pt"})
    # All lines of pt: (t1,1) (t1,3) (t1,4) (t2,1); truth (t1,3) (t2,1): 2 hits of 4 written,
    # 2 truth lines: precision 1/2, recall 1, F3 = 10·2/(9·2+4) = 20/22.
    baseline_file = tmp_path / "test-problem2-lines-all.txt"
    assert baseline_file.read_text() == "t1\t1\nt1\t3\nt1\t4\nt2\t1\n"
    assert ev.metrics["test/line/precision_all_lines"] == pytest.approx(2 / 4)
    assert ev.metrics["test/line/recall_all_lines"] == pytest.approx(2 / 2)
    assert ev.metrics["test/line/f3_all_lines"] == pytest.approx(20 / 22)
    # Scored at 0.8: only (t1,3): precision 1, recall 1/2, F3 = 10/(18+1).
    assert (tmp_path / "test-problem2-lines.txt").read_text() == "t1\t3\n"
    assert ev.metrics["test/line/precision"] == pytest.approx(1.0)
    assert ev.metrics["test/line/f3"] == pytest.approx(10 / 19)
    # The PAN scorer agrees on the written baseline file.
    truth_file = tmp_path / TEST_PROBLEM2
    truth_file.write_text("t1\t3\nt2\t1\n")
    manifest = {"sources": {TEST_PROBLEM2: {"path": str(truth_file)}}}
    pan = pan_all_lines_scores(manifest, baseline_file)
    assert pan == {
        f"test/line/pan_{k}_all_lines": v
        for k, v in score_problem2(baseline_file, truth_file).items()
    }
    assert pan["test/line/pan_f3_all_lines"] == pytest.approx(20 / 22)
    assert pan_all_lines_scores({}, baseline_file) == {}


def test_message_scores_are_the_model_on_each_message_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One batched call; each message scored as its author's whole document."""
    docs = pd.DataFrame(
        {
            "text": ["plan the trip plan", "hello there", "a plan", "nice day"],
            "author": ["a", "b", "c", "d"],
            "split": "validation",
            "is_predator": [True, False, True, False],
        }
    )
    model = make_tfidf_logreg(min_df=1, C=10.0).fit(docs[["text"]], docs["is_predator"])
    calls: list[int] = []

    def counting_scores(model: object, rows: pd.DataFrame) -> np.ndarray:
        calls.append(len(rows))
        return positive_scores(model, rows)

    monkeypatch.setattr(units, "positive_scores", counting_scores)
    inputs = ModelInput.__new__(ModelInput)  # the views without files
    inputs.unit = inputs.kind = UNITS["author"]
    inputs.unit_view = inputs.input_view = docs
    inputs.aggregate, inputs.stage = "max", "evaluate"
    scorer = _Scorer(model, ScoreCalibrator("none"), inputs)  # type: ignore[arg-type]
    messages = pd.DataFrame({"author": ["a", "a", "b"], "text": ["plan", "hello", "plan"]})
    scores = scorer.message_scores(messages, "validation")
    assert calls == [3]
    alone = model.predict_proba(pd.DataFrame({"text": messages["text"]}))[:, 1]
    np.testing.assert_allclose(scores, alone, rtol=1e-5)
    assert scores[0] > scores[1]


# --- the default pipeline on the synthetic corpus -----------------------------------------------


@pytest.mark.pipeline
def test_default_run_reports_lines_beside_the_all_lines_baseline(default_run) -> None:
    """The synthetic corpus, unlike PAN-2012, also has (unofficial) training line truth: the
    default (crossfit) run tunes the line threshold out of fold, never on test, and reports the
    scored lines beside the all-lines baseline."""
    cfg, result, client = default_run
    evaluate = next(
        r
        for r in client.search_runs([result.experiment_id])
        if r.data.tags.get("stage") == "evaluate"
    )
    metrics = evaluate.data.metrics
    for name in (
        "f3",
        "f3_all_lines",
        "precision_all_lines",
        "recall_all_lines",
        "pan_f3_all_lines",
    ):
        assert 0.0 <= metrics[f"test/line/{name}"] <= 1.0, name
    # Validation is training data under crossfit: it is not scored at all.
    assert not any(key.startswith("validation/") for key in metrics)
    summary = json.loads(
        (latest_dir(cfg.paths.run_dir, "evaluation") / "evaluation.json").read_text()
    )
    assert summary["line_rule"] == "scored"
    assert summary["line_threshold"] == metrics["evaluate/line_threshold"]
    assert "out-of-fold message scores" in summary["line_rule_note"]
    assert metrics["test/line/f3"] == metrics["test/line/pan_f3"]
    assert metrics["test/line/f3_all_lines"] == metrics["test/line/pan_f3_all_lines"]


@pytest.mark.pipeline
def test_scored_lines_are_more_precise_than_all_lines(default_run, tmp_path: Path) -> None:
    """The default run's model at a fixed line threshold (0.5, not tuned on test): the synthetic
    truth lines are the predators' grooming-stage lines, whose terms the text model weighs, while
    the rest of a named predator's lines are small talk; so scoring each message keeps the
    truth lines and drops most of the others (measured: precision 0.97 against 0.28)."""
    cfg, _, _ = default_run
    cfg = cfg.copy()
    OmegaConf.update(cfg, "stages", ["evaluate"])
    ctx = dataclasses.replace(StageContext.from_config(cfg), evaluation_dir=tmp_path)
    ev = _load_evaluation(cfg, ctx)
    ev.line_decision = lines.LineDecision("scored", 0.5)
    test = ev.messages[ev.messages["split"] == "test"]
    _problem2(ev, "test", test, _named_authors(ev, "test"))
    assert ev.metrics["test/line/precision"] >= ev.metrics["test/line/precision_all_lines"] + 0.3
    assert ev.metrics["test/line/recall"] <= ev.metrics["test/line/recall_all_lines"]
