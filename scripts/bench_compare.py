"""TF-IDF against the fine-tuned transformer on real chat text, the transformer within a fixed
CPU budget (a script, not a test; ``make bench-compare``).

Two corpora, both built from the real-text synthetic corpus (chitchat-dataset text with
non-explicit markers): the PAN-format corpus itself (labels per author), and the same messages
written out as a chat log labelled per conversation (JSONL), read through the chat-log reader.
On each, ``tfidf_logreg`` and ``transformer`` (the packaged all-MiniLM-L6-v2) run data ->
evaluate in fresh processes; the transformer's optimisation stops when ``--budget-minutes`` of
wall-clock time are spent (``model.estimator.max_train_seconds``). Then the script scores the
test split's model rows again itself, timed: rows/s for each model and, for the transformer, the
same rows with int8 dynamic quantisation, with the row-level PR-AUC of both.

It prints, per corpus and model: test PR-AUC, F0.5 at the tuned threshold, ECE (calibrated),
the training seconds, and scoring rows/s; then the int8 line. ``--json`` keeps the figures.

Usage: ``python scripts/bench_compare.py [--budget-minutes 15] [--conversations 2000,1200]
[--max-length 128] [--batch-size 16] [--score-rows 0] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from grooming_detect.config import project_root
from grooming_detect.data.export import write_chatlog
from grooming_detect.io import write_json
from grooming_detect.models.persistence import load_model
from grooming_detect.models.units import INPUTS, features_of
from grooming_detect.stage import latest_dataset_dir, latest_dir

EXECUTABLE = str(Path(sys.executable).with_name("grooming-detect"))
MODELS = ("tfidf_logreg", "transformer")


def _run(overrides: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [EXECUTABLE, *overrides],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"},
    )
    return time.perf_counter() - started


def _timed_scores(model: Any, X: pd.DataFrame) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    scores = model.predict_proba(X)[:, 1]
    return scores, time.perf_counter() - started


def _score_test_rows(run_dir: Path, processed: Path, score_rows: int) -> dict[str, float]:
    """Score the model's own test rows again, timed; int8 beside float for a transformer."""
    model, meta = load_model(latest_dir(run_dir, "model"))
    unit = INPUTS[meta["input"]]
    view = pd.read_parquet(processed / "features" / unit.view_file)
    rows = view[view["split"] == "test"]
    if score_rows and len(rows) > score_rows:
        rows = rows.sample(n=score_rows, random_state=0).sort_index()
    X = features_of(rows, unit)
    dropped = meta.get("features", {}).get("dropped", [])
    X = X.drop(columns=[c for c in dropped if c in X.columns])
    y = rows[unit.label_column].to_numpy(dtype=bool)
    scores, seconds = _timed_scores(model, X)
    figures = {
        "score_rows": float(len(X)),
        "score_rows_per_second": len(X) / seconds,
        "row_pr_auc": float(average_precision_score(y, scores)),
    }
    if "quantize" in model.get_params():
        model.set_params(quantize="int8")
        int8_scores, int8_seconds = _timed_scores(model, X)
        figures |= {
            "int8_score_rows_per_second": len(X) / int8_seconds,
            "int8_row_pr_auc": float(average_precision_score(y, int8_scores)),
            "int8_max_abs_score_change": float(np.abs(int8_scores - scores).max()),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=15.0)
    parser.add_argument(
        "--conversations",
        default="2000,1200",
        help="train,test conversations of the generated corpus (the transformer scores every "
        "test row on the CPU, so the default keeps a run under an hour on 2 cores)",
    )
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument(
        "--max-epochs",
        type=float,
        default=20.0,
        help="upper bound on epochs; the budget normally stops training first",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--score-rows", type=int, default=0, help="0: every test row")
    parser.add_argument("--json", type=Path, default=Path("bench-results/compare.json"))
    args = parser.parse_args()
    n_train, n_test = (int(n) for n in args.conversations.split(","))
    root = project_root()
    common = [
        "tracking.experiment_name=grooming-detect-bench-compare",
        "evaluate.bootstrap.n_resamples=200",
        "evaluate.top_k=5",
        "progress=false",
        "stages=[data,features,train,evaluate]",
    ]
    corpus = "compare-pan"
    pan = [
        f"data.name={corpus}",
        f"data.generator.n_train_conversations={n_train}",
        f"data.generator.n_test_conversations={n_test}",
        "data.generator.n_train_predators=null",
        "data.generator.n_test_predators=null",
        "data.generator.predator_share=0.04",
    ]
    transformer = [
        f"model.estimator.max_train_seconds={args.budget_minutes * 60:.0f}",
        # Epochs are not the limit: the budget is (one epoch may end before it).
        f"model.estimator.epochs={args.max_epochs}",
        f"model.estimator.max_length={args.max_length}",
        f"model.estimator.batch_size={args.batch_size}",
    ]
    print(
        f"budget {args.budget_minutes:g} min of optimisation on {os.cpu_count()} CPUs; corpus "
        f"{n_train:,} train / {n_test:,} test conversations; MiniLM max_length "
        f"{args.max_length}, batch {args.batch_size}",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    corpora: list[tuple[str, list[str], str]] = [("pan_author", pan, corpus)]
    for name, data, dataset in corpora:
        for model in MODELS:
            extra = transformer if model == "transformer" else []
            wall = _run([*common, *data, f"model={model}", *extra])
            run_dir = root / "outputs" / dataset / model
            evaluation = json.loads(
                (latest_dir(run_dir, "evaluation") / "evaluation.json").read_text()
            )["metrics"]
            meta = json.loads((latest_dir(run_dir, "model") / "model.json").read_text())
            unit = meta["unit"]
            row = {
                "corpus": name,
                "model": model,
                "unit": unit,
                "test_pr_auc": evaluation[f"test/{unit}/pr_auc"],
                "test_f0_5": evaluation[f"test/{unit}/f0_5"],
                "test_ece": evaluation[f"test/{unit}/ece"],
                "fit_seconds": meta["fit_seconds"],
                "wall_seconds": wall,
                **_score_test_rows(
                    run_dir,
                    latest_dataset_dir(root / "data" / "processed", dataset),
                    args.score_rows,
                ),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
        if name == "pan_author":
            # The same messages as a chat log labelled per conversation, for the second corpus.
            log = write_chatlog(
                "log_conversation",
                latest_dataset_dir(root / "data" / "processed", dataset),
                root / "data" / "logs",
            )
            corpora.append(
                (
                    "log_conversation",
                    ["data=chatlog", f"data.path={log}", "data.name=compare-log-conversation"],
                    "compare-log-conversation",
                )
            )
    header = (
        f"{'corpus':<18}{'model':<14}{'unit':<14}{'PR-AUC':>8}{'F0.5':>7}{'ECE':>7}"
        f"{'fit s':>8}{'rows/s':>10}{'row AP':>8}"
    )
    print("\n" + header)
    for r in results:
        print(
            f"{r['corpus']:<18}{r['model']:<14}{r['unit']:<14}{r['test_pr_auc']:>8.3f}"
            f"{r['test_f0_5']:>7.3f}{r['test_ece']:>7.3f}{r['fit_seconds']:>8.0f}"
            f"{r['score_rows_per_second']:>10,.1f}{r['row_pr_auc']:>8.3f}"
        )
        if "int8_score_rows_per_second" in r:
            speedup = r["int8_score_rows_per_second"] / r["score_rows_per_second"]
            print(
                f"{'':<18}{'  int8':<14}{'':<14}{'':>8}{'':>7}{'':>7}{'':>8}"
                f"{r['int8_score_rows_per_second']:>10,.1f}{r['int8_row_pr_auc']:>8.3f}"
                f"   ({speedup:.2f}x, row PR-AUC {r['int8_row_pr_auc'] - r['row_pr_auc']:+.4f})"
            )
    write_json(args.json, {"settings": vars(args) | {"json": str(args.json)}, "rows": results})
    print(f"\nfigures: {args.json}")


if __name__ == "__main__":
    main()
