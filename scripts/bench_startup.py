"""How long the commands take to answer (a script, not a test; ``make bench-startup``).

Each command runs `--runs` times in a fresh process; the median and the spread of the wall times
are printed, beside the exit status:

* ``grooming-detect --help``;
* a misspelt override (``modle=tfidf_svm``: Hydra refuses it);
* a wrong value (``evaluate.bootstrap.n_resamples=-3``: refused by the checks before any stage);
* a chat log that is not there (``data=chatlog data.path=<missing>``, under a temporary
  ``GROOMING_DETECT_ROOT``: refused before an MLflow run is opened);
* ``grooming-detect-score --help``;
* ``grooming-detect-score`` of a 10-message chat log with the default model
  (``outputs/synthetic/tfidf_logreg/latest/model``, or `--model`), when one exists, and of a
  chat log that is not there.

Then ``python -X importtime -c "import grooming_detect.cli"``: the modules that cost most, with
their cumulative import time. Usage: ``python scripts/bench_startup.py [--runs 5] [--model DIR]
[--json PATH]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grooming_detect.config import project_root
from grooming_detect.io import write_json

BIN = Path(sys.executable).parent


def _timed(
    command: list[str], runs: int, env: dict[str, str] | None = None
) -> dict[str, float | int]:
    seconds, status = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        completed = subprocess.run(command, capture_output=True, text=True, env=env)
        seconds.append(time.perf_counter() - started)
        status = completed.returncode
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "exit_status": status,
    }


def _ten_messages(folder: Path) -> Path:
    path = folder / "ten.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["conversation_id", "author", "text"])
        for i in range(10):
            writer.writerow(["c1", f"a{i % 2}", f"hello there, message number {i}"])
    return path


def _import_costs(top: int) -> list[tuple[str, float]]:
    completed = subprocess.run(
        [str(BIN / "python"), "-X", "importtime", "-c", "import grooming_detect.cli"],
        capture_output=True,
        text=True,
        check=True,
    )
    costs = []
    for line in completed.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            costs.append((parts[2].rstrip(), int(parts[1]) / 1e6))
    return sorted(costs, key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--json", type=Path, default=project_root() / "bench-results/startup.json")
    args = parser.parse_args()
    command = [str(BIN / "grooming-detect")]
    score = str(BIN / "grooming-detect-score")
    model = args.model or project_root() / "outputs/synthetic/tfidf_logreg/latest/model"
    with tempfile.TemporaryDirectory() as tmp:
        missing = str(Path(tmp) / "missing.csv")
        cases = {
            "grooming-detect --help": [*command, "--help"],
            "misspelt key (modle=tfidf_svm)": [*command, "modle=tfidf_svm"],
            "wrong value (n_resamples=-3)": [*command, "evaluate.bootstrap.n_resamples=-3"],
            "missing chat log (data.path=missing)": [
                *command,
                "data=chatlog",
                f"data.path={missing}",
            ],
            "grooming-detect-score --help": [score, "--help"],
        }
        if (model / "model.json").is_file():
            out = ["--model", str(model), "--out", str(Path(tmp) / "scores")]
            cases["grooming-detect-score, 10 messages"] = [
                score,
                str(_ten_messages(Path(tmp))),
                *out,
            ]
            cases["grooming-detect-score, missing file"] = [score, missing, *out]
        else:
            print(f"(no model at {model}: the scoring command is not timed; run make run first)")
        # Nothing a refused run may leave (an MLflow store) lands in the project.
        env = {**os.environ, "GROOMING_DETECT_ROOT": str(Path(tmp) / "root")}
        env.pop("MLFLOW_TRACKING_URI", None)
        results = {name: _timed(argv, args.runs, env) for name, argv in cases.items()}
    print(f"{'command':<40}{'median s':>10}{'min s':>8}{'max s':>8}{'exit':>6}")
    for name, row in results.items():
        print(
            f"{name:<40}{row['median_s']:>10.2f}{row['min_s']:>8.2f}{row['max_s']:>8.2f}"
            f"{row['exit_status']:>6}"
        )
    costs = _import_costs(12)
    print("\nimport grooming_detect.cli, cumulative import time (python -X importtime):")
    for module, seconds in costs:
        print(f"  {seconds:6.3f} s  {module}")
    write_json(args.json, {"runs": args.runs, "commands": results, "imports": costs})
    print(f"\n{args.json}")


if __name__ == "__main__":
    main()
