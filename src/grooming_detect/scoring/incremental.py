"""Message-by-message scores of a linear TF-IDF model, without re-vectorising the prefix.

A TF-IDF + logistic-regression pipeline scores a document ``d`` as
``sigmoid(b + sum_blocks w_block . x_block / ||x_block||)`` with ``x_block[j] = idf[j] g(c_j)``,
``c_j`` the document's count of term ``j`` and ``g(c) = 1 + log c`` (sublinear tf) or ``c``. When a
message is appended to a document only the counts of the message's own terms change, so a stream
keeps, per block, the term counts, the squared norm and the dot product with the coefficients,
and updates the three with the message's terms alone: the cost of a step is the size of the
message, not of the prefix.

The result is the pipeline's own score of the prefix document (the messages so far joined by the
message separator), not an approximation: word n-grams that span the join are formed from the
previous message's last tokens (the stream's *tail*), and ``char_wb`` n-grams never cross a word.
`LinearPrefixScorer.from_pipeline` returns None for a model it cannot reproduce exactly (another
classifier, behavioural columns, the ``char`` analyser, a separator that would merge tokens); the
caller then re-scores a sliding window instead (`grooming_detect.evaluation.early`).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.utils import murmurhash3_32

from grooming_detect.features.text_views import speaker_marker
from grooming_detect.models.vectorizers import CompactTfidfVectorizer, HashingTfidfVectorizer

#: Distinct keys whose entries a block keeps (real chat repeats its words): word n-grams (one
#: entry each) and words of a character n-gram block (about twenty entries each, so fewer:
#: 50,000 words take about 140 MB). A full cache is emptied.
TERM_CACHE_SIZE = {"word": 300_000, "char_wb": 50_000}


#: An entry of a term: (column, idf, coefficient), as Python floats for the update loop.
Entry = tuple[int, float, float]


@dataclass
class _Block:
    """One TF-IDF block of the pipeline with its slice of the coefficients."""

    analyzer: str  # "word" or "char_wb"
    ngram_range: tuple[int, int]
    preprocess: Any
    tokenize: Any
    idf: np.ndarray
    coef: np.ndarray
    sublinear: bool
    n_features: int | None  # hashed columns (scikit-learn's FeatureHasher), or
    vocabulary: dict[str, int] | None  # exact terms
    # Values are tuples of tuples of numbers: the garbage collector stops tracking them, so a
    # large cache costs no collection time.
    cache: dict[str, tuple[Entry, ...]] = field(default_factory=dict)

    def _entries(self, terms: list[str]) -> tuple[Entry, ...]:
        """The entries of `terms` whose idf is not zero (a column below min_df is zero in every
        document), one per occurrence."""
        out = []
        for term in terms:
            if self.vocabulary is not None:
                column = self.vocabulary.get(term)
                if column is None:
                    continue
            else:
                assert self.n_features is not None
                # FeatureHasher's column: |murmurhash3_32(term, seed=0)| mod n_features.
                column = abs(murmurhash3_32(term, seed=0)) % self.n_features
            weight = float(self.idf[column])
            if weight != 0.0:
                out.append((column, weight, float(self.coef[column])))
        return tuple(out)

    def _cached(self, key: str, terms: Any) -> tuple[Entry, ...]:
        entries = self.cache.get(key)
        if entries is None:
            entries = self._entries(terms(key))
            if len(self.cache) >= TERM_CACHE_SIZE[self.analyzer]:
                self.cache.clear()
            self.cache[key] = entries
        return entries

    def message_entries(
        self, tail: tuple[str, ...], text: str
    ) -> tuple[Sequence[Entry], tuple[str, ...]]:
        """The entries a message adds to a document ending in `tail` (its last tokens, for word
        n-grams that span the join), and the new tail."""
        processed = self.preprocess(text)
        if self.analyzer == "char_wb":  # n-grams never cross a word: the sum over words
            entries: list[Entry] = []
            for word in processed.split():
                entries.extend(self._cached(word, self._char_wb_terms))
            return entries, tail
        tokens = self.tokenize(processed)
        if not tokens:
            return [], tail
        low, high = self.ngram_range
        joined = [*tail, *tokens]
        entries = []
        for end in range(len(tail), len(joined)):
            for n in range(low, high + 1):
                if end - n + 1 >= 0:
                    entries.extend(self._cached(" ".join(joined[end - n + 1 : end + 1]), _one))
        keep = high - 1
        return entries, tuple(joined[-keep:]) if keep > 0 else ()

    def _char_wb_terms(self, word: str) -> list[str]:
        return _char_wb_ngrams(word, self.ngram_range)


def _one(term: str) -> list[str]:
    return [term]


def _char_wb_ngrams(word: str, ngram_range: tuple[int, int]) -> list[str]:
    """scikit-learn's ``char_wb`` n-grams of one (already preprocessed) word."""
    low, high = ngram_range
    padded = f" {word} "
    grams = []
    for n in range(low, high + 1):
        offset = 0
        grams.append(padded[offset : offset + n])
        while offset + n < len(padded):
            offset += 1
            grams.append(padded[offset : offset + n])
        if offset == 0:  # the word is shorter than n: one n-gram, as scikit-learn
            break
    return grams


@dataclass
class StreamState:
    """What one stream (an author in a conversation, or a conversation) has read so far."""

    counts: list[dict[int, int]]
    squared_norm: list[float]
    dot: list[float]
    tails: list[tuple[str, ...]]
    messages: int = 0


class LinearPrefixScorer:
    """Scores of growing documents for a supported TF-IDF + logistic-regression pipeline."""

    def __init__(self, blocks: list[_Block], intercept: float, separator: str) -> None:
        self.blocks = blocks
        self.intercept = intercept
        self.separator = separator

    @classmethod
    def from_pipeline(cls, model: Any, separator: str) -> LinearPrefixScorer | None:
        """The incremental form of `model`, or None when it cannot be reproduced exactly."""
        steps = getattr(model, "steps", None)
        if not steps or len(steps) != 2:
            return None
        features, classifier = steps[0][1], steps[1][1]
        if not isinstance(classifier, LogisticRegression) or classifier.coef_.shape[0] != 1:
            return None
        transformers = getattr(features, "transformers_", None)
        if transformers is None or getattr(features, "transformer_weights", None):
            return None
        coef = np.asarray(classifier.coef_, dtype=np.float64).ravel()
        blocks = []
        for name, transformer, selected in transformers:
            if name == "remainder":
                if transformer != "drop":
                    return None
                continue
            if selected != "text":
                return None
            block = _block_of(transformer, coef[features.output_indices_[name]], separator)
            if block is None:
                return None
            blocks.append(block)
        if not blocks:
            return None
        return cls(blocks, float(classifier.intercept_[0]), separator)

    def new_state(self) -> StreamState:
        n = len(self.blocks)
        return StreamState([{} for _ in range(n)], [0.0] * n, [0.0] * n, [()] * n)

    def empty_score(self) -> float:
        """The score of an empty document."""
        return _expit(self.intercept)

    def update(self, state: StreamState, text: str) -> float:
        """Append one message to the stream's document; return the document's new score.

        An empty message adds nothing (document views leave empty messages out)."""
        if text:
            for i, block in enumerate(self.blocks):
                entries, state.tails[i] = block.message_entries(state.tails[i], text)
                self._add(state, i, entries, block.sublinear)
            state.messages += 1
        return self.score(state)

    def score(self, state: StreamState) -> float:
        """The current score of a stream's document."""
        logit = self.intercept
        for squared, dot in zip(state.squared_norm, state.dot, strict=True):
            if squared > 1e-24:
                logit += dot / math.sqrt(squared)
        return _expit(logit)

    @staticmethod
    def _add(state: StreamState, i: int, entries: Sequence[Entry], sublinear: bool) -> None:
        held = state.counts[i]
        squared, dot = state.squared_norm[i], state.dot[i]
        table = _SUBLINEAR if sublinear else _LINEAR
        size = len(table)
        for column, weight, coef in entries:
            old = held.get(column, 0)
            new = old + 1
            held[column] = new
            if new < size:
                change = table[new] - table[old]
                after = weight * table[new]
            else:
                after = weight * (1.0 + math.log(new) if sublinear else new)
                change = after / weight - (1.0 + math.log(old) if sublinear else old)
            before = after - weight * change
            squared += after * after - before * before
            dot += coef * weight * change
        state.squared_norm[i], state.dot[i] = squared, dot

    def score_stream(self, texts: Sequence[str]) -> np.ndarray:
        """Scores after each of `texts`, appended in order to one fresh stream."""
        state = self.new_state()
        return np.array([self.update(state, text) for text in texts], dtype=np.float64)


#: g(c) for the counts most terms have: 1 + log c (sublinear tf) or c, and g(0) = 0.
_SUBLINEAR = [0.0] + [1.0 + math.log(c) for c in range(1, 4096)]
_LINEAR = [float(c) for c in range(4096)]


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _block_of(transformer: Any, coef: np.ndarray, separator: str) -> _Block | None:
    """The `_Block` of one fitted TF-IDF transformer, or None when it is not supported."""
    if isinstance(transformer, HashingTfidfVectorizer):
        reference: CountVectorizer | HashingVectorizer = transformer._hasher()
        idf = np.asarray(transformer.idf_, dtype=np.float64)
        sublinear = bool(transformer.sublinear_tf)
        n_features: int | None = int(transformer.n_features)
        vocabulary = None
    elif isinstance(transformer, CompactTfidfVectorizer):
        if transformer.norm != "l2" or not transformer.use_idf or transformer.binary:
            return None
        if transformer.stop_words is not None:
            return None
        reference = transformer
        idf = np.asarray(transformer.idf_, dtype=np.float64)
        sublinear = bool(transformer.sublinear_tf)
        n_features, vocabulary = None, dict(transformer.vocabulary_)
    else:
        return None
    if reference.analyzer not in ("word", "char_wb") or reference.stop_words is not None:
        return None
    preprocess, tokenize = reference.build_preprocessor(), reference.build_tokenizer()
    # Messages are joined by the separator: it must end a token (word) or a word (char_wb),
    # or n-grams would form across the join that the tail does not reproduce.
    probe = preprocess("ab" + separator + "cd")
    if reference.analyzer == "word" and tokenize(probe) != [*tokenize("ab"), *tokenize("cd")]:
        return None
    if reference.analyzer == "char_wb" and probe.split() != ["ab", "cd"]:
        return None
    return _Block(
        analyzer=reference.analyzer,
        ngram_range=(int(reference.ngram_range[0]), int(reference.ngram_range[1])),
        preprocess=preprocess,
        tokenize=tokenize,
        idf=idf,
        coef=np.asarray(coef, dtype=np.float64),
        sublinear=sublinear,
        n_features=n_features,
        vocabulary=vocabulary,
    )


class PrefixScorer(Protocol):
    """Scores of growing documents: `LinearPrefixScorer` (TF-IDF + logistic regression) or
    `grooming_detect.scoring.score_streams.MessageScorePrefixScorer` (models that score each
    message and pool)."""

    def new_state(self) -> Any: ...

    def update(self, state: Any, text: str) -> float: ...


def prefix_scorer(model: Any, separator: str) -> PrefixScorer | None:
    """The exact incremental form of `model`, or None when it has none (the caller then
    re-scores a sliding window)."""
    linear = LinearPrefixScorer.from_pipeline(model, separator)
    if linear is not None:
        return linear
    from grooming_detect.scoring.score_streams import MessageScorePrefixScorer

    return MessageScorePrefixScorer.from_model(model, separator)


class ConversationStreams:
    """Raw risk of each open conversation after every message, from a `PrefixScorer`.

    An author model (`unit` ``author``) scores each author's own messages in the conversation
    so far and the conversation takes its highest-scoring author; a conversation model scores
    the conversation so far, every message prefixed with its speaker's marker (the conversation
    view's document). State per open conversation is the term counts of what it has read; at
    most `max_open` conversations are held, the least recently active one being closed (and
    counted in `closed`) when another opens."""

    def __init__(self, scorer: PrefixScorer, unit: str, max_open: int | None = None) -> None:
        if unit not in ("author", "conversation"):
            raise ValueError(f"unit {unit!r}: expected 'author' or 'conversation'")
        if max_open is not None and max_open < 1:
            raise ValueError(f"max_open {max_open}: expected a positive whole number")
        self.scorer = scorer
        self.unit = unit
        self.max_open = max_open
        self.closed = 0
        self._open: OrderedDict[str, ConversationTerms] = OrderedDict()

    def add(self, conversation_id: str, author: str, text: str) -> float:
        """Read one message; return the conversation's raw risk after it."""
        conversation = self._open.get(conversation_id)
        if conversation is None:
            if self.max_open is not None and len(self._open) >= self.max_open:
                self._open.popitem(last=False)
                self.closed += 1
            conversation = self._open[conversation_id] = ConversationTerms()
        else:
            self._open.move_to_end(conversation_id)
        return conversation.add(self.scorer, self.unit, author, text)

    def add_many(self, messages: Sequence[tuple[str, str, str]]) -> list[float]:
        """`add` each (conversation id, author, text) in order; a scorer that can score many
        messages in one call (`MessageScorePrefixScorer.prime`) does so first, and forgets
        them after."""
        prime = getattr(self.scorer, "prime", None)
        forget = getattr(self.scorer, "forget", None)
        if prime is None or forget is None:
            return [self.add(cid, author, text) for cid, author, text in messages]
        prime([text for _, _, text in messages])
        try:
            return [self.add(cid, author, text) for cid, author, text in messages]
        finally:
            forget()

    def close(self, conversation_id: str) -> None:
        """Forget a conversation (it ended)."""
        self._open.pop(conversation_id, None)

    def __len__(self) -> int:
        return len(self._open)


@dataclass
class ConversationTerms:
    """What a conversation's stream has read: its speakers in order of first appearance, and
    the term counts of each author's messages (an author model) or of the whole conversation
    (a conversation model), with each author's latest score."""

    speakers: dict[str, int] = field(default_factory=dict)
    # StreamState for a LinearPrefixScorer (to_json serialises only those: the Spark stream's
    # models), RunningScores for a MessageScorePrefixScorer.
    authors: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    whole: Any = None

    def add(self, scorer: PrefixScorer, unit: str, author: str, text: str) -> float:
        """Read one message; return the conversation's raw risk after it (see
        `ConversationStreams`)."""
        rank = self.speakers.setdefault(author, len(self.speakers))
        if unit == "conversation":
            if self.whole is None:
                self.whole = scorer.new_state()
            return scorer.update(self.whole, f"{speaker_marker(rank)} {text}")
        state = self.authors.get(author)
        if state is None:
            state = self.authors[author] = scorer.new_state()
        self.scores[author] = scorer.update(state, text)
        return max(self.scores.values())

    def to_json(self) -> str:
        """The state as JSON, for a state store (the Spark stream's): numbers and the last
        tokens of each stream (`StreamState.tails`), never a pickle. Floats round-trip
        exactly, so a stream restored with `from_json` scores as if it had never been saved."""
        return json.dumps(
            {
                "speakers": self.speakers,
                "authors": {a: _stream_dict(s) for a, s in self.authors.items()},
                "scores": self.scores,
                "whole": None if self.whole is None else _stream_dict(self.whole),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> ConversationTerms:
        """The state `to_json` wrote."""
        raw = json.loads(text)
        return cls(
            speakers={str(a): int(r) for a, r in raw["speakers"].items()},
            authors={str(a): _stream_of(s) for a, s in raw["authors"].items()},
            scores={str(a): float(v) for a, v in raw["scores"].items()},
            whole=None if raw["whole"] is None else _stream_of(raw["whole"]),
        )


def _stream_dict(state: StreamState) -> dict[str, Any]:
    return {
        # Column -> count as [column, count] pairs: JSON object keys would be strings.
        "counts": [[[c, n] for c, n in block.items()] for block in state.counts],
        "squared_norm": state.squared_norm,
        "dot": state.dot,
        "tails": [list(tail) for tail in state.tails],
        "messages": state.messages,
    }


def _stream_of(raw: dict[str, Any]) -> StreamState:
    return StreamState(
        counts=[{int(c): int(n) for c, n in block} for block in raw["counts"]],
        squared_norm=[float(v) for v in raw["squared_norm"]],
        dot=[float(v) for v in raw["dot"]],
        tails=[tuple(str(t) for t in tail) for tail in raw["tails"]],
        messages=int(raw["messages"]),
    )
