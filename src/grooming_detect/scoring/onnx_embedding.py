"""A trained ``embedding_logreg`` model (``design: message_scores``) as two ONNX files that score
units from their messages on the device: a tokenizer graph and a model graph.

Why two files. The model graph (the all-MiniLM-L6-v2 encoder, the message regression, the unit
pooling and the calibrator) runs with ONNX Runtime alone. The tokenizer (BERT's normalization,
words and WordPiece) is not made of ONNX operators: its graph holds custom operators of
onnxruntime-extensions (``ai.onnx.contrib``: ``BertTokenizer``, ``StringJoin``,
``StringRegexReplace``), whose library the app registers with its session options. An app that
tokenizes by itself (the encoder's ``tokenizer.json``) uses the model graph alone; see
``docs/onnx.md``.

The tokenizer graph, ``FILE.tokenizer.onnx``: input ``messages`` (string ``[M]``), outputs
``input_ids`` and ``attention_mask`` (int64 ``[M, T]``, padded with 0 to the longest message of
the call, each message truncated at the model's ``max_seq_length`` tokens with ``[CLS]`` and
``[SEP]``). ``BertTokenizer`` tokenizes one text per call (two would be read as a pair of
sentences), so the graph loops over the messages (``Loop``). Its own basic tokenizer differs
from Hugging Face's (per-character lower-casing of Latin letters only, accents without NFD,
a NUL ends the text) and its WordPiece keeps the pieces before an unknown character, so the
graph does both itself, exactly: each character through the table of `character_rules` (what
Hugging Face's normalizer makes of every code point), the removed and the spaced characters
(CJK, punctuation) through RE2 classes, a word with a character outside the vocabulary replaced
by ``[UNK]`` (`unknown_word_pattern`), and ``BertTokenizer`` with ``do_basic_tokenize=0``.
Not exact: a special token typed in a message (``[CLS]``), which Hugging Face reads as that
token.

The model graph, ``FILE.onnx``: inputs ``input_ids``, ``attention_mask`` (int64 ``[M, T]``),
``unit`` (int64 ``[M]``: each message's unit, in ``[0, n_units)``) and ``n_units`` (int64
``[1]``); outputs ``score`` (float32 ``[n_units]``: the calibrated risk), ``flagged`` (bool
``[n_units]``: score >= threshold) and ``message_scores`` (float32 ``[M]``: each message's logit,
the explanation). Inside: the encoder exported with torch (``torch.onnx.export``, TorchScript
exporter), mean pooling of the token embeddings over the attention mask and L2 normalisation
(what sentence-transformers does for this model), then in double precision the message logistic
regression, each unit's score profile (`grooming_detect.models.message_scores.PROFILE_COLUMNS`,
from a ``TopK`` of the unit's message logits masked to the unit) or its top-k mean, the profile
scaler and regression, the sigmoid and the calibrator (the TF-IDF export's `_calibrated`).

A unit's messages are what `grooming_detect.models.embeddings.unit_messages` makes of its
document: split on the model's message separator, a conversation view's speaker marker taken off,
empty messages left out. A unit without a message gets the model's empty profile (or its lowest
training logit), as in Python.

What is not exact: the encoder runs in float32 in ONNX Runtime, not torch (about 1e-6 on the
vectors), and a message's vector depends a little on the padding width of its batch (the same
rounding); the int8 file stores the encoder's weight matrices in 8 bits (`quantize_weights`). The
tokenizer's ids are checked against the Hugging Face tokenizer's at every export.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grooming_detect.errors import ExportUnsupportedError, MissingExtraError, install_hint
from grooming_detect.models.embeddings import (
    encoder_fingerprint,
    resolve_encoder_path,
    split_units,
)
from grooming_detect.models.message_scores import PROFILE_COLUMNS, PROFILE_TOPS
from grooming_detect.scoring.onnx_export import (
    PROBE_DOCUMENTS,
    _calibrated,
    _Graph,
    _onnx,
    _refuse,
    python_scores,
    session,
    write_model,
)

#: ONNX opset of the model graph (the TorchScript exporter's highest well-tested one).
EMBEDDING_OPSET = 17
#: ONNX opset of the tokenizer graph: 20 brings ``Equal`` on strings.
TOKENIZER_OPSET = 20
#: Scores of the float export equal Python's within this: the encoder runs in float32 in
#: another runtime (vectors within about 1e-6), which the regressions amplify by their weights.
EMBEDDING_FLOAT_TOLERANCE = 1e-4
#: Scores of the int8 export (the encoder's weight matrices stored as int8, one scale per
#: output channel) within this: measured on the default model, 0.015 on the probe units and
#: 0.052 at most (0.0016 on average) over 389 real chat units; ONNX Runtime's dynamic
#: quantization (int8 activations too) measured 0.20 at most on the same units.
EMBEDDING_INT8_TOLERANCE = 0.1
#: The tokenizer file beside ``FILE.onnx``: ``FILE.tokenizer.onnx``.
TOKENIZER_SUFFIX = ".tokenizer.onnx"
#: onnxruntime-extensions' custom operators' domain.
CONTRIB_DOMAIN = "ai.onnx.contrib"

#: Harmless unit documents every embedding export is checked on, beside `PROBE_DOCUMENTS`:
#: accents that the tokenizer strips, letters whose lower case is two code points, control
#: and zero-width characters, a unit of several messages of mixed scripts, emoji inside words.
EMBEDDING_PROBES: tuple[str, ...] = (
    *PROBE_DOCUMENTS,
    "Crème brûlée, naïve café, Ångström, façade",
    "e\u0301 combining accent and \u00e9 precomposed",
    "İSTANBUL'DA GÖRÜŞÜRÜZ\nΟΔΟΣ ΑΘΗΝΑΣ",
    "zero\u200bwidth\u200bspace and soft\u00adhyphen",
    "nul\x00inside and bell\x07 and \ufeffbom",
    "how old are you\ndon't tell your parents\nadd me on snap",
    "what's up?!\n$5 for 2 @ the shop #weekend ^_^ ~ok~ `code` |x|",
    "中文字符测试\n한국어 텍스트\nไทย ภาษา",
    "𝐁𝐨𝐥𝐝 math letters and ٣٤٥ arabic digits ²³ ½ ①",
    "ﬁne ligature and ＦＵＬＬＷＩＤＴＨ letters",
    "great😀 see you👍🏽 at practice¯\\_(ツ)_/¯",
)


@dataclass(frozen=True)
class EmbeddingExportable:
    """What the two graphs need from a trained `MessageScoreClassifier`."""

    encoder_folder: Path
    max_seq_length: int
    coef: np.ndarray
    intercept: float
    pooling: str
    top_k: int
    cut: float
    empty_score: float
    empty_profile: np.ndarray
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    profile_coef: np.ndarray
    profile_intercept: float
    calibration: dict[str, Any]
    threshold: float
    separator: str
    metadata: dict[str, str]


def is_embedding_model(model: Any) -> bool:
    """Whether `model` is an embedding model (exported by this module or refused by it)."""
    names = {type(model).__name__}
    names |= {type(step).__name__ for step in getattr(model, "named_steps", {}).values()}
    return bool(names & {"MessageScoreClassifier", "SentinelClassifier", "MessageEmbeddings"})


def refuse_embedding(model: Any, name: str) -> None:
    """Refuse, naming the model and why, an embedding model other than ``embedding_logreg``
    with ``design: message_scores`` (a `MessageScoreClassifier`)."""
    from grooming_detect.models.message_scores import MessageScoreClassifier

    if type(model).__name__ == "SentinelClassifier":
        raise _refuse(
            name,
            "a SentinelClassifier (each message's similarity to the stored vectors of training "
            "messages); exported: tfidf_logreg and embedding_logreg with design: message_scores",
        )
    if not isinstance(model, MessageScoreClassifier):
        raise _refuse(
            name,
            f"a {type(model).__name__} of pooled message vectors (embedding_logreg with "
            "design: pooled_vectors); only design: message_scores (the default) is exported",
        )


def embedding_exportable(model: Any, meta: dict[str, Any]) -> EmbeddingExportable:
    """The parts of a trained ``embedding_logreg`` model the graphs reproduce, or an error
    naming the model and why it cannot be exported."""
    name = str(meta.get("model_name") or type(model).__name__)
    refuse_embedding(model, name)
    if not hasattr(model, "regression_"):
        raise _refuse(name, "it is not fitted")
    unit = str(meta.get("unit", "author"))
    kind = meta.get("input") or unit
    if kind != unit:
        raise _refuse(
            name,
            f"it reads {kind} rows aggregated to {unit}s; only models that read one document "
            "per unit are exported",
        )
    regression = model.regression_
    if np.shape(regression.coef_)[0] != 1:
        raise _refuse(name, "its message regression is not binary")
    pooling = str(model.pooling)
    if pooling not in ("profile", "top_k"):
        raise _refuse(name, f"pooling={pooling!r}; exported: profile, top_k")
    folder = resolve_encoder_path(model.encoder_path)
    fingerprint = encoder_fingerprint(folder, int(model.max_seq_length))
    if fingerprint != model.encoder_key_:
        raise _refuse(
            name,
            f"the encoder {folder} (fingerprint {fingerprint}) is not the one the model was "
            f"fitted with ({model.encoder_key_})",
        )
    n_profile = len(PROFILE_COLUMNS)
    if pooling == "profile":
        scaler = model.profile_scaler_
        profile_regression = model.profile_regression_
        scaler_mean = (
            np.asarray(scaler.mean_, dtype=np.float64) if scaler.with_mean else np.zeros(n_profile)
        )
        scale = getattr(scaler, "scale_", None)
        scaler_scale = np.ones(n_profile) if scale is None else np.asarray(scale, np.float64)
        profile_coef = np.asarray(profile_regression.coef_, dtype=np.float64).ravel()
        profile_intercept = float(np.ravel(profile_regression.intercept_)[0])
    else:
        scaler_mean = np.zeros(n_profile)
        scaler_scale = np.ones(n_profile)
        profile_coef = np.zeros(n_profile)
        profile_intercept = 0.0
    calibration = dict(meta.get("calibration") or {"method": "none"})
    recorded = meta.get("features") or {}
    separator = str(recorded.get("message_separator", model.separator))
    metadata = {
        "model_name": name,
        "unit": unit,
        "threshold": repr(float(meta["threshold"])),
        "calibration": json.dumps(calibration),
        "message_separator": json.dumps(separator),
        "messages": (
            "a unit's messages: its document split on message_separator (a JSON string), a "
            "conversation view's speaker marker ('[S<n>] ') taken off the start of each, empty "
            "messages left out; tokenized by the tokenizer graph (FILE.tokenizer.onnx)"
        ),
        "inputs": (
            "input_ids, attention_mask: int64 [M, T] from the tokenizer graph; unit: int64 [M], "
            "each message's unit in [0, n_units); n_units: int64 [1]"
        ),
        "outputs": (
            "score: float32 [n_units], calibrated risk in [0, 1]; flagged: bool [n_units], "
            "score >= threshold; message_scores: float32 [M], each message's logit"
        ),
        "pooling": pooling,
        "top_k": str(int(model.top_k)),
        "max_seq_length": str(int(model.max_seq_length)),
        "encoder_fingerprint": str(model.encoder_key_),
        "run_id": str(meta.get("run_id") or ""),
    }
    return EmbeddingExportable(
        encoder_folder=folder,
        max_seq_length=int(model.max_seq_length),
        coef=np.asarray(regression.coef_, dtype=np.float64).ravel(),
        intercept=float(np.ravel(regression.intercept_)[0]),
        pooling=pooling,
        top_k=int(model.top_k),
        cut=float(model.cut_),
        empty_score=float(model.empty_score_),
        empty_profile=np.asarray(model.empty_profile(), dtype=np.float64),
        scaler_mean=scaler_mean,
        scaler_scale=scaler_scale,
        profile_coef=profile_coef,
        profile_intercept=profile_intercept,
        calibration=calibration,
        threshold=float(meta["threshold"]),
        separator=separator,
        metadata=metadata,
    )


# -- the encoder ---------------------------------------------------------------------------------


def _sentence_transformer(folder: Path, max_seq_length: int) -> Any:
    """A fresh sentence-transformers model of `folder` on the CPU, eager attention (what the
    TorchScript exporter traces), with its mean pooling checked."""
    try:
        import torch  # noqa: F401
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise MissingExtraError(
            f"exporting an embedding model needs torch and sentence-transformers ({error}), "
            f"from the optional 'transformer' extra: {install_hint('transformer')}"
        ) from error
    model = SentenceTransformer(
        str(folder),
        device="cpu",
        local_files_only=True,
        model_kwargs={"attn_implementation": "eager"},
    )
    model.max_seq_length = int(max_seq_length)
    model.eval()
    return model


def _check_modules(st_model: Any, name: str) -> None:
    """Refuse an encoder whose modules are not a transformer, mean pooling (and a
    normalisation, which the package applies anyway)."""
    modules = list(st_model)
    kinds = [type(m).__name__ for m in modules]
    if len(modules) < 2 or kinds[0] != "Transformer" or kinds[1] != "Pooling":
        raise _refuse(name, f"its encoder's modules are {kinds}; exported: Transformer, Pooling")
    config = modules[1].get_config_dict()
    mode = config.get("pooling_mode")
    means = (
        mode == "mean"
        if mode is not None
        else bool(config.get("pooling_mode_mean_tokens"))
        and not any(
            config.get(k)
            for k in (
                "pooling_mode_cls_token",
                "pooling_mode_max_tokens",
                "pooling_mode_mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens",
                "pooling_mode_lasttoken",
            )
        )
    )
    if not means:
        raise _refuse(name, f"its encoder pools by {config}; exported: mean pooling")
    if any(k not in ("Normalize",) for k in kinds[2:]):
        raise _refuse(name, f"its encoder's modules are {kinds}; exported: Transformer, Pooling")


def export_encoder(st_model: Any, path: Path) -> None:
    """Write the encoder (token ids and mask -> L2-normalised mean of the token embeddings,
    float32 ``[M, D]`` named ``embeddings``) to `path` with torch's TorchScript exporter."""
    import torch

    transformer = st_model[0].auto_model

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            tokens = self.transformer(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            )[0]
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            summed = (tokens * mask).sum(dim=1)
            counts = mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(summed / counts, p=2.0, dim=1)

    encoder = Encoder().eval()
    sample = st_model.tokenize(["how was school today", "ok"])
    with torch.no_grad():
        torch.onnx.export(
            encoder,
            (sample["input_ids"], sample["attention_mask"]),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["embeddings"],
            dynamic_axes={
                "input_ids": {0: "M", 1: "T"},
                "attention_mask": {0: "M", 1: "T"},
                "embeddings": {0: "M"},
            },
            opset_version=EMBEDDING_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


#: Weight matrices smaller than this stay float (biases, norms, tiny layers).
MIN_QUANTIZED_ELEMENTS = 4096


def quantize_weights(encoder: Any) -> Any:
    """`encoder` with its weight matrices stored as int8, one scale per output channel
    (``MatMul`` weights per column, the ``Gather`` embedding tables per row), each read
    through a ``DequantizeLinear``: a quarter of the size; the computation stays float32
    (ONNX Runtime folds the dequantized weights at load), so a message's vector does not
    depend on the other messages of the call, as it would with dynamically quantized
    activations (ONNX Runtime's ``quantize_dynamic``)."""
    onnx = _onnx()
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(encoder)
    initializers = {init.name: init for init in model.graph.initializer}
    axes = {"MatMul": (1, 1), "Gather": (0, 0)}  # op: (input index, channel axis)
    done: dict[str, str] = {}
    added = []
    for node in model.graph.node:
        if node.op_type not in axes:
            continue
        index, axis = axes[node.op_type]
        name = node.input[index] if len(node.input) > index else ""
        if name in done:
            node.input[index] = done[name]
            continue
        init = initializers.get(name)
        if init is None or init.data_type != onnx.TensorProto.FLOAT or len(init.dims) != 2:
            continue
        values = numpy_helper.to_array(init).astype(np.float32)
        if values.size < MIN_QUANTIZED_ELEMENTS:
            continue
        peak = np.abs(values).max(axis=1 - axis)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        shape = (1, -1) if axis == 1 else (-1, 1)
        stored = np.clip(np.round(values / scale.reshape(shape)), -127, 127).astype(np.int8)
        model.graph.initializer.remove(init)
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(stored, f"{name}_int8"),
                numpy_helper.from_array(scale, f"{name}_scale"),
                numpy_helper.from_array(np.zeros(len(scale), np.int8), f"{name}_zero"),
            ]
        )
        added.append(
            onnx.helper.make_node(
                "DequantizeLinear",
                [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                [f"{name}_dequantized"],
                name=f"{name}_dequantize",
                axis=axis,
            )
        )
        done[name] = f"{name}_dequantized"
        node.input[index] = done[name]
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(added + nodes)
    return model


# -- the head: message regression, unit pooling, calibrator ---------------------------------------


def guard_empty(encoder: Any, dimension: int) -> Any:
    """`encoder` (a ModelProto with output ``embeddings``) that answers ``[0, dimension]``
    when given no message: its nodes and weights move into the ``else`` branch of an ``If``
    on the message count (the encoder's reshapes fail on an empty batch; ONNX Runtime's
    fusions inside a branch look for the weights there)."""
    onnx = _onnx()
    helper = onnx.helper
    tp = onnx.TensorProto
    model = onnx.ModelProto()
    model.CopyFrom(encoder)
    nodes = list(model.graph.node)
    for node in nodes:
        node.output[:] = ["encoded" if o == "embeddings" else o for o in node.output]
    encode = helper.make_graph(
        nodes,
        "encode",
        [],
        [helper.make_tensor_value_info("encoded", tp.FLOAT, ["M", dimension])],
        initializer=list(model.graph.initializer),
        value_info=list(model.graph.value_info),
    )
    nothing = helper.make_graph(
        [
            helper.make_node(
                "Constant",
                [],
                ["no_embeddings"],
                name="no_embeddings",
                value=onnx.numpy_helper.from_array(
                    np.zeros((0, dimension), dtype=np.float32), "no_embeddings_value"
                ),
            )
        ],
        "nothing",
        [],
        [helper.make_tensor_value_info("no_embeddings", tp.FLOAT, [0, dimension])],
    )
    guard = _Prefixed("guard")
    count = guard.op(
        "Gather", guard.op("Shape", "input_ids"), guard.const(0, dtype=np.int64), axis=0
    )
    empty = guard.op("Equal", count, guard.const(0, dtype=np.int64))
    guard.nodes.append(
        helper.make_node(
            "If",
            [empty],
            ["embeddings"],
            name="encode_if_any_message",
            then_branch=nothing,
            else_branch=encode,
        )
    )
    del model.graph.node[:]
    del model.graph.value_info[:]
    del model.graph.initializer[:]
    model.graph.node.extend(guard.nodes)
    model.graph.initializer.extend(guard.initializers)
    return model


class _Prefixed(_Graph):
    """`_Graph` whose names start with `prefix`: they cannot meet the exported encoder's, nor
    a subgraph's its outer graph's."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def name(self, stem: str) -> str:
        return super().name(f"{self.prefix}/{stem}")


def add_head(encoder: Any, parts: EmbeddingExportable) -> Any:
    """The model graph: `encoder` (a ModelProto with output ``embeddings``) followed by the
    message regression, the unit pooling and the calibrator (see the module docstring)."""
    onnx = _onnx()
    graph = _Prefixed("head")
    tp = onnx.TensorProto
    double = np.float64
    i64 = np.int64
    embeddings = graph.op("Cast", "embeddings", to=tp.DOUBLE)
    coef = graph.const(parts.coef.reshape(-1, 1), "coef", dtype=double)
    message_logit = graph.op(
        "Add",
        graph.op("Reshape", graph.op("MatMul", embeddings, coef), graph.const([-1], dtype=i64)),
        graph.const(parts.intercept, dtype=double),
    )
    n_units = graph.op("Squeeze", "n_units", graph.const([0], dtype=i64))
    ids = graph.op("Range", graph.const(0, dtype=i64), n_units, graph.const(1, dtype=i64))
    member = graph.op(
        "Equal",
        graph.op("Unsqueeze", "unit", graph.const([0], dtype=i64)),
        graph.op("Unsqueeze", ids, graph.const([1], dtype=i64)),
    )
    row = graph.op("Unsqueeze", message_logit, graph.const([0], dtype=i64))
    k = max(PROFILE_TOPS) if parts.pooling == "profile" else parts.top_k
    masked = graph.op("Where", member, row, graph.const(-np.inf, dtype=double))
    padding = graph.op(
        "ConstantOfShape",
        graph.op("Concat", graph.op("Shape", ids), graph.const([k], dtype=i64), axis=0),
        value=onnx.helper.make_tensor("minus_infinity", tp.DOUBLE, [1], [-np.inf]),
    )
    padded = graph.op("Concat", masked, padding, axis=1)
    top, _ = graph.ops("TopK", [padded, graph.const([k], dtype=i64)], 2, axis=1)
    finite = graph.op("Where", graph.op("IsInf", top), graph.const(0.0, dtype=double), top)
    running = graph.op("CumSum", finite, graph.const(1, dtype=i64))
    count = graph.op(
        "ReduceSum",
        graph.op("Cast", member, to=tp.DOUBLE),
        graph.const([1], dtype=i64),
        keepdims=1,
    )
    one = graph.const(1.0, dtype=double)
    at_least_one = graph.op("Max", count, one)

    def top_mean(n: int) -> str:
        """The mean of the `n` highest logits of each unit (all of them when fewer): [U, 1]."""
        taken = graph.op("Max", graph.op("Min", count, graph.const(float(n), dtype=double)), one)
        index = graph.op("Cast", graph.op("Sub", taken, one), to=tp.INT64)
        return graph.op("Div", graph.op("GatherElements", running, index, axis=1), taken)

    nonempty = graph.op("Greater", count, graph.const(0.0, dtype=double))
    if parts.pooling == "profile":
        total = graph.op(
            "ReduceSum",
            graph.op("Where", member, row, graph.const(0.0, dtype=double)),
            graph.const([1], dtype=i64),
            keepdims=1,
        )
        above = graph.op(
            "ReduceSum",
            graph.op(
                "Cast",
                graph.op(
                    "And",
                    member,
                    graph.op("Greater", row, graph.const(parts.cut, dtype=double)),
                ),
                to=tp.DOUBLE,
            ),
            graph.const([1], dtype=i64),
            keepdims=1,
        )
        columns = [top_mean(n) for n in PROFILE_TOPS] + [
            graph.op("Div", total, at_least_one),
            graph.op("Log", at_least_one),
            graph.op("Log", graph.op("Add", above, one)),
            graph.op("Div", above, at_least_one),
        ]
        profile = graph.op("Concat", *columns, axis=1)
        profile = graph.op(
            "Where", nonempty, profile, graph.const(parts.empty_profile, dtype=double)
        )
        standard = graph.op(
            "Div",
            graph.op("Sub", profile, graph.const(parts.scaler_mean, dtype=double)),
            graph.const(parts.scaler_scale, dtype=double),
        )
        unit_logit = graph.op(
            "Add",
            graph.op(
                "Reshape",
                graph.op(
                    "MatMul",
                    standard,
                    graph.const(parts.profile_coef.reshape(-1, 1), "profile_coef", dtype=double),
                ),
                graph.const([-1], dtype=i64),
            ),
            graph.const(parts.profile_intercept, dtype=double),
        )
    else:
        unit_logit = graph.op(
            "Reshape",
            graph.op(
                "Where",
                nonempty,
                top_mean(parts.top_k),
                graph.const(parts.empty_score, dtype=double),
            ),
            graph.const([-1], dtype=i64),
        )
    calibrated = _calibrated(graph, graph.op("Sigmoid", unit_logit), parts.calibration)
    helper = onnx.helper
    graph.nodes += [
        helper.make_node("Cast", [calibrated], ["score"], name="score", to=tp.FLOAT),
        helper.make_node(
            "GreaterOrEqual",
            [calibrated, graph.const(parts.threshold, dtype=double)],
            ["flagged"],
            name="flagged",
        ),
        helper.make_node(
            "Cast", [message_logit], ["message_scores"], name="message_scores", to=tp.FLOAT
        ),
    ]
    model = onnx.ModelProto()
    model.CopyFrom(encoder)
    model.graph.node.extend(graph.nodes)
    model.graph.initializer.extend(graph.initializers)
    model.graph.input.extend(
        [
            helper.make_tensor_value_info("unit", tp.INT64, ["M"]),
            helper.make_tensor_value_info("n_units", tp.INT64, [1]),
        ]
    )
    del model.graph.output[:]
    model.graph.output.extend(
        [
            helper.make_tensor_value_info("score", tp.FLOAT, ["U"]),
            helper.make_tensor_value_info("flagged", tp.BOOL, ["U"]),
            helper.make_tensor_value_info("message_scores", tp.FLOAT, ["M"]),
        ]
    )
    model.graph.name = "grooming_risk_messages"
    model.producer_name = "grooming-detect"
    model.doc_string = (
        "Grooming-risk score of units from their tokenized messages (see metadata_props and "
        "docs/onnx.md)."
    )
    del model.metadata_props[:]
    helper.set_model_props(model, parts.metadata)
    return model


# -- the tokenizer ---------------------------------------------------------------------------------


def _extensions() -> Any:
    try:
        import onnxruntime_extensions
    except ImportError as error:
        raise MissingExtraError(
            f"the embedding export's tokenizer needs onnxruntime-extensions ({error}): "
            f"{install_hint('onnx')}"
        ) from error
    return onnxruntime_extensions


def tokenizer_settings(tokenizer: Any, name: str) -> dict[str, Any]:
    """The BERT tokenizer's normalizer settings, read from the fast tokenizer's own definition
    (``tokenizer.json``); refused unless it is BERT's (BertNormalizer with ``clean_text``,
    BertPreTokenizer, WordPiece)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise _refuse(name, f"its tokenizer is a {type(tokenizer).__name__}, not a fast one")
    spec = json.loads(backend.to_str())
    normalizer = spec.get("normalizer") or {}
    pre = spec.get("pre_tokenizer") or {}
    wordpiece = spec.get("model") or {}
    if (
        normalizer.get("type") != "BertNormalizer"
        or not normalizer.get("clean_text", True)
        or pre.get("type") != "BertPreTokenizer"
        or wordpiece.get("type") != "WordPiece"
    ):
        raise _refuse(
            name,
            f"its tokenizer is {normalizer.get('type')}, {pre.get('type')}, "
            f"{wordpiece.get('type')}; exported: BERT's (BertNormalizer with clean_text, "
            "BertPreTokenizer, WordPiece)",
        )
    return {
        "lowercase": bool(normalizer.get("lowercase", True)),
        "strip_accents": normalizer.get("strip_accents"),
        "handle_chinese_chars": bool(normalizer.get("handle_chinese_chars", True)),
        "max_input_chars_per_word": int(wordpiece.get("max_input_chars_per_word", 100)),
    }


@dataclass(frozen=True)
class CharacterRules:
    """What Hugging Face's BERT normalizer and pre-tokenizer do to each code point, as the
    tokenizer graph applies it: `table` (a character's replacement: lower case, accents
    stripped, Hangul decomposed, whitespace as a space, C0/C1 controls removed), `removed`
    (a regular-expression class of the other removed code points: controls, format
    characters, unassigned ones, combining marks) and `spaced` (the class of code points that
    become a word of their own: CJK ideographs and punctuation)."""

    table: dict[str, str]
    removed: str
    spaced: str


def _character_class(codes: list[int]) -> str:
    """An RE2 character class of `codes` (sorted), as ranges."""
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return (
        "["
        + "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
        + "]"
    )


@functools.cache
def character_rules(lowercase: bool, strip_accents: bool | None, chinese: bool) -> CharacterRules:
    """The `CharacterRules` of a BERT normalizer with these settings, found by running the
    Hugging Face ``tokenizers`` normalizer and pre-tokenizer on every code point (about 4 s):
    the normalizer maps each code point on its own (lower-casing and NFD are per character,
    the marks NFD reorders are all removed), so a text's normalization is its characters'."""
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    normalizer = BertNormalizer(
        clean_text=True,
        handle_chinese_chars=chinese,
        strip_accents=strip_accents,
        lowercase=lowercase,
    )
    pre = BertPreTokenizer()
    table: dict[str, str] = {}
    removed: list[int] = []
    spaced: list[int] = []
    for code in range(0x110000):
        if 0xD800 <= code < 0xE000:  # surrogates: never in UTF-8 text
            continue
        char = chr(code)
        out = normalizer.normalize_str(char)
        if out == char:
            if len(pre.pre_tokenize_str(f"a{char}a")) == 3:  # punctuation: a word of its own
                spaced.append(code)
        elif out == "" and code >= 0x100:
            removed.append(code)
        elif out == f" {char} ":
            spaced.append(code)
        else:
            table[char] = out
    return CharacterRules(
        table=table, removed=_character_class(removed), spaced=_character_class(spaced)
    )


def unknown_word_pattern(vocab: dict[str, int]) -> str:
    """An RE2 pattern of a word (a run of non-spaces after ``^`` or a space, captured) that
    Hugging Face's WordPiece reads as one unknown token: one whose first character is no
    vocabulary entry, or a later one no ``##`` entry. onnxruntime-extensions' WordPiece keeps
    the pieces it found before such a character (``x¯y``: ``x [UNK]``, not ``[UNK]``), so the
    graph replaces the word by the unknown token before it."""
    first = []
    later = []
    for code in range(0x110000):
        if 0xD800 <= code < 0xE000 or code == 0x20:
            continue
        char = chr(code)
        if char not in vocab:
            first.append(code)
        if f"##{char}" not in vocab:
            later.append(code)
    return f"(^| )(?:{_character_class(first)}[^ ]*|[^ ]+{_character_class(later)}[^ ]*)"


def build_tokenizer_graph(tokenizer: Any, max_seq_length: int, name: str) -> Any:
    """The tokenizer graph (see the module docstring) of a Hugging Face BERT `tokenizer`."""
    onnx = _onnx()
    extensions = _extensions()
    helper = onnx.helper
    tp = onnx.TensorProto
    settings = tokenizer_settings(tokenizer, name)
    rules = character_rules(
        settings["lowercase"], settings["strip_accents"], settings["handle_chinese_chars"]
    )
    # WordPiece only: the graph normalizes and splits the text into words itself.
    pre, _ = extensions.gen_processing_models(
        tokenizer,
        pre_kwargs={
            "do_lower_case": 0,
            "strip_accents": 0,
            "do_basic_tokenize": 0,
            "max_length": int(max_seq_length),
        },
    )
    found = [n for n in pre.graph.node if n.op_type == "BertTokenizer"]
    if len(found) != 1:
        raise _refuse(name, "onnxruntime-extensions made no single BertTokenizer operator")
    template = found[0]
    max_length = int(max_seq_length)

    body = _Prefixed("tokenize_one")
    one_text = body.op(
        "Unsqueeze", body.op("Gather", "messages", "i"), body.const([0], dtype=np.int64)
    )
    # Each character (a leading space: never none) replaced by the table's, joined again.
    characters = body.op(
        "Tokenizer",
        body.op("StringConcat", body.const([" "], "space"), one_text),
        domain="com.microsoft",
        mark=0,
        mincharnum=1,
        pad_value="  ",
        separators=[""],
    )
    missing = "\uffff\uffff"
    replaced = body.op(
        "LabelEncoder",
        characters,
        domain="ai.onnx.ml",
        keys_strings=list(rules.table),
        values_strings=list(rules.table.values()),
        default_string=missing,
    )
    normalized = body.op(
        "Where",
        body.op("Equal", replaced, body.const(missing, "missing")),
        characters,
        replaced,
    )
    text = body.op(
        "StringJoin",
        normalized,
        body.const([""], "empty"),
        body.const([1], dtype=np.int64),
        domain=CONTRIB_DOMAIN,
    )
    for pattern, rewrite in (
        (rules.removed, ""),
        (f"({rules.spaced})", " \\1 "),
        (" +", " "),
        ("^ | $", ""),
        (unknown_word_pattern(dict(tokenizer.vocab)), "\\1" + str(tokenizer.unk_token)),
    ):
        text = body.op(
            "StringRegexReplace",
            text,
            body.const([pattern], "pattern"),
            body.const([rewrite], "rewrite"),
            domain=CONTRIB_DOMAIN,
            global_replace=1,
        )
    one_text = text
    outputs = [body.name("tokenizer_output") for _ in template.output]
    node = helper.make_node(
        "BertTokenizer", [one_text], outputs, name="bert_tokenizer", domain=CONTRIB_DOMAIN
    )
    node.attribute.extend(template.attribute)
    body.nodes.append(node)
    ids = outputs[0]
    length = body.op("Shape", ids)
    padded = body.op(
        "Pad",
        ids,
        body.op(
            "Concat",
            body.const([0], dtype=np.int64),
            body.op("Sub", body.const([max_length], dtype=np.int64), length),
            axis=0,
        ),
    )
    body.nodes.append(helper.make_node("Identity", ["cond"], ["cond_out"], name="cond_out"))
    body.nodes.append(helper.make_node("Identity", [padded], ["ids_out"], name="ids_out"))
    body.nodes.append(helper.make_node("Identity", [length], ["length_out"], name="length_out"))
    loop_body = helper.make_graph(
        body.nodes,
        "tokenize_one",
        [
            helper.make_tensor_value_info("i", tp.INT64, []),
            helper.make_tensor_value_info("cond", tp.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", tp.BOOL, []),
            helper.make_tensor_value_info("ids_out", tp.INT64, [max_length]),
            helper.make_tensor_value_info("length_out", tp.INT64, [1]),
        ],
        initializer=body.initializers,
    )

    graph = _Prefixed("tokenize")
    count = graph.op("Squeeze", graph.op("Shape", "messages"), graph.const([0], dtype=np.int64))
    all_ids, lengths = graph.ops(
        "Loop", [count, graph.const(True, "true", dtype=bool)], 2, body=loop_body
    )
    lengths = graph.op("Reshape", lengths, graph.const([-1], dtype=np.int64))
    all_ids = graph.op("Reshape", all_ids, graph.const([-1, max_length], dtype=np.int64))
    width = graph.op(
        "ReduceMax",
        graph.op("Concat", graph.const([0], dtype=np.int64), lengths, axis=0),
        keepdims=1,
    )
    graph.nodes.append(
        helper.make_node(
            "Slice",
            [all_ids, graph.const([0], dtype=np.int64), width, graph.const([1], dtype=np.int64)],
            ["input_ids"],
            name="input_ids",
        )
    )
    positions = graph.op(
        "Range",
        graph.const(0, dtype=np.int64),
        graph.op("Squeeze", width, graph.const([0], dtype=np.int64)),
        graph.const(1, dtype=np.int64),
    )
    graph.nodes.append(
        helper.make_node(
            "Cast",
            [
                graph.op(
                    "Less",
                    graph.op("Unsqueeze", positions, graph.const([0], dtype=np.int64)),
                    graph.op("Unsqueeze", lengths, graph.const([1], dtype=np.int64)),
                )
            ],
            ["attention_mask"],
            name="attention_mask",
            to=tp.INT64,
        )
    )
    onnx_graph = helper.make_graph(
        graph.nodes,
        "bert_tokenizer",
        [helper.make_tensor_value_info("messages", tp.STRING, ["M"])],
        [
            helper.make_tensor_value_info("input_ids", tp.INT64, ["M", "T"]),
            helper.make_tensor_value_info("attention_mask", tp.INT64, ["M", "T"]),
        ],
        initializer=graph.initializers,
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=[
            helper.make_opsetid("", TOKENIZER_OPSET),
            helper.make_opsetid("ai.onnx.ml", 3),
            helper.make_opsetid("com.microsoft", 1),
            helper.make_opsetid(CONTRIB_DOMAIN, 1),
        ],
        producer_name="grooming-detect",
        doc_string=(
            "BERT tokenizer of the embedding model's messages (onnxruntime-extensions' "
            "BertTokenizer, one message per Loop iteration); see docs/onnx.md."
        ),
    )
    model.ir_version = 10
    helper.set_model_props(
        model,
        {
            "max_seq_length": str(max_length),
            "inputs": "messages: string [M], a unit's non-empty messages",
            "outputs": "input_ids, attention_mask: int64 [M, T], padded with 0 to the longest",
            **{k: str(v) for k, v in settings.items()},
            "custom_ops": "onnxruntime-extensions (register its library with the session)",
        },
    )
    return model


def tokenizer_session(model: Any | Path, threads: int = 1) -> Any:
    """An ONNX Runtime session of the tokenizer graph, onnxruntime-extensions registered."""
    return session(model, threads, custom_ops=_extensions().get_library_path())


# -- scoring --------------------------------------------------------------------------------------


def tokenize(tokenizer: Any, messages: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """`messages`' ``input_ids`` and ``attention_mask`` through the tokenizer graph."""
    ids, mask = tokenizer.run(
        ["input_ids", "attention_mask"], {"messages": np.array(list(messages), dtype=object)}
    )
    return np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=np.int64)


def onnx_unit_scores(
    tokenizer: Any, scorer: Any, documents: Sequence[str], separator: str
) -> tuple[np.ndarray, np.ndarray]:
    """The exported files' scores of unit `documents` (split into messages as the package
    does) and each message's logit (the messages of `split_units`, in order)."""
    messages, owners = split_units(documents, separator)
    ids, mask = tokenize(tokenizer, messages)
    score, message_scores = scorer.run(
        ["score", "message_scores"],
        {
            "input_ids": ids,
            "attention_mask": mask,
            "unit": owners.astype(np.int64),
            "n_units": np.array([len(documents)], dtype=np.int64),
        },
    )
    return np.asarray(score, dtype=np.float64), np.asarray(message_scores, dtype=np.float64)


def memory_only(model: Any) -> Any:
    """A shallow copy of `model` that keeps its vectors in memory (no write to the model's
    on-disk vector cache while the export checks it)."""
    checked = copy.copy(model)
    checked.cache_dir = None
    return checked


def hf_token_ids(st_model: Any, messages: Sequence[str]) -> list[list[int]]:
    """Each message's token ids as sentence-transformers makes them (one message a call)."""
    return [[int(t) for t in st_model.tokenize([m])["input_ids"][0].tolist()] for m in messages]


def graph_token_ids(tokenizer: Any, messages: Sequence[str]) -> list[list[int]]:
    """Each message's token ids through the tokenizer graph, all in one call (the padding
    taken off by the attention mask)."""
    if not messages:
        return []
    ids, mask = tokenize(tokenizer, messages)
    return [[int(t) for t in row[m.astype(bool)]] for row, m in zip(ids, mask, strict=True)]


@dataclass(frozen=True)
class EmbeddingExportReport:
    """What `export_embedding` wrote and how far it is from Python on the probe units."""

    path: Path
    tokenizer_path: Path
    size_mb: float
    tokenizer_size_mb: float
    max_abs_difference: float
    tolerance: float
    int8: bool
    probe_units: int
    probe_messages: int
    token_mismatches: int

    def line(self) -> str:
        verdict = "within" if self.max_abs_difference <= self.tolerance else "BEYOND"
        return (
            f"{self.path}: {self.size_mb:.2f} MB{' (int8 encoder)' if self.int8 else ''} + "
            f"{self.tokenizer_path.name} {self.tokenizer_size_mb:.2f} MB; token ids equal to "
            f"the Hugging Face tokenizer's on {self.probe_messages - self.token_mismatches} of "
            f"{self.probe_messages} probe messages; max |ONNX - Python| score on "
            f"{self.probe_units} probe units {self.max_abs_difference:.2e}, {verdict} the "
            f"stated tolerance {self.tolerance:g}"
        )


def tokenizer_path_of(out: Path) -> Path:
    """``FILE.tokenizer.onnx`` beside ``FILE.onnx``."""
    stem = out.name[: -len(".onnx")] if out.name.endswith(".onnx") else out.name
    return out.with_name(stem + TOKENIZER_SUFFIX)


def build_embedding_files(
    model: Any, meta: dict[str, Any], folder: Path, int8: bool = False
) -> tuple[EmbeddingExportable, Any, Any, Any]:
    """The exportable parts, the model graph, the tokenizer graph (ModelProtos) and the
    sentence-transformers model they were made from; `folder` holds the intermediate files."""
    onnx = _onnx()
    parts = embedding_exportable(model, meta)
    name = parts.metadata["model_name"]
    st_model = _sentence_transformer(parts.encoder_folder, parts.max_seq_length)
    _check_modules(st_model, name)
    tokenizer_graph = build_tokenizer_graph(st_model.tokenizer, parts.max_seq_length, name)
    folder.mkdir(parents=True, exist_ok=True)
    encoder_path = folder / "encoder.onnx"
    export_encoder(st_model, encoder_path)
    encoder = onnx.load(str(encoder_path))
    if int8:
        encoder = quantize_weights(encoder)
    graph = add_head(guard_empty(encoder, len(parts.coef)), parts)
    if int8:
        graph.metadata_props.add(
            key="quantization",
            value="encoder weight matrices int8, one scale per output channel (DequantizeLinear)",
        )
    return parts, graph, tokenizer_graph, st_model


def export_embedding(
    model: Any,
    meta: dict[str, Any],
    out: Path,
    int8: bool = False,
    probes: Sequence[str] = EMBEDDING_PROBES,
) -> EmbeddingExportReport:
    """Write `model` as ``out`` and its tokenizer beside, after checking both against Python
    on `probes` (unit documents); refused, nothing written, beyond the stated tolerance."""
    tolerance = EMBEDDING_INT8_TOLERANCE if int8 else EMBEDDING_FLOAT_TOLERANCE
    work = Path(tempfile.mkdtemp(prefix="grooming-detect-onnx-"))
    try:
        parts, graph, tokenizer_graph, st_model = build_embedding_files(model, meta, work, int8)
        tokenizer = tokenizer_session(tokenizer_graph)
        scorer = session(graph)
        got, _ = onnx_unit_scores(tokenizer, scorer, probes, parts.separator)
        expected = python_scores(memory_only(model), meta, probes)
        difference = float(np.max(np.abs(got - expected), initial=0.0))
        messages, _ = split_units(probes, parts.separator)
        mismatches = sum(
            a != b
            for a, b in zip(
                hf_token_ids(st_model, messages),
                graph_token_ids(tokenizer, messages),
                strict=True,
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    name = parts.metadata["model_name"]
    if difference > tolerance:
        raise ExportUnsupportedError(
            f"cannot export model {name!r} to ONNX: its {'int8' if int8 else 'float'} export's "
            f"scores differ from Python's by {difference:.2e} on {len(probes)} probe units, "
            f"beyond the stated tolerance {tolerance:g}; nothing written"
            + ("" if not int8 else " (the float export may be within its own)")
        )
    graph.metadata_props.add(key="max_abs_difference_on_probes", value=f"{difference:.3g}")
    graph.metadata_props.add(key="tolerance", value=f"{tolerance:g}")
    graph.metadata_props.add(key="tokenizer_file", value=tokenizer_path_of(out).name)
    graph.metadata_props.add(key="token_id_mismatches_on_probes", value=str(mismatches))
    tokenizer_out = tokenizer_path_of(out)
    write_model(tokenizer_graph, tokenizer_out)
    write_model(graph, out)
    return EmbeddingExportReport(
        path=out,
        tokenizer_path=tokenizer_out,
        size_mb=out.stat().st_size / 1e6,
        tokenizer_size_mb=tokenizer_out.stat().st_size / 1e6,
        max_abs_difference=difference,
        tolerance=tolerance,
        int8=int8,
        probe_units=len(probes),
        probe_messages=len(messages),
        token_mismatches=int(mismatches),
    )


__all__ = [
    "EMBEDDING_FLOAT_TOLERANCE",
    "EMBEDDING_INT8_TOLERANCE",
    "EMBEDDING_PROBES",
    "EmbeddingExportReport",
    "add_head",
    "build_embedding_files",
    "build_tokenizer_graph",
    "embedding_exportable",
    "export_embedding",
    "graph_token_ids",
    "guard_empty",
    "hf_token_ids",
    "is_embedding_model",
    "onnx_unit_scores",
    "quantize_weights",
    "refuse_embedding",
    "tokenizer_path_of",
    "tokenizer_session",
]
