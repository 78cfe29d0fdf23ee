"""Scoring a large real-text chat log in one process and on Spark (a script, not a test;
``make bench-spark``).

Builds a chat log of `--messages` messages (default 2,000,000) from the real conversations of
the ``chitchat-dataset`` package (read at run time; nothing of it is copied into the repository),
repeated with new ids until the size is reached. Speaker 0 of each conversation is one person
across `--conversations-per-author` consecutive conversations (default 3), as people write in
several chats; the other speakers write in one. The log is written once as one JSONL file (the
single-process input) and as `--parts` JSONL files holding the same rows (Spark's input, read
one file per task), untimed. Then, each in a fresh process:

* single process: ``grooming-detect-score LOG --model M --out DIR`` (`batch.score_file`):
  messages/s of the whole command and the process's peak resident memory;
* Spark, ``--engine spark`` on `--master` (default ``local[2]``): the same scores as Parquet;
  messages/s of the job (session start reported apart), the JVM's peak resident memory (the
  driver, which is the executor in local mode) and the Python workers' (sampled from /proc
  every 0.2 s: each worker's peak, and the largest sum at one time, JVM included: the
  executor's footprint), and the model loads per worker;
* a naive Spark reference on the first `--naive-conversations` conversations: grouped by
  conversation, the model loaded inside every group, an author's score the highest over
  conversations; its messages/s against ours on the same sample, and how many authors it
  scores differently from the single-process scorer.

The two outputs are compared (largest score difference, flags that differ). Usage:
``python scripts/bench_spark.py [--messages 2000000] [--parts 4] [--master local[2]]
[--model DIR] [--json PATH]``. On a shared 2-core machine the whole run takes minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from grooming_detect.config import project_root
from grooming_detect.data import chitchat
from grooming_detect.io import write_json

BIN = Path(sys.executable).parent

SINGLE = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
from grooming_detect.scoring.batch import score_file
from grooming_detect.profiling import peak_rss_mib
imported = time.perf_counter()
score_file(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
done = time.perf_counter()
print(json.dumps({"seconds": done - started, "import_s": imported - started,
                  "peak_rss_mib": peak_rss_mib()}))
"""

#: The Spark side, in its own process: a session, the job, and a sampler of the memory of the
#: JVM and of its Python workers (descendants of the JVM).
SPARK = r"""
import json, os, sys, threading, time
from pathlib import Path
from grooming_detect.scoring import spark as engine
from grooming_detect.profiling import peak_rss_mib

log_dir, model, out, master, naive_dir = sys.argv[1:6]
started = time.perf_counter()
session = engine.spark_session(master, "bench-spark", {"spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false", "spark.driver.memory": "2g"})
session.sparkContext.setLogLevel("ERROR")
jvm_pid = int(session._jvm.ProcessHandle.current().pid())
session_s = time.perf_counter() - started

def kib(pid, field):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

def children(parents, of):
    return {pid for pid, parent in parents.items() if parent in of}

def python_workers(root):
    # The JVM's Python workers: the children of its Python daemon (its own child).
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return children(parents, children(parents, {root}))

peaks, stop = {"workers": {}, "sum_mib": 0.0}, threading.Event()
def sample():
    while not stop.is_set():
        workers = python_workers(jvm_pid)
        total = kib(jvm_pid, "VmRSS:")
        for pid in workers:
            rss = kib(pid, "VmRSS:")
            total += rss
            peaks["workers"][pid] = max(peaks["workers"].get(pid, 0), kib(pid, "VmHWM:"), rss)
        peaks["sum_mib"] = max(peaks["sum_mib"], total / 1024)
        stop.wait(0.2)
thread = threading.Thread(target=sample, daemon=True)
thread.start()

started = time.perf_counter()
scores = engine.score(engine.read_messages(session, log_dir, "jsonl"), model, checked=True)
counts = engine.write_scores(scores, out)
job_s = time.perf_counter() - started
stop.set()
thread.join()
jvm_peak_mib = kib(jvm_pid, "VmHWM:") / 1024
worker_peaks_mib = sorted(v / 1024 for v in peaks["workers"].values())

def loads(batches):
    for _ in batches:
        import pandas as pd
        yield pd.DataFrame({"pid": [os.getpid()], "loads": [sum(engine.LOADS.values())]})
worker_loads = (session.range(16, numPartitions=16)
                .mapInPandas(loads, "pid long, loads long").toPandas()
                .drop_duplicates("pid")["loads"].tolist())

# The naive reference and ours on a sample, at the same session.
from grooming_detect.scoring.messages import (SPLIT, feature_settings, load_scoring_model,
    score_messages)
def naive_group(frame):
    loaded, meta = load_scoring_model(model)  # in every group: what the cache avoids
    lexicons, separator = feature_settings(meta, None, None)
    authors, _ = score_messages(loaded, meta, frame.assign(split=SPLIT), lexicons, separator)
    return authors[["author", "score"]]
sample = engine.read_messages(session, naive_dir, "jsonl").cache()
n_sample = sample.count()
started = time.perf_counter()
naive = (sample.drop("source", "row").groupBy("conversation_id")
         .applyInPandas(naive_group, "author string, score double")
         .groupBy("author").max("score").toPandas())
naive_s = time.perf_counter() - started
started = time.perf_counter()
ours = engine.score(sample, model, checked=True)
ours_sample = ours.authors.toPandas()
ours.release()
ours_s = time.perf_counter() - started
merged = ours_sample.merge(naive.rename(columns={"max(score)": "naive"}), on="author")
print(json.dumps({
    "session_s": session_s, "job_s": job_s, "counts": counts, "grouping": scores.grouping,
    "jvm_peak_rss_mib": jvm_peak_mib, "worker_peak_rss_mib": worker_peaks_mib,
    "executor_peak_sum_mib": peaks["sum_mib"], "driver_python_peak_rss_mib": peak_rss_mib(),
    "model_loads_per_worker": worker_loads,
    "sample_messages": n_sample, "naive_s": naive_s, "ours_sample_s": ours_s,
    "naive_authors_differing": int((abs(merged["score"] - merged["naive"]) > 1e-12).sum()),
    "sample_authors": len(merged),
}))
session.stop()
"""


def build_log(
    n_messages: int,
    per_author: int,
    single: Path,
    parts: Path,
    n_parts: int,
    naive: Path,
    naive_conversations: int,
) -> dict[str, int]:
    """Write the log (see the module docstring); counts of what it holds."""
    hosts = chitchat.load_conversations()
    rows: dict[str, list] = {k: [] for k in ("conversation_id", "line", "author", "time", "text")}
    serial = 0
    while len(rows["text"]) < n_messages:
        for host in hosts:
            copy = serial // len(hosts)
            cid = f"chitchat-{host.source_id}-{copy}"
            person = f"u{serial // per_author}"
            for line, (speaker, minute, text) in enumerate(
                zip(host.speakers, host.minutes, host.texts, strict=True), start=1
            ):
                rows["conversation_id"].append(cid)
                rows["line"].append(line)
                rows["author"].append(person if speaker == 0 else f"{cid}-s{speaker}")
                rows["time"].append(f"{minute // 60:02d}:{minute % 60:02d}")
                rows["text"].append(text)
            serial += 1
            if len(rows["text"]) >= n_messages:
                break
    frame = pd.DataFrame(rows)
    frame.to_json(single, orient="records", lines=True, force_ascii=False)
    parts.mkdir()
    # Whole conversations per part (any split works; this keeps the parts alike in size).
    part_of = frame["conversation_id"].map(
        {cid: i % n_parts for i, cid in enumerate(frame["conversation_id"].unique())}
    )
    for number in range(n_parts):
        frame[part_of == number].to_json(
            parts / f"part-{number}.jsonl", orient="records", lines=True, force_ascii=False
        )
    naive.mkdir()
    first = frame["conversation_id"].unique()[:naive_conversations]
    frame[frame["conversation_id"].isin(first)].to_json(
        naive / "sample.jsonl", orient="records", lines=True, force_ascii=False
    )
    pairs = frame[["conversation_id", "author"]].drop_duplicates()
    histories = pairs.groupby("author")["conversation_id"].agg(lambda s: tuple(sorted(s)))
    groups = pairs.assign(history=pairs["author"].map(histories))[["history", "conversation_id"]]
    sizes = frame.groupby("conversation_id").size()
    grouped_rows = int(sizes.reindex(groups.drop_duplicates()["conversation_id"]).sum())
    return {
        "messages": len(frame),
        "conversations": int(frame["conversation_id"].nunique()),
        "authors": int(frame["author"].nunique()),
        "history_groups": int(histories.nunique()),
        # What a model that reads whole histories (behavioural features) would shuffle.
        "history_grouping_rows_per_message": round(grouped_rows / len(frame), 3),
        "bytes": single.stat().st_size,
    }


def run_json(args: list[str]) -> dict:
    completed = subprocess.run(args, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"{args[0]} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def compare(local: Path, spark: Path) -> dict[str, float]:
    """Largest score difference and differing flags, authors and conversations."""
    result = {}
    for name, key in (("author_scores", "author"), ("conversation_scores", "conversation_id")):
        one = pd.read_csv(local / f"{name}.csv", dtype={key: str}).set_index(key).sort_index()
        other = pd.read_parquet(spark / name).set_index(key).sort_index()
        if not one.index.equals(other.index):
            sys.exit(f"{name}: the two scorers scored different ids")
        result[f"{name}_largest_difference"] = float(
            np.abs(one["score"].to_numpy() - other["score"].to_numpy()).max()
        )
        result[f"{name}_flags_differing"] = int((one["flagged"] != other["flagged"]).sum())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2_000_000)
    parser.add_argument("--conversations-per-author", type=int, default=3)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--naive-conversations", type=int, default=1_000)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    source = (
        args.model or project_root() / "outputs/synthetic/tfidf_logreg/latest/model"
    ).resolve()
    if not source.is_dir():
        sys.exit(f"{source}: no model; run `make run` first (or pass --model)")
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        root = Path(tmp)
        # A copy: `latest` may move to another run while the benchmark runs.
        model = shutil.copytree(source, root / "model")
        started = time.perf_counter()
        shape = build_log(
            args.messages,
            args.conversations_per_author,
            root / "log.jsonl",
            root / "parts",
            args.parts,
            root / "sample",
            args.naive_conversations,
        )
        build_s = time.perf_counter() - started
        single = run_json(
            [
                str(BIN / "python"),
                "-c",
                SINGLE,
                str(model),
                str(root / "log.jsonl"),
                str(root / "single"),
            ]
        )
        spark = run_json(
            [
                str(BIN / "python"),
                "-c",
                SPARK,
                str(root / "parts"),
                str(model),
                str(root / "spark"),
                args.master,
                str(root / "sample"),
            ]
        )
        same = compare(root / "single", root / "spark")
    n = shape["messages"]
    result = {
        **shape,
        "build_log_s": round(build_s, 1),
        "single_process_s": round(single["seconds"], 1),
        "single_process_messages_per_s": round(n / single["seconds"]),
        "single_process_peak_rss_mib": round(single["peak_rss_mib"]),
        "spark_master": args.master,
        "spark_grouping": spark["grouping"],
        "spark_session_start_s": round(spark["session_s"], 1),
        "spark_job_s": round(spark["job_s"], 1),
        "spark_messages_per_s": round(n / spark["job_s"]),
        "spark_speedup_vs_single_process": round(single["seconds"] / spark["job_s"], 2),
        "spark_jvm_peak_rss_mib": round(spark["jvm_peak_rss_mib"]),
        "spark_python_worker_peak_rss_mib": [round(v) for v in spark["worker_peak_rss_mib"]],
        "spark_executor_peak_rss_mib_jvm_plus_workers": round(spark["executor_peak_sum_mib"]),
        "spark_model_loads_per_worker": spark["model_loads_per_worker"],
        "naive_sample_messages": spark["sample_messages"],
        "naive_messages_per_s": round(spark["sample_messages"] / spark["naive_s"]),
        "ours_on_sample_messages_per_s": round(spark["sample_messages"] / spark["ours_sample_s"]),
        "naive_authors_scored_differently": (
            f"{spark['naive_authors_differing']} of {spark['sample_authors']}"
        ),
        **same,
    }
    for key, value in result.items():
        print(f"{key:48s} {value}")
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
