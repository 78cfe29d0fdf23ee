"""Vectorised text measures over a column of messages, equal to Python's ``str`` and ``re``.

The features stage counts words, lexicon phrases, emoticons and elongated words in every message.
Done one Python call per message and pattern, that was most of the stage's time at PAN size
(about 9 million regular-expression calls for 900k messages). Here Arrow's C++ kernels do the
bulk, and Python's ``re`` only sees the few messages that can match:

* words: ``utf8_split_whitespace`` splits on exactly the characters ``str.split()`` does
  (checked over every code point), so word counts are identical;
* pattern counts: an RE2 pattern that matches whenever the Python pattern can (a *prefilter*)
  rules messages out in C++; Python's ``re`` then counts the survivors, so every count equals
  ``len(pattern.findall(text))``. RE2's word boundaries and case folding are ASCII-exact only,
  so a message holding any non-ASCII character always goes to Python, and a prefilter is used
  only when the pattern itself is ASCII;
* distinct words per group: texts are lower-cased as ``str.lower()`` does (Arrow for ASCII
  texts, Python for the rest); words are dictionary-encoded once and (group, word) pairs counted
  with NumPy, never exploded into a frame that copies key columns per word.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def lexicon_prefilter(phrases: Iterable[str]) -> str | None:
    """An RE2 pattern (case-insensitive) matching wherever any phrase could match on word
    boundaries, or None when a phrase is not ASCII (then Python checks every message)."""
    kept = [p.lower() for p in phrases if p.strip()]
    if not kept or not all(p.isascii() for p in kept):
        return None
    return r"\b(?:" + "|".join(re.escape(p) for p in kept) + r")\b"


#: Three equal word characters in a row: what every elongated word ('sooo') holds.
ELONGATION_PREFILTER = "|".join(c * 3 for c in string.ascii_letters + string.digits + "_")


def arrow_strings(values: pd.Series | list[str]) -> pa.Array:
    """One contiguous Arrow ``large_string`` array of `values` (missing values stay null)."""
    array = pa.array(values, type=pa.large_string(), from_pandas=True)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


class MessageText:
    """One column of message texts (missing texts read as empty) as an Arrow array."""

    def __init__(self, texts: pd.Series) -> None:
        self.array = pc.fill_null(arrow_strings(texts), "")
        self.ascii = pc.string_is_ascii(self.array).to_numpy(zero_copy_only=False)

    def __len__(self) -> int:
        return len(self.array)

    def _words(self, lower: bool = False) -> tuple[pa.Array, np.ndarray]:
        """Every word (``text.split()``'s items) and the index of its message.

        Arrow's split yields an empty item for leading and trailing whitespace, and one for an
        empty text; ``str.split()`` yields none, so empty items are dropped."""
        words = pc.utf8_split_whitespace(self._lower() if lower else self.array)
        flat = pc.list_flatten(words)
        owner = pc.list_parent_indices(words).to_numpy(zero_copy_only=False)
        kept = pc.greater(pc.binary_length(flat), 0)
        return flat.filter(kept), owner[kept.to_numpy(zero_copy_only=False)]

    def _lower(self) -> pa.Array:
        """``str.lower()`` of every text: Arrow for ASCII texts, Python for the rest (Arrow's
        simple case mapping differs from Python's on final sigma, dotted I and newer code
        points)."""
        lowered = pc.ascii_lower(self.array)
        rows = np.flatnonzero(~self.ascii)
        if not len(rows):
            return lowered
        texts = lowered.to_pylist()
        for row, text in zip(rows, self.array.take(pa.array(rows)).to_pylist(), strict=True):
            texts[row] = text.lower()
        return pa.array(texts, type=pa.large_string())

    def word_counts(self) -> np.ndarray:
        """Whitespace-separated words per message (``len(text.split())``)."""
        _, owner = self._words()
        return np.bincount(owner, minlength=len(self))

    def count(
        self, pattern: re.Pattern[str], prefilter: str | None, ignore_case: bool = False
    ) -> np.ndarray:
        """``len(pattern.findall(text))`` per message; `prefilter` is an RE2 pattern that
        matches every ASCII message the pattern matches (None: Python reads every message)."""
        candidates = np.ones(len(self), dtype=bool)
        if prefilter is not None and pattern.pattern.isascii():
            try:
                hit = pc.match_substring_regex(self.array, prefilter, ignore_case=ignore_case)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                hit = None  # a pattern RE2 cannot compile: Python reads every message
            if hit is not None:
                candidates = hit.to_numpy(zero_copy_only=False) | ~self.ascii
        counts = np.zeros(len(self), dtype=np.int64)
        rows = np.flatnonzero(candidates)
        if len(rows):
            texts = self.array.take(pa.array(rows)).to_pylist()
            counts[rows] = [len(pattern.findall(text)) for text in texts]
        return counts

    def distinct_word_ratio(self, groups: np.ndarray, n_groups: int) -> np.ndarray:
        """Distinct lower-cased words / words per group (`groups`: each message's group code,
        0..n_groups-1); NaN for a group without words."""
        flat, message = self._words(lower=True)
        owner = np.asarray(groups, dtype=np.int64)[message]
        codes = pc.dictionary_encode(flat).indices.to_numpy(zero_copy_only=False).astype(np.int64)
        kept = owner >= 0  # a message outside every group (code -1) counts for none
        owner, codes = owner[kept], codes[kept]
        n_codes = int(codes.max()) + 1 if len(codes) else 1
        # Sort and keep changes: np.unique is ~50x slower on ten million int64 (NumPy 2.4).
        pairs = np.sort(owner * n_codes + codes)
        distinct_pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
        distinct = np.bincount(distinct_pairs // n_codes, minlength=n_groups)
        total = np.bincount(owner, minlength=n_groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, distinct / np.maximum(total, 1), np.nan)
