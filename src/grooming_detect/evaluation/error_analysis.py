"""False-positive analysis: who was flagged wrongly, who was missed, why, and where errors cluster.

Explanations:

* linear models (a final step with ``coef_`` after a step with ``get_feature_names_out``): the
  features with the largest ``coefficient × feature value`` in the item's document;
* any other model reading the unit's own view: occlusion, a model-agnostic fallback: each
  message is removed in turn, and each behavioural feature is set to its median, and the changes
  that lower the score most are named (``conversation_id:line`` or the feature);
* a model reading author-in-conversation rows (the two-stage design): the conversation whose
  row score became the author's score.

Message text appears only when ``show_text`` is set (default: synthetic data only), truncated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from grooming_detect.evaluation.profiles import slice_labels
from grooming_detect.features.text_views import speaker_marker


def linear_parts(model: Any) -> tuple[Any, np.ndarray] | None:
    """(feature step, coefficients) when `model` is a two-step pipeline, named features then a
    linear classifier (a longer pipeline's coefficients are not those of the first step's
    features)."""
    steps = getattr(model, "steps", None)
    if not steps or len(steps) != 2:
        return None
    features, classifier = steps[-2][1], steps[-1][1]
    coefficients = getattr(classifier, "coef_", None)
    if coefficients is None or not hasattr(features, "get_feature_names_out"):
        return None
    return features, np.asarray(coefficients).ravel()


def _feature_names(features: Any, documents: pd.DataFrame, columns: np.ndarray) -> dict[int, str]:
    """Names of the feature columns `columns` for these documents.

    Steps with fixed names (``get_feature_names_out``) give them directly; hashed TF-IDF blocks
    (no vocabulary) name a column by the terms of `documents` that hash to it."""
    try:
        names = features.get_feature_names_out()
        return {int(c): str(names[c]) for c in columns}
    except (AttributeError, ValueError, NotImplementedError):
        pass
    named: dict[int, str] = {}
    for name, transformer, selected in getattr(features, "transformers_", []):
        if name not in getattr(features, "output_indices_", {}):
            continue
        block = features.output_indices_[name]
        local = [int(c) - block.start for c in columns if block.start <= c < block.stop]
        if not local:
            continue
        if hasattr(transformer, "term_map"):
            terms = transformer.term_map(documents[selected].astype(str), local)
            named.update({block.start + c: f"{name}__{t}" for c, t in terms.items()})
        elif hasattr(transformer, "get_feature_names_out"):
            block_names = transformer.get_feature_names_out()
            named.update({block.start + c: f"{name}__{block_names[c]}" for c in local})
    return named


def _term_row_counts(
    features: Any, reference: pd.DataFrame, wanted: dict[str, set[str]]
) -> dict[tuple[str, str], int]:
    """For each (block, term) asked for: how many rows of `reference` contain the term, counted
    with the block's own analyser (exact, whatever the hashing)."""
    counts: dict[tuple[str, str], int] = {}
    for name, transformer, selected in getattr(features, "transformers_", []):
        terms = wanted.get(name)
        if not terms or not hasattr(transformer, "build_analyzer"):
            continue
        analyse = transformer.build_analyzer()
        for document in reference[selected].astype(str):
            for term in terms.intersection(analyse(document)):
                counts[(name, term)] = counts.get((name, term), 0) + 1
    return counts


def linear_explanations(
    model: Any,
    documents: pd.DataFrame,
    top: int = 5,
    reference: pd.DataFrame | None = None,
    min_term_rows: int = 0,
) -> list[str]:
    """Top features by coefficient × value for each document, as ``name (+contribution)``;
    a hashed column is named by the terms of that document alone that hash to it.

    Privacy (`min_term_rows` > 0 with a `reference`, e.g. the split's authors): a word term is
    named only when at least `min_term_rows` reference rows contain it (counted exactly, term
    by term), and character n-grams, fragments of words, are never named one by one: their
    contributions are summed into one ``character n-grams`` entry. Behavioural features are
    always named."""
    parts = linear_parts(model)
    if parts is None:
        raise ValueError("model is not a pipeline ending in a linear classifier")
    features, coefficients = parts
    matrix = sparse.csr_matrix(features.transform(documents))
    private = min_term_rows > 0 and reference is not None
    rows: list[list[tuple[str, float]]] = []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        columns = matrix.indices[start:end]
        contributions = matrix.data[start:end] * coefficients[columns]
        order = [i for i in np.argsort(-contributions) if contributions[i] > 0]
        candidates = [(int(columns[i]), float(contributions[i])) for i in order]
        if not private:
            candidates = candidates[:top]
        names = _feature_names(
            features, documents.iloc[[row]], np.array([c for c, _ in candidates], dtype=int)
        )
        rows.append([(names.get(c, f"column {c}"), value) for c, value in candidates])
    counts: dict[tuple[str, str], int] = {}
    if private:
        wanted: dict[str, set[str]] = {}
        for terms_of_row in rows:
            for name, _ in terms_of_row[: top * 4]:
                block, _, terms = name.partition("__")
                if block == "word":
                    wanted.setdefault(block, set()).update(terms.split("|"))
        counts = _term_row_counts(features, reference, wanted)
    explanations = []
    for terms_of_row in rows:
        if not private:
            explanations.append("; ".join(f"{name} (+{value:.3f})" for name, value in terms_of_row))
            continue
        shown, characters = [], 0.0
        for name, value in terms_of_row:
            block, _, terms = name.partition("__")
            if block == "char":
                characters += value
            elif block != "word" or all(
                counts.get((block, term), 0) >= min_term_rows for term in terms.split("|")
            ):
                shown.append((name, value))
        if characters > 0:
            shown.append(("character n-grams", characters))
        shown = sorted(shown, key=lambda item: -item[1])[:top]
        explanations.append("; ".join(f"{name} (+{value:.3f})" for name, value in shown))
    return explanations


def occlusion_explanations(
    score: Any,
    base_rows: pd.DataFrame,
    messages: pd.DataFrame,
    separator: str,
    medians: dict[str, float],
    top: int = 3,
    speaker_markers: bool = False,
) -> dict[str, str]:
    """Model-agnostic explanations by occlusion.

    For each item (row of `base_rows`, indexed by id, holding every input column the model
    reads), score variants with one of its messages removed from ``text`` (rebuilt from
    `messages`) or one feature column set to its median over the split (`medians`); report the
    `top` changes that lower the score most, as ``conversation_id:line (-drop)`` or
    ``feature (-drop)``. Items are authors (their non-empty messages joined) or, with
    `speaker_markers`, conversations (every message behind its speaker's ``[S<n>]`` marker, as
    the conversation view writes it; speakers keep their numbers when a message is removed).
    """
    explanations: dict[str, str] = {}
    kept = messages if speaker_markers else messages[messages["text"] != ""]
    by_item = dict(tuple(kept.groupby("id", sort=False)))
    for identifier, base in base_rows.iterrows():
        variants, names = [base.to_dict()], []
        group = by_item.get(identifier)
        if group is not None:
            texts = group["text"].tolist()
            if speaker_markers:
                group = group.sort_values("line", kind="stable")
                rank = {a: i for i, a in enumerate(dict.fromkeys(group["author"]))}
                texts = [
                    f"{speaker_marker(rank[a])} {t}"
                    for a, t in zip(group["author"], group["text"], strict=True)
                ]
            for i, row in enumerate(group.itertuples()):
                if speaker_markers and row.text == "":
                    continue  # an empty message has nothing to occlude
                variants.append(
                    {**base.to_dict(), "text": separator.join(texts[:i] + texts[i + 1 :])}
                )
                conversation = getattr(row, "conversation_id", identifier)
                names.append(f"{conversation}:{row.line}")
        for column, median in medians.items():
            if column in base.index and base[column] != median:
                variants.append({**base.to_dict(), column: median})
                names.append(column)
        if not names:
            explanations[identifier] = ""
            continue
        scores = np.asarray(score(pd.DataFrame(variants)), dtype=float)
        drops = scores[0] - scores[1:]
        order = np.argsort(-drops)[:top]
        explanations[identifier] = "; ".join(
            f"{names[i]} (-{drops[i]:.3f})" for i in order if drops[i] > 0
        )
    return explanations


def error_table(
    predictions: pd.DataFrame,
    profile: pd.DataFrame,
    which: str,
    top_k: int,
) -> pd.DataFrame:
    """The `top_k` highest-scoring negatives (``false_positives``) or lowest-scoring positives
    (``false_negatives``), with their behavioural profile."""
    negatives = ~predictions["label"].astype(bool)
    if which == "false_positives":
        rows = predictions[negatives].nlargest(top_k, "score")
    else:
        rows = predictions[~negatives].nsmallest(top_k, "score")
    extra = [c for c in profile.columns if c == "id" or c not in rows.columns]
    return rows.merge(profile[extra], on="id", how="left")


def slice_rates(predictions: pd.DataFrame, profile: pd.DataFrame) -> pd.DataFrame:
    """False-positive rate among negatives by conversation length, number of authors, hour of
    day and lexicon cue presence."""
    negatives = predictions[~predictions["label"].astype(bool)][["id", "predicted"]]
    labelled = negatives.merge(profile, on="id", how="left")
    buckets = slice_labels(labelled)
    rows = []
    for dimension in buckets.columns:
        grouped = labelled.groupby(buckets[dimension], observed=True)["predicted"]
        for bucket, flags in grouped:
            rows.append(
                {
                    "slice": dimension,
                    "bucket": str(bucket),
                    "negatives": int(flags.size),
                    "false_positives": int(flags.sum()),
                    "false_positive_rate": float(flags.mean()),
                }
            )
    return pd.DataFrame(rows)
