"""The on-device export on real chat text: size, milliseconds per message and per author
document on one CPU core, and the largest score difference from Python (a script, not a test;
``make bench-onnx``).

Loads the default model (``outputs/synthetic/tfidf_logreg/latest/model``, trained by ``make
run`` on the default corpus; `--model` for another folder), exports it twice (float tables, int8
tables) and scores real ``chitchat-dataset`` text with ONNX Runtime on one thread
(``intra_op_num_threads=1``, ``inter_op_num_threads=1``), one call per text, as an app scores
the document it holds:

* messages: each of `--messages` real messages alone, as a one-message author document;
* author documents: each speaker's messages of a conversation joined by the model's separator,
  `--documents` of them.

Every text is also scored by the package (``predict_proba`` and the calibrator) and the largest
absolute difference is printed for both exports.

Usage: ``python scripts/bench_onnx.py [--model DIR] [--messages 2000] [--documents 500]
[--json PATH]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from grooming_detect.config import project_root
from grooming_detect.data import chitchat
from grooming_detect.io import write_json
from grooming_detect.models.persistence import load_model
from grooming_detect.scoring.messages import feature_settings
from grooming_detect.scoring.onnx_export import (
    FLOAT_TOLERANCE,
    INT8_TOLERANCE,
    export,
    onnx_scores,
    python_scores,
    session,
)


def real_texts(n_messages: int, n_documents: int, separator: str) -> tuple[list, list]:
    """Real chat messages, and author documents (a speaker's messages of one conversation)."""
    conversations = chitchat.load_conversations()
    messages = [text for host in conversations for text in host.texts if text][:n_messages]
    documents = []
    for host in conversations:
        by_speaker: dict[int, list[str]] = {}
        for speaker, text in zip(host.speakers, host.texts, strict=True):
            if text:
                by_speaker.setdefault(speaker, []).append(text)
        documents += [separator.join(texts) for texts in by_speaker.values()]
        if len(documents) >= n_documents:
            break
    return messages, documents[:n_documents]


def ms_per_call(scorer: object, texts: list[str]) -> tuple[float, np.ndarray]:
    """Milliseconds per text scored one call each (after one warm-up call), and the scores."""
    onnx_scores(scorer, texts[:1])
    started = time.perf_counter()
    scores = np.array([onnx_scores(scorer, [text])[0] for text in texts])
    return (time.perf_counter() - started) * 1000 / max(len(texts), 1), scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    folder = args.model or project_root() / "outputs/synthetic/tfidf_logreg/latest/model"
    if not folder.is_dir():
        sys.exit(f"{folder}: no model; run `make run` first (or pass --model)")
    model, meta = load_model(folder)
    _, separator = feature_settings(meta, None, None)
    messages, documents = real_texts(args.messages, args.documents, separator)
    result: dict[str, object] = {
        "model": str(folder),
        "model_name": meta.get("model_name"),
        "calibration": (meta.get("calibration") or {}).get("method", "none"),
        "messages": len(messages),
        "mean_message_chars": round(float(np.mean([len(m) for m in messages])), 1),
        "documents": len(documents),
        "mean_document_chars": round(float(np.mean([len(d) for d in documents])), 1),
        "threads": 1,
    }
    started = time.perf_counter()
    expected_messages = python_scores(model, meta, messages)
    expected_documents = python_scores(model, meta, documents)
    python_s = time.perf_counter() - started
    result["python_batch_ms_per_text"] = round(
        python_s * 1000 / (len(messages) + len(documents)), 3
    )
    with tempfile.TemporaryDirectory() as tmp:
        for label, int8 in (("float", False), ("int8", True)):
            report = export(model, meta, Path(tmp) / f"{label}.onnx", int8=int8)
            scorer = session(report.path, threads=1)
            message_ms, message_scores = ms_per_call(scorer, messages)
            document_ms, document_scores = ms_per_call(scorer, documents)
            difference = max(
                float(np.max(np.abs(message_scores - expected_messages), initial=0.0)),
                float(np.max(np.abs(document_scores - expected_documents), initial=0.0)),
            )
            result[label] = {
                "size_mb": round(report.size_mb, 2),
                "ms_per_message": round(message_ms, 3),
                "ms_per_document": round(document_ms, 3),
                "max_abs_difference": float(f"{difference:.3g}"),
                "tolerance": FLOAT_TOLERANCE if not int8 else INT8_TOLERANCE,
                "within_tolerance": difference <= (INT8_TOLERANCE if int8 else FLOAT_TOLERANCE),
                "max_abs_difference_on_probes": float(f"{report.max_abs_difference:.3g}"),
            }
    for key, value in result.items():
        if isinstance(value, dict):
            for inner, number in value.items():
                print(f"{key + '.' + inner:36s} {number}")
        else:
            print(f"{key:36s} {value}")
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
