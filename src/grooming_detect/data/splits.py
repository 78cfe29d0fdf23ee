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


def holdout_conversations(
    pairs: pd.DataFrame, positive_conversations: set[str], fraction: float, seed: int
) -> set[str]:
    """Conversations to hold out (validation or test), taken as whole connected components.

    Components are shuffled with `seed` and taken whole until the holdout has `fraction` of the
    conversations, separately for components with and without a positive conversation
    (stratified), so the holdout holds positives and no author or conversation sits on both
    sides.

    Args:
        pairs: one row per (conversation_id, author) that occurs.
        positive_conversations: conversations that hold a predator (or carry a positive label).
        fraction: share of conversations to hold out, in (0, 1).
        seed: seed of the shuffle.

    Raises:
        ValueError: when the positives sit in fewer than two components, so the holdout and the
            rest cannot both hold one.
    """
    components = conversation_components(pairs)
    has_positive = (
        pd.Series(components.index.isin(list(positive_conversations)), index=components.index)
        .groupby(components)
        .any()
    )
    sizes = components.value_counts()
    rng = np.random.default_rng(seed)
    held: set[int] = set()
    for positive in (True, False):
        stratum = np.array(sorted(has_positive.index[has_positive.to_numpy() == positive]))
        if positive and 0 < len(stratum) < 2:
            raise ValueError(
                "all positives are linked into one component of the author-conversation graph; "
                "a leakage-free split with positives on both sides is impossible"
            )
        rng.shuffle(stratum)
        target = fraction * sizes.loc[stratum].sum() if len(stratum) else 0
        taken = 0
        for position, label in enumerate(stratum):
            if taken >= target or (positive and position == len(stratum) - 1):
                break  # the last positive component always stays on the other side
            held.add(int(label))
            taken += int(sizes.loc[label])
    largest = sizes.max() / sizes.sum() if len(sizes) else 0.0
    if largest > 1 - fraction:
        log.warning(
            "One connected component holds %.0f%% of the conversations; a %.0f%% holdout "
            "cannot be reached without breaking author groups",
            100 * largest,
            100 * fraction,
        )
    return {conversation for conversation, label in components.items() if label in held}


def positive_conversations_of(pairs: pd.DataFrame, predators: set[str]) -> set[str]:
    """Conversations in which at least one of `predators` speaks."""
    return set(pairs.loc[pairs["author"].isin(predators), "conversation_id"])


def carve_validation(
    pairs: pd.DataFrame, predators: set[str], fraction: float, seed: int
) -> dict[str, str]:
    """Assign each training conversation to ``train`` or ``validation`` (see
    `holdout_conversations`), stratified by the presence of a predator."""
    held = holdout_conversations(pairs, positive_conversations_of(pairs, predators), fraction, seed)
    return {
        conversation: "validation" if conversation in held else "train"
        for conversation in pairs["conversation_id"].unique()
    }
