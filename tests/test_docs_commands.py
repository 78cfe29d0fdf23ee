"""Every command in a `bash` block of the README, the documentation pages and examples/README.md
is run as written: by this module (the cheap ones), or by CI's `.ci/run` (the journeys' commands
on the synthetic corpus and the example logs; each also names the test that covers the same path
on a smaller input), or the block says why not (`# Not run by the
tests: …` on its first line: the real PAN-2012 corpus, a cluster, a GPU machine, your own file).

A new command in a page fails `test_every_documented_command_is_accounted_for` until it is run
here, added to `.ci/run` as written, or its block is marked.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "examples" / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
]
FENCE = re.compile(r"^```(?P<lang>bash|sh|shell|console)[^\n]*\n(?P<body>.*?)^```", re.S | re.M)
#: The first line of a block whose commands cannot run here, with the reason after the colon.
NOT_RUN = re.compile(r"^# Not run( as written)? by the tests: \S")
CI_SCRIPT = ROOT / ".ci" / "run"

#: Commands this module runs itself, as written, from the project root (see the tests below).
RUN_HERE = {
    "make help",
    ".venv/bin/grooming-detect --help",
    ".venv/bin/grooming-detect-pan-eval --predators run-predators.txt --truth-predators "
    "pan12-sexual-predator-identification-groundtruth-problem1.txt --lines run-lines.txt "
    "--truth-lines pan12-sexual-predator-identification-groundtruth-problem2.txt",
}

#: Commands CI runs as written (each is a line of .ci/run, checked below), with the test of the
#: suite that covers the same path on a smaller input (None: the command is the suite itself).
RUN_BY_CI: dict[str, str | None] = {
    "make run": "tests/test_cli.py::test_smoke_run_says_where_the_results_are",
    "make test": None,
    'make run ARGS="data=chatlog data.path=examples/chatlog.csv"': (
        "tests/test_examples.py::test_the_readme_chat_log_command_runs_and_records_its_fallbacks"
    ),
    'make run ARGS="experiment=early"': (
        "tests/evaluation/test_early.py::test_early_experiment_logs_measures_figures_and_card"
    ),
    ".venv/bin/grooming-detect-score examples/benign.csv --model "
    "outputs/synthetic/tfidf_logreg/latest/model --out scores/": (
        "tests/scoring/test_scoring.py::test_unlabelled_chat_log"
    ),
    ".venv/bin/grooming-detect-score examples/chatlog.csv --model "
    "outputs/synthetic/tfidf_logreg/latest/model --stream --out stream/": (
        "tests/scoring/test_streaming.py::test_stream_command_writes_one_line_per_message"
    ),
    ".venv/bin/grooming-detect tracking.register=true": (
        "tests/scoring/test_serving.py::test_pyfunc_score_command_and_evaluate_agree_and_register"
    ),
    ".venv/bin/grooming-detect-export --onnx outputs/synthetic/tfidf_logreg/latest/model "
    "--out risk.onnx": (
        "tests/scoring/test_onnx_export.py::test_cli_exports_and_refuses_in_one_line"
    ),
    ".venv/bin/grooming-detect-export --onnx outputs/synthetic/tfidf_logreg/latest/model "
    "--out risk-int8.onnx --int8": (
        "tests/scoring/test_onnx_export.py::test_int8_export_within_its_tolerance_and_smaller"
    ),
    ".venv/bin/python scripts/make_examples.py": (
        "tests/test_examples.py::test_committed_examples_are_what_the_script_writes"
    ),
}

#: Pages other work owns (docs/spark.md): their synopses and cluster commands, which need Spark
#: on a cluster or stand for a family of invocations, are listed here until the page marks them.
OWNED_ELSEWHERE = {
    "grooming-detect-score LOGS --engine spark --model MODEL --out OUT [--spark-master local[4]] "
    "[--input-format csv|jsonl|parquet]": "a synopsis (placeholders); tests/scoring/test_spark.py "
    "runs the engine",
    "grooming-detect-score INCOMING_DIR --engine spark --stream --model MODEL --out OUT "
    "[--threshold model|early|X] [--patience N] [--idle-timeout SECONDS] [--available-now]": "a "
    "synopsis (placeholders); tests/scoring/test_spark.py runs the stream",
    "python -m venv env && env/bin/pip install 'grooming-detect[spark]' venv-pack && "
    "env/bin/venv-pack -o env.tar.gz": "packs an environment for a YARN cluster",
    "PYSPARK_PYTHON=./env/bin/python spark-submit --master yarn --deploy-mode cluster --archives "
    "env.tar.gz#env --conf spark.executorEnv.MLFLOW_TRACKING_URI=https://mlflow.internal "
    "env/bin/grooming-detect-score s3a://chats/2026-12-07/ --input-format parquet --engine spark "
    "--model models:/grooming-detect-chat-tfidf_logreg@production --out "
    "s3a://trust/scores/2026-12-07": "needs a YARN cluster, S3 and a tracking server",
}


def _strip_comment(line: str) -> str:
    """`line` without a trailing shell comment (a `#` after whitespace, outside quotes)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def _commands(body: str) -> list[str]:
    """The commands of one block, each on one line: continuation lines joined, lines joined
    while a quote is open, comments dropped."""
    commands: list[str] = []
    pending = ""
    for raw in body.splitlines():
        line = raw.strip() if pending else _strip_comment(raw).strip()
        if not pending and not line:
            continue
        pending = f"{pending} {line}".strip() if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        try:
            shlex.split(pending)
        except ValueError:  # an open quote: the command goes on
            continue
        commands.append(pending)
        pending = ""
    assert not pending, f"unterminated command: {pending}"
    return commands


def documented_commands() -> dict[str, list[str]]:
    """Every command of a bash block not marked `# Not run …`, with the documents holding it."""
    found: dict[str, list[str]] = {}
    for document in DOCUMENTS:
        for block in FENCE.finditer(document.read_text(encoding="utf-8")):
            body = block["body"]
            if NOT_RUN.match(body.lstrip()):
                continue
            for command in _commands(body):
                found.setdefault(command, []).append(str(document.relative_to(ROOT)))
    return found


def unrun_blocks() -> list[tuple[str, str]]:
    """(document, first line) of every block marked as not run, for the report."""
    marked = []
    for document in DOCUMENTS:
        for block in FENCE.finditer(document.read_text(encoding="utf-8")):
            first = block["body"].lstrip().splitlines()[0]
            if NOT_RUN.match(first):
                marked.append((str(document.relative_to(ROOT)), first))
    return marked


def test_the_extraction_joins_continuations_quotes_and_drops_comments() -> None:
    body = (
        "make run    # runs\n"
        "# a comment line\n"
        "tool --a x \\\n    --b y\n"
        "curl -d '{\"a\": [\n  1]}'\n"
        "echo '# not a comment'\n"
    )
    assert _commands(body) == [
        "make run",
        "tool --a x --b y",
        "curl -d '{\"a\": [ 1]}'",
        "echo '# not a comment'",
    ]


def test_every_documented_command_is_accounted_for() -> None:
    known = RUN_HERE | set(RUN_BY_CI) | set(OWNED_ELSEWHERE)
    unaccounted = {c: where for c, where in documented_commands().items() if c not in known}
    assert not unaccounted, (
        "commands in bash blocks that nothing runs as written: run them in this module, add "
        "them to .ci/run (and RUN_BY_CI), or mark the block '# Not run by the tests: <reason>': "
        f"{unaccounted}"
    )


def test_every_listed_command_is_still_documented() -> None:
    documented = documented_commands()
    listed = RUN_HERE | set(RUN_BY_CI) | set(OWNED_ELSEWHERE)
    assert not listed - set(documented), "listed here but in no page: remove them"


def test_ci_runs_its_commands_as_written() -> None:
    lines = [line.strip() for line in CI_SCRIPT.read_text(encoding="utf-8").splitlines()]
    missing = set(RUN_BY_CI) - set(lines)
    assert not missing, f"not a line of .ci/run: {missing}"
    # The docs build (with its link check) runs, and regenerated examples must equal the
    # committed ones.
    assert "make docs-build" in lines
    assert lines.index("git diff --exit-code -- examples/") > lines.index(
        ".venv/bin/python scripts/make_examples.py"
    )


@pytest.mark.parametrize("command", sorted(c for c, node in RUN_BY_CI.items() if node))
def test_the_covering_test_exists(command: str) -> None:
    path, name = str(RUN_BY_CI[command]).split("::")
    source = (ROOT / path).read_text(encoding="utf-8")
    assert re.search(rf"^def {re.escape(name)}\(", source, re.M), f"no test {path}::{name}"


def test_marked_blocks_say_why() -> None:
    for document, first in unrun_blocks():
        reason = first.split(":", 1)[1].strip()
        assert len(reason) > 10, (document, first)


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.pipeline
def test_make_help_lists_the_documented_targets() -> None:
    done = _run("make help", ROOT)
    assert done.returncode == 0, done.stderr
    for target in ("run", "test", "test-slow", "docs", "docs-build", "ui", "bench-spark"):
        assert re.search(rf"^  {re.escape(target)}\s", done.stdout, re.M), target


@pytest.mark.pipeline
def test_help_of_the_console_script_runs_as_written() -> None:
    done = _run(".venv/bin/grooming-detect --help", ROOT)
    assert done.returncode == 0, done.stderr
    assert "== Configuration groups ==" in done.stdout


@pytest.mark.pipeline
def test_the_pan_scorer_command_runs_as_written(tmp_path: Path) -> None:
    """The documented scorer call, on a run and truth files of those names."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    files = {
        "run-predators.txt": "p1\np9\n",
        "pan12-sexual-predator-identification-groundtruth-problem1.txt": "p1\np2\n",
        "run-lines.txt": "c1\t1\nc1\t2\n",
        "pan12-sexual-predator-identification-groundtruth-problem2.txt": "c1\t1\nc2\t4\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (command,) = [c for c in RUN_HERE if "pan-eval" in c]
    documented = next(c for c in documented_commands() if "pan-eval" in c)
    assert documented == command
    done = _run(command, tmp_path)
    assert done.returncode == 0, done.stderr
    # One of two named predators is right, one of two truth ids found: 0.5 each.
    assert "0.5" in done.stdout
