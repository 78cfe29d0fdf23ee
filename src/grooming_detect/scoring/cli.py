"""``grooming-detect-score``: score new chat data with a trained model, from the command line.

Files (PAN-2012 XML or a chat log) give author and conversation score CSVs
(`grooming_detect.scoring.batch`); ``--stream`` gives one JSON line per message
(`grooming_detect.scoring.stream`). ``--engine spark`` runs either on Apache Spark
(`grooming_detect.scoring.spark`, imported only then): chat logs (CSV, JSONL, Parquet; files,
folders or any URI Spark reads) to author and conversation score Parquet folders, and with
``--stream`` a folder of arriving JSONL files to JSON-lines records, with the same numbers.

The model is a local model folder written by the train stage
(``outputs/<data>/<model>/latest/model``, or ``runs/<run id>/model`` beside it)
or an MLflow model URI (``runs:/<run id>/model``, ``models:/m-…``); either carries its
calibrator and threshold.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from grooming_detect import progress
from grooming_detect.errors import tracking_errors
from grooming_detect.io import unwritable_reason

if TYPE_CHECKING:
    from grooming_detect.scoring.stream import RiskStream

log = logging.getLogger(__name__)


def _refusals() -> tuple[type[Exception], ...]:
    """What the command reports in one line, exit status 2: a missing file, a wrong value, and
    MLflow's errors (an MLflow model URI) once MLflow is loaded. Called by the ``except`` clause
    when an error reaches it, so a model folder is scored without importing MLflow."""
    return (FileNotFoundError, ValueError, *tracking_errors())


def _count(value: str) -> int:
    """A non-negative integer command-line value."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value}: expected 0 or a positive integer")
    return number


def _parser() -> argparse.ArgumentParser:
    """The command line of ``grooming-detect-score``."""
    parser = argparse.ArgumentParser(
        prog="grooming-detect-score", description="Score new chat data with a trained model."
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
        help="folder for the score CSVs (required), or with --stream for stream.jsonl "
        "(default: standard output); with --engine spark, a path or URI for the Parquet "
        "folders (or the stream's records and checkpoint)",
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
    spark = parser.add_argument_group(
        "Apache Spark (--engine spark; needs the spark extra and Java 17, docs/spark.md)"
    )
    spark.add_argument(
        "--engine",
        choices=["local", "spark"],
        default="local",
        help="local: this process (default); spark: a Spark job with the same numbers",
    )
    spark.add_argument(
        "--spark-master",
        help="Spark master (e.g. local[2]); default: what spark-submit or the cluster sets",
    )
    spark.add_argument(
        "--input-format",
        choices=["csv", "jsonl", "parquet"],
        help="format of INPUT when its name does not say (a folder)",
    )
    spark.add_argument(
        "--available-now",
        action="store_true",
        help="with --stream: score the files there now, then stop (default: run until stopped)",
    )
    spark.add_argument(
        "--idle-timeout",
        type=float,
        help="with --stream: seconds after which an idle conversation is closed, as --max-open "
        "closes one (default: never)",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.engine == "spark":
        return _spark_main(parser, args)
    args.out = None if args.out is None else Path(args.out)
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
    if not args.input.exists():
        # Before the model is loaded (seconds): the file named on the command line is not there.
        print(
            f"error: {args.input}: input file not found (expected a chat log, CSV or JSONL, or "
            "a PAN-2012 XML file)",
            file=sys.stderr,
        )
        return 2
    # The scorer (pandas, scikit-learn) is imported once the command line is accepted: --help
    # and a wrong option are answered without it.
    from grooming_detect.scoring.batch import score_file

    try:
        author_path, conversation_path = score_file(
            args.model, args.input, args.out, args.batch_conversations, quantize=args.quantize
        )
    except _refusals() as error:
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


def _spark_main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``--engine spark``: the batch or streaming Spark job (`grooming_detect.scoring.spark`)."""
    if args.out is None:
        parser.error("--out is required with --engine spark (a path or URI for the results)")
    if args.stream and args.input == "-":
        parser.error("--engine spark --stream reads a folder of JSONL files, not standard input")
    if args.quantize is not None:
        parser.error("--quantize applies to --engine local (transformer models on a CPU)")
    out = args.out.rstrip("/")
    if "://" not in out:
        unwritable = unwritable_reason(out)
        if unwritable:
            print(f"error: --out {args.out}: {unwritable}", file=sys.stderr)
            return 2
    from grooming_detect.scoring import spark as spark_engine

    session, started = None, False
    try:
        # A session already running (a notebook's) is used, and left running.
        started = spark_engine.active_session() is None
        session = spark_engine.spark_session(args.spark_master, "grooming-detect-score")
        if started:
            session.sparkContext.setLogLevel("WARN")
        if args.stream:
            spark_engine.run_stream(
                session,
                args.input,
                args.model,
                f"{out}/records",
                f"{out}/checkpoint",
                threshold=args.threshold,
                patience=args.patience,
                idle_timeout_s=args.idle_timeout,
                available_now=args.available_now,
            )
            print(f"records: {out}/records\ncheckpoint: {out}/checkpoint")
            return 0
        spark_engine.score_path(session, args.input, args.model, out, args.input_format)
    except _refusals() as error:  # MissingExtraError (no pyspark) is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if session is not None and started:
            session.stop()
    print(
        f"author scores:       {out}/author_scores\nconversation scores: {out}/conversation_scores"
    )
    return 0


def _risk_stream(args: argparse.Namespace) -> RiskStream:
    """The stream scorer of ``--model`` with the warning policy of ``--threshold`` and
    ``--patience``."""
    from grooming_detect.scoring.messages import feature_settings, load_scoring_model, set_quantize
    from grooming_detect.scoring.stream import RiskStream, warning_policy

    model, meta = load_scoring_model(args.model)
    if args.quantize is not None:
        set_quantize(model, args.quantize, args.model)
    lexicons, separator = feature_settings(meta, None, None)
    threshold, patience = warning_policy(args.threshold, args.patience, meta, args.model)
    # One JSON line per message is the progress: no bars or progress lines besides it.
    progress.configure(enabled=False)
    return RiskStream(
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


def _stream_main(args: argparse.Namespace) -> int:
    """``--stream``: JSON lines to standard output, or to ``<out>/stream.jsonl`` (atomic)."""
    from grooming_detect.scoring.stream import stream_file, stream_to_folder

    if args.out is not None:
        unwritable = unwritable_reason(args.out)
        if unwritable:
            print(f"error: --out {args.out}: {unwritable}", file=sys.stderr)
            return 2
    try:
        risk = _risk_stream(args)
        if args.out is None:
            counts = stream_file(risk, args.input, sys.stdout)
        else:
            counts = stream_to_folder(risk, args.input, args.out)
    except _refusals() as error:
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
        risk.threshold,
        risk.patience,
        counts["warnings"],
        counts["closed"],
        counts["reopened"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
