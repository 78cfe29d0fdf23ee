"""``grooming-detect-score``: score new chat data with a trained model.

Reads a PAN-2012 XML file or a chat log (CSV/JSONL, labels not needed), builds the same views and
features as the pipeline, and writes per-author and per-conversation risk scores (calibrated
probabilities, and whether each reaches the model's tuned threshold) as CSV files.

The model is a local model folder written by the train stage
(``outputs/<data>/<model>/latest/model``, or ``runs/<run id>/model`` beside it)
or an MLflow model URI (``runs:/<run id>/model``, ``models:/m-…``); either carries its
calibrator and threshold.

Memory: PAN XML is streamed in batches of ``--batch-conversations`` conversations (default
20,000), so memory is bounded by one batch, whatever the file size. An author whose
conversations fall in several batches is scored per batch and keeps the highest score (for a
model that reads the author's whole history this is an approximation; set
``--batch-conversations 0`` to read everything at once and score exactly). Chat logs are read
whole, because their rows need not be grouped by conversation.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from grooming_detect import progress
from grooming_detect.io import atomic_path, read_json, unwritable_reason, write_csv, write_with
from grooming_detect.models.apply import (
    SPLIT,
    _message_batches,
    feature_settings,
    load_scoring_model,
    model_rows,
    read_messages,
    score_messages,
    set_quantize,
)
from grooming_detect.progress import track
from grooming_detect.tracking import TrackingError

log = logging.getLogger(__name__)

# The shared scoring code lives in `grooming_detect.models.apply`; importable from here as well.
__all__ = [
    "SPLIT",
    "feature_settings",
    "load_scoring_model",
    "main",
    "model_rows",
    "read_messages",
    "score_file",
    "score_messages",
    "set_quantize",
]


def score_file(
    model_location: str,
    path: Path,
    out_dir: Path,
    batch_conversations: int = 20_000,
    lexicons: dict[str, list[str]] | None = None,
    separator: str | None = None,
    quantize: str | None = None,
) -> tuple[Path, Path]:
    """Score `path` and write ``author_scores.csv`` and ``conversation_scores.csv``, with the
    feature settings the model was trained with unless `lexicons`/`separator` are given;
    `quantize` (``"int8"``) scores a transformer with int8 weights on a CPU."""
    model, meta = load_scoring_model(model_location)
    if quantize is not None:
        set_quantize(model, quantize, model_location)
    lexicons, separator = feature_settings(meta, lexicons, separator)
    threshold = float(meta["threshold"])
    author_parts, conversation_parts = [], []
    n_messages = 0
    batches = _message_batches(path, batch_conversations)
    for batch in track(batches, f"scoring {path.name}", unit="batch"):
        n_messages += len(batch)
        authors, conversations = score_messages(model, meta, batch, lexicons, separator)
        author_parts.append(authors)
        conversation_parts.append(conversations)
    authors = pd.concat(author_parts, ignore_index=True)
    if len(authors):
        authors = authors.groupby("author", as_index=False).agg(
            score=("score", "max"),
            n_messages=("n_messages", "sum"),
            n_conversations=("n_conversations", "sum"),
        )
        authors["flagged"] = authors["score"] >= threshold
        authors = authors.sort_values("score", ascending=False, ignore_index=True)
    conversations = pd.concat(conversation_parts, ignore_index=True)
    conversations["flagged"] = conversations["score"] >= threshold
    conversations = conversations.sort_values("score", ascending=False, ignore_index=True)
    log.info(
        "scored %d messages: %d authors (%d flagged), %d conversations (%d flagged) at "
        "threshold %.4f",
        n_messages,
        len(authors),
        int(authors["flagged"].sum()) if len(authors) else 0,
        len(conversations),
        int(conversations["flagged"].sum()),
        threshold,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    # Both files are written in full before either replaces the previous run's: a failed write
    # (a full disk) leaves the previous pair, never a new author file beside an old one.
    with tempfile.TemporaryDirectory(prefix=".scores-", dir=out_dir) as staging:
        staged = {
            name: write_csv(Path(staging) / name, frame)
            for name, frame in (
                ("author_scores.csv", authors),
                ("conversation_scores.csv", conversations),
            )
        }
        for name, path in staged.items():
            os.replace(path, out_dir / name)
    return out_dir / "author_scores.csv", out_dir / "conversation_scores.csv"


def _count(value: str) -> int:
    """A non-negative integer command-line value."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value}: expected 0 or a positive integer")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="grooming-detect-score", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "input",
        help="PAN-2012 XML, or chat log (.csv / .jsonl); with --stream, '-' reads JSON lines "
        "from standard input",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="model folder (outputs/<data>/<model>/latest/model) or MLflow model URI",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the score CSVs (required), or with --stream for stream.jsonl "
        "(default: standard output)",
    )
    parser.add_argument(
        "--batch-conversations",
        type=_count,
        default=20_000,
        help="PAN XML conversations per batch (0: all at once, exact)",
    )
    parser.add_argument(
        "--quantize",
        choices=["int8"],
        default=None,
        help="transformer models on a CPU: score with dynamic int8 weights (faster, slightly "
        "different scores; scripts/bench_compare.py measures both)",
    )
    stream = parser.add_argument_group(
        "streaming (--stream): one JSON line per message with the conversation's risk so far"
    )
    stream.add_argument("--stream", action="store_true", help="score message by message")
    stream.add_argument(
        "--threshold",
        help="warning threshold: a number, 'model' (the model's decision threshold, the "
        "default) or 'early' (the warning threshold and patience that experiment=early tuned "
        "for this model, read from the evaluation beside its folder)",
    )
    stream.add_argument(
        "--patience", type=int, help="consecutive scored steps at or above it (default 1)"
    )
    stream.add_argument(
        "--window", type=int, default=50, help="messages a non-linear model re-reads"
    )
    stream.add_argument(
        "--step", type=int, default=1, help="messages between a non-linear model's scores"
    )
    stream.add_argument("--max-open", type=int, default=100_000, help="conversations held at once")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.stream:
        return _stream_main(args)
    if args.out is None:
        parser.error("--out is required (a folder for the score CSVs)")
    args.input = Path(args.input)
    unwritable = unwritable_reason(args.out)
    if unwritable:
        # Checked before any scoring: a long run must not fail at its last step.
        print(f"error: --out {args.out}: {unwritable}", file=sys.stderr)
        return 2
    try:
        author_path, conversation_path = score_file(
            args.model, args.input, args.out, args.batch_conversations, quantize=args.quantize
        )
    except (FileNotFoundError, ValueError, TrackingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a folder that became unwritable while scoring
        print(
            f"error: --out {args.out}: {error.strerror or error}; the previous score files, if "
            "any, are unchanged",
            file=sys.stderr,
        )
        return 1
    print(f"author scores:       {author_path}\nconversation scores: {conversation_path}")
    return 0


def warning_policy(
    threshold: str | None, patience: int | None, meta: dict[str, Any], location: str
) -> tuple[float, int]:
    """The stream's warning threshold and patience from ``--threshold``/``--patience``."""
    if threshold in (None, "model"):
        return float(meta["threshold"]), 1 if patience is None else patience
    if threshold == "early":
        summary_path = Path(location).parent / "evaluation" / "evaluation.json"
        early = read_json(summary_path).get("early") if summary_path.is_file() else None
        if not early:
            raise ValueError(
                f"--threshold early: no early-detection evaluation at {summary_path}; evaluate "
                "this model with experiment=early (a local model folder), or give a number"
            )
        return float(early["threshold"]), int(early["patience"]) if patience is None else patience
    try:
        value = float(threshold)
    except ValueError:
        raise ValueError(
            f"--threshold {threshold!r}: expected a number, 'model' or 'early'"
        ) from None
    return value, 1 if patience is None else patience


PARTIAL_STREAM = "stream.partial.jsonl"


def _stream_to_folder(risk: Any, source: str, out: Path) -> dict[str, int]:
    """Stream into ``<out>/stream.jsonl``, complete or not at all. When the input turns bad
    midway, the records scored before the bad line are kept in ``stream.partial.jsonl`` (as
    standard output would have shown them), and the error says so."""
    from grooming_detect.streaming import stream_file

    out.mkdir(parents=True, exist_ok=True)
    (out / PARTIAL_STREAM).unlink(missing_ok=True)
    with atomic_path(out / "stream.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as handle:
        try:
            return stream_file(risk, source, handle)
        except ValueError as error:
            handle.flush()
            if tmp.stat().st_size == 0:  # nothing scored (a file is checked whole first)
                raise
            kept = _keep_partial(tmp, out / PARTIAL_STREAM)
            raise ValueError(
                f"{error}; the {kept:,} records scored before it are in "
                f"{out / PARTIAL_STREAM} (stream.jsonl is written only for a whole input)"
            ) from None


def _keep_partial(tmp: Path, target: Path) -> int:
    """Copy the records written so far to `target`; how many there are."""
    write_with(target, partial(shutil.copyfile, tmp))
    with open(tmp, "rb") as handle:
        return sum(1 for _ in handle)


def _stream_main(args: argparse.Namespace) -> int:
    """``--stream``: JSON lines to standard output, or to ``<out>/stream.jsonl`` (atomic)."""
    from grooming_detect.streaming import RiskStream, stream_file

    if args.out is not None:
        unwritable = unwritable_reason(args.out)
        if unwritable:
            print(f"error: --out {args.out}: {unwritable}", file=sys.stderr)
            return 2
    try:
        model, meta = load_scoring_model(args.model)
        if args.quantize is not None:
            set_quantize(model, args.quantize, args.model)
        lexicons, separator = feature_settings(meta, None, None)
        threshold, patience = warning_policy(args.threshold, args.patience, meta, args.model)
        # One JSON line per message is the progress: no bars or progress lines besides it.
        progress.configure(enabled=False)
        risk = RiskStream(
            model,
            meta,
            lexicons,
            separator,
            threshold,
            window=args.window,
            step=args.step,
            patience=patience,
            max_open=args.max_open,
        )
        if args.out is None:
            counts = stream_file(risk, args.input, sys.stdout)
        else:
            counts = _stream_to_folder(risk, args.input, args.out)
    except (FileNotFoundError, ValueError, TrackingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other command-line filters do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as error:  # a full disk while writing stream.jsonl
        where = f"--out {args.out}" if args.out is not None else "standard output"
        print(f"error: {where}: {error.strerror or error}", file=sys.stderr)
        return 1
    log.info(
        "streamed %d messages (%s scores, threshold %.4f, patience %d): %d warnings raised, "
        "%d conversations closed to stay within --max-open (%d of them reopened)",
        counts["messages"],
        risk.method,
        threshold,
        patience,
        counts["warnings"],
        counts["closed"],
        counts["reopened"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
