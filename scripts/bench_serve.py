"""Latency and throughput of the served model (a script, not a test; ``make bench-serve``).

Trains and registers the model (default ``tfidf_logreg``) on the default real-text corpus
(``tracking.register=true``; cached data and features are reused), starts
``mlflow models serve -m models:/<name>@candidate --env-manager local`` on a loopback port, and
posts requests of one 50-message conversation each, cut from the test split's real messages:
first one at a time (p50/p95/max latency per request, requests/s), then from several client
threads at once (requests/s). The in-process pyfunc's time for the same request is printed
beside it (what HTTP and JSON add), and one bad request shows the 400 answer.

Usage: ``python scripts/bench_serve.py [--model tfidf_logreg] [--requests 300]
[--clients 4] [--workers 1] [--messages 50] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from grooming_detect.config import project_root
from grooming_detect.io import write_json
from grooming_detect.stage import latest_dataset_dir

BIN = Path(sys.executable).parent
# `local_server` is the serving tests' helper (tests/scoring/local_server.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "scoring"))
from local_server import local_server  # noqa: E402


def _post(url: str, body: bytes) -> tuple[int, bytes, float]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.read(), time.perf_counter() - started
    except urllib.error.HTTPError as error:
        return error.code, error.read(), time.perf_counter() - started


def _conversations(processed: Path, n_messages: int, count: int) -> list[pd.DataFrame]:
    """`count` requests of `n_messages` real test-split messages each, as one conversation
    (consecutive test conversations joined and renumbered, two authors kept as they are)."""
    messages = pd.read_parquet(processed / "messages.parquet")
    messages = messages[messages["split"] == "test"].sort_values(["conversation_id", "line"])
    columns = ["conversation_id", "line", "author", "time", "text"]
    requests = []
    for start in range(0, min(len(messages), count * n_messages) - n_messages + 1, n_messages):
        part = messages.iloc[start : start + n_messages][columns].copy()
        part["conversation_id"] = f"bench-{start // n_messages}"
        part["line"] = np.arange(1, len(part) + 1)
        requests.append(part)
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tfidf_logreg")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the server")
    parser.add_argument("--messages", type=int, default=50, help="messages per request")
    parser.add_argument("--json", type=Path, default=Path("bench-results/serve.json"))
    args = parser.parse_args()
    root = project_root()
    uri = f"sqlite:///{root}/mlflow.db"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI", uri),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "TQDM_DISABLE": "1",
    }
    subprocess.run(
        [
            str(BIN / "grooming-detect"),
            f"model={args.model}",
            "tracking.register=true",
            "progress=false",
            "evaluate.bootstrap.n_resamples=200",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    name = f"grooming-detect-synthetic-{args.model}"
    model_uri = f"models:/{name}@candidate"
    requests = _conversations(
        latest_dataset_dir(root / "data" / "processed", "synthetic"), args.messages, 64
    )
    bodies = [json.dumps({"dataframe_records": r.to_dict("records")}).encode() for r in requests]
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    in_process = []
    for frame in requests[:50]:
        started = time.perf_counter()
        pyfunc.predict(frame)
        in_process.append(time.perf_counter() - started)
    with local_server(model_uri, env["MLFLOW_TRACKING_URI"], workers=args.workers) as url:
        for body in bodies[:10]:  # warm-up
            assert _post(url, body)[0] == 200
        latencies = []
        started = time.perf_counter()
        for i in range(args.requests):
            status, _, seconds = _post(url, bodies[i % len(bodies)])
            assert status == 200
            latencies.append(seconds)
        sequential_rps = args.requests / (time.perf_counter() - started)
        with ThreadPoolExecutor(args.clients) as pool:
            started = time.perf_counter()
            results = list(
                pool.map(lambda i: _post(url, bodies[i % len(bodies)]), range(args.requests))
            )
            concurrent_rps = args.requests / (time.perf_counter() - started)
        assert all(status == 200 for status, _, _ in results)
        concurrent = [seconds for _, _, seconds in results]
        bad = json.dumps({"dataframe_records": [{"conversation_id": "c", "author": "a"}]})
        bad_status, bad_body, _ = _post(url, bad.encode())
    ms = 1000.0
    figures = {
        "model_uri": model_uri,
        "messages_per_request": args.messages,
        "requests": args.requests,
        "server_workers": args.workers,
        "cpus": os.cpu_count(),
        "sequential_p50_ms": float(np.percentile(latencies, 50) * ms),
        "sequential_p95_ms": float(np.percentile(latencies, 95) * ms),
        "sequential_max_ms": float(np.max(latencies) * ms),
        "sequential_requests_per_second": sequential_rps,
        "concurrent_clients": args.clients,
        "concurrent_requests_per_second": concurrent_rps,
        "concurrent_p50_ms": float(np.percentile(concurrent, 50) * ms),
        "concurrent_p95_ms": float(np.percentile(concurrent, 95) * ms),
        "in_process_pyfunc_p50_ms": float(np.percentile(in_process, 50) * ms),
        "bad_request_status": bad_status,
        "bad_request_message": json.loads(bad_body).get("message", "")[-300:],
    }
    for key, value in figures.items():
        shown = f"{value:,.1f}" if isinstance(value, float) else value
        print(f"{key:<34}{shown}")
    write_json(args.json, figures)
    print(f"\nfigures: {args.json}")


if __name__ == "__main__":
    main()
