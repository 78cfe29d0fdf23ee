"""Markdown building blocks of the report and the card: inert user text, tables and the Jinja2
templates (``templates/*.md.j2`` beside this module, shipped in the wheel).

The templates render with `StrictUndefined`, so a value the code forgot to pass fails the run
instead of leaving a blank, and without autoescaping (the output is Markdown, not HTML): user
data goes through the ``md`` filter (`markdown_text`), a value shown as code through ``code``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

#: Characters that Markdown reads as formatting or links: escaped with a backslash.
_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]()!#|~"})


def markdown_text(value: object) -> str:
    """User data (an id, a message, a term, a dataset name) as inert Markdown inline text: HTML
    escaped (a ``<script>`` in an id is shown, never run, wherever the Markdown is rendered),
    Markdown's formatting and link characters escaped, line breaks flattened. Every report and
    card writes user data through this one function (the templates' ``md`` filter)."""
    text = html.escape(str(value), quote=False).translate(_MARKDOWN_SPECIAL)
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def code_span(value: object) -> str:
    """`value` as one Markdown code span (shown verbatim, never formatted): fenced with one
    backtick more than its longest run of backticks, line breaks flattened."""
    text = " ".join(str(value).splitlines())
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown (pipe) table of preformatted cells, written as given (escape user data with
    `markdown_text` first), one unpadded line per row.

    Hand-written rather than `tabulate`: its pipe and github formats pad every cell to its
    column's width (so ``| test | authors | 10 |`` would no longer be a row's text, which
    readers and tests search for), and unpadded (``stralign=None``) they still draw the
    separator as wide as the widest cell, up to a 150-dash line under a false-positive table.
    """
    lines = ["| " + " | ".join(str(cell) for cell in line) + " |" for line in [header, *rows]]
    lines.insert(1, "|" + "---|" * len(header))
    return "\n".join(lines)


def fmt(value: float | None) -> str:
    """Three decimals, or ``n/a`` for a missing or undefined value (the ``fmt`` filter)."""
    return "n/a" if value is None or value != value else f"{value:.3f}"


def count_text(value: float | None, spec: str = "g") -> str:
    """A count or rate for a table cell, ``n/a`` when undefined (no warning at all)."""
    return "n/a" if value is None or value != value else format(value, spec)


def rate_text(value: float | None) -> str:
    """A rate per 10,000 items for prose and tables: one decimal (``157.2``), ``n/a`` when
    undefined (the ``rate`` filter)."""
    return count_text(value, ",.1f")


@cache
def environment() -> Environment:
    """The Jinja2 environment of the templates, with the ``md``, ``code``, ``fmt`` and ``rate``
    filters and the ``table`` function."""
    env = Environment(
        loader=PackageLoader("grooming_detect.reporting", "templates"),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = markdown_text
    env.filters["code"] = code_span
    env.filters["fmt"] = fmt
    env.filters["rate"] = rate_text
    env.globals["table"] = markdown_table
    return env


def render(template: str, **context: Any) -> str:
    """Render the template `template` (a file name in ``templates/``) with `context`."""
    return environment().get_template(template).render(**context)
