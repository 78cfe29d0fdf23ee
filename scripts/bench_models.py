"""Every classical baseline on one corpus: quality, training time and peak memory (a script).

Runs ``data,features`` once, then ``train,evaluate`` for each model in a fresh process (so each
peak-memory figure is that model's own: reading the views, fitting, calibrating, evaluating),
and prints one table: validation and test author precision, recall, F0.5 and PR-AUC, fit
seconds, wall seconds of train+evaluate, and peak resident memory at the end of training.

Usage: ``python scripts/bench_models.py [--scale pan12|tiny] [--models a,b] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from grooming_detect.config import project_root
from grooming_detect.io import write_json
from grooming_detect.stage import latest_dir

MODELS = ("tfidf_logreg", "tfidf_svm", "behaviour_gbm", "tfidf_plus_behaviour", "two_stage")
EXECUTABLE = str(Path(sys.executable).with_name("grooming-detect"))


def _run(overrides: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [EXECUTABLE, *overrides],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default=None, help="a conf/scale option (default: none)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", type=Path, default=Path("bench-results/models.json"))
    args = parser.parse_args()
    common = [
        "tracking.experiment_name=grooming-detect-bench",
        "evaluate.bootstrap.n_resamples=200",
    ]
    if args.scale:
        common.append(f"scale={args.scale}")
    dataset = {"pan12": "synthetic-pan12", "tiny": "synthetic-tiny"}.get(args.scale, "synthetic")
    data_seconds = _run([*common, "stages=[data,features]", "model=tfidf_logreg"])
    print(f"data + features: {data_seconds:.0f} s (includes generation on a first run)")
    rows = []
    header = (
        f"{'model':<22}{'val P':>7}{'val R':>7}{'val F.5':>8}{'val AP':>8}{'test P':>8}"
        f"{'test R':>8}{'test F.5':>9}{'test AP':>8}{'fit s':>8}{'wall s':>8}{'peak MiB':>9}"
    )
    print(header)
    for model in args.models.split(","):
        wall = _run([*common, f"model={model}", "stages=[train,evaluate]"])
        run_dir = project_root() / "outputs" / dataset / model
        evaluation = latest_dir(run_dir, "evaluation") / "evaluation.json"
        metrics = json.loads(evaluation.read_text())["metrics"]
        meta = json.loads((latest_dir(run_dir, "model") / "model.json").read_text())
        row = {
            "model": model,
            **{
                f"{split}/author/{name}": metrics[f"{split}/author/{name}"]
                for split in ("validation", "test")
                for name in ("precision", "recall", "f0_5", "pr_auc")
            },
            "fit_seconds": meta["fit_seconds"],
            "train_evaluate_wall_seconds": wall,
            "peak_rss_mib": meta["peak_rss_mib_after_fit"],
        }
        rows.append(row)
        values = [
            row[f"{s}/author/{n}"]
            for s in ("validation", "test")
            for n in ("precision", "recall", "f0_5", "pr_auc")
        ]
        print(
            f"{model:<22}"
            + "".join(f"{v:>8.3f}" for v in values)
            + f"{row['fit_seconds']:>8.1f}{wall:>8.1f}{row['peak_rss_mib']:>9.0f}"
        )
    write_json(
        args.json,
        {"scale": args.scale or "default", "data_features_seconds": data_seconds, "models": rows},
    )
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
