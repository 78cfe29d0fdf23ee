"""The pipeline against a real MLflow tracking server on a loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import ComposeFn
from grooming_detect import pipeline

pytestmark = pytest.mark.pipeline


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def tracking_server(tmp_path: Path):
    port = _free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"MLflow server did not start on {url}")
                time.sleep(0.5)
        yield url, tmp_path / "server-artifacts"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_pipeline_logs_to_a_tracking_server(tracking_server, compose_cfg: ComposeFn) -> None:
    url, artifacts = tracking_server
    cfg = compose_cfg("scale=tiny", f"tracking.uri={url}", "evaluate.bootstrap.n_resamples=20")
    result = pipeline.run(cfg)
    client = MlflowClient(tracking_uri=url)
    runs = client.search_runs([result.experiment_id])
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)
    evaluate = next(r for r in runs if r.data.tags.get("stage") == "evaluate")
    assert 0 <= evaluate.data.metrics["test/author/f0_5"] <= 1
    # Artifacts went through the server into its artifact store, not beside the project.
    assert list(artifacts.rglob("evaluation.json"))
    assert not (Path(cfg.paths.root) / "mlartifacts").exists()
