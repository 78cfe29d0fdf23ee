"""The Arrow text kernels give exactly what Python's ``str`` and ``re`` give, message by message."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from grooming_detect.features.behaviour import (
    ELONGATED,
    EMOTICON,
    _clock,
    lexicon_counts,
    lexicon_pattern,
)
from grooming_detect.features.text_kernels import (
    ELONGATION_PREFILTER,
    MessageText,
    lexicon_prefilter,
)

#: Edge cases: empty and blank texts, Unicode whitespace and case folding (long s, Kelvin sign,
#: dotted I, full-width letters), phrases glued to non-ASCII letters, emoji, control characters.
TEXTS = [
    "",
    "   ",
    " lead and trail ",
    "sooo  gooood",
    "\u017fecret",
    "how old are you?",
    "HOW OLD ARE YOU",
    "\uff48\uff4f\uff57 old are you",
    "\u0130stanbul how old are you",
    "caf\u00e9 where do you live",
    "x:) :( <3 ^^ xD :'(",
    "aaa\x1cbbb\x1dccc",
    "a\u00a0b\u2028c\u3000d\u0085e",
    "you're special",
    "youre special!!!",
    "K\u212aK kkk",
    "\U0001f600 sooo",
    "mature for your age\u00e9",
    "\u00e9asl",
    "asl \u00e9",
    "where do you live\nwhere do you live where do you live",
    "ok" * 500,
    "\u00c0\u00c0\u00c0 ___ a_aaa 111",
    "ASL asl Asl aSl",
]
LEXICONS = {
    "personal_info": ["how old are you", "asl", "where do you live"],
    "compliments": ["you're special", "mature for your age"],
    "secrecy": ["secret", "don't tell"],
    "unicode": ["caf\u00e9", "\u00e0 bient\u00f4t"],
}


@pytest.fixture()
def texts() -> pd.Series:
    return pd.Series(TEXTS, dtype="str")


def test_word_counts_equal_str_split(texts: pd.Series) -> None:
    assert MessageText(texts).word_counts().tolist() == [len(t.split()) for t in TEXTS]


def test_word_counts_equal_str_split_on_every_ascii_character_and_a_slice() -> None:
    """ASCII texts are counted on the byte buffer: every ASCII character (whitespace or not),
    texts that start or end in whitespace, empty and missing texts, and an Arrow array that
    is a slice of a larger one (its buffers start before its first text)."""
    import pyarrow as pa

    rng = np.random.default_rng(3)
    alphabet = [chr(c) for c in range(128)] + ["\u00a0", "\u3000", "\u0085", "\u00e9"]
    texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 12))) for _ in range(3000)]
    texts += ["", " ", "\x1c", "a\x1fb", "\x0b\x0c"]
    expected = [len(t.split()) for t in texts]
    assert MessageText(pd.Series(texts, dtype=object)).word_counts().tolist() == expected
    kernels = MessageText(pd.Series([None, "a b"], dtype=object))
    assert kernels.word_counts().tolist() == [0, 2]
    kernels.array = pa.array(["x y z", *texts], type=pa.large_string()).slice(1)
    kernels.ascii = np.array([t.isascii() for t in texts])
    assert kernels.word_counts().tolist() == expected


@pytest.mark.parametrize(
    ("pattern", "prefilter"),
    [(EMOTICON, EMOTICON.pattern), (ELONGATED, ELONGATION_PREFILTER)],
    ids=["emoticons", "elongated"],
)
def test_pattern_counts_equal_findall(
    texts: pd.Series, pattern: re.Pattern[str], prefilter: str
) -> None:
    expected = [len(pattern.findall(t)) for t in TEXTS]
    assert MessageText(texts).count(pattern, prefilter).tolist() == expected


def test_lexicon_counts_equal_one_pattern_per_lexicon(texts: pd.Series) -> None:
    counts = lexicon_counts(texts, LEXICONS)
    for name, phrases in LEXICONS.items():
        expected = [len(lexicon_pattern(phrases).findall(t)) for t in TEXTS]
        assert counts[f"cue_{name}"].tolist() == expected, name
    assert counts["cue_personal_info"].sum() > 0 and counts["cue_unicode"].sum() > 0


def test_a_non_ascii_lexicon_has_no_prefilter() -> None:
    assert lexicon_prefilter(["caf\u00e9"]) is None
    assert lexicon_prefilter(["how old", " "]) == r"\b(?:how\ old)\b"


def test_a_pattern_re2_cannot_compile_falls_back_to_python(texts: pd.Series) -> None:
    backreference = re.compile(r"(\w)\1")
    counts = MessageText(texts).count(backreference, r"(\w)\1")
    assert counts.tolist() == [len(backreference.findall(t)) for t in TEXTS]


def test_distinct_word_ratio_equals_python_sets(texts: pd.Series) -> None:
    groups = np.arange(len(TEXTS)) % 4
    ratio = MessageText(texts).distinct_word_ratio(groups, 5)
    for group in range(5):
        words = [w for t, g in zip(TEXTS, groups, strict=True) if g == group for w in t.split()]
        words = [w.lower() for w in words]
        if words:
            assert ratio[group] == pytest.approx(len(set(words)) / len(words))
        else:
            assert np.isnan(ratio[group])


def test_clock_equals_to_numeric_on_odd_times() -> None:
    times = pd.Series(
        [
            *["7:05", " 12:30", "12:30:45", "", None, "ab:cd", "+1:2", "1e1:05"],
            *["\uff12\uff13:00", "23:59", "00:00", "12", ":"],
        ],
        dtype="str",
    )
    hour, minutes = _clock(times)
    split = times.str.split(":", expand=True)
    expected_minutes = pd.to_numeric(split[0], errors="coerce") * 60 + pd.to_numeric(
        split[1], errors="coerce"
    )
    expected_hour = pd.to_numeric(times.str.slice(0, 2), errors="coerce")
    np.testing.assert_array_equal(hour, expected_hour.to_numpy(dtype=float))
    np.testing.assert_array_equal(minutes, expected_minutes.to_numpy(dtype=float))


def test_an_empty_lexicon_counts_nothing_beside_others(texts: pd.Series) -> None:
    counts = lexicon_counts(texts, {"empty": [], "blank": ["  "], "hello": ["how old are you"]})
    assert counts["cue_empty"].sum() == 0 and counts["cue_blank"].sum() == 0
    assert counts["cue_hello"].sum() > 0


def test_a_lexicon_too_large_for_re2_is_counted_by_python() -> None:
    phrases = [f"zq{i:010d}" for i in range(60_000)] + ["keep it secret"]
    texts = pd.Series(["keep it secret", "nothing", "zq0000000007 and zq0000059999"], dtype="str")
    counts = lexicon_counts(texts, {"big": phrases})
    assert counts["cue_big"].tolist() == [1, 0, 2]


def test_distinct_words_lower_case_as_python_does() -> None:
    texts = pd.Series(["\u039f\u0394\u039f\u03a3 \u03bf\u03b4\u03bf\u03c2", "\u0130 i\u0307"])
    ratio = MessageText(texts).distinct_word_ratio(np.array([0, 1]), 2)
    assert ratio.tolist() == [0.5, 0.5]
