"""What `grooming-detect-score` leaves in ``--out`` when things go wrong: a bad line midway
through a stream keeps the records scored before it, and a failed write (a full disk) leaves
the previous pair of score files, never a new author file beside an old conversation file."""

from __future__ import annotations

import errno
import io as io_module
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_streaming import META, _fit, _log

from grooming_detect import io
from grooming_detect.models.baselines import make_tfidf_logreg
from grooming_detect.models.persistence import save_model
from grooming_detect.scoring import batch, cli

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("score") / "model"
    meta = {**META, "features": {"lexicons": {}, "message_separator": "\n"}}
    save_model(_fit(make_tfidf_logreg), meta, folder)
    return folder


def _jsonl(log: pd.DataFrame) -> str:
    return "".join(
        json.dumps({"conversation_id": r.conversation_id, "author": r.author, "text": r.text})
        + "\n"
        for r in log.itertuples()
    )


def test_a_bad_line_midway_keeps_the_records_scored_before_it(
    tmp_path: Path, model_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Standard input with ``--out``: a malformed line after 30 good ones kept nothing (standard
    output showed the 30). A file is checked whole before scoring: nothing is written."""
    good = _jsonl(_log(6))
    n_good = good.count("\n")
    out = tmp_path / "out"
    command = ["-", "--model", str(model_folder), "--stream"]

    def stdin(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io_module.StringIO(text))

    stdin(good + "{not json\n" + _jsonl(_log(2)))
    assert cli.main([*command, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"<stdin>:{n_good + 1}" in error
    assert f"the {n_good:,} records scored before it are in {out / 'stream.partial.jsonl'}" in error
    assert not (out / "stream.jsonl").exists()
    kept = [json.loads(line) for line in (out / "stream.partial.jsonl").read_text().splitlines()]
    stdin(good + "{not json\n" + _jsonl(_log(2)))
    assert cli.main(command) == 2
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert kept == shown and len(kept) == n_good
    stdin(good)
    assert cli.main([*command, "--out", str(out)]) == 0
    assert not (out / "stream.partial.jsonl").exists()
    assert len((out / "stream.jsonl").read_text().splitlines()) == n_good
    path = tmp_path / "log.jsonl"
    path.write_text(good + "{not json\n")
    assert cli.main([str(path), *command[1:], "--out", str(tmp_path / "from-file")]) == 2
    assert f"log.jsonl:{n_good + 1}" in capsys.readouterr().err
    assert not list((tmp_path / "from-file").glob("stream*.jsonl"))


def test_a_full_disk_leaves_the_previous_pair_of_score_files(
    tmp_path: Path, model_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    log = _log(6)
    path = tmp_path / "log.csv"
    log.drop(columns=["time", "split"]).to_csv(path, index=False)
    out = tmp_path / "out"
    assert cli.main([str(path), "--model", str(model_folder), "--out", str(out)]) == 0
    before = {
        name: (out / name).read_bytes() for name in ("author_scores.csv", "conversation_scores.csv")
    }
    log.assign(text=log["text"] + " snap").drop(columns=["time", "split"]).to_csv(path, index=False)
    real = io.write_csv
    calls = []

    def second_write_fails(target, frame, *args, **kwargs):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(target, frame, *args, **kwargs)

    monkeypatch.setattr(batch, "write_csv", second_write_fails)
    assert cli.main([str(path), "--model", str(model_folder), "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1] == (
        f"error: --out {out}: No space left on device; the previous score files, if any, "
        "are unchanged"
    )
    assert {name: (out / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def test_a_reader_that_goes_away_stops_the_stream_quietly(model_folder: Path) -> None:
    """`grooming-detect-score - --stream | head -1`: exit 0 and no error when head leaves."""
    import subprocess

    scorer = Path(sys.executable).with_name("grooming-detect-score")
    head = subprocess.run(
        f"{scorer} - --model {model_folder} --stream 2>{model_folder.parent / 'err.txt'} "
        f"| head -1; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        input=_jsonl(_log(200)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert head.returncode == 0, (model_folder.parent / "err.txt").read_text()
    assert len(head.stdout.splitlines()) == 1
    assert "error" not in (model_folder.parent / "err.txt").read_text()
