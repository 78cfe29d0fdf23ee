"""Models side by side on one corpus and its splits: quality, training time, peak memory and
scoring speed (a script; ``make bench-models``).

Runs ``data,features`` once, then ``train,evaluate`` for each model in a fresh process (so each
peak-memory figure is that model's own: reading the views, fitting, calibrating, evaluating),
and prints one table: test author precision, recall, F0.5 with its bootstrap 95 % interval,
PR-AUC, ECE, train seconds (the train stage's whole process: start-up, reading the views,
cross-fitting, the refit, calibration and threshold, saving and logging; for the embedding
models, embedding the training messages too unless their vectors are cached:
`--no-vector-cache` embeds every text afresh), refit seconds (the final fit alone), wall
seconds of train+evaluate, peak resident memory after training, and scoring messages/s: the
saved model scoring the first `--score-messages` messages of the test split (whole
conversations) in this process with `grooming_detect.scoring.messages.score_messages`, model
loading apart, with no vector cached (an embedding model embeds each new text, as it would on
new chat).

Default models: ``tfidf_logreg``, ``two_stage``, ``embedding_logreg`` and ``sentinel`` (the
comparison of issue 35); any others with ``--models``. Usage: ``python scripts/bench_models.py
[--scale pan12|tiny] [--models a,b] [--no-vector-cache] [--json PATH]``.
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

MODELS = ("tfidf_logreg", "two_stage", "embedding_logreg", "sentinel")
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


def _scoring_rate(model_dir: Path, messages_path: Path, n_messages: int) -> float:
    """Messages/s of the saved model scoring the first `n_messages` test-split messages (whole
    conversations), with no vector cached; model loading is not timed."""
    import pandas as pd

    from grooming_detect.models import embeddings
    from grooming_detect.models.persistence import load_model
    from grooming_detect.scoring.messages import score_messages

    messages = pd.read_parquet(messages_path)
    messages = messages[messages["split"] == "test"]
    sizes = messages.groupby("conversation_id", sort=False).size()
    kept = sizes.index[(sizes.cumsum() - sizes) < n_messages]
    sample = messages[messages["conversation_id"].isin(kept)].assign(split="score")
    model, meta = load_model(model_dir)
    # No vector cached: on the model, or on whichever pipeline step embeds.
    if hasattr(model, "cache_dir"):
        model.set_params(cache_dir=None)
    for name, step in getattr(model, "named_steps", {}).items():
        if hasattr(step, "cache_dir"):
            model.set_params(**{f"{name}__cache_dir": None})
    embeddings.clear_memory()
    separator = meta["features"]["message_separator"]
    started = time.perf_counter()
    score_messages(model, meta, sample, meta["features"].get("lexicons", {}), separator)
    return len(sample) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default=None, help="a conf/scale option (default: none)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--score-messages", type=int, default=2000)
    parser.add_argument(
        "--no-vector-cache",
        action="store_true",
        help="embedding models embed every text afresh (model.encoder.cache_dir=null)",
    )
    parser.add_argument("--json", type=Path, default=Path("docs/benchmarks/data/models.json"))
    args = parser.parse_args()
    common = [
        "tracking.experiment_name=grooming-detect-bench",
        "evaluate.bootstrap.n_resamples=200",
        "progress=false",
    ]
    if args.scale:
        common.append(f"scale={args.scale}")
    dataset = {"pan12": "synthetic-pan12", "tiny": "synthetic-tiny"}.get(args.scale, "synthetic")
    data_seconds = _run([*common, "stages=[data,features]", "model=tfidf_logreg"])
    print(f"data + features: {data_seconds:.0f} s (includes generation on a first run)")
    processed = project_root() / "data" / "processed" / dataset
    messages_path = processed / (processed / "LATEST").read_text().strip() / "messages.parquet"
    rows = []
    header = (
        f"{'model':<18}{'P':>7}{'R':>7}{'F0.5 [95% CI]':>22}{'PR-AUC':>8}{'ECE':>7}"
        f"{'train s':>8}{'refit s':>8}{'wall s':>8}{'peak MiB':>9}{'score msg/s':>12}"
    )
    print(header)
    for model in args.models.split(","):
        overrides = [*common, f"model={model}"]
        if args.no_vector_cache and model in ("embedding_logreg", "sentinel"):
            overrides.append("model.encoder.cache_dir=null")
        train_wall = _run([*overrides, "stages=[train]"])
        wall = train_wall + _run([*overrides, "stages=[evaluate]"])
        run_dir = project_root() / "outputs" / dataset / model
        evaluation = latest_dir(run_dir, "evaluation") / "evaluation.json"
        metrics = json.loads(evaluation.read_text())["metrics"]
        model_dir = latest_dir(run_dir, "model")
        meta = json.loads((model_dir / "model.json").read_text())
        names = ("precision", "recall", "f0_5", "f0_5_ci_low", "f0_5_ci_high", "pr_auc", "ece")
        row = {
            "model": model,
            **{f"test/author/{name}": metrics[f"test/author/{name}"] for name in names},
            "test/author/n_positive": metrics["test/author/n_positive"],
            "fit_seconds": meta["fit_seconds"],
            "train_stage_wall_seconds": train_wall,
            "train_evaluate_wall_seconds": wall,
            "peak_rss_mib": meta["peak_rss_mib_after_fit"],
            "scoring_messages_per_second": _scoring_rate(
                model_dir, messages_path, args.score_messages
            ),
        }
        rows.append(row)
        m = {name: row[f"test/author/{name}"] for name in names}
        interval = f"{m['f0_5']:.3f} [{m['f0_5_ci_low']:.3f}, {m['f0_5_ci_high']:.3f}]"
        print(
            f"{model:<18}{m['precision']:>7.3f}{m['recall']:>7.3f}{interval:>22}"
            f"{m['pr_auc']:>8.3f}{m['ece']:>7.3f}{train_wall:>8.1f}{row['fit_seconds']:>8.1f}"
            f"{wall:>8.1f}"
            f"{row['peak_rss_mib']:>9.0f}{row['scoring_messages_per_second']:>12.0f}",
            flush=True,
        )
    command = "make bench-models" + (f' ARGS="{" ".join(sys.argv[1:])}"' if sys.argv[1:] else "")
    write_json(
        args.json,
        {
            # The fields the documentation's tables read (scripts/docs_hooks.py).
            "source": (
                f"{command} (scripts/bench_models.py): corpus {args.scale or 'default'}, "
                f"{'no vector cached' if args.no_vector_cache else 'vectors from the cache'} "
                f"during training, scoring {args.score_messages:,} test messages uncached"
            ),
            "command": command,
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{os.cpu_count()} CPU cores",
            "scale": args.scale or "default",
            "vector_cache": not args.no_vector_cache,
            "score_messages": args.score_messages,
            "data_features_seconds": data_seconds,
            "rows": rows,
        },
    )
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
