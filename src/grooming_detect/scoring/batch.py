"""Scoring a file of new chat data: author and conversation risk scores as CSV files.

Reads a PAN-2012 XML file or a chat log (CSV/JSONL, labels not needed), builds the same views and
features as the pipeline, and writes per-author and per-conversation risk scores (calibrated
probabilities, and whether each reaches the model's tuned threshold) as CSV files.

Memory: PAN XML is streamed in batches of `batch_conversations` conversations (default 20,000), so
memory is bounded by one batch, whatever the file size. An author whose conversations fall in
several batches is scored per batch and keeps the highest score (for a model that reads the
author's whole history this is an approximation; ``batch_conversations=0`` reads everything at
once and scores exactly). Chat logs are read whole, because their rows need not be grouped by
conversation.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pandas as pd

from grooming_detect.io import write_csv
from grooming_detect.progress import track
from grooming_detect.scoring.messages import (
    feature_settings,
    load_scoring_model,
    message_batches,
    score_messages,
    set_quantize,
)

log = logging.getLogger(__name__)


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
    batches = message_batches(path, batch_conversations)
    for batch in track(batches, f"scoring {path.name}", unit="batch"):
        n_messages += len(batch)
        authors, conversations = score_messages(model, meta, batch, lexicons, separator)
        author_parts.append(authors)
        conversation_parts.append(conversations)
    authors, conversations = combine_scores(author_parts, conversation_parts, threshold)
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
    _write_pair(out_dir, authors, conversations)
    return out_dir / "author_scores.csv", out_dir / "conversation_scores.csv"


def combine_scores(
    author_parts: list[pd.DataFrame], conversation_parts: list[pd.DataFrame], threshold: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One author and one conversation table from the tables of several batches: an author
    scored in several batches keeps the highest score (message and conversation counts add up);
    each row flagged at `threshold`; highest score first."""
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
    return authors, conversations


def _write_pair(out_dir: Path, authors: pd.DataFrame, conversations: pd.DataFrame) -> None:
    """``author_scores.csv`` and ``conversation_scores.csv`` in `out_dir`, as a pair."""
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
