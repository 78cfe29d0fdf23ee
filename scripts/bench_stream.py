"""Throughput of ``grooming-detect-score --stream`` on real chat text (a script, not a test;
``make bench-stream``).

Builds a live-looking stream from the real ``chitchat-dataset`` conversations: `--open`
conversations at a time, their messages interleaved round-robin, written as a JSONL chat log.
Scores it with the default model (``outputs/synthetic/tfidf_logreg/latest/model``, trained on the
default real-text corpus; `--model` for another) three ways, side by side:

* the streaming scorer in-process (messages/s once the log is read, peak RSS);
* the whole command, ``grooming-detect-score LOG --stream --out DIR`` (wall time including start,
  model load, reading and checking the log, and writing one JSON line per message);
* a naive reference on the first `--naive` messages: after each message, rebuild each author's
  document of the conversation so far and call the pipeline's ``predict_proba``. Its scores are
  compared with the stream's (largest difference printed).

Usage: ``python scripts/bench_stream.py [--conversations 7168] [--open 500] [--naive 3000]
[--model DIR] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
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
from grooming_detect.models.persistence import load_model
from grooming_detect.profiling import peak_rss_mib
from grooming_detect.scoring.messages import feature_settings
from grooming_detect.scoring.stream import RiskStream, file_messages

BIN = Path(sys.executable).parent


def write_stream(path: Path, n_conversations: int, n_open: int) -> int:
    """Interleave real conversations, `n_open` at a time, into a JSONL log; return messages."""
    hosts = chitchat.load_conversations()[:n_conversations]
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, len(hosts), n_open):
            group = hosts[start : start + n_open]
            longest = max(len(h) for h in group)
            for position in range(longest):
                for host in group:
                    if position < len(host):
                        record = {
                            "conversation_id": f"chitchat-{host.source_id}",
                            "author": f"{host.source_id}-s{host.speakers[position]}",
                            "text": host.texts[position],
                        }
                        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                        count += 1
    return count


def naive_scores(model, messages: pd.DataFrame, separator: str) -> tuple[np.ndarray, float]:
    """After each message: every author's document of its conversation so far, scored again."""
    started = time.perf_counter()
    history: dict[str, list[tuple[str, str]]] = {}
    scores = []
    for cid, author, text in zip(
        messages["conversation_id"], messages["author"], messages["text"], strict=True
    ):
        history.setdefault(cid, []).append((author, text))
        documents: dict[str, list[str]] = {}
        for who, said in history[cid]:
            documents.setdefault(who, [])
            if said:
                documents[who].append(said)
        frame = pd.DataFrame({"text": [separator.join(parts) for parts in documents.values()]})
        scores.append(float(model.predict_proba(frame)[:, 1].max()))
    return np.array(scores), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=7_168)
    parser.add_argument("--open", type=int, default=500)
    parser.add_argument("--naive", type=int, default=3_000)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    folder = args.model or project_root() / "outputs/synthetic/tfidf_logreg/latest/model"
    if not folder.is_dir():
        sys.exit(f"{folder}: no model; run `make run` first (or pass --model)")
    model, meta = load_model(folder)
    lexicons, separator = feature_settings(meta, None, None)
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "stream.jsonl"
        n = write_stream(log_path, args.conversations, args.open)
        started = time.perf_counter()
        messages = list(file_messages(log_path))
        read_s = time.perf_counter() - started
        stream = RiskStream(model, meta, lexicons, separator, float(meta["threshold"]))
        # As a consumer does: each record handled and dropped, only the scores compared kept.
        head_scores, warned = [], 0
        started = time.perf_counter()
        for record in stream.run(messages, batch=2_000):
            warned += record["new_warning"]
            if len(head_scores) < args.naive:
                head_scores.append(record["score"])
        stream_s = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run(
            [
                str(BIN / "grooming-detect-score"),
                str(log_path),
                "--model",
                str(folder),
                "--stream",
                "--out",
                str(Path(tmp) / "out"),
            ],
            check=True,
            capture_output=True,
        )
        command_s = time.perf_counter() - started
    frame = pd.DataFrame([m.__dict__ for m in messages[: args.naive]])
    calibrated = stream.calibrator.transform
    naive, naive_s = naive_scores(model, frame, separator)
    stream_scores = np.array(head_scores)
    difference = float(np.max(np.abs(calibrated(naive) - stream_scores))) if len(frame) else 0.0
    result = {
        "messages": n,
        "conversations": min(args.conversations, len(chitchat.load_conversations())),
        "open_at_once": args.open,
        "method": stream.method,
        "read_and_check_s": round(read_s, 2),
        "stream_s": round(stream_s, 2),
        "stream_messages_per_s": round(n / stream_s),
        "command_s": round(command_s, 2),
        "command_messages_per_s": round(n / command_s),
        "naive_messages": len(frame),
        "naive_messages_per_s": round(len(frame) / naive_s, 1),
        "speedup_vs_naive": round((n / stream_s) / (len(frame) / naive_s), 1),
        "largest_score_difference_vs_naive": difference,
        "warned_conversations": warned,
        "peak_rss_mib": round(peak_rss_mib()),
    }
    for key, value in result.items():
        print(f"{key:36s} {value}")
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
