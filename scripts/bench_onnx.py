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

Then the same for ``embedding_logreg`` when a model is there (the last trained under
``outputs/synthetic/embedding_logreg``, or `--embedding-model`; `--embedding-model none` skips
it): its model graph and tokenizer graph (float and int8 encoder), each message scored alone as
a one-message unit (tokenizer and model, one call each) and each author document as one unit
(its messages in one call), `--embedding-messages` and `--embedding-documents` of them; the
sizes of both files; the package's scores computed in memory (its vector cache untouched).

Usage: ``python scripts/bench_onnx.py [--model DIR] [--messages 2000] [--documents 500]
[--json PATH] [--embedding-model DIR|none] [--embedding-messages 500]
[--embedding-documents 100] [--embedding-json PATH]``.
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


def embedding_folder(argument: str | None) -> Path | None:
    """The embedding_logreg model folder to measure: `argument`, or the last one trained."""
    if argument == "none":
        return None
    if argument is not None:
        return Path(argument)
    from grooming_detect.stage import latest_dir

    try:
        return latest_dir(project_root() / "outputs/synthetic/embedding_logreg", "model")
    except FileNotFoundError:
        return None


def one_unit(files: tuple[object, object], document: str, separator: str) -> float:
    """One unit's score through the tokenizer and model graphs (one call each)."""
    from grooming_detect.scoring.onnx_embedding import onnx_unit_scores

    tokenizer, scorer = files
    return float(onnx_unit_scores(tokenizer, scorer, [document], separator)[0][0])


def bench_embedding(
    folder: Path, n_messages: int, n_documents: int
) -> tuple[list[dict[str, object]], dict[str, object]]:
    """The embedding export's sizes, milliseconds per message and per unit on one thread, and
    largest difference from Python, float and int8."""
    from grooming_detect.models.embeddings import split_units
    from grooming_detect.scoring.onnx_embedding import (
        EMBEDDING_FLOAT_TOLERANCE,
        EMBEDDING_INT8_TOLERANCE,
        export_embedding,
        memory_only,
        tokenizer_session,
    )

    model, meta = load_model(folder)
    _, separator = feature_settings(meta, None, None)
    messages, documents = real_texts(n_messages, n_documents, separator)
    checked = memory_only(model)
    started = time.perf_counter()
    expected_messages = python_scores(checked, meta, messages)
    expected_documents = python_scores(checked, meta, documents)
    python_s = time.perf_counter() - started
    n_document_messages = len(split_units(documents, separator)[0])
    result: dict[str, object] = {
        "model": str(folder),
        "model_name": meta.get("model_name"),
        "pooling": getattr(model, "pooling", None),
        "calibration": (meta.get("calibration") or {}).get("method", "none"),
        "messages": len(messages),
        "documents": len(documents),
        "document_messages": n_document_messages,
        "threads": 1,
        "python_batch_ms_per_message": round(
            python_s * 1000 / (len(messages) + n_document_messages), 3
        ),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, int8 in (("float", False), ("int8", True)):
            report = export_embedding(model, meta, Path(tmp) / f"{label}.onnx", int8=int8)
            tokenizer = tokenizer_session(report.tokenizer_path, threads=1)
            scorer = session(report.path, threads=1)

            files = (tokenizer, scorer)
            one_unit(files, messages[0], separator)
            started = time.perf_counter()
            message_scores = np.array([one_unit(files, m, separator) for m in messages])
            message_ms = (time.perf_counter() - started) * 1000 / max(len(messages), 1)
            started = time.perf_counter()
            document_scores = np.array([one_unit(files, d, separator) for d in documents])
            document_s = time.perf_counter() - started
            difference = max(
                float(np.max(np.abs(message_scores - expected_messages), initial=0.0)),
                float(np.max(np.abs(document_scores - expected_documents), initial=0.0)),
            )
            tolerance = EMBEDDING_INT8_TOLERANCE if int8 else EMBEDDING_FLOAT_TOLERANCE
            row = {
                "export": "--int8" if int8 else "float",
                "size_mb": round(report.size_mb, 2),
                "tokenizer_size_mb": round(report.tokenizer_size_mb, 2),
                "ms_per_message": round(message_ms, 3),
                "ms_per_document": round(document_s * 1000 / max(len(documents), 1), 3),
                "ms_per_document_message": round(
                    document_s * 1000 / max(n_document_messages, 1), 3
                ),
                "max_abs_difference": float(f"{difference:.3g}"),
                "tolerance": tolerance,
                "within_tolerance": difference <= tolerance,
                "max_abs_difference_on_probes": float(f"{report.max_abs_difference:.3g}"),
                "token_id_mismatches_on_probes": report.token_mismatches,
            }
            result[label] = row
            rows.append(row)
    return rows, result


def show(result: dict[str, object]) -> None:
    for key, value in result.items():
        if isinstance(value, dict):
            for inner, number in value.items():
                print(f"{key + '.' + inner:36s} {number}")
        else:
            print(f"{key:36s} {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--embedding-model", metavar="DIR|none")
    parser.add_argument("--embedding-messages", type=int, default=500)
    parser.add_argument("--embedding-documents", type=int, default=100)
    parser.add_argument("--embedding-json", type=Path)
    parser.add_argument("--skip-tfidf", action="store_true", help="measure the embedding only")
    args = parser.parse_args()
    if not args.skip_tfidf:
        bench_tfidf(args)
    embedding = embedding_folder(args.embedding_model)
    if embedding is None or not embedding.is_dir():
        print("embedding_logreg: no model (train one with model=embedding_logreg); skipped")
        return
    rows, run = bench_embedding(embedding, args.embedding_messages, args.embedding_documents)
    print("embedding_logreg:")
    show(run)
    if args.embedding_json:
        source = (
            f"make bench-onnx (scripts/bench_onnx.py --embedding-json), {run['model_name']} "
            f"({run['pooling']} pooling); {run['messages']} real chitchat messages alone and "
            f"{run['documents']} author documents ({run['document_messages']} messages); ONNX "
            "Runtime on one thread, one call per unit; 2 shared cores"
        )
        write_json(
            args.embedding_json,
            {
                "source": source,
                "command": "make bench-onnx",
                "date": time.strftime("%Y-%m-%d"),
                "machine": "2 CPU cores (shared)",
                "rows": rows,
                "run": run,
            },
        )


def bench_tfidf(args: argparse.Namespace) -> None:
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
    show(result)
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
