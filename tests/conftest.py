"""Shared fixtures: the real configs composed with test overrides, tiny data, tmp paths."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient
from omegaconf import DictConfig

from grooming_detect.config import config_dir

FIXTURES = Path(__file__).parent / "fixtures"
PAN12_FIXTURE = FIXTURES / "pan12"


@pytest.fixture(autouse=True)
def _no_ambient_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never write to a tracking server or project root of the machine they run on."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("GROOMING_DETECT_ROOT", raising=False)


ComposeFn = Callable[..., DictConfig]


def compose_config(root: Path, *overrides: str) -> DictConfig:
    """`conf/config.yaml` with overrides; paths and tracking under `root`."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[
                f"paths.root={root}",
                f"tracking.uri=sqlite:///{root}/mlflow.db",
                *overrides,
            ],
        )


@pytest.fixture
def compose_cfg(tmp_path: Path) -> ComposeFn:
    """Compose `conf/config.yaml` with overrides; paths and tracking under `tmp_path`."""

    def _compose(*overrides: str, root: Path | None = None) -> DictConfig:
        return compose_config(root or tmp_path, *overrides)

    return _compose


@pytest.fixture
def pan12_copy(tmp_path: Path) -> Path:
    """A writable copy of the hand-made PAN-2012 fixture (official sub-folder layout)."""
    target = tmp_path / "pan12"
    shutil.copytree(PAN12_FIXTURE, target)
    return target


@pytest.fixture(scope="session")
def default_run(tmp_path_factory: pytest.TempPathFactory):
    """The default configuration, exactly as `make run` runs it, under a temporary root."""
    from grooming_detect import pipeline

    root = tmp_path_factory.mktemp("default-run")
    overrides = [f"paths.root={root}", f"tracking.uri=sqlite:///{root}/mlflow.db"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    result = pipeline.run(cfg, overrides)
    return cfg, result, MlflowClient(tracking_uri=cfg.tracking.uri)


def flatten_layout(root: Path) -> Path:
    """Move every official file directly under `root` (the flat layout users also have)."""
    for path in list(root.rglob("*.*")):
        if path.parent != root:
            shutil.move(str(path), root / path.name)
    for folder in [p for p in root.iterdir() if p.is_dir()]:
        os.rmdir(folder)
    return root


#: The overrides of `tiny_run` (besides its root): a test that runs stages again in its root
#: passes them too, so that what it writes is what the other tests of that run read.
TINY_RUN = (
    "scale=tiny",
    "evaluate.show_text=false",
    "evaluate.bootstrap.n_resamples=50",
)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    """Every stage on the tiny synthetic corpus, once for the tests that read what such a run
    writes: no message text in the evaluation tables (``evaluate.show_text=false``), 50 bootstrap
    resamples, and the model card published to ``<root>/repo`` (``report.publish_dir``)."""
    from grooming_detect import pipeline

    root = tmp_path_factory.mktemp("tiny-run")
    cfg = compose_config(root, *TINY_RUN, f"report.publish_dir={root / 'repo'}")
    return cfg, pipeline.run(cfg)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised BERT with a tiny vocabulary, saved like a hub model."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from grooming_detect.data.synthetic import (
        CUE_REPLIES,
        HARD_NEGATIVES,
        MARKER_FAMILIES,
        SMALL_TALK,
        wordings,
    )

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = {
        w.strip("?,.!'")
        for group in (
            SMALL_TALK,
            CUE_REPLIES,
            [w for families in MARKER_FAMILIES.values() for f in families for w in wordings(f)],
            *HARD_NEGATIVES.values(),
        )
        for t in group
        for w in t.lower().split()
    }
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "[",
        "]",
        "me",
        "other",
        "?",
        "'",
        ",",
        *sorted(w for w in words if w and "{" not in w),
    ]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
        num_labels=2,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_sentence_encoder(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random BERT with mean pooling and normalisation, saved as a
    sentence-transformers folder (``model.encoder.path``): seconds to embed a tiny corpus."""
    try:
        from sentence_transformers.sentence_transformer.modules import (
            Normalize,
            Pooling,
            Transformer,
        )
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers.models import Normalize, Pooling, Transformer
    from sentence_transformers import SentenceTransformer

    folder = tmp_path_factory.mktemp("tiny-sentence-encoder")
    word = Transformer(str(tiny_bert), max_seq_length=64)
    dimension = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pooling = Pooling(dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[word, pooling, Normalize()], device="cpu").save(str(folder))
    return folder


#: What makes a test an end-to-end one, which must carry the `pipeline` marker (left out by
#: `make test-fast`): a fixture that runs the pipeline or trains a network, a call that runs a
#: whole command, generates a corpus or saves an MLflow model. Tests are marked explicitly
#: (`@pytest.mark.pipeline` or a module's `pytestmark`); collection fails for one that does this
#: unmarked, so the fast tier cannot grow an end-to-end run by accident.
PIPELINE_FIXTURES = frozenset(
    {
        "default_run",
        "tiny_run",
        "tiny_bert",
        "tiny_sentence_encoder",
        "shape_files",
        "synthetic_tables",
        "corpus",
    }
)
PIPELINE_CALLS = (
    "pipeline.run(",
    "cli.main(",
    "subprocess.",
    "_run(",
    "run_cli(",
    "generate_corpus(",
    "mlflow.sklearn.save_model(",
)


@functools.cache
def _runs_whole_commands(function: object) -> bool:
    """Whether `function`'s source makes a whole-command call (each fixture is read once,
    however many tests use it)."""
    import inspect

    try:
        source = inspect.getsource(function)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False
    return any(call in source for call in PIPELINE_CALLS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse an end-to-end test without the `pipeline` marker: one that uses a pipeline
    fixture, or whose own source or any of its fixtures' sources makes a whole-command call."""
    unmarked = []
    for item in items:
        function = getattr(item, "function", None)
        if function is None or item.get_closest_marker("pipeline") is not None:
            continue
        fixture_info = getattr(item, "_fixtureinfo", None)
        definitions = fixture_info.name2fixturedefs.values() if fixture_info else ()
        fixture_functions = [d.func for defs in definitions for d in defs]
        if (
            PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ()))
            or _runs_whole_commands(function)
            or any(_runs_whole_commands(f) for f in fixture_functions)
        ):
            unmarked.append(item.nodeid)
    if unmarked:
        raise pytest.UsageError(
            "end-to-end tests (a pipeline fixture or whole-command call, see conftest.py) need "
            "@pytest.mark.pipeline: " + ", ".join(unmarked)
        )


def recomputed_measures(evaluation_dir: Path, split: str, unit: str) -> dict[str, float]:
    """The headline measures recomputed with scikit-learn from the scores the evaluate stage
    wrote (``<split>-<unit>-scores.parquet``): what its logged metrics must equal exactly."""
    import pandas as pd
    from sklearn.metrics import (
        average_precision_score,
        fbeta_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    table = pd.read_parquet(evaluation_dir / f"{split}-{unit}-scores.parquet")
    y, scores, named = table["label"].astype(bool), table["score"], table["predicted"]
    return {
        "pr_auc": float(average_precision_score(y, scores)),
        "roc_auc": float(roc_auc_score(y, scores)),
        "precision": float(precision_score(y, named, zero_division=0)),
        "recall": float(recall_score(y, named, zero_division=0)),
        "f0_5": float(fbeta_score(y, named, beta=0.5, zero_division=0)),
    }


def pretend_official(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Make `verify` treat the PAN-format files under `root` (the hand-made fixture's shape)
    as the published corpus: their own checksums and the fixture's counts."""
    from grooming_detect.data import pan12, verify
    from grooming_detect.io import sha256_file

    published = {
        name: sha256_file(path, normalise_newlines=True)
        for name, path in pan12.find_files(root).present().items()
        if name in verify.PUBLISHED_SHA256
    }
    monkeypatch.setattr(verify, "PUBLISHED_SHA256", published)
    monkeypatch.setattr(
        verify,
        "PUBLISHED_COUNTS",
        {
            "training": {"conversations": 6, "messages": 18, "authors": 12, "predators": 2},
            "test": {"conversations": 2, "messages": 5, "authors": 4, "predators": 1},
        },
    )


def stage_run(client: MlflowClient, result, stage: str):
    """The child run of `stage` under the pipeline run of `result` (a `PipelineResult`)."""
    return next(
        r
        for r in client.search_runs([result.experiment_id])
        if r.data.tags.get("stage") == stage
        and r.data.tags.get("mlflow.parentRunId") == result.run_id
    )
