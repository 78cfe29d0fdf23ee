"""The README stays short, every relative link of the README and the documentation resolves (file
and anchor), and every benchmark table the site shows holds its JSON's figures.

`make docs-build` (mkdocs --strict, in CI) checks the built site's links too; this module needs
no MkDocs and runs in the fast tier.
"""

from __future__ import annotations

import importlib.util
import json
import re
import string
import sys
import unicodedata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_BYTES = 12 * 1024
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("docs_hooks", module)
    spec.loader.exec_module(module)
    return module


HOOKS = _hooks()
PAGES = sorted(DOCS.rglob("*.md"))


def slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading (its default slugify)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(markdown: str) -> set[str]:
    prose = FENCE.sub("", markdown)
    return {slug(m[1]) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose, re.M)}


def links(markdown: str) -> list[str]:
    """Relative link targets outside code blocks and code spans."""
    prose = CODE_SPAN.sub("", FENCE.sub("", markdown))
    targets = [m["target"] for m in LINK.finditer(prose)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def broken_links(document: Path, markdown: str) -> list[str]:
    broken = []
    for target in links(markdown):
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md":
            text = resolved.read_text(encoding="utf-8")
            if resolved.is_relative_to(DOCS):
                text = HOOKS.expand(text)
            if anchor not in anchors(text):
                broken.append(target)
    return broken


def test_the_readme_is_short() -> None:
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes: move detail into docs/"


@pytest.mark.parametrize(
    "document",
    [ROOT / "README.md", ROOT / "examples" / "README.md", *PAGES],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_relative_links_resolve(document: Path) -> None:
    markdown = document.read_text(encoding="utf-8")
    if document.is_relative_to(DOCS):
        markdown = HOOKS.expand(markdown)  # the site's text: tables and included files
    assert not broken_links(document, markdown)


def test_the_link_check_catches_a_missing_page_and_anchor() -> None:
    page = DOCS / "index.md"
    text = "[a](quickstart.md) [b](nope.md) [c](quickstart.md#no-such-heading) `[d](nope.md)`"
    assert broken_links(page, text) == ["nope.md", "quickstart.md#no-such-heading"]
    assert slug("Honest evaluation: `decisions`, splits") == "honest-evaluation-decisions-splits"


def test_the_readme_maps_every_journey_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r":\s+([\w-]+\.md)\s*$", nav, re.M)
    unlinked = [p for p in pages if p not in ("index.md", "card.md", "ethics.md")]
    assert not [p for p in unlinked if f"(docs/{p})" not in readme]


def test_every_page_is_in_the_nav_or_named_here() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    in_nav = set(re.findall(r":\s+([\w/-]+\.md)\s*$", nav, re.M))
    assert {p.relative_to(DOCS).as_posix() for p in PAGES} - in_nav == set()
    assert all((DOCS / page).is_file() for page in in_nav)


# -- the benchmark tables -------------------------------------------------------------------


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def _value(field: str, values: dict[str, Any]) -> Any:
    return string.Formatter().get_field(field, (), values)[0]


def _cells(table: str) -> list[list[str]]:
    rows = [line.strip("|").split(" | ") for line in table.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows if not set("".join(row)) <= set("- ")]


def _shows(cell: str, value: Any) -> bool:
    """Whether a table cell shows `value` (a number, to the decimals the cell gives it)."""
    if value is None:
        return HOOKS.MISSING in cell
    if isinstance(value, str):
        return value.replace("|", "\\|") in cell
    for shown in NUMBER.findall(cell):
        if "e" in shown:
            mantissa = shown.split("e")[0]
            digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
            if float(shown) == float(f"{float(value):.{digits}e}"):
                return True
            continue
        decimals = len(shown.split(".")[1]) if "." in shown else 0
        if float(shown.replace(",", "")) == round(float(value), decimals):
            return True
    return False


@pytest.mark.parametrize("name", sorted(HOOKS.TABLES))
def test_each_rendered_table_shows_its_json(name: str) -> None:
    spec, data = HOOKS.TABLES[name], HOOKS.load(name)
    header, *body = _cells(HOOKS.render(name))
    assert len(header) == len(spec.headers)
    if spec.record_rows:
        expected = [(row, data) for row in spec.record_rows]
    else:
        expected = [(spec.columns, HOOKS.derived(row)) for row in data["rows"]]
    assert len(body) == len(expected)
    for cells, (templates, values) in zip(body, expected, strict=True):
        assert len(cells) == len(templates)
        for cell, template in zip(cells, templates, strict=True):
            for field in _fields(template):
                value = _value(field, values)
                assert _shows(cell, value), f"{name}: {field}={value!r} not in {cell!r}"


def test_every_benchmark_json_is_drawn_on_the_benchmarks_page() -> None:
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    named = set(HOOKS.BENCH_TABLE.findall(page))
    on_disk = {p.stem for p in HOOKS.DATA.glob("*.json")}
    assert named == on_disk == set(HOOKS.TABLES)
    expanded = HOOKS.expand(page)
    assert "<!-- bench-table" not in expanded
    for name in named:
        assert HOOKS.render(name) in expanded
        data = json.loads((HOOKS.DATA / f"{name}.json").read_text(encoding="utf-8"))
        assert data["source"] and data["command"].startswith("make ")


def test_the_check_catches_a_changed_figure() -> None:
    assert _shows("41,675 (55,898)", 41675) and _shows("0.699", 0.6991)
    assert not _shows("41,675 (55,898)", 41676) and not _shows("0.699", 0.7)


def test_every_config_option_is_in_the_config_table() -> None:
    table = HOOKS.config_groups()
    for path in (ROOT / "conf").rglob("*.yaml"):
        if path.parent != ROOT / "conf":
            group = path.parent.relative_to(ROOT / "conf").as_posix()
            assert re.search(rf"^\| `{re.escape(group)}` \| `{path.stem}`", table, re.M), path
    assert "| `model` | `tfidf_logreg` (default) |" in table


def test_included_files_link_to_site_pages() -> None:
    card = HOOKS.expand((DOCS / "card.md").read_text(encoding="utf-8"))
    assert "](docs/" not in card and "](ETHICS.md)" not in card
    assert "](model-card/pr_curve_author.png)" in card
