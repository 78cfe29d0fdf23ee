"""Every option of every config group composes, validates and instantiates; paths never use cwd."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import ComposeFn
from grooming_detect.config import ConfigError, config_dir, project_root
from grooming_detect.validation import validate_config

GROUPS = sorted(
    str(p.relative_to(config_dir()))
    for p in config_dir().rglob("*")
    if p.is_dir() and p.relative_to(config_dir()).parts[0] != "hydra"
)
# model/common holds settings every model file includes; it is not a choice of its own.
OPTIONS = [
    (group, option.stem)
    for group in GROUPS
    if group != "model/common"
    for option in sorted((config_dir() / group).glob("*.yaml"))
]


def test_every_group_has_options() -> None:
    assert {
        "data",
        "model",
        "paths",
        "tracking",
        "evaluate",
        "features",
        "experiment",
        "debug",
        "scale",
        "data/filters",
    } <= set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_validates_and_instantiates(
    compose_cfg: ComposeFn, tmp_path: Path, group: str, option: str
) -> None:
    extra = {
        ("data", "pan12"): [f"data.root={tmp_path}"],
        ("data", "chatlog"): [f"data.path={tmp_path}/chat.csv"],
    }.get((group, option), [])
    cfg = compose_cfg(f"{group}={option}", *extra)
    OmegaConf.resolve(cfg)
    validate_config(cfg)
    model = instantiate(cfg.model.estimator)
    assert hasattr(model, "fit") and hasattr(model, "predict_proba")


def test_paths_derive_from_root_not_cwd(
    compose_cfg: ComposeFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir("/")
    cfg = compose_cfg()
    for key in ("data", "raw", "processed", "outputs", "run_dir", "logs"):
        assert Path(cfg.paths[key]).is_relative_to(tmp_path), key
    assert cfg.tracking.uri == f"sqlite:///{tmp_path}/mlflow.db"


def test_default_root_and_tracking(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config")
    assert cfg.paths.root == str(project_root())
    assert cfg.tracking.uri == f"sqlite:///{project_root()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    monkeypatch.setenv("GROOMING_DETECT_ROOT", str(tmp_path))
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config")
    assert cfg.tracking.uri == "http://127.0.0.1:5999"
    assert cfg.paths.root == str(tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stages=[data,trian]"], "unknown stage"),
        (["stages=[train,data]"], "out of order"),
        (["stages=[data,data]"], "twice"),
        (["data=pan12"], "needs data.root"),
        (["data=pan12", "data.root=/x", "scale=tiny"], "only applies to data=synthetic"),
        (["data.validation_fraction=1.5"], "strictly between"),
        (["data=chatlog"], "needs data.path"),
        (["data.generator.label_noise=2"], r"label_noise: 2.0 must lie in \[0, 1\]"),
        (["evaluate.splits=[train]"], "evaluate.splits"),
    ],
)
def test_bad_values_fail_at_start(
    compose_cfg: ComposeFn, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(compose_cfg(*overrides))


def test_typo_in_an_override_key_fails(compose_cfg: ComposeFn) -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="C_typo"):
        compose_cfg("model.estimator.C_typo=1")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["seed=abc"], r"seed: 'abc'; expected an integer"),
        (["+foo=1"], r"unknown top-level key\(s\) \['foo'\]"),
        (["model.estimator.C=abc"], r"model\.estimator.*'C' parameter of LogisticRegression"),
        (["+model.estimator.nonsense=1"], r"model\.estimator: .*nonsense"),
        (["data=chatlog", "data.path=x.csv", "data.long_messages=cut"], r"data\.long_messages"),
        (["stages=[train,report]"], r"add evaluate"),
    ],
)
def test_bad_values_fail_at_start_naming_the_key(compose_cfg, overrides, message) -> None:
    from grooming_detect.config import ConfigError
    from grooming_detect.validation import validate_config

    with pytest.raises(ConfigError, match=message):
        validate_config(compose_cfg(*overrides))


def test_unwritable_output_paths_fail_at_start(compose_cfg, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"paths\.data: .*a-file is a file, not a folder"):
        validate_config(compose_cfg(root=blocker / "project"))
