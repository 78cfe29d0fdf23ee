"""Saving and loading a model with a large exact vocabulary (a script).

The issue behind `vectorizer: vocabulary`: scikit-learn's ``max_features`` leaves NumPy ``int64``
values in ``vocabulary_``, which skops wrote one zip member each, quadratic in the vocabulary.
This fits ``tfidf_logreg`` with ``vectorizer=vocabulary`` on real chat text (every
chitchat-dataset conversation as one document, 258k messages), with each block capped at
``--max-features`` terms (default 400,000), and times the project's `save_model` and
`load_model` (skops, with the allow-list check), printing terms, seconds and MiB. The default
``hashing`` model is timed beside it. Usage:
``python scripts/bench_persist.py [--max-features 400000] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from grooming_detect.data.chitchat import load_conversations
from grooming_detect.io import write_json
from grooming_detect.models.baselines import make_tfidf_logreg
from grooming_detect.models.persistence import MODEL_FILE, load_model, save_model


def bench(vectorizer: str, frame: pd.DataFrame, labels: np.ndarray, max_features: int) -> dict:
    model = make_tfidf_logreg(vectorizer=vectorizer, max_features=max_features, min_df=1)
    started = time.perf_counter()
    model.fit(frame, labels)
    fit = time.perf_counter() - started
    blocks = model.named_steps["features"].named_transformers_
    terms = {
        name: len(getattr(block, "vocabulary_", {})) or int(np.count_nonzero(block.idf_))
        for name, block in blocks.items()
        if name in ("word", "char")
    }
    numpy_values = sum(
        type(v) is not int
        for block in blocks.values()
        for v in (getattr(block, "vocabulary_", None) or {}).values()
    )
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        save_model(model, {"threshold": 0.5}, Path(tmp))
        save = time.perf_counter() - started
        size = (Path(tmp) / MODEL_FILE).stat().st_size / 2**20
        started = time.perf_counter()
        loaded, _ = load_model(Path(tmp))
        load = time.perf_counter() - started
    same = np.array_equal(
        loaded.predict_proba(frame.head(200)), model.predict_proba(frame.head(200))
    )
    return {
        "vectorizer": vectorizer,
        "terms": terms,
        "numpy_scalar_values": numpy_values,
        "fit_seconds": fit,
        "save_seconds": save,
        "load_seconds": load,
        "model_mib": size,
        "round_trip_equal": bool(same),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-features", type=int, default=400_000)
    parser.add_argument("--json", type=Path, default=Path("bench-results/persist.json"))
    args = parser.parse_args()
    conversations = load_conversations()
    frame = pd.DataFrame({"text": [" ".join(c.texts) for c in conversations]})
    # Labels only give the classifier two classes; the benchmark times persistence.
    labels = np.arange(len(frame)) % 10 == 0
    print(f"{len(frame):,} documents, {sum(len(c) for c in conversations):,} messages")
    print(
        f"{'vectorizer':>11}{'word terms':>12}{'char terms':>12}{'numpy ints':>11}"
        f"{'fit s':>8}{'save s':>8}{'load s':>8}{'MiB':>8}{'equal':>7}"
    )
    rows = []
    for vectorizer in ("vocabulary", "hashing"):
        row = bench(vectorizer, frame, labels, args.max_features)
        rows.append(row)
        print(
            f"{vectorizer:>11}{row['terms']['word']:>12,}{row['terms']['char']:>12,}"
            f"{row['numpy_scalar_values']:>11}{row['fit_seconds']:>8.1f}"
            f"{row['save_seconds']:>8.2f}{row['load_seconds']:>8.2f}{row['model_mib']:>8.1f}"
            f"{row['round_trip_equal']!s:>7}",
            flush=True,
        )
    write_json(args.json, {"rows": rows, "max_features": args.max_features})
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
