"""Early validation of a composed config: every value checked before any work, with the key at
fault and what was expected (Hydra already rejects keys that do not exist)."""

from __future__ import annotations

from collections.abc import Iterable

from omegaconf import DictConfig, OmegaConf

from grooming_detect.config import DATA_SOURCES, STAGES, ConfigError, config_dir
from grooming_detect.io import unwritable_reason

#: Every key of the composed config's top level (a `+key=...` override adds an unknown one).
TOP_LEVEL_KEYS = frozenset(
    {
        "corpus_seed",
        "data",
        "early",
        "evaluate",
        "features",
        "model",
        "paths",
        "progress",
        "report",
        "seed",
        "stages",
        "tracking",
    }
)


def validate_config(cfg: DictConfig) -> None:
    """Fail at start, with the key at fault, instead of after hours of work.

    Hydra already rejects overrides of keys that do not exist; this checks the values, group by
    group, in this order."""
    stages = list(cfg.stages)
    _check_stages(stages)
    _check_paths(cfg)
    if "train" in stages and "report" in stages and "evaluate" not in stages:
        raise ConfigError(
            f"stages: {stages} would report on an older evaluation than the model it trains; "
            "add evaluate"
        )
    _check_data(cfg)
    _check_split(cfg)
    unknown_keys = sorted(set(map(str, cfg.keys())) - TOP_LEVEL_KEYS)
    if unknown_keys:
        raise ConfigError(
            f"unknown top-level key(s) {unknown_keys} (from a +key=value override?); "
            f"expected {sorted(TOP_LEVEL_KEYS)}"
        )
    if "train" in stages:
        _check_model_options(cfg)
    if "evaluate" in stages:
        _check_lines(cfg)
    check_capabilities(cfg)
    _check_run_settings(cfg)
    if "evaluate" in stages:
        _check_evaluate_numbers(cfg)
    if "train" in stages:
        _check_estimator(cfg)
    _check_message_limits(cfg)
    if "evaluate" in stages:
        _check_audit(cfg)
    _check_early(cfg)
    bad_splits = [s for s in cfg.evaluate.splits if s not in ("validation", "test")]
    if bad_splits:
        raise ConfigError(f"evaluate.splits: {bad_splits}; expected validation and/or test")


def _whole(key: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: {value!r}; expected a whole number >= {minimum}")


def _check_evaluate_numbers(cfg: DictConfig) -> None:
    """The evaluate stage's counts, bins and interval settings, checked before any work (a
    confidence of 2 would otherwise fail after training, and a negative top_k would silently
    write no error table)."""
    evaluate = cfg.evaluate
    confidence = evaluate.bootstrap.confidence
    if isinstance(confidence, bool) or not isinstance(confidence, float | int):
        raise ConfigError(f"evaluate.bootstrap.confidence: {confidence!r}; expected a number")
    if not 0 < float(confidence) < 1:
        raise ConfigError(
            f"evaluate.bootstrap.confidence: {confidence}; expected a level strictly between 0 "
            "and 1, e.g. 0.95"
        )
    _whole("evaluate.bootstrap.n_resamples", evaluate.bootstrap.n_resamples, 1)
    _whole("evaluate.bootstrap.seed", evaluate.bootstrap.seed, 0)
    _whole("evaluate.ece_bins", evaluate.ece_bins, 1)
    _whole("evaluate.reliability_bins", evaluate.reliability_bins, 1)
    _whole("evaluate.top_k", evaluate.top_k, 0)
    _whole("evaluate.min_positives", evaluate.min_positives, 0)


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


#: Generator settings that are shares or probabilities, in [0, 1].
GENERATOR_SHARES = (
    "predator_share",
    "hard_negative_share",
    "difficulty",
    "label_noise",
    "test_label_noise",
    "monologue_share",
    "multiparty_share",
    "surface_variation",
    "quirk_rate",
    "benign_holdout_share",
)


def _check_data(cfg: DictConfig) -> None:
    """The data source, what it needs (a root, a path), split fractions and generator shares."""
    if cfg.data.source not in DATA_SOURCES:
        raise ConfigError(f"data.source: {cfg.data.source!r} is not one of {list(DATA_SOURCES)}")
    if cfg.data.source != "synthetic" and "generator" in cfg.data:
        raise ConfigError(
            "scale=... sets synthetic-corpus sizes and only applies to data=synthetic "
            f"(data.source is {cfg.data.source!r})"
        )
    if cfg.data.source == "pan12" and OmegaConf.is_missing(cfg.data, "root"):
        raise ConfigError("data=pan12 needs data.root=/path/to/the/PAN-2012/download")
    if cfg.data.source == "chatlog" and OmegaConf.is_missing(cfg.data, "path"):
        raise ConfigError("data=chatlog needs data.path=/path/to/messages.csv (or .jsonl)")
    # A path that exists must be of the right kind before anything opens it: a FIFO or a device
    # (/dev/zero) would be read without end. (A missing one is the data stage's to report.)
    from pathlib import Path

    expected_kinds = {"path": "file", "predator_ids": "file", "root": "directory"}
    for key, kind in expected_kinds.items():
        value = cfg.data.get(key) if not OmegaConf.is_missing(cfg.data, key) else None
        if value in (None, ""):
            continue
        path = Path(str(value)).expanduser()
        if path.exists() and not (path.is_dir() if kind == "directory" else path.is_file()):
            what = "regular file" if kind == "file" else kind
            raise ConfigError(
                f"data.{key}: {path} is not a {what}; expected a {kind}"
                + (" (a device or a pipe cannot be read as one)" if kind == "file" else "")
            )
    for key in ("validation_fraction", "test_fraction"):
        if key in cfg.data and not 0.0 < float(cfg.data[key]) < 1.0:
            raise ConfigError(f"data.{key}: {cfg.data[key]} must lie strictly between 0 and 1")
    if "generator" in cfg.data:
        for key in GENERATOR_SHARES:
            value = float(cfg.data.generator[key])
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"data.generator.{key}: {value} must lie in [0, 1]")


def _check_split(cfg: DictConfig) -> None:
    """``data.split_tolerance`` (a number in [0, 1]) and ``data.split_override`` (null or one of
    `data.splits.SPLIT_OVERRIDES`)."""
    from grooming_detect.data.splits import SPLIT_OVERRIDES

    tolerance = cfg.data.get("split_tolerance", 0.1)
    if not _is_number(tolerance) or not 0.0 <= float(tolerance) <= 1.0:
        raise ConfigError(f"data.split_tolerance: {tolerance!r}; expected a number in [0, 1]")
    override = cfg.data.get("split_override")
    if override is not None and override not in SPLIT_OVERRIDES:
        raise ConfigError(
            f"data.split_override: {override!r}; expected null (whole connected components) "
            f"or one of {list(SPLIT_OVERRIDES)}"
        )


def _check_run_settings(cfg: DictConfig) -> None:
    """``progress``, ``seed`` and ``corpus_seed``."""
    shown = cfg.get("progress", True)
    if not isinstance(shown, bool):
        raise ConfigError(f"progress: {shown!r}; expected true or false")
    for key in ("seed", "corpus_seed"):
        seed = cfg.get(key, 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"{key}: {seed!r}; expected an integer")


def _check_message_limits(cfg: DictConfig) -> None:
    """``data.long_messages`` and ``data.max_message_chars``."""
    if cfg.data.get("long_messages", "error") not in ("error", "truncate"):
        raise ConfigError(
            f"data.long_messages: {cfg.data.long_messages!r}; expected 'error' or 'truncate'"
        )
    limit = cfg.data.get("max_message_chars")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"data.max_message_chars: {limit!r}; expected a positive integer or null")


def _check_audit(cfg: DictConfig) -> None:
    """Benign sets and the shortcut audit (they compare with the test split)."""
    from grooming_detect.evaluation.audit import BenignSetError, parse_benign_sets

    try:
        parse_benign_sets(OmegaConf.to_container(cfg.evaluate.benign_sets, resolve=True))
    except BenignSetError as error:
        raise ConfigError(str(error)) from None
    for key in ("cue_ablation", "source_probe"):
        if not isinstance(cfg.evaluate.audit[key], bool):
            raise ConfigError(f"evaluate.audit.{key}: expected true or false")
    audited = bool(cfg.evaluate.benign_sets) or any(cfg.evaluate.audit.values())
    if audited and "test" not in cfg.evaluate.splits:
        raise ConfigError(
            "evaluate.benign_sets and evaluate.audit compare with the test split; add test "
            "to evaluate.splits"
        )


def _check_early(cfg: DictConfig) -> None:
    """The ``early`` settings (when early detection is on) and ``early.train_on_prefixes``."""
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
    prefixes = cfg.get("early", {}).get("train_on_prefixes", 0)
    if isinstance(prefixes, bool) or not isinstance(prefixes, int) or prefixes < 0:
        raise ConfigError(f"early.train_on_prefixes: {prefixes!r}; expected a whole number >= 0")


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
                "'transformer' extra: pip install 'grooming-detect[transformer]' (make install "
                "installs it, with the CPU build of torch)"
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


def _check_lines(cfg: DictConfig) -> None:
    """``evaluate.line_rule`` (a rule of `evaluation.lines`) and ``evaluate.line_threshold``
    (``tuned`` or a number in [0, 1])."""
    from grooming_detect.evaluation.lines import LINE_RULES, parse_line_threshold

    _check_choice("evaluate.line_rule", cfg.evaluate.get("line_rule"), LINE_RULES)
    try:
        parse_line_threshold(cfg.evaluate.get("line_threshold"))
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _check_choice(key: str, value: object, allowed: Iterable[str]) -> None:
    """Refuse a value of an enumerated option, naming the key, the value and the choices."""
    choices = list(allowed)
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{key}: {value!r}; expected one of {choices}")


def _check_model_options(cfg: DictConfig) -> None:
    """The train stage's enumerated and bounded `model.*` options (the modules that use them
    hold the choices)."""
    from grooming_detect.models.decision import METHODS, THRESHOLD_OBJECTIVES
    from grooming_detect.models.units import AGGREGATES

    model = cfg.get("model")
    if model is None:
        return
    _check_choice("model.calibration", model.get("calibration"), METHODS)
    _check_choice("model.aggregate", model.get("aggregate"), AGGREGATES)
    _check_choice(
        "model.threshold_objective", model.get("threshold_objective"), THRESHOLD_OBJECTIVES
    )
    precision = model.get("threshold_min_precision")
    if not _is_number(precision) or not 0.0 <= float(precision) <= 1.0:
        raise ConfigError(
            f"model.threshold_min_precision: {precision!r}; expected a number in [0, 1]"
        )
    ratio = (model.get("imbalance") or {}).get("negatives_per_positive")
    if ratio is not None and (not _is_number(ratio) or not float(ratio) > 0.0):
        raise ConfigError(
            f"model.imbalance.negatives_per_positive: {ratio!r}; expected null (keep every "
            "negative) or a positive number"
        )
    _check_selection(cfg)


def _check_selection(cfg: DictConfig) -> None:
    """``model.selection`` and ``model.cv.folds``; crossfit trains on validation, so nothing
    that tunes on validation's out-of-sample scores (the transformer's own model selection,
    early detection, prefix training) may use it."""
    from grooming_detect.models.crossfit import SELECTIONS

    selection = cfg.model.get("selection") or "holdout"
    _check_choice("model.selection", selection, SELECTIONS)
    if selection != "crossfit":
        return
    folds = (cfg.model.get("cv") or {}).get("folds")
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
        raise ConfigError(f"model.cv.folds: {folds!r}; expected a whole number >= 2")
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
                f"model.selection=crossfit trains the final model on train + validation, but "
                f"{reason}; set model.selection=holdout"
            )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
