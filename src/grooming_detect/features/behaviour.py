"""Behavioural features, lexicon cues and reviewer profiles, from the messages table.

Feature tables (the features stage writes them; models read them) have one row per
author-in-conversation, per conversation or per author. Behavioural columns start with ``f_``
and lexicon columns with ``cue_`` (matches per message); `FEATURE_DOCS` says what each measures.
Lexicons come from config (``features.lexicons``) so a team can edit them without code changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from grooming_detect.features.text_kernels import (
    ELONGATION_PREFILTER,
    MessageText,
    arrow_strings,
    lexicon_prefilter,
)

NIGHT_HOURS = frozenset({22, 23, 0, 1, 2, 3, 4, 5})
HOUR_BUCKETS = [
    "morning (06-11)",
    "afternoon (12-17)",
    "evening (18-21)",
    "night (22-05)",
    "unknown",
]


def lexicon_pattern(phrases: Sequence[str]) -> re.Pattern[str]:
    """One case-insensitive pattern matching any phrase on word boundaries (a lexicon without
    phrases matches nothing; its empty alternation would match every word boundary)."""
    alternatives = sorted(
        (re.escape(p.lower()) for p in phrases if p.strip()), key=len, reverse=True
    )
    if not alternatives:
        return NEVER
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


NEVER = re.compile(r"(?!)")


def lexicon_counts(
    texts: pd.Series | MessageText,
    lexicons: Mapping[str, Sequence[str]],
    index: pd.Index | None = None,
) -> pd.DataFrame:
    """Matches of each lexicon in each message (columns ``cue_<lexicon>``).

    One RE2 pass over all messages rules out those that hold no phrase of any lexicon; only
    the rest are counted lexicon by lexicon (`MessageText.count`), with the same result as
    ``texts.str.count(lexicon_pattern(phrases))``."""
    if isinstance(texts, pd.Series):
        index = texts.index if index is None else index
        texts = MessageText(texts)
    every_phrase = [phrase for phrases in lexicons.values() for phrase in phrases]
    prefilter = lexicon_prefilter(every_phrase)
    candidates = np.ones(len(texts), dtype=bool)
    if prefilter is not None:
        try:
            any_cue = pc.match_substring_regex(texts.array, prefilter, ignore_case=True)
            candidates = any_cue.to_numpy(zero_copy_only=False) | ~texts.ascii
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # a lexicon too large for RE2: Python's re reads every message
    rows = np.flatnonzero(candidates)
    subset = MessageText(pd.Series(texts.array.take(pa.array(rows)).to_pylist(), dtype=object))
    columns = {}
    for name, phrases in lexicons.items():
        counts = np.zeros(len(texts), dtype=np.int64)
        pattern = lexicon_pattern(phrases)
        if pattern is not NEVER:
            counts[rows] = subset.count(pattern, lexicon_prefilter(phrases), ignore_case=True)
        columns[f"cue_{name}"] = counts
    return pd.DataFrame(columns, index=index)


EMOTICON = re.compile(r"(?:[:;=8xX][-']?[)(\]\[dDpPoO/\\|*]|<3|\^\^|\bxD\b|:'\()")
ELONGATED = re.compile(r"\b\w*(\w)\1{2,}\w*\b")

#: What each behavioural feature measures (author-in-conversation level unless stated).
FEATURE_DOCS: dict[str, str] = {
    "f_messages": "messages the author wrote in the conversation",
    "f_words": "words (whitespace tokens) the author wrote",
    "f_message_share": "author's share of the conversation's messages",
    "f_starts": "1 when the author wrote the conversation's first message",
    "f_ends": "1 when the author wrote the conversation's last message",
    "f_mean_run": "mean length of the author's runs of consecutive messages",
    "f_max_run": "longest run of consecutive messages by the author",
    "f_question_rate": "share of the author's messages holding a question mark",
    "f_mean_chars": "mean message length in characters",
    "f_max_chars": "longest message in characters",
    "f_mean_gap_min": "mean minutes between another author's message and the author's reply "
    "(HH:MM times, wrapping past midnight; missing when no reply has times)",
    "f_night_share": "share of the author's messages sent 22:00-05:59",
    "f_vocab_richness": "distinct lower-cased words / words (type-token ratio)",
    "f_emoticon_rate": "emoticons per message",
    "f_elongation_rate": "elongated words (a letter three or more times: 'sooo') per message",
    "f_partners": "other authors in the conversation (author level: distinct partners overall)",
    "f_conversations": "author level: conversations the author took part in",
    "f_authors": "conversation level: authors who wrote",
    "f_participants": "authors who wrote in the conversation (author level: mean over the "
    "author's conversations)",
    "f_conversation_length": "messages in the conversation (author level: mean over the "
    "author's conversations)",
    "f_hour_sin": "mean of sin(2 pi hour / 24) over the author's messages (hour of day on a "
    "circle; missing without times)",
    "f_hour_cos": "mean of cos(2 pi hour / 24) over the author's messages",
}


def _numbers(strings: pa.Array) -> np.ndarray:
    """``pd.to_numeric(strings, errors="coerce")`` as floats, with plain digit strings (nearly
    all of them) cast by Arrow and only the rest parsed by pandas."""
    digits = pc.fill_null(pc.match_substring_regex(strings, r"^[0-9]{1,15}$"), False)
    values = np.full(len(strings), np.nan)
    plain = digits.to_numpy(zero_copy_only=False)
    values[plain] = pc.cast(strings.filter(digits), pa.int64()).to_numpy(zero_copy_only=False)
    rest = np.flatnonzero(~plain)
    if len(rest):
        values[rest] = pd.to_numeric(
            pd.Series(strings.take(pa.array(rest)).to_pylist(), dtype=object), errors="coerce"
        ).to_numpy(dtype=float, na_value=np.nan)
    return values


def _clock(times: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Hour (the first two characters) and minutes since midnight (``H:M`` split on the first
    colon) of each ``HH:MM`` time, NaN where missing or not numeric."""
    array = arrow_strings(times)
    hour = _numbers(pc.utf8_slice_codeunits(array, 0, 2))
    parts = pc.extract_regex(array, r"^(?P<h>[^:]*):(?P<m>[^:]*)")
    minutes = _numbers(pc.struct_field(parts, "h")) * 60 + _numbers(pc.struct_field(parts, "m"))
    return hour, minutes


def message_facts(messages: pd.DataFrame, lexicons: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Per-message facts that features and profiles aggregate (messages in conversation order).

    ``gap_min`` is the minutes since the previous message of the conversation when that message
    is another author's (a reply), modulo 24 hours so 23:59 -> 00:01 is 2 minutes.
    """
    ordered = messages.sort_values(["conversation_id", "line"], kind="stable")
    text = ordered["text"]
    hour_values, minute_values = _clock(ordered["time"])
    hour = pd.Series(hour_values, index=ordered.index)
    minutes = pd.Series(minute_values, index=ordered.index)
    same_conversation = ordered["conversation_id"].eq(ordered["conversation_id"].shift())
    reply = same_conversation & ordered["author"].ne(ordered["author"].shift())
    gap = ((minutes - minutes.shift()) % 1440).where(reply)
    new_run = ~same_conversation | ordered["author"].ne(ordered["author"].shift())
    kernels = MessageText(text)
    facts = pd.DataFrame(
        {
            "words": kernels.word_counts(),
            "chars": text.str.len(),
            "is_question": text.str.contains("?", regex=False),
            "hour": hour,
            "is_night": hour.isin(NIGHT_HOURS),
            "gap_min": gap,
            "run_id": new_run.cumsum(),
            "emoticons": kernels.count(EMOTICON, EMOTICON.pattern),
            "elongated": kernels.count(ELONGATED, ELONGATION_PREFILTER),
            "hour_sin": np.sin(2 * np.pi * hour / 24),
            "hour_cos": np.cos(2 * np.pi * hour / 24),
        },
        index=ordered.index,
    )
    cues = lexicon_counts(kernels, lexicons, index=ordered.index)
    facts = pd.concat([facts, cues], axis=1)
    facts["cues"] = cues.sum(axis=1)
    return facts.reindex(messages.index)


def _vocabulary_richness(messages: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Distinct lower-cased words / words per group (groups without words are absent).

    Words are counted per group from dictionary codes (`MessageText.distinct_word_ratio`),
    never exploded into one row per word: exploding copies the key columns once per word,
    which cost gigabytes at PAN size and memory quadratic in one message's length."""
    grouped = messages.groupby(keys, sort=True)
    codes = grouped.ngroup().fillna(-1).to_numpy(dtype=np.int64)  # -1: a row in no group
    index = grouped.size().index
    ratio = MessageText(messages["text"]).distinct_word_ratio(codes, len(index))
    return pd.Series(ratio, index=index).dropna()


def author_conversation_features(
    messages: pd.DataFrame,
    lexicons: Mapping[str, Sequence[str]],
    facts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (conversation_id, author, split) with the ``f_`` and ``cue_`` features
    (`facts`: `message_facts` of the same messages, when the caller has them already)."""
    facts = message_facts(messages, lexicons) if facts is None else facts
    cue_columns = [c for c in facts.columns if c.startswith("cue_")]
    frame = pd.concat([messages[["conversation_id", "author", "split", "line"]], facts], axis=1)
    keys = ["conversation_id", "author", "split"]
    conversation = frame.groupby("conversation_id").agg(
        total=("line", "size"),
        first=("line", "min"),
        last=("line", "max"),
        authors=("author", "nunique"),
    )
    runs = frame.groupby([*keys, "run_id"]).size().groupby(keys).agg(["mean", "max"])
    grouped = frame.groupby(keys)
    out = grouped.agg(
        f_messages=("line", "size"),
        f_words=("words", "sum"),
        first_line=("line", "min"),
        last_line=("line", "max"),
        f_question_rate=("is_question", "mean"),
        f_mean_chars=("chars", "mean"),
        f_max_chars=("chars", "max"),
        f_mean_gap_min=("gap_min", "mean"),
        f_night_share=("is_night", "mean"),
        emoticons=("emoticons", "sum"),
        elongated=("elongated", "sum"),
        f_hour_sin=("hour_sin", "mean"),
        f_hour_cos=("hour_cos", "mean"),
        **{c: (c, "mean") for c in cue_columns},
    )
    out = out.join(conversation, on="conversation_id")
    out["f_participants"] = out["authors"]
    out["f_conversation_length"] = out["total"]
    out["f_message_share"] = out["f_messages"] / out["total"]
    out["f_starts"] = (out["first_line"] == out["first"]).astype(float)
    out["f_ends"] = (out["last_line"] == out["last"]).astype(float)
    out["f_mean_run"] = runs["mean"]
    out["f_max_run"] = runs["max"]
    out["f_vocab_richness"] = _vocabulary_richness(messages, keys).reindex(out.index).fillna(0)
    out["f_emoticon_rate"] = out["emoticons"] / out["f_messages"]
    out["f_elongation_rate"] = out["elongated"] / out["f_messages"]
    out["f_partners"] = out["authors"] - 1
    feature_columns = [c for c in FEATURE_DOCS if c in out.columns] + cue_columns
    return out[feature_columns].reset_index()


def distinct_partners(messages: pd.DataFrame) -> pd.Series:
    """Distinct other authors each author met, indexed by (author, split); authors who only
    wrote monologues are absent (callers fill 0)."""
    pairs = messages[["conversation_id", "author", "split"]].drop_duplicates()
    met = pairs.merge(pairs, on=["conversation_id", "split"], suffixes=("", "_partner"))
    met = met[met["author"] != met["author_partner"]]
    return met.groupby(["author", "split"])["author_partner"].nunique()


def author_features(per_conversation: pd.DataFrame, messages: pd.DataFrame) -> pd.DataFrame:
    """One row per (author, split): counts summed, rates weighted by messages, starts/ends as
    shares of conversations, the longest run, and distinct partners."""
    frame = per_conversation.copy()
    weight = frame["f_messages"]
    rate_columns = [
        "f_question_rate",
        "f_mean_chars",
        "f_night_share",
        "f_vocab_richness",
        "f_emoticon_rate",
        "f_elongation_rate",
        *[c for c in frame.columns if c.startswith("cue_")],
    ]
    for column in rate_columns:
        frame[column] = frame[column] * weight
    frame["gap_weight"] = frame["f_mean_gap_min"].notna() * weight
    frame["f_mean_gap_min"] = frame["f_mean_gap_min"].fillna(0) * weight
    frame["hour_weight"] = frame["f_hour_sin"].notna() * weight
    for column in ("f_hour_sin", "f_hour_cos"):
        frame[column] = frame[column].fillna(0) * weight
    grouped = frame.groupby(["author", "split"])
    out = grouped.agg(
        f_messages=("f_messages", "sum"),
        f_words=("f_words", "sum"),
        f_conversations=("conversation_id", "nunique"),
        f_message_share=("f_message_share", "mean"),
        f_starts=("f_starts", "mean"),
        f_ends=("f_ends", "mean"),
        f_mean_run=("f_mean_run", "mean"),
        f_max_run=("f_max_run", "max"),
        f_max_chars=("f_max_chars", "max"),
        gap_weight=("gap_weight", "sum"),
        f_mean_gap_min=("f_mean_gap_min", "sum"),
        hour_weight=("hour_weight", "sum"),
        f_hour_sin=("f_hour_sin", "sum"),
        f_hour_cos=("f_hour_cos", "sum"),
        f_participants=("f_participants", "mean"),
        f_conversation_length=("f_conversation_length", "mean"),
        **{c: (c, "sum") for c in rate_columns},
    )
    for column in rate_columns:
        out[column] = out[column] / out["f_messages"]
    out["f_mean_gap_min"] = (out["f_mean_gap_min"] / out["gap_weight"]).where(out["gap_weight"] > 0)
    for column in ("f_hour_sin", "f_hour_cos"):
        out[column] = (out[column] / out["hour_weight"]).where(out["hour_weight"] > 0)
    out["f_partners"] = distinct_partners(messages).reindex(out.index).fillna(0)
    columns = [c for c in FEATURE_DOCS if c in out.columns] + [
        c for c in out.columns if c.startswith("cue_")
    ]
    return out[columns].reset_index()


def conversation_features(
    messages: pd.DataFrame,
    lexicons: Mapping[str, Sequence[str]],
    facts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (conversation_id, split): size, authors, reply gaps, night share, questions,
    message length, emoticons and cues per message."""
    facts = message_facts(messages, lexicons) if facts is None else facts
    cue_columns = [c for c in facts.columns if c.startswith("cue_")]
    frame = pd.concat([messages[["conversation_id", "author", "split"]], facts], axis=1)
    out = frame.groupby(["conversation_id", "split"]).agg(
        f_messages=("author", "size"),
        f_authors=("author", "nunique"),
        f_words=("words", "sum"),
        f_mean_gap_min=("gap_min", "mean"),
        f_night_share=("is_night", "mean"),
        f_question_rate=("is_question", "mean"),
        f_mean_chars=("chars", "mean"),
        f_max_chars=("chars", "max"),
        f_emoticon_rate=("emoticons", "mean"),
        f_elongation_rate=("elongated", "mean"),
        f_hour_sin=("hour_sin", "mean"),
        f_hour_cos=("hour_cos", "mean"),
        **{c: (c, "mean") for c in cue_columns},
    )
    return out.reset_index()
