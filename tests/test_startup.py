"""The command line answers without loading what it does not use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "mlflow", "skops", "pyspark")

CHECK = """
import json, os, sys
from hydra import compose, initialize_config_dir
import grooming_detect.cli
from grooming_detect.config import config_dir
from grooming_detect.validation import validate_config
overrides = ["paths.root=" + sys.argv[1], *filter(None, [os.environ.get("GD_MODEL")])]
with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
    cfg = compose(config_name="config", overrides=overrides)
validate_config(cfg)
print(json.dumps([name for name in sys.argv[2:] if name in sys.modules]))
"""


@pytest.mark.pipeline
@pytest.mark.parametrize("model", [None, "model=sentinel"], ids=["default", "sentinel"])
def test_importing_the_cli_and_validating_a_default_config_loads_no_heavy_library(
    tmp_path, model: str | None
):
    """`grooming-detect --help`, a typo or a wrong value is answered before torch,
    transformers, MLflow or skops is imported (each costs seconds on 2 cores); a model that
    embeds messages imports its encoder's libraries only when it embeds."""
    import os

    env = {**os.environ, **({"GD_MODEL": model} if model else {})}
    completed = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path), *HEAVY, "sentence_transformers"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.splitlines()[-1]) == []


@pytest.mark.pipeline
def test_the_scoring_command_needs_no_pyspark_until_a_spark_job_runs(tmp_path):
    """With pyspark not importable, ``grooming-detect-score`` imports (the Spark engine's module
    too: it imports pyspark inside functions only) and answers ``--engine spark`` with the
    install hint, exit status 2. (Where pyspark is installed, MLflow's ``mlflow.types.schema``
    imports it, about 0.1 s, whatever this package does.)"""
    check = (
        "import sys\n"
        "sys.modules['pyspark'] = None  # import pyspark raises ImportError\n"
        "from grooming_detect.scoring import cli, spark\n"
        "sys.exit(cli.main(['log.csv', '--model', 'm', '--out', sys.argv[1], "
        "'--engine', 'spark']))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", check, str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2, completed.stderr
    assert "pip install 'grooming-detect[spark]'" in completed.stderr
    assert "make java" in completed.stderr


SCORE = """
import csv, json, sys
heavy = sys.argv[4:]
from grooming_detect.scoring import cli
imported = [name for name in heavy if name in sys.modules]
with open(sys.argv[1], "w", newline="", encoding="utf-8") as handle:
    writer = csv.writer(handle)
    writer.writerow(["conversation_id", "author", "text"])
    writer.writerows(["c1", f"a{i % 2}", f"hello there, message number {i}"] for i in range(10))
status = cli.main([sys.argv[1], "--model", sys.argv[2], "--out", sys.argv[3]])
print(json.dumps([status, imported, [name for name in heavy if name in sys.modules]]))
"""


@pytest.mark.pipeline
def test_scoring_with_a_model_folder_loads_neither_mlflow_nor_torch(tmp_path, default_run):
    """``grooming-detect-score`` imports no heavy library, and scoring a chat log with a model
    folder (the default baseline's) imports skops only: MLflow is for ``runs:/`` and
    ``models:/`` URIs, torch and transformers for transformer models (skops' set-up of its
    trusted types would import torch through scikit-learn: `persistence._skops_io`)."""
    _, result, _ = default_run
    model = result.stages["train"].outputs["model_dir"]
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            SCORE,
            str(tmp_path / "ten.csv"),
            str(model),
            str(tmp_path / "scores"),
            *HEAVY,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    status, on_import, after_scoring = json.loads(completed.stdout.splitlines()[-1])
    assert status == 0, completed.stderr
    assert on_import == []
    assert after_scoring == ["skops"]
    assert (tmp_path / "scores" / "author_scores.csv").is_file()


MISSING = """
import json, sys
from {module} import {entry}
try:
    code = {entry}({argv!r})
except SystemExit as exit_:
    code = exit_.code
print(json.dumps([code, [n for n in ("sklearn", "pandas", "mlflow", "torch") if n in sys.modules]]))
"""


@pytest.mark.pipeline
@pytest.mark.parametrize(
    ("module", "entry", "argv"),
    [
        (
            "grooming_detect.scoring.cli",
            "main",
            ["/no/such/log.csv", "--model", "/no/such/model", "--out", "OUT"],
        ),
    ],
    ids=["score"],
)
def test_a_missing_input_is_refused_before_scikit_learn_is_imported(
    tmp_path, capfd, module: str, entry: str, argv: list[str]
):
    """A missing input file is one line and exit status 2 before pandas, scikit-learn, MLflow
    or torch is imported (the model is not even loaded)."""
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    completed = subprocess.run(
        [sys.executable, "-c", MISSING.format(module=module, entry=entry, argv=argv)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    code, loaded = json.loads(completed.stdout.splitlines()[-1])
    assert code == 2 and loaded == []
    assert "error: /no/such/log.csv: input file not found" in completed.stderr


@pytest.mark.pipeline
def test_a_missing_chat_log_is_refused_before_the_settings_checks_import_scikit_learn(tmp_path):
    """`grooming-detect data=chatlog data.path=<missing>`: one line, exit 2, in under a second
    of imports (no pandas, scikit-learn, MLflow, torch)."""
    script = (
        "import json, sys\n"
        "from grooming_detect import cli\n"
        f"sys.argv = ['grooming-detect', 'paths.root={tmp_path}', 'data=chatlog', "
        "'data.path=/no/such/log.csv']\n"
        "try:\n    cli.run()\nexcept SystemExit as exit_:\n    code = exit_.code\n"
        "print(json.dumps([code, [n for n in ('sklearn', 'pandas', 'mlflow', 'torch') "
        "if n in sys.modules]]))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    code, loaded = json.loads(completed.stdout.splitlines()[-1])
    assert code == 2 and loaded == [], completed.stderr
    assert "/no/such/log.csv: chat-log input not found" in completed.stderr


@pytest.mark.pipeline
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (None, "data=chatlog needs data.path="),
        ("data.path=/tmp", "is not a regular file"),
    ],
    ids=["no-path", "a-folder"],
)
def test_a_chat_log_setting_that_is_not_a_missing_file_is_left_to_the_settings_checks(
    tmp_path, override: str | None, expected: str
):
    """The early check refuses only a file that does not exist; no ``data.path`` or a folder
    get the settings' checks' one line (exit 2), never a traceback."""
    import os

    command = [
        str(Path(sys.executable).with_name("grooming-detect")),
        f"paths.root={tmp_path}",
        "data=chatlog",
        *([override] if override else []),
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ}
    )
    assert completed.returncode == 2, completed.stderr
    assert expected in completed.stderr and "Traceback" not in completed.stderr
