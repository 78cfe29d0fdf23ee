"""Early validation of a composed config, before any work, naming the key at fault.

Types, unknown keys and unset keys are the schema's (`grooming_detect.conf_schema`, checked by
Hydra at composition); ranges are the schema's field metadata, checked here by `check_ranges`.
What is left is what a schema cannot say: enumerated choices (the modules that use them hold
them), the rules that relate keys to each other, and the filesystem."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from grooming_detect.conf_schema import Bounds
from grooming_detect.config import DATA_SOURCES, STAGES, ConfigError, config_dir
from grooming_detect.errors import install_hint
from grooming_detect.io import unwritable_reason

#: The stage whose options a group holds: its keys are checked only when that stage runs.
GROUP_STAGE = {"model": "train", "decision": "train", "evaluate": "evaluate"}


def validate_config(cfg: DictConfig) -> None:
    """Fail at start, with the key at fault, instead of after hours of work."""
    stages = list(cfg.stages)
    _check_stages(stages)
    _check_paths(cfg)
    if "train" in stages and "report" in stages and "evaluate" not in stages:
        raise ConfigError(
            f"stages: {stages} would report on an older evaluation than the model it trains; "
            "add evaluate"
        )
    _check_unknown_keys(cfg)
    _check_data(cfg)
    for group in ("data", "early", "model", "decision", "evaluate", "tracking"):
        stage = GROUP_STAGE.get(group)
        if group in cfg and (stage is None or stage in stages):
            check_ranges(cfg[group], group)
    for key, allowed, stage in _choices():
        if stage is None or stage in stages:
            _check_choice(key, OmegaConf.select(cfg, key, default=None), allowed)
    if "evaluate" in stages:
        _check_line_threshold(cfg)
        _check_audit(cfg)
    check_capabilities(cfg)
    if "train" in stages:
        _check_selection(cfg)
        _check_estimator(cfg)
    _check_early(cfg)


def _choices() -> list[tuple[str, tuple[str | None, ...], str | None]]:
    """(key, allowed values, the stage that reads it or None: always) of every enumerated
    option; the modules that use them hold the choices."""
    from grooming_detect.data.splits import AUTO, SPLIT_OVERRIDES
    from grooming_detect.data.synthetic.markers import HELD_OUT
    from grooming_detect.evaluation.lines import LINE_RULES
    from grooming_detect.models.crossfit import SELECTIONS
    from grooming_detect.models.decision import METHODS, THRESHOLD_OBJECTIVES
    from grooming_detect.models.units import AGGREGATES

    return [
        ("data.source", DATA_SOURCES, None),
        ("data.split_override", (None, *SPLIT_OVERRIDES, AUTO), None),
        ("decision.fallback", (None, "holdout"), "train"),
        # chatlog only (absent, hence None, elsewhere)
        ("data.long_messages", (None, "error", "truncate"), None),
        # synthetic only
        ("data.generator.held_out_families", (None, *HELD_OUT), None),
        ("evaluate.splits", ("validation", "test"), "evaluate"),
        ("evaluate.line_rule", LINE_RULES, "evaluate"),
        ("model.aggregate", AGGREGATES, "train"),
        ("decision.name", SELECTIONS, "train"),
        ("decision.calibration", METHODS, "train"),
        ("decision.threshold_objective", THRESHOLD_OBJECTIVES, "train"),
    ]


def _check_choice(key: str, value: object, allowed: tuple[str | None, ...]) -> None:
    """Refuse a value (or any item of a list) outside `allowed`, naming the key and choices."""
    values = list(value) if isinstance(value, ListConfig) else [value]
    bad = [item for item in values if item not in allowed]
    if bad:
        shown = values if isinstance(value, ListConfig) else value
        choices = [("null" if choice is None else choice) for choice in allowed]
        raise ConfigError(f"{key}: {shown!r}; expected one of {choices}")


def check_ranges(node: Any, key: str) -> None:
    """Every numeric key of `node` (and its sub-nodes) within its schema's `Bounds`."""
    if not OmegaConf.is_dict(node):
        return
    schema = OmegaConf.get_type(node)
    fields = dataclasses.fields(schema) if dataclasses.is_dataclass(schema) else ()
    bounds = {f.name: f for f in fields if "bounds" in f.metadata}
    for name in node:
        if OmegaConf.is_missing(node, name):
            continue
        value = node[name]
        if OmegaConf.is_dict(value):
            check_ranges(value, f"{key}.{name}")
        elif name in bounds and value is not None:
            _check_bounds(f"{key}.{name}", value, bounds[name])


def _check_bounds(key: str, value: Any, spec: dataclasses.Field) -> None:
    bounds: Bounds = spec.metadata["bounds"]
    expected = bounds.expected(whole=isinstance(value, int), optional="None" in str(spec.type))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: {value!r}; expected {expected}")
    if not bounds.admits(value):
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        raise ConfigError(f"{key}: {shown}; expected {expected}")


def _check_unknown_keys(cfg: DictConfig, node: Any = None, key: str = "") -> None:
    """A ``+key=value`` override adds a key no schema has (Hydra lets ``+`` add to any node)."""
    node = cfg if node is None else node
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema):
        known = {f.name for f in dataclasses.fields(schema)}
        unknown = sorted(str(name) for name in node if name not in known)
        if unknown:
            where = f"{key}: unknown key(s)" if key else "unknown top-level key(s)"
            raise ConfigError(
                f"{where} {unknown} (from a +key=value override?); expected {sorted(known)}"
            )
    for name in node:
        if not OmegaConf.is_missing(node, name) and OmegaConf.is_dict(node[name]):
            _check_unknown_keys(cfg, node[name], f"{key}.{name}" if key else str(name))


def _check_stages(stages: list[str]) -> None:
    """Known stages, each once, in pipeline order."""
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown:
        raise ConfigError(
            f"stages: unknown stage(s) {unknown}; expected a subset of {list(STAGES)}"
        )
    if len(set(stages)) != len(stages):
        raise ConfigError(f"stages: {stages} lists a stage twice")
    order = [STAGES.index(stage) for stage in stages]
    if order != sorted(order):
        raise ConfigError(f"stages: {stages} is out of order; the order is {list(STAGES)}")


def _check_paths(cfg: DictConfig) -> None:
    """Every folder the run writes to can be written."""
    for key in ("data", "outputs", "logs"):
        reason = unwritable_reason(str(cfg.paths[key]))
        if reason:
            raise ConfigError(f"paths.{key}: {reason}; set paths.root or GROOMING_DETECT_ROOT")


def _check_data(cfg: DictConfig) -> None:
    """What the data source needs (a root, a path), and that a path names the right kind of
    thing: a FIFO or a device (/dev/zero) would be read without end. (A missing file is the
    data stage's to report.)"""
    if cfg.data.source == "pan12" and OmegaConf.is_missing(cfg.data, "root"):
        raise ConfigError("data=pan12 needs data.root=/path/to/the/PAN-2012/download")
    if cfg.data.source == "chatlog" and OmegaConf.is_missing(cfg.data, "path"):
        raise ConfigError("data=chatlog needs data.path=/path/to/messages.csv (or .jsonl)")
    for key, kind in {"path": "file", "predator_ids": "file", "root": "directory"}.items():
        value = cfg.data.get(key) if not OmegaConf.is_missing(cfg.data, key) else None
        path = Path(str(value)).expanduser() if value not in (None, "") else None
        wrong_kind = path and not (path.is_dir() if kind == "directory" else path.is_file())
        if path and path.exists() and wrong_kind:
            raise ConfigError(
                f"data.{key}: {path} is not a {'regular file' if kind == 'file' else kind}; "
                f"expected a {kind}"
                + (" (a device or a pipe cannot be read as one)" if kind == "file" else "")
            )


def _check_audit(cfg: DictConfig) -> None:
    """Benign sets and the shortcut audit (they compare with the test split)."""
    from grooming_detect.evaluation.audit import BenignSetError, parse_benign_sets

    try:
        parse_benign_sets(OmegaConf.to_container(cfg.evaluate.benign_sets, resolve=True))
    except BenignSetError as error:
        raise ConfigError(str(error)) from None
    audited = bool(cfg.evaluate.benign_sets) or any(cfg.evaluate.audit.values())
    if audited and "test" not in cfg.evaluate.splits:
        raise ConfigError(
            "evaluate.benign_sets and evaluate.audit compare with the test split; add test "
            "to evaluate.splits"
        )


def _check_early(cfg: DictConfig) -> None:
    """The ``early`` settings when early detection is on; a tuned threshold needs validation."""
    if "early" in cfg and cfg.early.enabled:
        from grooming_detect.evaluation.early import early_settings

        try:
            settings = early_settings(cfg.early)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if settings.threshold == "tuned" and "validation" not in cfg.evaluate.splits:
            raise ConfigError(
                "early.threshold=tuned tunes the warning threshold on validation; add validation "
                "to evaluate.splits or set early.threshold=model"
            )


def expected_label_level(cfg: DictConfig) -> str | None:
    """The label level the configured data will have (None: not known before reading it).
    Without the data stage, the tables already on disk decide (their manifest)."""
    from grooming_detect.stage import dataset_dir

    manifest = dataset_dir(cfg) / "manifest.json"
    if "data" not in cfg.stages and manifest.is_file():
        import json

        try:
            return str(json.loads(manifest.read_text(encoding="utf-8")).get("label_level"))
        except (OSError, ValueError):
            return None
    if cfg.data.source == "pan12" and cfg.data.get("filters", {}).get("vtpan", False):
        return "conversation"
    if cfg.data.source in ("pan12", "synthetic"):
        return "author"
    if cfg.data.source == "chatlog" and not OmegaConf.is_missing(cfg.data, "path"):
        from grooming_detect.data.chatlog import label_level_of

        return label_level_of(cfg.data.path, cfg.data.get("predator_ids"))
    return None


def models_supporting(level: str) -> list[str]:
    """The model configs (conf/model/*.yaml) that can train on data labelled per `level`."""
    from grooming_detect.models.units import supports

    names = []
    for path in sorted((config_dir() / "model").glob("*.yaml")):
        # Only the `input` node: the rest of a model file interpolates keys (${seed}) that exist
        # in the composed config alone.
        loaded = OmegaConf.load(path)
        setting = loaded.get("input") if isinstance(loaded, DictConfig) else None
        if OmegaConf.is_config(setting):
            setting = OmegaConf.to_container(setting)
        if supports(setting, level):
            names.append(path.stem)
    return names


def check_capabilities(cfg: DictConfig) -> None:
    """Refuse, before any work, a model that cannot train on the data's label level or whose
    optional dependencies are missing; name the models that would work, or the install."""
    from grooming_detect.models.units import supports

    model = cfg.get("model")
    if model is None:
        return
    stages = set(cfg.stages)
    target = str(model.get("estimator", {}).get("_target_", ""))
    if stages & {"train", "evaluate"} and target.startswith("grooming_detect.models.transformer"):
        import importlib.util

        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(
                f"model={model.name} needs {' and '.join(missing)}, from the optional "
                f"'transformer' extra: {install_hint('transformer')}; make install brings the "
                "CPU build of torch"
            )
    encoder = model.get("encoder")
    if stages & {"train", "evaluate"} and encoder is not None:
        import importlib.util

        missing = [
            m for m in ("torch", "sentence_transformers") if importlib.util.find_spec(m) is None
        ]
        if missing:
            raise ConfigError(
                f"model={model.name} embeds messages with a sentence encoder and needs "
                f"{' and '.join(missing)}, from the optional 'transformer' extra: "
                f"{install_hint('transformer')}"
            )
        path = encoder.get("path")
        if path is not None and not Path(str(path)).expanduser().is_dir():
            raise ConfigError(
                f"model.encoder.path={path}: no such folder; expected a sentence-transformers "
                "folder (null: the packaged all-MiniLM-L6-v2)"
            )
    if "train" not in stages:
        return
    setting = model.get("input")
    setting = OmegaConf.to_container(setting) if OmegaConf.is_config(setting) else setting
    _check_input(setting)
    level = expected_label_level(cfg)
    if level is not None and not supports(setting, level):
        raise ConfigError(
            f"model={model.name} cannot train on data labelled per {level} (model.input: "
            f"{setting}); models that can: {', '.join(models_supporting(level))}"
        )
    text_column = model.get("estimator", {}).get("text_column")
    if level is not None and text_column == "dialogue":
        from grooming_detect.models.units import resolve_input

        if resolve_input(setting, level) == "author":
            raise ConfigError(
                f"model={model.name}: text_column=dialogue needs conversation context, but "
                "model.input reads author rows; use model.input=author_conversation (or "
                "conversation on conversation labels), or model.estimator.text_column=text"
            )


def _check_line_threshold(cfg: DictConfig) -> None:
    """``evaluate.line_threshold``: ``tuned`` or a number in [0, 1] (no union type in OmegaConf)."""
    from grooming_detect.evaluation.lines import parse_line_threshold

    try:
        parse_line_threshold(cfg.evaluate.get("line_threshold"))
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _check_selection(cfg: DictConfig) -> None:
    """``decision=crossfit`` needs ``decision.folds`` and trains on validation, so nothing that
    tunes on validation's out-of-sample scores (the transformer's own model selection, early
    detection, prefix training) may use it."""
    if cfg.decision.name != "crossfit":
        return
    if cfg.decision.folds is None:
        raise ConfigError("decision.folds: None; decision=crossfit needs a whole number >= 2")
    early = cfg.get("early") or {}
    reasons = {
        "the estimator selects and stops on validation itself": "transformer"
        in str(cfg.model.estimator.get("_target_", "")).lower(),
        "early.enabled tunes the warning threshold on validation": bool(early.get("enabled")),
        "early.train_on_prefixes adds prefixes of train only": bool(early.get("train_on_prefixes")),
    }
    for reason, applies in reasons.items():
        if applies:
            raise ConfigError(
                f"decision=crossfit trains the final model on train + validation, but "
                f"{reason}; set decision=holdout"
            )


def _check_input(setting: object) -> None:
    """``model.input``: null, a view name, or a mapping from label level to a view name (or null:
    that level is not supported)."""
    from grooming_detect.models.units import INPUTS, UNITS

    expected = (
        f"expected null, a view name ({', '.join(INPUTS)}) or a mapping from label level "
        f"({', '.join(UNITS)}) to view name or null"
    )
    if setting is None or (isinstance(setting, str) and setting in INPUTS):
        return
    if not isinstance(setting, dict):
        raise ConfigError(f"model.input: {setting!r}; {expected}")
    for level, view in setting.items():
        if level not in UNITS:
            raise ConfigError(
                f"model.input: {setting!r}: {level!r} is not a label level; {expected}"
            )
        if not (view is None or (isinstance(view, str) and view in INPUTS)):
            raise ConfigError(f"model.input.{level}: {view!r} is not a view; {expected}")


def _check_estimator(cfg: DictConfig) -> None:
    """Build the configured estimator (cheap: constructors only store arguments) and check the
    scikit-learn parameter constraints, so `model.estimator.C=abc` fails at start, naming the
    key, not after the data and features stages."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    if "estimator" not in cfg.get("model", {}):
        return
    try:
        estimator = instantiate(cfg.model.estimator)
    except InstantiationException as error:
        raise ConfigError(f"model.estimator: {error.__cause__ or error}") from None
    for name, step in _steps(estimator):
        validate = getattr(step, "_validate_params", None)
        if validate is None or not hasattr(step, "_parameter_constraints"):
            continue
        try:
            validate()
        except (TypeError, ValueError) as error:
            raise ConfigError(f"model.estimator ({name}): {error}") from None


def _steps(estimator: object, name: str = "estimator") -> list[tuple[str, object]]:
    """The estimator and every nested step or sub-estimator, with a readable name."""
    found = [(name, estimator)]
    for attribute in ("steps", "transformers"):
        for entry in getattr(estimator, attribute, None) or []:
            found += _steps(entry[1], f"{name}.{entry[0]}")
    for attribute in ("estimator", "conversation_model", "author_model"):
        inner = getattr(estimator, attribute, None)
        if inner is not None and hasattr(inner, "get_params"):
            found += _steps(inner, f"{name}.{attribute}")
    return found
