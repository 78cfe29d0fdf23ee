"""Benchmark the PAN-2012 reader on the synthetic corpus at PAN scale (a script, not a test).

Generates (or reuses) the synthetic corpus at ``scale=pan12`` (training: 66,927 conversations,
903,607 messages; test: 155,128 conversations, 2,058,781 messages), then, each in a fresh process
so peak memory belongs to that step alone:

* streaming parse of each XML file: messages/s and peak resident memory;
* the whole data stage (parse, grouped split, canonical tables): wall time and peak memory.

Usage: ``python scripts/bench_ingest.py [--scale pan12|tiny] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from grooming_detect.config import config_dir
from grooming_detect.data import pan12
from grooming_detect.data.stage import corpus_root
from grooming_detect.io import write_json
from grooming_detect.profiling import peak_rss_mib


def _parse(path: str, queue: mp.Queue) -> None:
    started = time.perf_counter()
    columns = pan12.parse_messages(path, show_progress=False)
    seconds = time.perf_counter() - started
    queue.put(
        {
            "messages": len(columns),
            "conversations": columns.n_conversations,
            "seconds": seconds,
            "peak_rss_mib": peak_rss_mib(),
        }
    )


def _tables(root: str, queue: mp.Queue) -> None:
    started = time.perf_counter()
    tables, _ = pan12.load_corpus(pan12.find_files(root), 0.2, seed=42, show_progress=False)
    seconds = time.perf_counter() - started
    queue.put(
        {
            "messages": len(tables.messages),
            "seconds": seconds,
            "peak_rss_mib": peak_rss_mib(),
        }
    )


def _in_fresh_process(target, *args: str) -> dict:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="pan12", help="a conf/scale option (default pan12)")
    parser.add_argument("--json", type=Path, default=Path("bench-results/ingest.json"))
    args = parser.parse_args()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"scale={args.scale}"])
    started = time.perf_counter()
    root = corpus_root(cfg)
    print(f"corpus: {root} (ready in {time.perf_counter() - started:.1f} s)")
    files = pan12.find_files(root)
    results = {"scale": args.scale, "parse": {}, "data_stage": {}}
    print(f"{'step':<28}{'messages':>12}{'seconds':>10}{'msg/s':>12}{'peak MiB':>10}")
    for name, path in (("parse training XML", files.train_xml), ("parse test XML", files.test_xml)):
        row = _in_fresh_process(_parse, str(path))
        results["parse"][name] = row
        print(
            f"{name:<28}{row['messages']:>12,}{row['seconds']:>10.1f}"
            f"{row['messages'] / row['seconds']:>12,.0f}{row['peak_rss_mib']:>10.0f}"
        )
    row = _in_fresh_process(_tables, str(root))
    results["data_stage"] = row
    print(
        f"{'canonical tables (all)':<28}{row['messages']:>12,}{row['seconds']:>10.1f}"
        f"{row['messages'] / row['seconds']:>12,.0f}{row['peak_rss_mib']:>10.0f}"
    )
    write_json(args.json, results)
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
