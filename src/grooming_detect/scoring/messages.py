"""Applying a trained model to new messages: the code every scorer shares.

``grooming-detect-score`` (files), ``--stream``, the served pyfunc model, the benign-traffic
audit and early detection all score messages through `score_messages`: the canonical tables,
the views the model reads (rebuilt with the feature settings it was trained with), the
estimator, the calibrator (fitted on validation or out of fold) and the aggregation to authors and
conversations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from grooming_detect.data import chatlog, pan12
from grooming_detect.data.schema import build_tables
from grooming_detect.features.schema import AUTHOR_VIEW
from grooming_detect.features.stage import build_views
from grooming_detect.models.decision import ScoreCalibrator
from grooming_detect.models.persistence import (
    ARTIFACT,
    UntrustedModelError,
    check_metadata,
    load_model,
    load_skops,
    load_transformer,
)
from grooming_detect.models.units import (
    INPUTS,
    UNITS,
    aggregate_scores,
    conversation_scores,
    features_of,
    positive_scores,
    reads_text_only,
)

log = logging.getLogger(__name__)
#: The split name new messages get in the canonical tables.
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
    # MLflow is imported for an MLflow model URI only: a model folder is scored without it.
    from grooming_detect import tracking

    info = tracking.model_info(location)
    if not info.metadata or "threshold" not in info.metadata:
        raise ValueError(f"{location}: MLflow model without grooming-detect metadata")
    # The logged copy of model.json's settings, checked as the file is.
    metadata = check_metadata(dict(info.metadata), f"{location} (its MLmodel metadata)")
    pyfunc_artifacts = (info.flavors.get("python_function") or {}).get("artifacts") or {}
    if ARTIFACT in pyfunc_artifacts:
        # The whole-scorer pyfunc: its artifact is the train stage's model folder, loaded as
        # one (skops against the allow-list; nothing unpickled).
        entry = pyfunc_artifacts[ARTIFACT]
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise UntrustedModelError(f"{location}: malformed artifact entry in its MLmodel")
        local = tracking.download_artifacts(location).resolve()
        folder = (local / entry["path"]).resolve()
        if local not in folder.parents or not folder.is_dir():
            raise UntrustedModelError(f"{location}: model folder {folder} is not inside the model")
        return load_model(folder)
    if "transformers" in info.flavors:
        params = metadata.get("estimator_params")
        if not isinstance(params, dict):
            raise UntrustedModelError(
                f"{location} (its MLmodel metadata): estimator_params={params!r:.80}; expected "
                "the transformer classifier's parameters"
            )
        local = tracking.download_artifacts(location)
        model = load_transformer(
            local / "model",
            params=params,
            tokenizer_directory=local / "components" / "tokenizer",
        )
        return model, metadata
    # Never mlflow.sklearn.load_model: it would trust the types listed in the model's own
    # (editable) MLmodel file. The skops file is checked against the project's allow-list.
    local = tracking.download_artifacts(location).resolve()
    flavor = info.flavors.get("sklearn") or {}
    if flavor.get("serialization_format") != "skops":
        raise UntrustedModelError(
            f"{location}: only skops-serialised scikit-learn models are loaded (found "
            f"{flavor.get('serialization_format') or 'no sklearn flavour'}); pickles can run code"
        )
    skops_file = (local / str(flavor.get("pickled_model", "model.skops"))).resolve()
    if local not in skops_file.parents or not skops_file.is_file():
        raise UntrustedModelError(f"{location}: model file {skops_file} is not inside the model")
    return load_skops(skops_file), metadata


def set_quantize(model: Any, quantize: str, location: str) -> None:
    """Score `model` with `quantize` weights; only transformer models have the choice."""
    if "quantize" not in model.get_params():
        raise ValueError(
            f"{location}: --quantize applies to transformer models; this one is "
            f"{type(model).__name__}"
        )
    model.set_params(quantize=quantize)


def message_batches(path: Path, batch_conversations: int) -> Iterator[pd.DataFrame]:
    """The messages of `path` in canonical form: PAN XML in batches of `batch_conversations`
    whole conversations (0: all at once), a chat log whole."""
    if path.suffix.lower() == ".xml":
        for batch in pan12.iter_message_batches(path, batch_conversations or None):
            if len(batch):
                yield pan12.messages_frame(batch, SPLIT)
        return
    messages, _, report = chatlog.read_chatlog(path, require_labels=False)
    log.info("%s: %d rows read (%d empty texts kept)", path, report.rows, report.empty_texts)
    yield messages.assign(split=SPLIT)


def model_rows(
    meta: dict[str, Any],
    messages: pd.DataFrame,
    lexicons: dict[str, list[str]],
    separator: str,
    model: Any = None,
) -> tuple[Any, dict[str, pd.DataFrame], pd.DataFrame]:
    """The canonical tables, the views scoring needs (the model's input view, and the author
    view for an author model's counts), and the rows of the model's input view (without the
    columns the model's training data had no value for) of a batch of messages. Given the
    fitted `model`, the behavioural features are left out when it reads text only."""
    tables = build_tables(messages, predators={SPLIT: set()})
    unit = UNITS[meta.get("unit", "author")]
    kind = INPUTS[meta.get("input") or unit.name]
    view = kind.view_file.removesuffix(".parquet")
    # Only the model's view, and the author view whose counts the author scores report.
    needed = {view} | ({AUTHOR_VIEW} if unit.name == "author" else set())
    views = build_views(
        tables.messages,
        tables.authors,
        tables.conversations,
        separator,
        lexicons,
        needed,
        behaviour=model is None or not reads_text_only(model),
    )
    rows = views[view]
    dropped = (meta.get("features") or {}).get("dropped", [])
    return tables, views, rows.drop(columns=[c for c in dropped if c in rows.columns])


def read_messages(path: Path) -> pd.DataFrame:
    """Every message of a PAN-2012 XML file or a chat log, unlabelled, as one frame."""
    batches = list(message_batches(path, 0))
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
    tables, views, rows = model_rows(meta, messages, lexicons, separator, model)
    unit = UNITS[meta.get("unit", "author")]
    kind = INPUTS[meta.get("input") or unit.name]
    raw = positive_scores(model, features_of(rows, kind))
    calibrator = ScoreCalibrator.from_dict(meta.get("calibration", {"method": "none"}))
    scores = pd.Series(calibrator.transform(raw), index=rows[kind.id_column].to_numpy())
    if unit.name == "conversation":
        conversations = scores.rename("score").rename_axis("conversation_id").reset_index()
        return pd.DataFrame(columns=["author", "score"]), conversations
    authors = aggregate_scores(scores, meta.get("aggregate") or "max")
    author_table = views[AUTHOR_VIEW][["author", "n_messages", "n_conversations"]].assign(
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

        from grooming_detect.config import config_dir, to_dict

        log.warning(
            "The model does not record its feature settings (saved before they were kept); "
            "scoring with the default conf/features/default.yaml"
        )
        default = to_dict(OmegaConf.load(config_dir() / "features" / "default.yaml"))
        lexicons = default["lexicons"] if lexicons is None else lexicons
        separator = default["message_separator"] if separator is None else separator
    return lexicons, separator
