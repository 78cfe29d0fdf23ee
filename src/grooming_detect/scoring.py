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
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException

from grooming_detect.data import chatlog, pan12
from grooming_detect.data.schema import build_tables
from grooming_detect.evaluation.calibration import ScoreCalibrator
from grooming_detect.features.stage import build_views
from grooming_detect.io import unwritable_reason, write_with
from grooming_detect.models.persistence import UntrustedModelError, load_model, load_skops
from grooming_detect.models.units import (
    INPUTS,
    UNITS,
    aggregate_scores,
    conversation_scores,
    features_of,
)
from grooming_detect.progress import track
from grooming_detect.serving import ARTIFACT

log = logging.getLogger(__name__)
SPLIT = "score"


def load_scoring_model(location: str) -> tuple[Any, dict[str, Any]]:
    """A model and its metadata (threshold, calibrator, input) from a folder or MLflow URI."""
    folder = Path(location)
    if folder.is_dir() and not (folder / "MLmodel").is_file():
        return load_model(folder)
    if ":/" not in location and not folder.is_dir():
        raise FileNotFoundError(
            f"{location}: neither a model folder (with model.skops) nor an MLflow model URI"
        )
    import mlflow

    info = mlflow.models.get_model_info(location)
    if not info.metadata or "threshold" not in info.metadata:
        raise ValueError(f"{location}: MLflow model without grooming-detect metadata")
    pyfunc_artifacts = (info.flavors.get("python_function") or {}).get("artifacts") or {}
    if ARTIFACT in pyfunc_artifacts:
        # The whole-scorer pyfunc: its artifact is the train stage's model folder, loaded as
        # one (skops against the allow-list; nothing unpickled).
        entry = pyfunc_artifacts[ARTIFACT]
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise UntrustedModelError(f"{location}: malformed artifact entry in its MLmodel")
        local = Path(mlflow.artifacts.download_artifacts(location)).resolve()
        folder = (local / entry["path"]).resolve()
        if local not in folder.parents or not folder.is_dir():
            raise UntrustedModelError(f"{location}: model folder {folder} is not inside the model")
        return load_model(folder)
    if "transformers" in info.flavors:
        from grooming_detect.models.transformer import TransformerClassifier

        local = Path(mlflow.artifacts.download_artifacts(location))
        model = TransformerClassifier.load(
            local / "model",
            params=info.metadata["estimator_params"],
            tokenizer_directory=local / "components" / "tokenizer",
        )
        return model, dict(info.metadata)
    # Never mlflow.sklearn.load_model: it would trust the types listed in the model's own
    # (editable) MLmodel file. The skops file is checked against the project's allow-list.
    local = Path(mlflow.artifacts.download_artifacts(location)).resolve()
    flavor = info.flavors.get("sklearn") or {}
    if flavor.get("serialization_format") != "skops":
        raise UntrustedModelError(
            f"{location}: only skops-serialised scikit-learn models are loaded (found "
            f"{flavor.get('serialization_format') or 'no sklearn flavour'}); pickles can run code"
        )
    skops_file = (local / str(flavor.get("pickled_model", "model.skops"))).resolve()
    if local not in skops_file.parents or not skops_file.is_file():
        raise UntrustedModelError(f"{location}: model file {skops_file} is not inside the model")
    return load_skops(skops_file), dict(info.metadata)


def set_quantize(model: Any, quantize: str, location: str) -> None:
    """Score `model` with `quantize` weights; only transformer models have the choice."""
    if "quantize" not in model.get_params():
        raise ValueError(
            f"{location}: --quantize applies to transformer models; this one is "
            f"{type(model).__name__}"
        )
    model.set_params(quantize=quantize)


def _message_batches(path: Path, batch_conversations: int) -> Iterator[pd.DataFrame]:
    if path.suffix.lower() == ".xml":
        for batch in pan12.iter_message_batches(path, batch_conversations or None):
            if len(batch):
                yield pd.DataFrame(
                    {
                        "conversation_id": batch.conversation_id,
                        "line": batch.line,
                        "author": batch.author,
                        "time": batch.time,
                        "text": batch.text,
                        "split": SPLIT,
                    }
                )
        return
    messages, _, report = chatlog.read_chatlog(path, require_labels=False)
    log.info("%s: %d rows read (%d empty texts kept)", path, report.rows, report.empty_texts)
    yield messages.assign(split=SPLIT)


def model_rows(
    meta: dict[str, Any],
    messages: pd.DataFrame,
    lexicons: dict[str, list[str]],
    separator: str,
) -> tuple[Any, dict[str, pd.DataFrame], pd.DataFrame]:
    """The canonical tables, the views scoring needs (the model's input view, and the author
    view for an author model's counts), and the rows of the model's input view (without the
    columns the model's training data had no value for) of a batch of messages."""
    tables = build_tables(messages, predators={SPLIT: set()})
    unit = UNITS[meta.get("unit", "author")]
    kind = INPUTS[meta.get("input") or unit.name]
    view = kind.view_file.removesuffix(".parquet")
    # Only the model's view, and the author view whose counts the author scores report.
    needed = {view} | ({"author_texts"} if unit.name == "author" else set())
    views = build_views(
        tables.messages, tables.authors, tables.conversations, separator, lexicons, needed
    )
    rows = views[view]
    dropped = (meta.get("features") or {}).get("dropped", [])
    return tables, views, rows.drop(columns=[c for c in dropped if c in rows.columns])


def read_messages(path: Path) -> pd.DataFrame:
    """Every message of a PAN-2012 XML file or a chat log, unlabelled, as one frame."""
    batches = list(_message_batches(path, 0))
    if not batches:
        raise ValueError(f"{path}: no messages; expected at least one conversation")
    return pd.concat(batches, ignore_index=True)


def score_messages(
    model: Any,
    meta: dict[str, Any],
    messages: pd.DataFrame,
    lexicons: dict[str, list[str]],
    separator: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Author and conversation scores of one batch of messages (calibrated, with flags)."""
    tables, views, rows = model_rows(meta, messages, lexicons, separator)
    unit = UNITS[meta.get("unit", "author")]
    kind = INPUTS[meta.get("input") or unit.name]
    raw = model.predict_proba(features_of(rows, kind))[:, 1]
    calibrator = ScoreCalibrator.from_dict(meta.get("calibration", {"method": "none"}))
    scores = pd.Series(calibrator.transform(raw), index=rows[kind.id_column].to_numpy())
    if unit.name == "conversation":
        conversations = scores.rename("score").rename_axis("conversation_id").reset_index()
        return pd.DataFrame(columns=["author", "score"]), conversations
    authors = aggregate_scores(scores, meta.get("aggregate") or "max")
    author_table = views["author_texts"][["author", "n_messages", "n_conversations"]].assign(
        score=lambda f: f["author"].map(authors)
    )
    pairs = tables.messages[["conversation_id", "author"]].drop_duplicates()
    conversations = conversation_scores(pairs, authors).rename_axis("conversation_id").reset_index()
    return author_table, conversations


def feature_settings(
    meta: dict[str, Any], lexicons: dict[str, list[str]] | None, separator: str | None
) -> tuple[dict[str, list[str]], str]:
    """The lexicons and message separator to rebuild a model's features with: those given,
    else those the model was trained with (``model.json``'s ``features``), else, for a model
    saved before they were recorded, the default configuration's (with a warning)."""
    recorded = meta.get("features") or {}
    if lexicons is None and "lexicons" in recorded:
        lexicons = recorded["lexicons"]
    if separator is None and "message_separator" in recorded:
        separator = recorded["message_separator"]
    if lexicons is not None and not (
        isinstance(lexicons, dict)
        and all(
            isinstance(phrases, list) and all(isinstance(p, str) for p in phrases)
            for phrases in lexicons.values()
        )
    ):
        raise ValueError(
            f"the model's feature settings: lexicons {lexicons!r:.200}; expected a mapping of "
            "lexicon names to lists of phrases"
        )
    if separator is not None and not isinstance(separator, str):
        raise ValueError(f"the model's feature settings: message_separator {separator!r}")
    if lexicons is None or separator is None:
        from omegaconf import OmegaConf

        from grooming_detect.config import config_dir

        log.warning(
            "The model does not record its feature settings (saved before they were kept); "
            "scoring with the default conf/features/default.yaml"
        )
        default = OmegaConf.to_container(
            OmegaConf.load(config_dir() / "features" / "default.yaml"), resolve=True
        )
        lexicons = default["lexicons"] if lexicons is None else lexicons
        separator = default["message_separator"] if separator is None else separator
    return lexicons, separator


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
    author_path = write_with(
        out_dir / "author_scores.csv", lambda tmp: authors.to_csv(tmp, index=False)
    )
    conversation_path = write_with(
        out_dir / "conversation_scores.csv", lambda tmp: conversations.to_csv(tmp, index=False)
    )
    return author_path, conversation_path


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
        type=int,
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
        "--threshold", type=float, help="warning threshold (default: the model's threshold)"
    )
    stream.add_argument(
        "--patience", type=int, default=1, help="consecutive scored steps at or above it"
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
    except (FileNotFoundError, ValueError, MlflowException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"author scores:       {author_path}\nconversation scores: {conversation_path}")
    return 0


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
        threshold = float(meta["threshold"]) if args.threshold is None else args.threshold
        risk = RiskStream(
            model,
            meta,
            lexicons,
            separator,
            threshold,
            window=args.window,
            step=args.step,
            patience=args.patience,
            max_open=args.max_open,
        )
        if args.out is None:
            counts = stream_file(risk, args.input, sys.stdout)
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            counted: dict[str, int] = {}

            def write(tmp: Path) -> None:
                with open(tmp, "w", encoding="utf-8") as handle:
                    counted.update(stream_file(risk, args.input, handle))

            write_with(args.out / "stream.jsonl", write)
            counts = counted
    except (FileNotFoundError, ValueError, MlflowException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    log.info(
        "streamed %d messages (%s scores, threshold %.4f, patience %d): %d conversations "
        "warned, %d closed to stay within --max-open",
        counts["messages"],
        risk.method,
        threshold,
        args.patience,
        counts["warnings"],
        counts["closed"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
