"""Where the configs live, the project root resolver and `ConfigError`. Validating a composed
config before any work is `grooming_detect.validation` (it knows every stage's options)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from grooming_detect.conf_schema import register_schemas
from grooming_detect.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_ROOT = PACKAGE_DIR.parents[1]

STAGES: tuple[str, ...] = ("data", "features", "train", "evaluate", "report")
DATA_SOURCES: tuple[str, ...] = ("synthetic", "pan12", "chatlog")


def _is_checkout(root: Path) -> bool:
    return (root / "pyproject.toml").is_file() and (root / "conf" / "config.yaml").is_file()


def config_dir() -> Path:
    """The `conf/` tree: the source checkout's when running from one, else the packaged copy."""
    if _is_checkout(_CHECKOUT_ROOT):
        return _CHECKOUT_ROOT / "conf"
    return PACKAGE_DIR / "conf"


def project_root() -> Path:
    """Root of every path: $GROOMING_DETECT_ROOT, else the source checkout, else a user data dir."""
    from_env = os.environ.get("GROOMING_DETECT_ROOT")
    if from_env:
        return Path(from_env).expanduser().resolve()
    if _is_checkout(_CHECKOUT_ROOT):
        return _CHECKOUT_ROOT
    return Path.home() / ".local" / "share" / "grooming-detect"


def env_or(name: str, default: Any) -> Any:
    """The environment variable `name`, or `default` when it is unset *or empty* (as MLflow
    reads its own variables; OmegaConf's ``oc.env`` would return the empty string)."""
    return os.environ.get(name) or default


def register_resolvers() -> None:
    """Register the `gd.*` OmegaConf resolvers used by `conf/` (idempotent)."""
    if not OmegaConf.has_resolver("gd.project_root"):
        OmegaConf.register_new_resolver("gd.project_root", lambda: str(project_root()))
    if not OmegaConf.has_resolver("gd.env_or"):
        OmegaConf.register_new_resolver("gd.env_or", env_or)


register_resolvers()
# The schema (typed configs) before any composition: every composition (``@hydra.main``, tests
# and scripts using ``compose``) imports this module for `config_dir`.
register_schemas()


def to_dict(node: Any) -> dict[str, Any]:
    """A config node (resolved) as a plain ``dict``: what stages record and pass on."""
    value = OmegaConf.to_container(node, resolve=True)
    if not isinstance(value, dict):
        raise ConfigError(f"expected a mapping in the config, found {type(value).__name__}")
    return {str(key): item for key, item in value.items()}
