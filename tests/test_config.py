"""Every option of every config group composes, validates and instantiates; paths never use cwd."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import ComposeFn
from grooming_detect.conf_schema import (
    ChatlogDataConfig,
    ModelConfig,
    Pan12DataConfig,
    RootConfig,
    SyntheticDataConfig,
)
from grooming_detect.config import ConfigError, config_dir, project_root
from grooming_detect.validation import validate_config

DATA_SCHEMAS = (SyntheticDataConfig, Pan12DataConfig, ChatlogDataConfig)
GROUPS = sorted(
    str(p.relative_to(config_dir()))
    for p in config_dir().rglob("*")
    if p.is_dir() and p.relative_to(config_dir()).parts[0] != "hydra"
)
# model/common, model/tfidf, model/boosting, model/encoder and data/split hold settings that
# model (or data) files include; they are not choices of their own.
INCLUDED = {"model/common", "model/tfidf", "model/boosting", "model/encoder", "data/split"}
OPTIONS = [
    (group, option.stem)
    for group in GROUPS
    if group not in INCLUDED
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
        "decision",
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
    # Typed by the schema, every key set (`???` only where the user must give a value).
    assert OmegaConf.get_type(cfg) is RootConfig
    assert OmegaConf.get_type(cfg.model) is ModelConfig
    assert OmegaConf.get_type(cfg.data) in DATA_SCHEMAS
    assert OmegaConf.missing_keys(cfg) == set()


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
    # Set but empty counts as unset (MLflow's own rule), not as an empty URI.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config")
    assert cfg.tracking.uri == f"sqlite:///{tmp_path}/mlflow.db"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stages=[data,trian]"], "unknown stage"),
        (["stages=[train,data]"], "out of order"),
        (["stages=[data,data]"], "twice"),
        (["data=pan12"], "needs data.root"),
        (["data.validation_fraction=1.5"], r"data\.validation_fraction: 1.5; .*strictly between"),
        (["data=chatlog"], "needs data.path"),
        (["data.generator.label_noise=2"], r"label_noise: 2; expected a number in \[0, 1\]"),
        (["evaluate.splits=[train]"], r"evaluate\.splits: \['train'\]; expected one of"),
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
        (["+foo=1"], r"unknown top-level key\(s\) \['foo'\]"),
        (["model.estimator.C=abc"], r"model\.estimator.*'C' parameter of \w*LogisticRegression"),
        (["+model.estimator.nonsense=1"], r"model\.estimator: .*nonsense"),
        (["data=chatlog", "data.path=x.csv", "data.long_messages=cut"], r"data\.long_messages"),
        (["stages=[train,report]"], r"add evaluate"),
        (["evaluate.bootstrap.confidence=2"], r"evaluate\.bootstrap\.confidence: 2.*between 0"),
        (["evaluate.bootstrap.n_resamples=0"], r"evaluate\.bootstrap\.n_resamples: 0"),
        (["evaluate.top_k=-3"], r"evaluate\.top_k: -3; expected a whole number >= 0"),
        (["evaluate.min_positives=-1"], r"evaluate\.min_positives"),
        (["evaluate.ece_bins=0"], r"evaluate\.ece_bins"),
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


def _bad_option_cases() -> list[tuple[list[str], str, list[str]]]:
    """(overrides, the key the error names, the allowed values it lists), from the modules."""
    from grooming_detect.evaluation.lines import LINE_RULES
    from grooming_detect.models.decision import METHODS, THRESHOLD_OBJECTIVES
    from grooming_detect.models.units import AGGREGATES, INPUTS, UNITS

    views, levels = list(INPUTS), list(UNITS)
    return [
        (["decision.calibration=platt"], "decision.calibration: 'platt'", list(METHODS)),
        (["model.aggregate=median"], "model.aggregate: 'median'", list(AGGREGATES)),
        (["model.input=authors"], "model.input: 'authors'", views),
        (["model.input={author:author_convo}"], "model.input.author: 'author_convo'", views),
        (["model.input={speaker:author}"], "'speaker' is not a label level", levels),
        (
            ["decision.threshold_objective=f2"],
            "decision.threshold_objective: 'f2'",
            list(THRESHOLD_OBJECTIVES),
        ),
        (
            ["decision.threshold_min_precision=1.5"],
            "decision.threshold_min_precision: 1.5",
            ["[0, 1]"],
        ),
        (
            ["decision.threshold_min_precision=-0.1"],
            "decision.threshold_min_precision: -0.1",
            ["[0, 1]"],
        ),
        (
            ["model.imbalance.negatives_per_positive=0"],
            "model.imbalance.negatives_per_positive: 0",
            ["null or a number > 0"],
        ),
        (
            ["model.imbalance.negatives_per_positive=-2.5"],
            "model.imbalance.negatives_per_positive: -2.5",
            ["null or a number > 0"],
        ),
        (["decision.name=cv"], "decision.name: 'cv'", ["crossfit", "holdout"]),
        (["data.split_override=components"], "data.split_override: 'components'", ["null"]),
        (["evaluate.line_rule=every_line"], "evaluate.line_rule: 'every_line'", list(LINE_RULES)),
    ]


BAD_OPTIONS = _bad_option_cases()


@pytest.mark.parametrize(
    ("overrides", "named", "allowed"), BAD_OPTIONS, ids=[" ".join(c[0]) for c in BAD_OPTIONS]
)
def test_every_enumerated_option_is_checked_at_start(
    compose_cfg: ComposeFn, overrides: list[str], named: str, allowed: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(compose_cfg(*overrides))
    message = str(caught.value)
    assert named in message
    for value in allowed:
        assert value in message, (value, message)


@pytest.mark.parametrize(
    "overrides",
    [
        # model.* is the train stage's, evaluate.* the evaluate stage's: others do not read them.
        ["stages=[data,features]", "decision.calibration=platt", "model.aggregate=median"],
        ["stages=[evaluate,report]", "decision.threshold_objective=f2"],
        ["stages=[data,features,train]", "evaluate.line_rule=every_line"],
    ],
)
def test_options_are_checked_only_for_the_stages_that_read_them(
    compose_cfg: ComposeFn, overrides: list[str]
) -> None:
    validate_config(compose_cfg(*overrides))


def test_every_choice_of_the_shared_model_options_passes(compose_cfg: ComposeFn) -> None:
    from grooming_detect.evaluation.lines import LINE_RULES
    from grooming_detect.models.decision import METHODS, THRESHOLD_OBJECTIVES
    from grooming_detect.models.units import AGGREGATES

    for key, values in (
        ("decision.calibration", METHODS),
        ("model.aggregate", AGGREGATES),
        ("decision.threshold_objective", THRESHOLD_OBJECTIVES),
        ("evaluate.line_rule", LINE_RULES),
    ):
        for value in values:
            validate_config(compose_cfg(f"{key}={value}"))
    validate_config(compose_cfg("model.imbalance.negatives_per_positive=5"))
    validate_config(compose_cfg("decision.threshold_min_precision=1"))


MODELS = sorted(path.stem for path in (config_dir() / "model").glob("*.yaml"))

# Where each TF-IDF model's composed config holds the shared block (conf/model/tfidf/default.yaml),
# and what it sets differently there.
TFIDF_USERS = {
    ("tfidf_logreg", "estimator"): {},
    ("tfidf_svm", "estimator"): {},
    ("tfidf_plus_behaviour", "estimator"): {},
    ("two_stage", "estimator.conversation_model"): {},
    ("two_stage", "estimator.author_model"): {"min_df": 1},
}


def _tfidf_block() -> dict:
    """conf/model/tfidf/default.yaml without its `_target_` (each model names its factory)."""
    raw = OmegaConf.load(config_dir() / "model" / "tfidf" / "default.yaml")
    assert OmegaConf.is_missing(raw, "_target_")
    block = OmegaConf.to_container(raw)
    assert isinstance(block, dict)
    return {key: value for key, value in block.items() if key != "_target_"}


@pytest.mark.parametrize(("model", "node"), list(TFIDF_USERS), ids=str)
def test_tfidf_models_share_the_one_tfidf_block(
    compose_cfg: ComposeFn, model: str, node: str
) -> None:
    block = _tfidf_block()
    assert {"word_ngram_range", "char_ngram_range", "min_df", "vectorizer"} <= set(block)
    # A hashing block has no vocabulary to cap: no max_features in the config (nor on the card).
    assert block["vectorizer"] == "hashing" and "max_features" not in block
    composed = OmegaConf.select(compose_cfg(f"model={model}").model, node)
    expected = {**block, **TFIDF_USERS[(model, node)]}
    assert {key: OmegaConf.to_container(composed)[key] for key in block} == expected
    assert str(composed._target_).startswith("grooming_detect.models.baselines.make_tfidf")
    # The model file itself repeats none of the block: only what differs.
    raw = OmegaConf.load(config_dir() / "model" / f"{model}.yaml")
    written = OmegaConf.to_container(OmegaConf.select(raw, node))
    assert isinstance(written, dict)
    assert set(written) & set(block) == set(TFIDF_USERS[(model, node)])


@pytest.mark.parametrize("model", MODELS)
def test_every_model_composes_complete(compose_cfg: ComposeFn, model: str) -> None:
    cfg = compose_cfg(f"model={model}")
    assert not OmegaConf.missing_keys(cfg.model), model
    assert cfg.model.name == model


def test_tfidf_overrides_on_the_command_line_still_land(compose_cfg: ComposeFn) -> None:
    assert compose_cfg("model.estimator.min_df=3").model.estimator.min_df == 3
    svm = compose_cfg("model=tfidf_svm", "model.estimator.vectorizer=vocabulary").model.estimator
    assert (svm.vectorizer, svm.min_df) == ("vocabulary", 2)
    two = compose_cfg("model=two_stage", "model.estimator.author_model.min_df=4").model.estimator
    assert (two.author_model.min_df, two.conversation_model.min_df) == (4, 2)


def test_baselines_experiment_tracks_any_model_with_the_baselines(compose_cfg: ComposeFn) -> None:
    cfg = compose_cfg("experiment=baselines", "model=tfidf_svm")
    assert cfg.tracking.experiment_name == "grooming-detect-baselines"
    assert cfg.model.name == "tfidf_svm"
    assert compose_cfg("experiment=baselines").model.name == "tfidf_logreg"


def test_generator_defaults_are_the_config_file(compose_cfg: ComposeFn) -> None:
    from grooming_detect.data.synthetic import GeneratorSettings, settings_from_config

    from_config = settings_from_config(compose_cfg().data.generator)
    assert GeneratorSettings() == from_config
    assert GeneratorSettings().fingerprint() == from_config.fingerprint()


EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_a_named_experiment_keeps_its_own_latest(compose_cfg: ComposeFn, experiment: str) -> None:
    """A run of another experiment never repoints `outputs/<data>/<model>/latest`, the folder
    the README's scoring command scores with."""
    default = compose_cfg()
    cfg = compose_cfg(f"experiment={experiment}")
    assert cfg.paths.run_dir != default.paths.run_dir
    assert str(cfg.tracking.experiment_name) in str(cfg.paths.run_dir)


def _composition_error(compose_cfg: ComposeFn, *overrides: str) -> str:
    """Hydra's message (with its cause's) for overrides that must fail at composition."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as caught:
        compose_cfg(*overrides)
    return f"{caught.value} {caught.value.__cause__ or ''}"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("evaluate.bootstrap.n_resamples=abc", "evaluate.bootstrap.n_resamples"),
        ("evaluate.top_k=1.5", "evaluate.top_k"),
        ("seed=abc", "seed"),
        ("progress=maybe", "progress"),
        ("stages=data", "stages"),
        ("data.generator.difficulty=hard", "data.generator.difficulty"),
        ("data.split_tolerance=[0.1]", "data.split_tolerance"),
        ("early.window=wide", "early.window"),
        ("decision.threshold_min_precision=high", "decision.threshold_min_precision"),
        ("model.imbalance.negatives_per_positive=many", "model.imbalance.negatives_per_positive"),
        ("decision.calibration=null", "decision.calibration"),
        ("decision.folds=many", "decision.folds"),
        ("tracking.connect_timeout_s=soon", "tracking.connect_timeout_s"),
        ("report.publish_dir=[a,b]", "report.publish_dir"),
    ],
)
def test_a_wrong_type_fails_at_composition_naming_the_key(
    compose_cfg: ComposeFn, override: str, key: str
) -> None:
    message = _composition_error(compose_cfg, override)
    assert key.rsplit(".", 1)[-1] in message and override in message, message


@pytest.mark.parametrize(
    "override",
    [
        "evaluate.bootstrap.n_resample=5",
        "evaluate.bootstrp.n_resamples=5",
        "early.windw=5",
        "data.generator.difficuly=0.5",
        "model.calibraton=sigmoid",
        "data.split_tolerence=0.2",
        "sede=1",
    ],
)
def test_a_typo_in_an_override_key_fails_at_composition(
    compose_cfg: ComposeFn, override: str
) -> None:
    message = _composition_error(compose_cfg, override)
    assert override.split("=")[0].rsplit(".", 1)[-1] in message, message


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+evaluate.bootstrap.n_resample=5",
            r"evaluate\.bootstrap: unknown key\(s\) \['n_resample'\]",
        ),
        ("+data.split_tolerence=0.2", r"data: unknown key\(s\) \['split_tolerence'\]"),
        ("+early.windw=5", r"early: unknown key\(s\) \['windw'\]"),
    ],
)
def test_a_key_added_with_plus_outside_the_schema_fails_at_start(
    compose_cfg: ComposeFn, override: str, message: str
) -> None:
    # Hydra lets `+` add a key to any node; validation names the one the schema lacks.
    with pytest.raises(ConfigError, match=message):
        validate_config(compose_cfg(override))


def test_scale_on_another_data_source_fails_at_composition(compose_cfg: ComposeFn) -> None:
    message = _composition_error(compose_cfg, "data=pan12", "data.root=/x", "scale=tiny")
    assert "generator" in message and "Pan12DataConfig" in message, message


def _bounded_keys() -> list[tuple[str, str, str]]:
    """(data option, key, an out-of-range value) for every ranged field of the schema."""
    import dataclasses

    from grooming_detect.conf_schema import Bounds

    def walk(schema: type, prefix: str) -> list[tuple[str, str]]:
        found = []
        for spec in dataclasses.fields(schema):
            if "bounds" in spec.metadata:
                bounds: Bounds = spec.metadata["bounds"]
                whole = str(spec.type).startswith("int")
                low = bounds.low
                bad = (low if bounds.strict else low - 1) if low is not None else bounds.high + 1
                found.append((f"{prefix}.{spec.name}", str(int(bad) if whole else bad)))
            elif isinstance(spec.type, str) and spec.type.endswith("Config"):
                import grooming_detect.conf_schema as schemas

                found += walk(getattr(schemas, spec.type), f"{prefix}.{spec.name}")
        return found

    cases = []
    for group, schema in (
        ("evaluate", RootConfig),
        ("early", RootConfig),
        ("tracking", RootConfig),
        ("decision", RootConfig),
        ("model", ModelConfig),
        ("data", SyntheticDataConfig),
        ("data", ChatlogDataConfig),
    ):
        if schema is RootConfig:
            import grooming_detect.conf_schema as schemas

            field = {f.name: f for f in dataclasses.fields(RootConfig)}[group]
            schema = getattr(schemas, str(field.type))
        data = "chatlog" if schema is ChatlogDataConfig else "synthetic"
        cases += [(data, key, value) for key, value in walk(schema, group)]
    return sorted(set(cases))


BOUNDED = _bounded_keys()


@pytest.mark.parametrize(("data", "key", "value"), BOUNDED, ids=[c[1] for c in BOUNDED])
def test_every_ranged_key_is_checked_at_start_naming_the_key(
    compose_cfg: ComposeFn, tmp_path: Path, data: str, key: str, value: str
) -> None:
    extra = [f"data.path={tmp_path}/chat.csv"] if data == "chatlog" else []
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: .*; expected "):
        validate_config(compose_cfg(f"data={data}", *extra, f"{key}={value}"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stages=[train,report]"], r"^stages: .*add evaluate"),
        (["decision.folds=null"], r"^decision\.folds: None; decision=crossfit needs"),
        (["early.enabled=true"], r"^decision=crossfit .* early\.enabled"),
        (["early.train_on_prefixes=2"], r"^decision=crossfit .* early\.train_on_prefixes"),
        (
            ["decision=holdout", "early.enabled=true", "evaluate.splits=[test]"],
            r"^early\.threshold=tuned .* add validation to evaluate\.splits",
        ),
        (
            ["decision=holdout", "early.enabled=true", "early.skepticism=3", "early.patience=2"],
            r"^early\.patience=2 and early\.skepticism=3 are two warning policies .* set "
            r"early\.patience=1 to use skepticism, or early\.skepticism=null",
        ),
        (
            ["decision=holdout", "early.enabled=true", "early.skepticism=11"],
            r"^early\.skepticism 11: expected 1 to 10",
        ),
        (
            ["decision=holdout", "early.enabled=true", "early.penalty_p=fast"],
            r"^early\.penalty_p 'fast': expected null .*'espd'",
        ),
        (
            ["evaluate.audit.cue_ablation=true", "evaluate.splits=[validation]"],
            r"^evaluate\.benign_sets and evaluate\.audit .* add test to evaluate\.splits",
        ),
        (["model=transformer", "decision=crossfit"], r"^decision=crossfit .* validation itself"),
    ],
)
def test_every_cross_field_rule_fails_naming_the_keys(
    compose_cfg: ComposeFn, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(compose_cfg(*overrides))


def test_factory_defaults_are_the_config_files() -> None:
    """The factories' keyword defaults (for direct calls) equal the shared config blocks."""
    from dataclasses import asdict

    from grooming_detect.models.baselines import BoostingSettings, TfidfSettings

    tfidf = _tfidf_block()
    assert {k: v for k, v in asdict(TfidfSettings()).items() if k in tfidf} == {
        **tfidf,
        "word_ngram_range": (1, 2),
        "char_ngram_range": (2, 5),
    }
    assert set(asdict(TfidfSettings())) - set(tfidf) == {"max_features"}
    raw = OmegaConf.load(config_dir() / "model" / "boosting" / "default.yaml")
    boosting = {k: v for k, v in OmegaConf.to_container(raw).items() if k != "_target_"}
    assert {**asdict(BoostingSettings()), "random_state": "${seed}"} == boosting


def test_decision_is_its_own_group_that_a_model_or_experiment_may_pick(
    compose_cfg: ComposeFn,
) -> None:
    """The estimator (model/) and how its calibrator and threshold are fitted (decision/) are
    separate choices; the transformer and experiment=early pick holdout, the command line wins."""
    assert compose_cfg().decision.name == "crossfit"
    assert compose_cfg().decision.folds == 5
    assert "calibration" not in compose_cfg().model and "selection" not in compose_cfg().model
    transformer = compose_cfg("model=transformer").decision
    assert (transformer.name, transformer.calibration) == ("holdout", "temperature")
    assert compose_cfg("experiment=early").decision.name == "holdout"
    assert compose_cfg("decision=holdout").decision.folds is None
    chosen = compose_cfg("model=transformer", "decision=crossfit").decision
    assert (chosen.name, chosen.calibration) == ("crossfit", "sigmoid")
    assert compose_cfg(
        "model=transformer", "decision.calibration=isotonic"
    ).decision.calibration == ("isotonic")


def test_a_typo_in_a_config_file_fails_at_composition(tmp_path: Path) -> None:
    """The schema checks the YAML files too, not only the command line."""
    import shutil

    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    conf = tmp_path / "conf"
    shutil.copytree(config_dir(), conf)
    (conf / "experiment" / "typo.yaml").write_text(
        "# @package _global_\nevaluate:\n  bootstrap:\n    n_resample: 10\n", encoding="utf-8"
    )
    with (
        initialize_config_dir(config_dir=str(conf), version_base="1.3"),
        pytest.raises(ConfigCompositionException) as caught,
    ):
        compose(config_name="config", overrides=["experiment=typo"])
    message = f"{caught.value} {caught.value.__cause__}"
    assert "n_resample" in message and "BootstrapConfig" in message, message
