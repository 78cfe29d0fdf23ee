"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml; ``make docs``).

Three things are never typed into a page by hand:

* a benchmark table: ``<!-- bench-table: NAME -->`` in a page becomes the Markdown table of
  ``docs/benchmarks/data/NAME.json`` (what ``scripts/bench_*.py --json`` wrote, or a
  transcription of an older run that says so in its ``source``), drawn as `TABLES` says, with a
  line naming the command, date and data file under it;
* a file kept at the repository root for readers of the clone: ``<!-- include: FILE -->`` becomes
  the file's text (ETHICS.md, MODEL_CARD.md), its links rewritten to the site's pages;
* the config groups: ``<!-- config-groups -->`` becomes a table of every option file under
  ``conf/`` with the first sentence of its leading comment, the defaults of ``conf/config.yaml``
  marked.

``tests/test_docs_site.py`` checks that every rendered cell holds its JSON value.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "benchmarks" / "data"
BENCH_TABLE = re.compile(r"<!-- bench-table: (?P<name>[\w-]+) -->")
INCLUDE = re.compile(r"<!-- include: (?P<file>[\w.-]+) -->")
CONFIG_GROUPS = "<!-- config-groups -->"
CONF = ROOT / "conf"
#: Links of the root files, as the site names the same documents.
SITE_LINKS = {
    "](ETHICS.md)": "](ethics.md)",
    "](MODEL_CARD.md)": "](card.md)",
    "](docs/": "](",
}
MISSING = "–"


@dataclass(frozen=True)
class Table:
    """How one JSON file is drawn: `columns` are (header, template) pairs, each template a
    `str.format` string over one of the file's `rows` (``{key:,}``, ``{stage_seconds[data]}``).
    With `record_rows`, the table is one row per (label, templates...) entry over the whole
    file instead (a benchmark that measures one thing, several ways)."""

    headers: tuple[str, ...]
    columns: tuple[str, ...] = ()
    record_rows: tuple[tuple[str, ...], ...] = field(default=())


TABLES: dict[str, Table] = {
    "scale": Table(
        headers=(
            "size",
            "messages",
            "data s",
            "features s",
            "train s",
            "evaluate s",
            "total s",
            "peak MiB",
            "features msg/s",
            "naive s",
            "ours/naive",
            "model MiB",
            "F0.5",
            "naive F0.5",
            "score msg/s (w/o parse)",
        ),
        columns=(
            "{size}",
            "{messages:,}",
            "{stage_seconds[data]:.1f}",
            "{stage_seconds[features]:.1f}",
            "{stage_seconds[train]:.1f}",
            "{stage_seconds[evaluate]:.1f}",
            "{wall_seconds:.1f}",
            "{peak_rss_mib:,.0f}",
            "{features_messages_per_second:,.0f}",
            "{naive_seconds:.1f}",
            "{ours_over_naive:.2f}",
            "{model_mib:.1f}",
            "{test_f0_5:.3f}",
            "{naive_test_f0_5:.3f}",
            "{score_messages_per_second:,.0f} ({score_after_parse_messages_per_second:,.0f})",
        ),
    ),
    "models": Table(
        headers=(
            "model",
            "test author PR-AUC",
            "F0.5 [95% CI]",
            "precision",
            "recall",
            "ECE",
            "train stage s",
            "refit s",
            "peak MiB",
            "scoring msg/s",
        ),
        columns=(
            "`{model}`",
            "{test/author/pr_auc:.3f}",
            "{test/author/f0_5:.3f} "
            "[{test/author/f0_5_ci_low:.3f}, {test/author/f0_5_ci_high:.3f}]",
            "{test/author/precision:.3f}",
            "{test/author/recall:.3f}",
            "{test/author/ece:.3f}",
            "{train_stage_wall_seconds:,.1f}",
            "{fit_seconds:,.1f}",
            "{peak_rss_mib:,.0f}",
            "{scoring_messages_per_second:,.0f}",
        ),
    ),
    "onnx": Table(
        headers=(
            "export",
            "size",
            "ms per message",
            "ms per author document",
            "max abs difference vs Python",
            "stated tolerance",
        ),
        columns=(
            "{export}",
            "{size_mb:.1f} MB",
            "{ms_per_message:.2f}",
            "{ms_per_document:.1f}",
            "{max_abs_difference:.1e}",
            "{tolerance:.0e}",
        ),
    ),
    "onnx-embedding": Table(
        headers=(
            "export",
            "model file",
            "tokenizer file",
            "ms per message",
            "ms per author document",
            "max abs difference vs Python",
            "stated tolerance",
        ),
        columns=(
            "{export}",
            "{size_mb:.1f} MB",
            "{tokenizer_size_mb:.2f} MB",
            "{ms_per_message:.1f}",
            "{ms_per_document:.1f}",
            "{max_abs_difference:.1e}",
            "{tolerance:.0e}",
        ),
    ),
    "startup": Table(
        headers=("command", "median s", "min s", "max s", "exit status"),
        columns=("{command}", "{median_s:.2f}", "{min_s:.2f}", "{max_s:.2f}", "{exit_status}"),
    ),
    "persist": Table(
        headers=("vectorizer", "word terms", "char terms", "fit s", "save s", "load s", "MiB"),
        columns=(
            "`{vectorizer}` ({note})",
            "{terms[word]:,}",
            "{terms[char]:,}",
            "{fit_seconds:.1f}",
            "{save_seconds:.2f}",
            "{load_seconds:.2f}",
            "{model_mib:.1f}",
        ),
    ),
    "stream": Table(
        headers=(
            "run",
            "streaming, in-process (exact incremental) msg/s",
            "the whole command (start, load, read and check, JSON out) msg/s",
            "naive: re-score every author's prefix after each message, msg/s",
        ),
        columns=(
            "{run}",
            "{stream_messages_per_s:,}",
            "{command_messages_per_s:,}",
            "{naive_messages_per_s:,}",
        ),
    ),
    "serve": Table(
        headers=("measure", "value"),
        record_rows=(
            ("p50 latency, one request at a time", "{rows[0][sequential_p50_ms]:,.0f} ms"),
            ("p95 latency, one request at a time", "{rows[0][sequential_p95_ms]:,.0f} ms"),
            ("requests/s, one at a time", "{rows[0][sequential_requests_per_second]:.1f}"),
            (
                "requests/s from {rows[0][concurrent_clients]} clients at once",
                "{rows[0][concurrent_requests_per_second]:.1f}",
            ),
            ("in-process pyfunc, same request", "{rows[0][in_process_pyfunc_p50_ms]:,.0f} ms"),
        ),
    ),
    "transformer-gpu": Table(
        headers=(
            "precision",
            "batch",
            "max_length",
            "train samples/s (Trainer's own)",
            "train tokens/s",
            "score rows/s",
            "score tokens/s",
            "peak GPU MiB",
        ),
        columns=(
            "{precision}",
            "{batch_size}",
            "{max_length}",
            "{train_samples_per_second:,} ({trainer_samples_per_second:,})",
            "{train_tokens_per_second:,}",
            "{score_rows_per_second:,}",
            "{score_tokens_per_second:,}",
            "{peak_gpu_mib:,}",
        ),
    ),
    "compare": Table(
        headers=(
            "corpus",
            "model",
            "test PR-AUC",
            "F0.5",
            "ECE",
            "fit s",
            "scoring rows/s",
            "int8 rows/s",
        ),
        columns=(
            "{corpus}",
            "{model}",
            "{test_pr_auc:.3f}",
            "{test_f0_5:.3f}",
            "{test_ece:.3f}",
            "{fit_seconds:,}",
            "{score_rows_per_second:,}",
            "{int8_score_rows_per_second:,}",
        ),
    ),
    "seeds": Table(
        headers=(
            "measure (test, `tfidf_logreg`)",
            "mean ± sd",
            "seed 42",
            "1",
            "2",
            "3",
            "4",
        ),
        columns=(
            "{measure}",
            "{mean:.3f} ± {sd:.3f}",
            "{by_corpus_seed[0]:.3f}",
            "{by_corpus_seed[1]:.3f}",
            "{by_corpus_seed[2]:.3f}",
            "{by_corpus_seed[3]:.3f}",
            "{by_corpus_seed[4]:.3f}",
        ),
    ),
    "spark": Table(
        headers=("", "one process", "Spark `{spark_master}`"),
        record_rows=(
            (
                "wall time",
                "{single_process_s:.1f} s (the whole command)",
                "{spark_job_s:.1f} s (the job; the session started in "
                "{spark_session_start_s:.1f} s before it)",
            ),
            (
                "messages/s",
                "{single_process_messages_per_s:,}",
                "{spark_messages_per_s:,} ({spark_speedup_vs_single_process:.2f}×)",
            ),
            (
                "peak memory",
                "{single_process_peak_rss_mib:,} MiB (the process)",
                "JVM {spark_jvm_peak_rss_mib:,} MiB; each Python worker "
                "{spark_python_worker_peak_rss_mib[0]:,} and "
                "{spark_python_worker_peak_rss_mib[1]:,} MiB; executor (JVM and workers at once) "
                "{spark_executor_peak_rss_mib_jvm_plus_workers:,} MiB",
            ),
            (
                "model loads",
                "1",
                "{spark_model_loads_per_worker[0]} and {spark_model_loads_per_worker[1]} "
                "(one per Python worker)",
            ),
            (
                "largest score difference",
                "",
                "authors {author_scores_largest_difference}, conversations "
                "{conversation_scores_largest_difference}; flags differing: "
                "{author_scores_flags_differing} and {conversation_scores_flags_differing}",
            ),
        ),
    ),
}


class _Blank(string.Formatter):
    """`str.format` that shows a missing measurement (JSON null) as a dash."""

    def format_field(self, value: Any, format_spec: str) -> str:
        return MISSING if value is None else super().format_field(value, format_spec)


def load(name: str) -> dict[str, Any]:
    """The JSON of benchmark `name`."""
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def cell(template: str, values: dict[str, Any]) -> str:
    """One table cell: `template` filled from `values`, pipes escaped for Markdown."""
    return _Blank().format(template, **values).replace("|", "\\|")


def table_rows(name: str) -> list[list[str]]:
    """The cells of benchmark `name`'s table, header row first."""
    spec, data = TABLES[name], load(name)
    rows = [[cell(header, data) for header in spec.headers]]
    if spec.record_rows:
        rows += [[cell(template, data) for template in row] for row in spec.record_rows]
    else:
        rows += [
            [cell(template, derived(row)) for template in spec.columns] for row in data["rows"]
        ]
    return rows


def derived(row: dict[str, Any]) -> dict[str, Any]:
    """A row with the figures its table shows that a script leaves to the reader: a note, and
    `make bench`'s ratio of the whole run's time to the naive script's."""
    row = {"note": "", **row}
    if "ours_over_naive" not in row and {"wall_seconds", "naive_seconds"} <= row.keys():
        row["ours_over_naive"] = row["wall_seconds"] / row["naive_seconds"]
    return row


def render(name: str) -> str:
    """Benchmark `name` as a Markdown table, with the command and date it comes from."""
    header, *body = table_rows(name)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    source = load(name)["source"]
    note = f"*Source: {source}. Data: [`{name}.json`](benchmarks/data/{name}.json).*"
    return "\n".join(lines) + "\n\n" + note


def include(file: str) -> str:
    """A root file's text, its links rewritten to the site's pages."""
    text = (ROOT / file).read_text(encoding="utf-8")
    for old, new in SITE_LINKS.items():
        text = text.replace(old, new)
    return text


def config_defaults() -> dict[str, str]:
    """The option `conf/config.yaml`'s defaults list picks for each group."""
    defaults: dict[str, str] = {}
    for line in (CONF / "config.yaml").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s+- (?P<group>[\w/]+): (?P<option>\w+)\s*$", line)
        if match and match["option"] != "null":
            defaults[match["group"]] = match["option"]
    return defaults


def leading_sentence(path: Path) -> str:
    """The first sentence of a config file's leading comment (its `# @package` line skipped)."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            words.append(line.lstrip("#").strip())
    text = " ".join(words)
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ".:;" and text[index + 1 : index + 2] in ("", " "):
            text = text[: index + 1] if char == "." else text[:index]
            break
    if text.count("`") % 2:
        text += "`"
    return text.replace("|", "\\|").replace("<", "&lt;").replace("*", "\\*")


def config_groups() -> str:
    """Every option file under conf/ as a Markdown table: group, option, what it is."""
    defaults = config_defaults()
    lines = ["| group | option | what it is |", "| --- | --- | --- |"]
    files = [path for path in CONF.rglob("*.yaml") if path.parent != CONF]
    for path in sorted(files, key=lambda p: (p.parent.relative_to(CONF).as_posix(), p.stem)):
        group = path.parent.relative_to(CONF).as_posix()
        option = f"`{path.stem}`" + (" (default)" if defaults.get(group) == path.stem else "")
        lines.append(f"| `{group}` | {option} | {leading_sentence(path)} |")
    return "\n".join(lines)


def expand(markdown: str) -> str:
    """`markdown` with every bench-table, include and config-groups marker replaced."""
    markdown = INCLUDE.sub(lambda m: include(m["file"]), markdown)
    if CONFIG_GROUPS in markdown:
        markdown = markdown.replace(CONFIG_GROUPS, config_groups())
    return BENCH_TABLE.sub(lambda m: render(m["name"]), markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook: expand the markers of every page before it is converted."""
    return expand(markdown)
