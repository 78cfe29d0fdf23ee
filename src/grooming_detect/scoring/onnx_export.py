"""A trained TF-IDF + logistic-regression model as one ONNX graph that scores unit documents.

The graph takes a 1-D string tensor of unit documents (an author's non-empty messages joined by
the model's message separator) and returns the calibrated positive score and whether it reaches
the tuned threshold, with ONNX Runtime alone: no tokenizer, vocabulary file or Python code of
this package on the device. See ``docs/onnx.md``.

Hashing, not a vocabulary: `HashingTfidfVectorizer` keeps no n-grams, only an idf per hash
column, so the graph hashes each n-gram as scikit-learn does (MurmurHash3 x86 32-bit, seed 0, of
its UTF-8 bytes; column ``|h| mod n_features``) with ONNX Runtime's ``com.microsoft.MurmurHash3``.
An n-gram never seen in training that hashes to a trained column counts there, as in Python (a
vocabulary of training n-grams would drop it, and change the norm).

The graph, per document: lower-case (``StringNormalizer``), word tokens (``Tokenizer`` with the
regular expression ``[\\p{L}\\p{N}_]{2,}``, scikit-learn's ``(?u)\\b\\w\\w+\\b``) and their n-grams
joined by a space (``StringConcat``); the characters of ``" " + document + " "`` (``Tokenizer``
in character mode), whitespace (``LabelEncoder``) read as a space, and their n-grams whose inner
characters belong to a word: scikit-learn's ``char_wb`` n-grams of space-padded words; each n-gram
hashed, counted per document and column (``Unique``), weighted by ``1 + log(count)`` times the
column's idf, and the L2 norm and the dot product with the coefficients summed per document and
block (``ScatterElements``); then ``sigmoid(intercept + sum of dot / norm)`` and the calibrator.

What is not exact (measured in ``docs/onnx.md``, and on `PROBE_DOCUMENTS` at every export):

* lower-casing is per code point (the C library's ``towlower`` under `LOCALE`): Python maps
  ``İ`` (U+0130) to two code points and a word-final capital sigma to ``ς``; ONNX Runtime maps
  them to ``i`` and ``σ``;
* RE2 (the ``Tokenizer``'s regular expressions) knows a newer Unicode than Python 3.11: code
  points unassigned in Unicode 14 but letters since are word characters to the graph only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from grooming_detect.errors import ExportUnsupportedError, MissingExtraError, install_hint
from grooming_detect.io import atomic_path
from grooming_detect.models.decision import ScoreCalibrator
from grooming_detect.models.units import positive_scores
from grooming_detect.models.vectorizers import HashingTfidfVectorizer

#: ONNX opset: 20 brings ``StringConcat``.
OPSET = 20
#: The locale ``StringNormalizer`` lower-cases in: present in every glibc since 2.35 and in
#: musl; ``en_US.UTF-8`` (ONNX Runtime's default) is missing from slim containers.
LOCALE = "C.UTF-8"
#: Scores of the float graph equal Python's within this (measured: about 1e-7).
FLOAT_TOLERANCE = 1e-5
#: Scores of the int8 graph (int8 idf and coefficient tables) equal Python's within this.
INT8_TOLERANCE = 0.02
#: scikit-learn's word token, ``(?u)\b\w\w+\b``, in RE2: runs of two or more word characters.
WORD_TOKEN = r"[\p{L}\p{N}_]{2,}"
#: Python's ``str.isspace`` characters (also Arrow's ``utf8_split_whitespace``, which the
#: package's char_wb counting splits words at): every other character is part of a word.
SPACE_CHARACTERS: tuple[str, ...] = tuple(
    chr(c)
    for c in (
        *range(0x09, 0x0E),
        *range(0x1C, 0x21),
        0x85,
        0xA0,
        0x1680,
        *range(0x2000, 0x200B),
        0x2028,
        0x2029,
        0x202F,
        0x205F,
        0x3000,
    )
)
#: Padding of the tokenizers: a lone space is never a token of either regular expression, and
#: two spaces are never one character.
_TOKEN_PAD = " "
_CHAR_PAD = "  "
#: A document the graph scores before the caller's, so that every tensor has a token (the
#: ``Tokenizer`` returns other ranks for a batch without one); its score is dropped.
_WARM_DOCUMENT = "ab"

#: Harmless texts every export is checked on, hostile to a tokenizer: empty, whitespace only,
#: punctuation only, emoji, other scripts, mixed case, the separator itself, very long.
PROBE_DOCUMENTS: tuple[str, ...] = (
    "",
    " ",
    "\n",
    "\n\n\n",
    "?!... ,;: --- ***",
    "hi there, how was school today?",
    "HeLLo THERE how ARE you",
    "ok 😀 see you 👍🏽 tomorrow 🎉",
    "привет как дела",
    "こんにちは 今日は いい天気 ですね",
    "مرحبا كيف حالك",
    "नमस्ते आप कैसे हैं",
    "ça va? très bien, merci — à demain",
    "tab\tseparated\twords and\u00a0no-break\u2003spaces",
    "line one\nline two\nline three",
    "a b c d e f g h",
    "did you finish the homework for maths\nyes it was easy\nsee you at practice",
    "the game last night was great " * 200,
    "x" * 3000,
)


@dataclass(frozen=True)
class HashedBlock:
    """One TF-IDF block of the model: how it cuts text, and its learned tables."""

    analyzer: str
    ngram_range: tuple[int, int]
    n_features: int
    sublinear_tf: bool
    idf: np.ndarray
    coef: np.ndarray


@dataclass(frozen=True)
class ExportableModel:
    """What the ONNX graph needs from a trained model."""

    blocks: list[HashedBlock]
    intercept: float
    calibration: dict[str, Any]
    threshold: float
    metadata: dict[str, str]


def _refuse(name: str, reason: str) -> ExportUnsupportedError:
    return ExportUnsupportedError(f"cannot export model {name!r} to ONNX: {reason}")


def exportable(model: Any, meta: dict[str, Any]) -> ExportableModel:
    """The parts of a trained model the graph reproduces, or an error naming the model and why
    it cannot be exported (only TF-IDF with hashing and logistic regression on the unit's own
    text documents can)."""
    name = str(meta.get("model_name") or type(model).__name__)
    from grooming_detect.scoring.onnx_embedding import is_embedding_model, refuse_embedding

    if is_embedding_model(model):
        refuse_embedding(model, name)  # sentinel, design: pooled_vectors
        raise _refuse(
            name,
            "an embedding_logreg model: export() writes it as a model graph and a tokenizer "
            "graph (grooming_detect.scoring.onnx_embedding), not as this TF-IDF graph",
        )
    if meta.get("format") == "transformer" or not isinstance(model, Pipeline):
        raise _refuse(
            name,
            f"a {type(model).__name__}; only a TF-IDF (hashing) + logistic-regression pipeline "
            "(model=tfidf_logreg) and embedding_logreg (design: message_scores) can be exported",
        )
    steps = model.steps
    if len(steps) != 2:
        kinds = ", ".join(type(step).__name__ for _, step in steps)
        raise _refuse(
            name,
            f"its steps are {kinds}; only a TF-IDF (hashing) + logistic-regression pipeline "
            "is exported (the embedding encoder is not)",
        )
    features, classifier = steps[0][1], steps[1][1]
    if not isinstance(classifier, LogisticRegression) or np.shape(classifier.coef_)[0] != 1:
        raise _refuse(
            name,
            f"its classifier is a {type(classifier).__name__}; only a binary "
            "LogisticRegression is exported",
        )
    unit = str(meta.get("unit", "author"))
    kind = meta.get("input") or unit
    if kind != unit:
        raise _refuse(
            name,
            f"it reads {kind} rows aggregated to {unit}s; only models that read one document "
            "per unit are exported",
        )
    transformers = getattr(features, "transformers_", None)
    if transformers is None:
        raise _refuse(
            name,
            f"its features are a {type(features).__name__}; only TF-IDF (hashing) blocks on "
            "the text are exported (the embedding encoder is not)",
        )
    coef = np.asarray(classifier.coef_, dtype=np.float64).ravel()
    blocks = []
    for block_name, transformer, selected in transformers:
        if block_name == "remainder" and isinstance(transformer, str) and transformer == "drop":
            continue
        if not isinstance(transformer, HashingTfidfVectorizer):
            what = transformer if isinstance(transformer, str) else type(transformer).__name__
            raise _refuse(
                name,
                f"feature block {block_name!r} is {what} on {selected!r}; only "
                "HashingTfidfVectorizer blocks on the text are exported (behavioural "
                "features and vocabulary TF-IDF are not)",
            )
        if selected != "text":
            raise _refuse(name, f"feature block {block_name!r} reads {selected!r}, not the text")
        low, high = (int(n) for n in transformer.ngram_range)
        if transformer.analyzer not in ("word", "char_wb") or not transformer.lowercase:
            raise _refuse(
                name,
                f"feature block {block_name!r}: analyzer={transformer.analyzer!r}, "
                f"lowercase={transformer.lowercase}; exported: word or char_wb, lower-cased",
            )
        if transformer.analyzer == "char_wb" and low < 2:
            raise _refuse(name, f"feature block {block_name!r}: char_wb n-grams from 1 character")
        blocks.append(
            HashedBlock(
                analyzer=str(transformer.analyzer),
                ngram_range=(low, high),
                n_features=int(transformer.n_features),
                sublinear_tf=bool(transformer.sublinear_tf),
                idf=np.asarray(transformer.idf_, dtype=np.float32),
                coef=coef[features.output_indices_[block_name]].astype(np.float32),
            )
        )
    if not blocks:
        raise _refuse(name, "it has no TF-IDF block")
    if getattr(features, "transformer_weights", None):
        raise _refuse(name, "its feature blocks are weighted (transformer_weights)")
    calibration = dict(meta.get("calibration") or {"method": "none"})
    recorded = meta.get("features") or {}
    metadata = {
        "model_name": name,
        "unit": unit,
        "threshold": repr(float(meta["threshold"])),
        "calibration": json.dumps(calibration),
        "message_separator": json.dumps(recorded.get("message_separator", "\n")),
        "document": (
            "one unit document per string: the author's non-empty messages in conversation and "
            "line order, joined by message_separator (a JSON string)"
        ),
        "outputs": "score: calibrated risk in [0, 1]; flagged: score >= threshold",
        "blocks": json.dumps(
            [
                {
                    "analyzer": b.analyzer,
                    "ngram_range": list(b.ngram_range),
                    "n_features": b.n_features,
                    "sublinear_tf": b.sublinear_tf,
                }
                for b in blocks
            ]
        ),
        "run_id": str(meta.get("run_id") or ""),
        "lowercase_locale": LOCALE,
    }
    return ExportableModel(
        blocks=blocks,
        intercept=float(np.ravel(classifier.intercept_)[0]),
        calibration=calibration,
        threshold=float(meta["threshold"]),
        metadata=metadata,
    )


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as error:
        raise MissingExtraError(
            f"exporting to ONNX needs the optional 'onnx' extra ({error}): {install_hint('onnx')}"
        ) from error
    return onnx


class _Graph:
    """Nodes and initializers of the graph being built, with unique names."""

    def __init__(self) -> None:
        self.onnx = _onnx()
        self.helper = self.onnx.helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def op(self, op_type: str, *inputs: str, domain: str = "", **attributes: Any) -> str:
        output = self.name(op_type.lower())
        self.nodes.append(
            self.helper.make_node(
                op_type, list(inputs), [output], name=output, domain=domain, **attributes
            )
        )
        return output

    def ops(self, op_type: str, inputs: list[str], n_outputs: int, **attributes: Any) -> list[str]:
        outputs = [self.name(op_type.lower()) for _ in range(n_outputs)]
        self.nodes.append(
            self.helper.make_node(op_type, inputs, outputs, name=outputs[0], **attributes)
        )
        return outputs

    def const(self, value: Any, stem: str = "const", dtype: Any = None) -> str:
        name = self.name(stem)
        array = np.asarray(value, dtype=dtype)
        if array.dtype.kind in "OUS":
            tensor = self.helper.make_tensor(
                name,
                self.onnx.TensorProto.STRING,
                array.shape,
                [s.encode("utf-8") for s in array.ravel().tolist()],
            )
        else:
            tensor = self.onnx.numpy_helper.from_array(array, name)
        self.initializers.append(tensor)
        return name

    def last_axis_slice(self, data: str, start: int, stop: int | None) -> str:
        """``data[..., start:stop]`` (``stop`` None: to the end; negative: from the end)."""
        end = np.iinfo(np.int64).max if stop is None else stop
        return self.op(
            "Slice",
            data,
            self.const([start], dtype=np.int64),
            self.const([end], dtype=np.int64),
            self.const([-1], dtype=np.int64),
        )


def _ngram_levels(
    graph: _Graph, tokens: str, valid: str, high: int, joiner: str
) -> Iterator[tuple[int, str, str]]:
    """``(n, n-grams, valid)`` along the last axis of `tokens` for n = 1 .. `high`: the n-gram
    at i is the (n-1)-gram at i, `joiner` and token i + n - 1 (one ``StringConcat`` a level);
    an n-gram is valid when its tokens all are."""
    gram, ok = tokens, valid
    yield 1, gram, ok
    for n in range(2, high + 1):
        head = graph.last_axis_slice(gram, 0, -1)
        if joiner:
            head = graph.op("StringConcat", head, graph.const(joiner, "joiner"))
        gram = graph.op("StringConcat", head, graph.last_axis_slice(tokens, n - 1, None))
        ok = graph.op(
            "And", graph.last_axis_slice(ok, 0, -1), graph.last_axis_slice(valid, n - 1, None)
        )
        yield n, gram, ok


def _keys(
    graph: _Graph, grams: str, ok: str, rows: str, width: int, offset: int, n_features: int
) -> str:
    """The flat keys ``row * width + offset + column`` of the valid n-grams in `grams`."""
    hashed = graph.op("MurmurHash3", grams, domain="com.microsoft", positive=0, seed=0)
    column = graph.op(
        "Mod",
        graph.op("Abs", graph.op("Cast", hashed, to=graph.onnx.TensorProto.INT64)),
        graph.const(n_features, dtype=np.int64),
    )
    row_grid = graph.op("Expand", rows, graph.op("Shape", grams))
    key = graph.op(
        "Add",
        graph.op("Mul", row_grid, graph.const(width, dtype=np.int64)),
        graph.op("Add", column, graph.const(offset, dtype=np.int64)),
    )
    flat = graph.const([-1], dtype=np.int64)
    return graph.op("Compress", graph.op("Reshape", key, flat), graph.op("Reshape", ok, flat))


def _block_keys(
    graph: _Graph, block: HashedBlock, lowered: str, rows: str, width: int, offset: int
) -> list[str]:
    """The keys of every n-gram occurrence of one block in the lower-cased documents."""
    low, high = block.ngram_range
    if block.analyzer == "word":
        tokens = graph.op(
            "Tokenizer",
            lowered,
            domain="com.microsoft",
            mark=0,
            mincharnum=1,
            pad_value=_TOKEN_PAD,
            tokenexp=WORD_TOKEN,
        )
        valid = graph.op("Not", graph.op("Equal", tokens, graph.const(_TOKEN_PAD, "pad")))
        row_grid = graph.op("Reshape", rows, graph.const([-1, 1], dtype=np.int64))
        return [
            _keys(graph, grams, ok, row_grid, width, offset, block.n_features)
            for n, grams, ok in _ngram_levels(graph, tokens, valid, high, " ")
            if n >= low
        ]
    # char_wb: the n-grams of each word padded with a space on each side are the n-grams of
    # " document " (every whitespace character read as a space) whose inner characters are
    # word characters; a padded word no longer than the longest n is counted once, whole, as
    # the substring from its space to its space (also below the shortest n: scikit-learn's
    # rule for a padded word shorter than it).
    space = graph.const(" ", "space")
    chars = graph.op(
        "Tokenizer",
        graph.op("StringConcat", graph.op("StringConcat", space, lowered), space),
        domain="com.microsoft",
        mark=0,
        mincharnum=1,
        pad_value=_CHAR_PAD,
        separators=[""],
    )
    present = graph.op("Not", graph.op("Equal", chars, graph.const(_CHAR_PAD, "pad")))
    is_space = graph.op(
        "Cast",
        graph.op(
            "LabelEncoder",
            chars,
            domain="ai.onnx.ml",
            keys_strings=list(SPACE_CHARACTERS),
            values_int64s=[1] * len(SPACE_CHARACTERS),
            default_int64=0,
        ),
        to=graph.onnx.TensorProto.BOOL,
    )
    spaced = graph.op("Where", is_space, space, chars)
    word_char = graph.op("And", present, graph.op("Not", is_space))
    row_grid = graph.op("Reshape", rows, graph.const([-1, 1], dtype=np.int64))
    keys = []
    inner = None  # whether the inner characters of each n-gram (n >= 3) belong to a word
    for n, grams, ok in _ngram_levels(graph, spaced, present, high, ""):
        if n >= 3:
            following = graph.last_axis_slice(word_char, n - 2, -1)
            inner = (
                following
                if inner is None
                else graph.op("And", graph.last_axis_slice(inner, 0, -1), following)
            )
        if n < min(low, 3):
            continue
        if inner is not None:
            ok = graph.op("And", ok, inner)
        if n == 2:  # two spaces are no word's n-gram
            first = graph.last_axis_slice(word_char, 0, -1)
            second = graph.last_axis_slice(word_char, 1, None)
            ok = graph.op("And", ok, graph.op("Or", first, second))
        if n < low:  # only a whole padded word: a space at both ends
            first = graph.last_axis_slice(is_space, 0, -(n - 1))
            last = graph.last_axis_slice(is_space, n - 1, None)
            ok = graph.op("And", ok, graph.op("And", first, last))
        keys.append(_keys(graph, grams, ok, row_grid, width, offset, block.n_features))
    return keys


def _calibrated(graph: _Graph, probability: str, calibration: dict[str, Any]) -> str:
    """`ScoreCalibrator.transform` on a double tensor of probabilities."""
    method = calibration.get("method", "none")
    if method == "none":
        return probability
    if method in ("sigmoid", "temperature"):
        clipped = graph.op(
            "Clip",
            probability,
            graph.const(1e-6, dtype=np.float64),
            graph.const(1 - 1e-6, dtype=np.float64),
        )
        logit = graph.op(
            "Log",
            graph.op("Div", clipped, graph.op("Sub", graph.const(1.0, dtype=np.float64), clipped)),
        )
        if method == "sigmoid":
            scaled = graph.op(
                "Add",
                graph.op("Mul", logit, graph.const(float(calibration["a_"]), dtype=np.float64)),
                graph.const(float(calibration["b_"]), dtype=np.float64),
            )
        else:
            scaled = graph.op(
                "Div", logit, graph.const(float(calibration["temperature_"]), dtype=np.float64)
            )
        return graph.op("Sigmoid", scaled)
    if method == "isotonic":
        x = np.asarray(calibration["x_"], dtype=np.float64)
        y = np.asarray(calibration["y_"], dtype=np.float64)
        if len(x) == 1:
            return graph.op(
                "Add",
                graph.op("Mul", probability, graph.const(0.0, dtype=np.float64)),
                graph.const(float(y[0]), dtype=np.float64),
            )
        # np.interp: the segment [x[i], x[i+1]] holding the score, clipped at both ends.
        column = graph.op("Unsqueeze", probability, graph.const([-1], dtype=np.int64))
        segment = graph.op(
            "ReduceSum",
            graph.op(
                "Cast",
                graph.op("GreaterOrEqual", column, graph.const(x[1:-1], dtype=np.float64)),
                to=graph.onnx.TensorProto.INT64,
            ),
            graph.const([-1], dtype=np.int64),
            keepdims=0,
        )
        following = graph.op("Add", segment, graph.const(1, dtype=np.int64))
        x0 = graph.op("Gather", graph.const(x, dtype=np.float64), segment)
        x1 = graph.op("Gather", graph.const(x, dtype=np.float64), following)
        y0 = graph.op("Gather", graph.const(y, dtype=np.float64), segment)
        y1 = graph.op("Gather", graph.const(y, dtype=np.float64), following)
        width = graph.op("Sub", x1, x0)
        share = graph.op(
            "Div",
            graph.op("Sub", probability, x0),
            graph.op("Max", width, graph.const(1e-300, dtype=np.float64)),
        )
        share = graph.op(
            "Clip", share, graph.const(0.0, dtype=np.float64), graph.const(1.0, dtype=np.float64)
        )
        return graph.op("Add", y0, graph.op("Mul", share, graph.op("Sub", y1, y0)))
    raise ValueError(
        f"calibration method {method!r}: expected one of none, sigmoid, temperature, isotonic"
    )


def build_graph(parts: ExportableModel, locale: str = LOCALE) -> Any:
    """The ONNX model (``onnx.ModelProto``) of `parts`: input ``documents`` (string, [N]),
    outputs ``score`` (float32, [N]) and ``flagged`` (bool, [N])."""
    graph = _Graph()
    onnx = graph.onnx
    helper = graph.helper
    documents = graph.op("Concat", graph.const([_WARM_DOCUMENT], "warm"), "documents", axis=0)
    lowered = graph.op(
        "StringNormalizer",
        documents,
        case_change_action="LOWER",
        is_case_sensitive=1,
        locale=locale,
    )
    n_rows = graph.op("Shape", documents)
    rows = graph.op(
        "Range",
        graph.const(0, dtype=np.int64),
        graph.op("Squeeze", n_rows, graph.const([0], dtype=np.int64)),
        graph.const(1, dtype=np.int64),
    )
    n_blocks = len(parts.blocks)
    offsets = np.concatenate([[0], np.cumsum([b.n_features for b in parts.blocks])]).astype(int)
    width = int(offsets[-1])
    keys = [
        key
        for block, offset in zip(parts.blocks, offsets[:-1], strict=True)
        for key in _block_keys(graph, block, lowered, rows, width, int(offset))
    ]
    all_keys = graph.op("Concat", *keys, axis=0)
    unique, _, _, counts = graph.ops("Unique", [all_keys], 4, sorted=1)
    column = graph.op("Mod", unique, graph.const(width, dtype=np.int64))
    # One segment per (document, block), numbered document * n_blocks + block.
    block_of = graph.op(
        "Sub",
        graph.op(
            "ReduceSum",
            graph.op(
                "Cast",
                graph.op(
                    "GreaterOrEqual",
                    graph.op("Unsqueeze", column, graph.const([-1], dtype=np.int64)),
                    graph.const(offsets[:-1], dtype=np.int64),
                ),
                to=onnx.TensorProto.INT64,
            ),
            graph.const([-1], dtype=np.int64),
            keepdims=0,
        ),
        graph.const(1, dtype=np.int64),
    )
    segment = graph.op(
        "Add",
        graph.op(
            "Mul",
            graph.op("Div", unique, graph.const(width, dtype=np.int64)),
            graph.const(n_blocks, dtype=np.int64),
        ),
        block_of,
    )
    count = graph.op("Cast", counts, to=onnx.TensorProto.FLOAT)
    sublinear = {b.sublinear_tf for b in parts.blocks}
    if len(sublinear) != 1:
        raise ExportUnsupportedError("blocks that differ in sublinear_tf are not exported")
    tf = graph.op("Add", graph.op("Log", count), graph.const(1.0, dtype=np.float32))
    if not sublinear.pop():
        tf = count
    idf_table = np.concatenate([b.idf for b in parts.blocks]).astype(np.float32)
    coef_table = np.concatenate([b.coef for b in parts.blocks]).astype(np.float32)
    weight = graph.op("Mul", tf, graph.op("Gather", graph.const(idf_table, "idf"), column))
    coef = graph.op("Gather", graph.const(coef_table, "coef"), column)
    weight64 = graph.op("Cast", weight, to=onnx.TensorProto.DOUBLE)
    coef64 = graph.op("Cast", coef, to=onnx.TensorProto.DOUBLE)
    n_segments = graph.op("Mul", n_rows, graph.const([n_blocks], dtype=np.int64))
    zeros = graph.op(
        "ConstantOfShape",
        n_segments,
        value=helper.make_tensor("zero", onnx.TensorProto.DOUBLE, [1], [0.0]),
    )
    squared = graph.op(
        "ScatterElements",
        zeros,
        segment,
        graph.op("Mul", weight64, weight64),
        axis=0,
        reduction="add",
    )
    dot = graph.op(
        "ScatterElements",
        zeros,
        segment,
        graph.op("Mul", weight64, coef64),
        axis=0,
        reduction="add",
    )
    norm = graph.op("Sqrt", squared)
    share = graph.op(
        "Where",
        graph.op("Greater", norm, graph.const(0.0, dtype=np.float64)),
        graph.op("Div", dot, graph.op("Max", norm, graph.const(1e-300, dtype=np.float64))),
        graph.const(0.0, dtype=np.float64),
    )
    logit = graph.op(
        "Add",
        graph.op(
            "ReduceSum",
            graph.op("Reshape", share, graph.const([-1, n_blocks], dtype=np.int64)),
            graph.const([1], dtype=np.int64),
            keepdims=0,
        ),
        graph.const(parts.intercept, dtype=np.float64),
    )
    # The warm-up document is row 0.
    logit = graph.op(
        "Slice",
        logit,
        graph.const([1], dtype=np.int64),
        graph.const([np.iinfo(np.int64).max], dtype=np.int64),
    )
    probability = graph.op("Sigmoid", logit)
    calibrated = _calibrated(graph, probability, parts.calibration)
    graph.nodes.append(
        helper.make_node("Cast", [calibrated], ["score"], name="score", to=onnx.TensorProto.FLOAT)
    )
    graph.nodes.append(
        helper.make_node(
            "GreaterOrEqual",
            [calibrated, graph.const(parts.threshold, dtype=np.float64)],
            ["flagged"],
            name="flagged",
        )
    )
    onnx_graph = helper.make_graph(
        graph.nodes,
        "grooming_risk",
        [helper.make_tensor_value_info("documents", onnx.TensorProto.STRING, ["N"])],
        [
            helper.make_tensor_value_info("score", onnx.TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("flagged", onnx.TensorProto.BOOL, ["N"]),
        ],
        initializer=graph.initializers,
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=[
            helper.make_opsetid("", OPSET),
            helper.make_opsetid("ai.onnx.ml", 3),
            helper.make_opsetid("com.microsoft", 1),
        ],
        producer_name="grooming-detect",
        doc_string="Grooming-risk score of unit documents (see metadata_props and docs/onnx.md).",
    )
    model.ir_version = 10
    helper.set_model_props(model, parts.metadata)
    return model


def quantize_int8(model: Any) -> Any:
    """`model` with its idf and coefficient tables stored in 8 bits, one scale per table
    (idf: uint8 over [0, max]; coefficients: symmetric int8): a quarter of the size. Only the
    looked-up entries are dequantized (``DequantizeLinear`` after the ``Gather``)."""
    onnx = _onnx()
    from onnx import numpy_helper

    quantized = onnx.ModelProto()
    quantized.CopyFrom(model)
    tables = {
        init.name: init
        for init in quantized.graph.initializer
        if init.name.startswith(("idf_", "coef_"))
    }
    replaced = []
    for node in quantized.graph.node:
        if node.op_type != "Gather" or node.input[0] not in tables:
            continue
        values = numpy_helper.to_array(tables[node.input[0]]).astype(np.float32)
        if values.min() >= 0:  # idf: 256 steps over [0, max]
            scale = float(values.max()) / 255.0 or 1.0
            stored = np.clip(np.round(values / scale), 0, 255).astype(np.uint8)
        else:  # coefficients: symmetric, 255 steps over [-max |c|, max |c|]
            scale = float(np.abs(values).max()) / 127.0 or 1.0
            stored = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
        name = node.input[0]
        quantized.graph.initializer.remove(tables[name])
        quantized.graph.initializer.extend(
            [
                numpy_helper.from_array(stored, f"{name}_8bit"),
                numpy_helper.from_array(np.array(scale, dtype=np.float32), f"{name}_scale"),
            ]
        )
        gathered = node.output[0]
        node.input[0] = f"{name}_8bit"
        node.output[0] = f"{gathered}_8bit"
        replaced.append(
            onnx.helper.make_node(
                "DequantizeLinear",
                [f"{gathered}_8bit", f"{name}_scale"],
                [gathered],
                name=f"{gathered}_dequantize",
            )
        )
    # Each dequantize right after its lookup keeps the node list in topological order.
    nodes = list(quantized.graph.node)
    ordered = []
    for node in nodes:
        ordered.append(node)
        ordered += [d for d in replaced if d.input[0] == node.output[0]]
    del quantized.graph.node[:]
    quantized.graph.node.extend(ordered)
    quantized.metadata_props.add(
        key="quantization", value="8-bit idf (uint8) and coefficient (int8) tables"
    )
    return quantized


def write_model(model: Any, out: Path) -> None:
    """An ONNX ModelProto at `out`, atomically, with the permissions a plain open() gives."""
    with atomic_path(out) as tmp:
        tmp.write_bytes(model.SerializeToString())


def session(model: Any | Path, threads: int = 1, custom_ops: str | None = None) -> Any:
    """An ONNX Runtime session of `model` (a ModelProto or a file) on `threads` CPU threads;
    `custom_ops`: a custom operator library to register (onnxruntime-extensions')."""
    try:
        import onnxruntime
    except ImportError as error:
        raise MissingExtraError(
            f"scoring the exported model needs onnxruntime ({error}): {install_hint('onnx')}"
        ) from error
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.log_severity_level = 3
    if custom_ops is not None:
        options.register_custom_ops_library(custom_ops)
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def onnx_scores(scorer: Any, documents: Sequence[str]) -> np.ndarray:
    """The exported model's scores of `documents` (a session from `session`)."""
    feed = np.array(list(documents), dtype=object)
    return np.asarray(scorer.run(["score"], {"documents": feed})[0], dtype=np.float64)


def python_scores(model: Any, meta: dict[str, Any], documents: Sequence[str]) -> np.ndarray:
    """The package's own calibrated scores of unit `documents` (as ``grooming-detect-score``
    computes them from the documents' rows)."""
    raw = positive_scores(model, pd.DataFrame({"text": list(documents)}))
    calibrator = ScoreCalibrator.from_dict(meta.get("calibration", {"method": "none"}))
    return np.asarray(calibrator.transform(raw), dtype=np.float64)


@dataclass(frozen=True)
class ExportReport:
    """What `export` wrote and how far its scores are from Python's on `PROBE_DOCUMENTS`."""

    path: Path
    size_mb: float
    max_abs_difference: float
    tolerance: float
    int8: bool

    def line(self) -> str:
        verdict = "within" if self.max_abs_difference <= self.tolerance else "BEYOND"
        return (
            f"{self.path}: {self.size_mb:.2f} MB{' (int8 tables)' if self.int8 else ''}; "
            f"max |ONNX - Python| score on {len(PROBE_DOCUMENTS)} probe documents "
            f"{self.max_abs_difference:.2e}, {verdict} the stated tolerance {self.tolerance:g}"
        )


def export(
    model: Any,
    meta: dict[str, Any],
    out: Path,
    int8: bool = False,
    probes: Sequence[str] = PROBE_DOCUMENTS,
) -> Any:
    """Write `model` as ONNX to `out` and measure it against Python on `probes`: an
    `ExportReport`, or for ``embedding_logreg`` an
    `grooming_detect.scoring.onnx_embedding.EmbeddingExportReport` (the model graph at `out`,
    its tokenizer graph beside, checked on its own probe units)."""
    from grooming_detect.scoring.onnx_embedding import export_embedding, is_embedding_model

    if is_embedding_model(model):
        return export_embedding(model, meta, out, int8=int8)
    parts = exportable(model, meta)
    graph = build_graph(parts)
    tolerance = INT8_TOLERANCE if int8 else FLOAT_TOLERANCE
    if int8:
        graph = quantize_int8(graph)
    difference = float(
        np.max(
            np.abs(onnx_scores(session(graph), probes) - python_scores(model, meta, probes)),
            initial=0.0,
        )
    )
    if not difference <= tolerance:
        raise ValueError(
            f"{out}: not written: the exported scores differ from Python's by {difference:.3g} "
            f"on the probe documents, beyond the stated tolerance {tolerance:g}"
            + ("; prefer the float export" if int8 else "")
        )
    graph.metadata_props.add(key="max_abs_difference_on_probes", value=f"{difference:.3g}")
    graph.metadata_props.add(key="tolerance", value=f"{tolerance:g}")
    write_model(graph, out)
    return ExportReport(
        path=out,
        size_mb=out.stat().st_size / 1e6,
        max_abs_difference=difference,
        tolerance=tolerance,
        int8=int8,
    )


__all__ = [
    "FLOAT_TOLERANCE",
    "INT8_TOLERANCE",
    "PROBE_DOCUMENTS",
    "ExportReport",
    "build_graph",
    "export",
    "exportable",
    "onnx_scores",
    "python_scores",
    "quantize_int8",
    "session",
]
