"""Progress of long steps (bars in a terminal, log lines elsewhere) and the closing table."""

from __future__ import annotations

import logging
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from grooming_detect import progress
from grooming_detect.reporting.summary import results_table

CLI = [shutil.which("grooming-detect") or str(Path(sys.executable).with_name("grooming-detect"))]


@pytest.fixture(autouse=True)
def _restore_progress():
    yield
    progress.configure(True, interval=10.0)


def test_log_lines_carry_count_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    progress.configure(True, interval=0.0)
    caplog.set_level(logging.INFO, logger="grooming_detect.progress")
    assert list(progress.track(range(4), "counting", unit="row")) == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "counting: started of 4 row"
    middle = re.compile(r"counting: 2/4 \(50 %\), [\d.,]+ row/s, .* ETA \d\d:\d\d")
    assert any(middle.search(line) for line in lines)
    assert lines[-1].startswith("counting: 4/4 (100 %)") and lines[-1].endswith("(done)")


def test_progress_false_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    progress.configure(False, interval=0.0)
    caplog.set_level(logging.INFO, logger="grooming_detect.progress")
    with progress.Progress("quiet", total=3) as bar:
        bar.update(3)
    assert not caplog.records


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "MLFLOW_TRACKING_URI")}
    return {**env, "COLUMNS": "120", "GROOMING_DETECT_ROOT": str(root)}


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_terminal_sees_bars(tmp_path: Path) -> None:
    """Under a pseudo-terminal, generating and reading the corpus draw tqdm bars on stderr."""
    controller, terminal = pty.openpty()
    command = [
        *CLI,
        f"paths.root={tmp_path}",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        "scale=tiny",
        "stages=[data]",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=terminal, env=_env(tmp_path), cwd=tmp_path
    ) as process:
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=300) == 0
    os.close(controller)
    drawn = b"".join(chunks).decode("utf-8", "replace")
    assert re.search(r"generating train conversations:\s+\d+%\|", drawn), drawn[-2000:]
    assert "conv/s" in drawn and "reading pan12-" in drawn


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_log_sees_lines_and_the_run_ends_with_the_results_table(tmp_path: Path) -> None:
    """Without a terminal: plain progress lines, then a closing table whose numbers are the
    evaluate run's MLflow metrics."""
    completed = subprocess.run(
        [
            *CLI,
            f"paths.root={tmp_path}",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            "scale=tiny",
        ],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
        timeout=600,
        check=True,
    )
    output = completed.stdout + completed.stderr
    assert "generating train conversations: started of" in output
    assert re.search(r"features of [\d,]+ messages: 5/5 \(100 %\).*\(done\)", output)
    assert "%|" not in output  # no bar drawn into a log
    run_id = re.search(r"MLflow run:\s+(\w+)", completed.stdout).group(1)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    parent = client.get_run(run_id)
    (evaluate,) = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and tags.stage = 'evaluate'",
    )
    logged = evaluate.data.metrics
    expected = results_table(logged)  # the table as MLflow's numbers draw it
    assert expected and expected in completed.stdout
    test_row = next(line for line in completed.stdout.splitlines() if line.startswith("test "))
    for name in ("precision", "recall", "f0_5", "pr_auc", "ece"):
        assert f"{logged[f'test/author/{name}']:.3f}" in test_row, name
    report = next(Path(tmp_path, "outputs").glob("**/report/report.md")).read_text()
    positives = f"{logged['test/author/n_positive']:,.0f}"
    assert f"| test | authors | {positives} | {logged['test/author/precision']:.3f} |" in report


@pytest.mark.parametrize("value", ["maybe", "[1]", "fast"])
def test_progress_must_be_a_boolean(compose_cfg, value: str) -> None:
    """The schema types `progress` (true/false, yes/no, on/off, 1/0): anything else fails at
    composition, naming the key."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as caught:
        compose_cfg(f"progress={value}")
    assert "progress" in f"{caught.value} {caught.value.__cause__}"


def test_worker_threads_log_lines_instead_of_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two TF-IDF blocks are hashed in two threads: only the main thread draws a bar (a bar
    swaps the logging handlers while open, which two threads would restore out of order)."""
    import threading

    monkeypatch.setattr(progress, "in_terminal", lambda: True)
    monkeypatch.setattr(progress, "enabled", lambda: True)
    modes: list[str] = []
    worker = threading.Thread(target=lambda: modes.append(progress.Progress("block")._mode))
    worker.start()
    worker.join()
    assert progress.Progress("main")._mode == "bar" and modes == ["log"]
