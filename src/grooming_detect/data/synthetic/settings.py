"""The generator's settings (``data.generator`` in the config); their defaults are the config's.

A field left out of `GeneratorSettings` takes its value from ``conf/data/synthetic.yaml`` (its
``${corpus_seed}`` from ``conf/config.yaml``), read on first use, never at import: the config
file is the one place the defaults are written, so code and config cannot disagree.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from typing import Any

from grooming_detect.data import chitchat
from grooming_detect.io import json_digest

#: Bumped whenever the generator's output changes for the same settings (invalidates caches).
GENERATOR_VERSION = 7


class _FromConfig:
    """The default of every `GeneratorSettings` field: replaced by the config file's value."""

    def __repr__(self) -> str:
        return "<from conf/data/synthetic.yaml>"


_FROM_CONFIG: Any = _FromConfig()


@functools.cache
def config_defaults() -> dict[str, Any]:
    """``data.generator`` of ``conf/data/synthetic.yaml``, its ``${corpus_seed}`` from
    ``conf/config.yaml``: the one place the generator's default settings are written."""
    from omegaconf import OmegaConf

    from grooming_detect.config import config_dir

    top = OmegaConf.load(config_dir() / "config.yaml")
    root = OmegaConf.create(
        {
            "seed": top.seed,
            "corpus_seed": top.corpus_seed,
            "generator": OmegaConf.load(config_dir() / "data" / "synthetic.yaml").generator,
        }
    )
    values = OmegaConf.to_container(root.generator, resolve=True)
    if not isinstance(values, dict):
        raise TypeError(f"data.generator in conf/data/synthetic.yaml is not a mapping: {values!r}")
    return {str(key): value for key, value in values.items()}


@dataclass(frozen=True)
class GeneratorSettings:
    """Knobs of the synthetic corpus (``data.generator`` in the config). A field left out takes
    its value from ``conf/data/synthetic.yaml`` (`config_defaults`)."""

    seed: int = _FROM_CONFIG
    n_train_conversations: int = _FROM_CONFIG
    n_test_conversations: int = _FROM_CONFIG
    n_train_messages: int | None = _FROM_CONFIG
    n_test_messages: int | None = _FROM_CONFIG
    predator_share: float = _FROM_CONFIG
    n_train_predators: int | None = _FROM_CONFIG
    n_test_predators: int | None = _FROM_CONFIG
    held_out_families: str = _FROM_CONFIG
    hard_negative_share: float = _FROM_CONFIG
    monologue_share: float = _FROM_CONFIG
    multiparty_share: float = _FROM_CONFIG
    mean_conversation_length: float = _FROM_CONFIG
    difficulty: float = _FROM_CONFIG
    label_noise: float = _FROM_CONFIG
    test_label_noise: float = _FROM_CONFIG
    surface_variation: float = _FROM_CONFIG
    quirk_rate: float = _FROM_CONFIG
    #: Share of the package's conversations never used, kept as benign traffic for the audit
    #: (`chitchat.is_held_out`; ``evaluate.benign_sets`` with ``source: chitchat``).
    benign_holdout_share: float = _FROM_CONFIG

    def __post_init__(self) -> None:
        for item in fields(self):
            if getattr(self, item.name) is _FROM_CONFIG:
                object.__setattr__(self, item.name, config_defaults()[item.name])

    def fingerprint(self) -> str:
        """Stable digest of the settings, generator version and host data (names the folder)."""
        return json_digest(
            {"version": GENERATOR_VERSION, "hosts": chitchat.dataset_digest(), **asdict(self)}
        )[:16]


def settings_from_config(generator_cfg: object) -> GeneratorSettings:
    """Build settings from the ``data.generator`` config node (a mapping)."""
    values = dict(generator_cfg)  # type: ignore[call-overload]
    return GeneratorSettings(**values)
