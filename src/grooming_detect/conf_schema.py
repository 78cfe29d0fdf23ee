"""The config's schema: typed dataclasses registered in Hydra's ConfigStore.

The values live in ``conf/*.yaml`` only; every field here is ``MISSING`` and says the type (and,
where it has one, the range) of a key. Hydra merges each YAML file onto its schema at
composition, so a value of the wrong type or a key that is not in the schema (a typo, in a file
or in an override) fails at start with Hydra's message naming the key; a key that ``+key=value``
adds (Hydra allows it on any node) is refused by `grooming_detect.validation`, which also checks
the ranges (field metadata, `check_ranges`) and the rules that relate keys to each other.

How a YAML file names its schema (Hydra's "schema for config files" pattern): the root schema
(``schema/root``, first in conf/config.yaml's defaults list) types the run's own keys and every
group with one shape (paths, features, decision, evaluate, early, report, tracking); a group
whose options differ names its schema first in each option's defaults list, e.g.
``conf/data/pan12.yaml``: ``defaults: [/schema/data/pan12@_here_, ...]``. The schemas sit in
the ConfigStore's ``schema/`` groups, apart from the groups a user picks from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass(frozen=True)
class Bounds:
    """The range of a numeric key: ``low <= value <= high`` (``<`` both sides when `strict`);
    `None` leaves that side open."""

    low: float | None = None
    high: float | None = None
    strict: bool = False

    def admits(self, value: float) -> bool:
        if self.strict:
            return (self.low is None or value > self.low) and (
                self.high is None or value < self.high
            )
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def expected(self, whole: bool, optional: bool = False) -> str:
        kind = ("null or " if optional else "") + ("a whole number" if whole else "a number")
        if self.low is not None and self.high is not None:
            if self.strict:
                return f"{kind} strictly between {self.low:g} and {self.high:g}"
            return f"{kind} in [{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{kind} {'>' if self.strict else '>='} {self.low:g}"
        return f"{kind} {'<' if self.strict else '<='} {self.high:g}"


def ranged(low: float | None = None, high: float | None = None, *, strict: bool = False) -> Any:
    """A required field (``MISSING``: the YAML file gives the value) within `Bounds`."""
    return field(default=MISSING, metadata={"bounds": Bounds(low, high, strict)})


def share() -> Any:
    """A required share or probability: a number in [0, 1]."""
    return ranged(0.0, 1.0)


# --- data (conf/data/*.yaml) -------------------------------------------------------------------
@dataclass
class FiltersConfig:
    """``data.filters`` (conf/data/filters/*.yaml, typed as part of the data schemas): PAN-2012
    conversation filters."""

    drop_single_author: bool = MISSING
    drop_multi_party: bool = MISSING
    min_messages_per_author: int = ranged(0)
    apply_to_test: bool = MISSING
    vtpan: bool = MISSING


@dataclass
class SplitConfig:
    """How a validation split is carved: ``data.validation_fraction``, ``data.split_tolerance``,
    ``data.split_override`` (their values: conf/data/split/default.yaml, the one file every data
    config includes; typed here as part of every data schema)."""

    validation_fraction: float = ranged(0.0, 1.0, strict=True)
    split_tolerance: float = share()
    split_override: str | None = MISSING


@dataclass
class DataConfig(SplitConfig):
    """Keys every data source has."""

    source: str = MISSING
    name: str = MISSING
    synthetic: bool = MISSING


@dataclass
class GeneratorConfig:
    """``data.generator``: the synthetic corpus's knobs (conf/data/synthetic.yaml)."""

    seed: int = MISSING
    n_train_conversations: int = ranged(1)
    n_test_conversations: int = ranged(1)
    n_train_messages: int | None = ranged(1)
    n_test_messages: int | None = ranged(1)
    predator_share: float = share()
    n_train_predators: int | None = ranged(0)
    n_test_predators: int | None = ranged(0)
    held_out_families: str = MISSING
    hard_negative_share: float = share()
    monologue_share: float = share()
    multiparty_share: float = share()
    # Any, not float: the YAML's integer stays one, so the corpus's fingerprint (folder name)
    # is the one it had before the schema (a number > 0 all the same).
    mean_conversation_length: Any = ranged(0.0, strict=True)  # noqa: RUF009 (a field())
    difficulty: float = share()
    label_noise: float = share()
    test_label_noise: float = share()
    surface_variation: float = share()
    quirk_rate: float = share()
    benign_holdout_share: float = share()


@dataclass
class SyntheticDataConfig(DataConfig):
    """``data=synthetic``."""

    filters: FiltersConfig = MISSING
    generator: GeneratorConfig = MISSING


@dataclass
class Pan12DataConfig(DataConfig):
    """``data=pan12``: ``root`` is the folder of the PAN-2012 download."""

    root: str = MISSING
    filters: FiltersConfig = MISSING


@dataclass
class ChatlogDataConfig(DataConfig):
    """``data=chatlog``: a team's own CSV or JSONL export."""

    path: str = MISSING
    predator_ids: str | None = MISSING
    test_fraction: float = ranged(0.0, 1.0, strict=True)
    max_message_chars: int | None = ranged(1)
    long_messages: str = MISSING


# --- model (conf/model/*.yaml, shared keys in conf/model/common/default.yaml) ------------------
@dataclass
class ImbalanceConfig:
    negatives_per_positive: float | None = ranged(0.0, strict=True)


@dataclass
class EncoderConfig:
    """``model.encoder`` (conf/model/encoder/default.yaml): the frozen sentence encoder of the
    embedding models; null for every other model."""

    path: str | None = MISSING
    batch_size: int = ranged(1)
    max_seq_length: int = ranged(1)
    cache_dir: str | None = MISSING


@dataclass
class ModelConfig:
    """``model``: the keys every model shares; ``estimator`` is the `_target_` tree that
    `hydra.utils.instantiate` builds (scikit-learn checks its parameters). What is fitted after
    the model (calibrator, threshold) is `DecisionConfig`'s."""

    name: str = MISSING
    description: str = MISSING
    input: Any = MISSING
    aggregate: str = MISSING
    imbalance: ImbalanceConfig = MISSING
    encoder: EncoderConfig | None = MISSING
    estimator: Any = MISSING


@dataclass
class DecisionConfig:
    """``decision`` (conf/decision/*.yaml): how the calibrator and the threshold are fitted
    after the model; `name` is the option (holdout or crossfit), `folds` crossfit's, and
    `fallback` the procedure crossfit falls back to when the data cannot be cross-fitted (null:
    none, the run stops)."""

    name: str = MISSING
    calibration: str = MISSING
    threshold_objective: str = MISSING
    threshold_min_precision: float = share()
    folds: int | None = ranged(2)
    fallback: str | None = None


# --- groups with one shape ---------------------------------------------------------------------
@dataclass
class PathsConfig:
    root: str = MISSING
    data: str = MISSING
    raw: str = MISSING
    processed: str = MISSING
    outputs: str = MISSING
    run_dir: str = MISSING
    source_run: str = MISSING
    logs: str = MISSING


@dataclass
class FeaturesConfig:
    message_separator: str = MISSING
    lexicons: dict[str, list[str]] = MISSING


@dataclass
class BootstrapConfig:
    n_resamples: int = ranged(1)
    confidence: float = ranged(0.0, 1.0, strict=True)
    seed: int = ranged(0)


@dataclass
class AuditConfig:
    cue_ablation: bool = MISSING
    source_probe: bool = MISSING
    probes: bool = MISSING


@dataclass
class EvaluateConfig:
    splits: list[str] = MISSING
    bootstrap: BootstrapConfig = MISSING
    min_positives: int = ranged(0)
    ece_bins: int = ranged(1)
    reliability_bins: int = ranged(1)
    top_k: int = ranged(0)
    show_text: bool = MISSING
    min_term_authors: int = ranged(1)
    max_text_chars: int = ranged(1)
    line_rule: str = MISSING
    # `tuned` or a number in [0, 1] (OmegaConf has no union of str and float: checked in code).
    line_threshold: Any = MISSING
    # Each entry {name, source, path, show_text}: `evaluation.audit.parse_benign_sets` checks it.
    benign_sets: list[Any] = MISSING
    shortcut_baseline: bool = MISSING
    audit: AuditConfig = MISSING


@dataclass
class EarlyConfig:
    enabled: bool = MISSING
    method: str = MISSING
    window: int = ranged(1)
    step: int = ranged(1)
    patience: int = ranged(1)
    # eSPD's skepticism: null (off) or at most skepticism_window (checked in code).
    skepticism: int | None = ranged(1)
    skepticism_window: int = ranged(1)
    threshold: str = MISSING
    # null, 'espd' or a positive number (OmegaConf has no union of str and float: checked in
    # code, `evaluation.early.EarlySettings`).
    penalty_p: Any = MISSING
    train_on_prefixes: int = ranged(0)


@dataclass
class ReportConfig:
    publish_dir: str | None = MISSING


@dataclass
class TrackingConfig:
    uri: str = MISSING
    experiment_name: str = MISSING
    connect_timeout_s: float = ranged(0.0, strict=True)
    artifact_location: str = MISSING
    run_name: str = MISSING
    register: bool = MISSING
    registered_model_name: str = MISSING
    register_alias: str = MISSING


@dataclass
class RootConfig:
    """``conf/config.yaml``: the run's own keys and one typed node per config group (``data``
    and ``model`` take the schema their option names)."""

    stages: list[str] = MISSING
    seed: int = MISSING
    corpus_seed: int = MISSING
    progress: bool = MISSING
    paths: PathsConfig = MISSING
    data: Any = MISSING
    features: FeaturesConfig = MISSING
    decision: DecisionConfig = MISSING
    model: Any = MISSING
    evaluate: EvaluateConfig = MISSING
    early: EarlyConfig = MISSING
    report: ReportConfig = MISSING
    tracking: TrackingConfig = MISSING


#: (group, name, schema): what `register_schemas` stores, apart from the config groups a user
#: picks from; a YAML file names ``/<group>/<name>@_here_`` first in its defaults list.
SCHEMAS: tuple[tuple[str, str, type], ...] = (
    ("schema", "root", RootConfig),
    ("schema/data", "synthetic", SyntheticDataConfig),
    ("schema/data", "pan12", Pan12DataConfig),
    ("schema/data", "chatlog", ChatlogDataConfig),
    ("schema/model", "common", ModelConfig),
)


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent; `grooming_detect.config` calls it
    on import, so that every composition, `@hydra.main` or `compose`, finds them)."""
    store = ConfigStore.instance()
    for group, name, node in SCHEMAS:
        store.store(group=group, name=name, node=node)
