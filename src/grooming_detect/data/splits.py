"""Leakage-free validation split: whole connected components of the author-conversation graph."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

log = logging.getLogger(__name__)


def conversation_components(pairs: pd.DataFrame) -> pd.Series:
    """Component label of each conversation in the bipartite author-conversation graph.

    Args:
        pairs: one row per (conversation_id, author) that occurs.

    Returns:
        Series indexed by conversation_id; two conversations share a label when a chain of
        shared authors links them.
    """
    conversation_codes, conversations = pd.factorize(pairs["conversation_id"])
    author_codes, _ = pd.factorize(pairs["author"])
    n_conversations = len(conversations)
    n_nodes = n_conversations + int(author_codes.max(initial=-1)) + 1
    graph = coo_matrix(
        (
            np.ones(len(pairs), dtype=np.int8),
            (conversation_codes, n_conversations + author_codes),
        ),
        shape=(n_nodes, n_nodes),
    )
    _, labels = connected_components(graph, directed=False)
    return pd.Series(
        labels[:n_conversations], index=pd.Index(conversations, name="conversation_id")
    )


def carve_validation(
    pairs: pd.DataFrame, predators: set[str], fraction: float, seed: int
) -> dict[str, str]:
    """Assign each training conversation to ``train`` or ``validation``.

    Components are shuffled with `seed` and taken whole into validation until it holds `fraction`
    of the conversations, separately for components with and without a predator (stratified), so
    validation holds predators and no author or conversation sits on both sides.

    Raises:
        ValueError: when the predators sit in fewer than two components, so validation and train
            cannot both hold one.
    """
    components = conversation_components(pairs)
    has_predator = (
        pairs.assign(
            component=pairs["conversation_id"].map(components),
            is_predator=pairs["author"].isin(predators),
        )
        .groupby("component")["is_predator"]
        .any()
    )
    sizes = components.value_counts()
    rng = np.random.default_rng(seed)
    validation_components: set[int] = set()
    for positive in (True, False):
        stratum = np.array(sorted(has_predator.index[has_predator.to_numpy() == positive]))
        if positive and 0 < len(stratum) < 2:
            raise ValueError(
                "all predators are linked into one component of the author-conversation graph; "
                "a leakage-free validation split with predators on both sides is impossible"
            )
        rng.shuffle(stratum)
        target = fraction * sizes.loc[stratum].sum() if len(stratum) else 0
        taken = 0
        for label in stratum:
            if taken >= target:
                break
            if positive and len(validation_components & set(stratum)) == len(stratum) - 1:
                break  # keep at least one predator component for training
            validation_components.add(int(label))
            taken += int(sizes.loc[label])
    largest = sizes.max() / sizes.sum() if len(sizes) else 0.0
    if largest > 1 - fraction:
        log.warning(
            "One connected component holds %.0f%% of training conversations; the validation "
            "split cannot reach %.0f%% without breaking author groups",
            100 * largest,
            100 * fraction,
        )
    return {
        conversation: "validation" if label in validation_components else "train"
        for conversation, label in components.items()
    }
