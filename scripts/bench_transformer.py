"""Transformer training and inference throughput and peak memory (a script, not a test).

Builds the tiny synthetic corpus's author-in-conversation rows (the model's real input), then
fine-tunes the default model (packaged all-MiniLM-L6-v2, or --model) at the default sequence
length for a fixed number of steps and scores rows, printing samples/s and tokens/s for each,
the device, the precision and the peak resident memory (and peak GPU memory on CUDA).

Usage: ``python scripts/bench_transformer.py [--model PATH] [--max-length 128] [--steps 30]``.

``--rows FILE`` reads ready author-in-conversation rows (the features stage's
``author_conversation_texts.parquet``) instead of building the tiny corpus, so the script runs on
a machine that has torch and transformers but not the whole pipeline (a lent GPU machine);
``--bf16 true|false`` forces the precision that ``auto`` would choose.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from grooming_detect.io import write_json
from grooming_detect.models.transformer import TransformerClassifier
from grooming_detect.models.units import INPUTS, features_of
from grooming_detect.profiling import peak_rss_mib
from grooming_detect.stage import dataset_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder or hub id (default: packaged)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--score-rows", type=int, default=512)
    parser.add_argument("--rows", type=Path, default=None, help="ready rows (parquet)")
    parser.add_argument("--bf16", choices=("auto", "true", "false"), default="auto")
    parser.add_argument("--json", type=Path, default=Path("bench-results/transformer.json"))
    args = parser.parse_args()
    import torch

    view = pd.read_parquet(args.rows) if args.rows else tiny_corpus_rows()
    kind = INPUTS["author_conversation"]
    rows = features_of(view, kind)
    labels = view["is_predator"].to_numpy(dtype=bool)
    model = TransformerClassifier(
        name_or_path=args.model,
        max_length=args.max_length,
        stride=args.max_length // 4,
        batch_size=args.batch_size,
        max_steps=args.steps,
        seed=0,
        bf16=args.bf16 if args.bf16 == "auto" else args.bf16 == "true",
    )
    started = time.perf_counter()
    model.fit(rows, labels)
    train_seconds = time.perf_counter() - started
    samples = args.steps * args.batch_size
    tokens_per_window = model.train_tokens_ / model.train_windows_
    score_rows = rows.head(args.score_rows)
    started = time.perf_counter()
    model.predict_proba(score_rows)
    score_seconds = time.perf_counter() - started
    windows, _ = model._windows(model._texts(score_rows))
    score_tokens = sum(len(ids) for ids in windows["input_ids"])
    device = model._device()
    result = {
        "train_rows": len(rows),
        "model": args.model or "packaged all-MiniLM-L6-v2",
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "precision": "bf16" if model._use_bf16() else "fp32",
        "max_length": args.max_length,
        "train_samples_per_second": samples / train_seconds,
        "train_tokens_per_second": samples * tokens_per_window / train_seconds,
        "score_rows_per_second": len(score_rows) / score_seconds,
        "score_windows_per_second": len(windows["input_ids"]) / score_seconds,
        "score_tokens_per_second": score_tokens / score_seconds,
        "peak_rss_mib": peak_rss_mib(),
        "peak_gpu_mib": (torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
    }
    for key, value in result.items():
        shown = f"{value:,.1f}" if isinstance(value, float) else value
        print(f"{key:<28}{shown}")
    write_json(args.json, result)


def tiny_corpus_rows() -> pd.DataFrame:
    """The tiny synthetic corpus's author-in-conversation rows, built in a temporary folder."""
    from hydra import compose, initialize_config_dir

    from grooming_detect import pipeline
    from grooming_detect.config import config_dir

    with tempfile.TemporaryDirectory() as root:
        overrides = [
            f"paths.root={root}",
            f"tracking.uri=sqlite:///{root}/mlflow.db",
            "scale=tiny",
            "stages=[data,features]",
        ]
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        pipeline.run(cfg)
        return pd.read_parquet(dataset_dir(cfg) / "features" / "author_conversation_texts.parquet")


if __name__ == "__main__":
    main()
