"""`local_server`: a logged model served by ``mlflow models serve`` on a loopback port, for the
serving tests and `scripts/bench_serve.py`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def local_server(
    model_uri: str,
    tracking_uri: str,
    workers: int = 1,
    log_file: Path | None = None,
    start_timeout: float = 180.0,
) -> Iterator[str]:
    """``mlflow models serve -m <model_uri> --env-manager local`` on a free loopback port, for
    tests and benchmarks: yields the ``/invocations`` URL once ``/ping`` answers, and stops the
    server and its workers (its own process group) on exit."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bin_dir = Path(sys.executable).parent
    stderr = log_file.open("w") if log_file else subprocess.DEVNULL
    server = subprocess.Popen(
        [
            *(str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri),
            *("--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)),
        ],
        # The server runs `uvicorn` from PATH: this environment's own, as in an activated venv.
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                if server.poll() is not None:
                    shown = log_file.read_text()[-3000:] if log_file else ""
                    raise RuntimeError(f"the model server exited: {shown}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the model server did not start in {start_timeout} s"
                    ) from None
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/invocations"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(server.pid, sig)
                server.wait(timeout=30)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        if log_file:
            stderr.close()  # type: ignore[union-attr]
