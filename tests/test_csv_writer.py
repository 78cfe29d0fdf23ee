"""The project's one CSV writer (`io.write_csv`): hostile ids and texts survive a round trip
through pandas and `csv` on their own row, and spreadsheet formulas are neutralised."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grooming_detect.io import FORMULA_PREFIXES, spreadsheet_safe, write_csv

#: Characters that break a naive CSV writer or a spreadsheet: delimiters, quotes, CR, LF, tabs,
#: formula starts, and a few non-ASCII ones.
HOSTILE = st.text(
    alphabet=st.sampled_from(list(",\"\r\n\t;=+-@| 'abc0é\u2028"))
    | st.characters(exclude_categories=("Cs",)),  # lone surrogates: refused on reading
    min_size=1,
    max_size=12,
).filter(lambda s: "\x00" not in s)


def _read_both(path: Path) -> tuple[pd.DataFrame, list[list[str]]]:
    frame = pd.read_csv(path, keep_default_na=False, dtype={"id": str})
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return frame, rows


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ids=st.lists(HOSTILE, min_size=1, max_size=8, unique=True))
def test_hostile_ids_round_trip_on_their_own_rows(tmp_path: Path, ids: list[str]) -> None:
    scores = [round(0.1 * i, 3) for i in range(len(ids))]
    frame = pd.DataFrame({"id": ids, "score": scores, "flagged": [s >= 0.3 for s in scores]})
    path = write_csv(tmp_path / "scores.csv", frame)
    expected = [str(spreadsheet_safe(value)) for value in ids]
    read, rows = _read_both(path)
    assert len(read) == len(ids) and len(rows) == len(ids) + 1
    assert read["id"].tolist() == expected
    assert read["score"].tolist() == scores
    assert read["flagged"].tolist() == frame["flagged"].tolist()
    assert [row[0] for row in rows[1:]] == expected


def test_a_carriage_return_never_moves_a_flag_to_another_name(tmp_path: Path) -> None:
    """The sweep's case: ``"x\\rbob"`` written unquoted came back as a flagged ``bob``."""
    frame = pd.DataFrame(
        {"author": ["x\rbob", "bob"], "score": [0.895, 0.01], "flagged": [True, False]}
    )
    read, rows = _read_both(write_csv(tmp_path / "author_scores.csv", frame))
    assert read["author"].tolist() == ["x\rbob", "bob"]
    assert read.set_index("author").loc["bob", "flagged"] == False  # noqa: E712
    assert len(rows) == 3


def test_formulas_are_neutralised_and_plain_values_kept(tmp_path: Path) -> None:
    hostile = ["=cmd|' /C calc'!A0", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    plain = ["alice", "a-b", "+447700900123", "-1"]
    frame = pd.DataFrame({"id": [*hostile, *plain], "n": range(10)})
    read, _ = _read_both(write_csv(tmp_path / "ids.csv", frame))
    assert read["id"].tolist() == ["'" + value for value in hostile] + plain
    assert read["n"].tolist() == list(range(10))
    assert all(value.startswith(FORMULA_PREFIXES) for value in hostile)


def test_a_chat_log_export_keeps_its_text(tmp_path: Path) -> None:
    """A chat log written for the project's own reader keeps leading ``-`` or ``=``."""
    frame = pd.DataFrame({"text": ["- yes", "=)", 'say "hi",\nok']})
    read, _ = _read_both(write_csv(tmp_path / "log.csv", frame, neutralise_formulas=False))
    assert read["text"].tolist() == frame["text"].tolist()


@pytest.mark.pipeline
def test_user_data_in_markdown_is_shown_never_run() -> None:
    """Every report and card writes ids and texts through one escaping function."""
    from grooming_detect.reporting.model_card import markdown_text

    hostile = "<script>alert(1)</script> [click](http://x) *a*|b\nnext"
    shown = markdown_text(hostile)
    assert "<script>" not in shown and "&lt;script&gt;" in shown
    assert "\\[click\\]\\(http://x\\)" in shown and "\\*a\\*\\|b" in shown
    assert "\n" not in shown


def test_an_id_that_would_split_a_submission_line_is_refused() -> None:
    import pytest

    from grooming_detect.evaluation.lines import one_line_id, submission_text
    from grooming_detect.evaluation.stage import submission_text as problem1_text

    assert one_line_id("a1b2", "author") == "a1b2"
    frame = pd.DataFrame({"id": ["ok", "x\nbob"], "predicted": [True, True]})
    with pytest.raises(ValueError, match=r"author id 'x\\nbob' holds a line break"):
        problem1_text(frame)
    with pytest.raises(ValueError, match=r"conversation id 'c\\r1'"):
        submission_text(pd.DataFrame({"conversation_id": ["c\r1"], "line": [1]}))
