"""Scoring PAN-2012 submission files exactly as the organisers did, edge cases included."""

from __future__ import annotations

from pathlib import Path

import pytest

from grooming_detect.evaluation.pan_eval import main, score_problem1, score_problem2


def _file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_problem1_hand_computed(tmp_path: Path) -> None:
    # 4 named (one twice, CRLF, padded), 3 of them true; truth has 5 ids.
    submission = _file(tmp_path, "sub.txt", b"p1\r\np2\r\n  p3 \r\nx9\r\np1\r\n\r\n")
    truth = _file(tmp_path, "truth.txt", b"p1\np2\np3\np4\np5\n")
    scores = score_problem1(submission, truth)
    assert scores["precision"] == pytest.approx(0.75)
    assert scores["recall"] == pytest.approx(0.6)
    # F1 = 2 * .75 * .6 / 1.35 = 0.6667; F0.5 = 1.25 * .45 / (.25 * .75 + .6) = 0.7143
    assert round(scores["f1"], 4) == 0.6667
    assert round(scores["f0_5"], 4) == 0.7143


def test_problem2_hand_computed(tmp_path: Path) -> None:
    # 5 named pairs (one duplicated), 2 true of 8 in the truth: P = 2/4, R = 2/8.
    submission = _file(tmp_path, "lines.txt", b"c1\t1\nc1\t2\nc2\t7\nc9\t1\nc1\t1\n")
    truth = _file(
        tmp_path,
        "truth.txt",
        b"c1\t1\r\nc1\t3\r\nc2\t7\r\nc2\t8\r\nc3\t1\r\nc3\t2\r\nc3\t3\r\nc4\t1\r\n",
    )
    scores = score_problem2(submission, truth)
    assert scores["precision"] == pytest.approx(0.5)
    assert scores["recall"] == pytest.approx(0.25)
    # F3 = 10 * .5 * .25 / (9 * .5 + .25) = 1.25 / 4.75 = 0.2632
    assert round(scores["f3"], 4) == 0.2632


def test_empty_submission_scores_zero(tmp_path: Path) -> None:
    empty = _file(tmp_path, "empty.txt", b"")
    truth = _file(tmp_path, "truth.txt", b"p1\n")
    assert score_problem1(empty, truth) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "f0_5": 0.0}


def test_malformed_submission_line_is_named(tmp_path: Path, capsys) -> None:
    bad = _file(tmp_path, "bad.txt", b"c1\t1\nc1 one\n")
    truth = _file(tmp_path, "truth.txt", b"c1\t1\n")
    assert main(["--lines", str(bad), "--truth-lines", str(truth)]) == 2
    assert "bad.txt:2" in capsys.readouterr().err


def test_cli_prints_both_problems(tmp_path: Path, capsys) -> None:
    sub1 = _file(tmp_path, "p1.txt", b"a\nb\n")
    truth1 = _file(tmp_path, "t1.txt", b"a\n")
    sub2 = _file(tmp_path, "p2.txt", b"c\t1\n")
    truth2 = _file(tmp_path, "t2.txt", b"c\t1\nc\t2\n")
    assert (
        main(
            [
                "--predators",
                str(sub1),
                "--truth-predators",
                str(truth1),
                "--lines",
                str(sub2),
                "--truth-lines",
                str(truth2),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "problem1: precision 0.5000  recall 1.0000  f1 0.6667  f0_5 0.5556"
    assert out[1] == "problem2: precision 1.0000  recall 0.5000  f3 0.5263"


def test_cli_needs_pairs(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--predators", str(tmp_path / "x.txt")])


@pytest.mark.pipeline
def test_evaluate_scores_test_submissions_as_the_pan_scorer(compose_cfg, tmp_path: Path) -> None:
    """A truth id that never speaks in the test corpus is a miss for the PAN scorer: the
    evaluate stage's test/author/pan_* equal a hand count over the written submission and the
    full truth file, while the table-based recall ignores the silent id."""
    import json

    from grooming_detect import pipeline
    from grooming_detect.data import pan12
    from grooming_detect.stage import latest_dir

    # Template recall (every marker family in both splits): a tiny model then names test
    # predators, which the comparison below needs.
    recall_task = "data.generator.held_out_families=none"
    cfg = compose_cfg("scale=tiny", recall_task, "stages=[data]")
    pipeline.run(cfg)
    corpus = next(Path(cfg.paths.raw, "synthetic").iterdir())
    truth_file = pan12.find_files(corpus).test_problem1
    with open(truth_file, "a", encoding="utf-8", newline="") as handle:
        handle.write("silent-author-never-in-the-corpus\r\n")
    # Up to the evaluate stage, whose measures these are (no report is read).
    result = pipeline.run(
        compose_cfg(
            "scale=tiny",
            recall_task,
            "evaluate.bootstrap.n_resamples=20",
            "stages=[data,features,train,evaluate]",
        )
    )
    metrics = result.stages["evaluate"].metrics
    evaluation = latest_dir(cfg.paths.run_dir, "evaluation")
    submitted = {
        line.strip()
        for line in (evaluation / "test-problem1-predators.txt").read_text().splitlines()
        if line.strip()
    }
    truth = {line.strip() for line in truth_file.read_text().splitlines() if line.strip()}
    hits = len(submitted & truth)
    assert metrics["test/author/pan_recall"] == pytest.approx(hits / len(truth))
    assert metrics["test/author/pan_precision"] == pytest.approx(hits / len(submitted))
    assert metrics["test/author/pan_recall"] < metrics["test/author/recall"]
    summary = json.loads((evaluation / "evaluation.json").read_text())
    assert "test/line/pan_f3" in summary["metrics"]
