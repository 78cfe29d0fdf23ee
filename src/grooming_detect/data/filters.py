"""Optional PAN-2012 conversation filters, as used by the 2012 winners, with a full account.

Each filter removes whole conversations; the report says, per filter and split, how many
conversations, messages, authors and predators it removed (an author is removed when none of their
conversations remains), so a filter that removes a predator says so.

``vtpan`` is of another kind: it keeps exactly the conversations of the eSPD benchmark split
(`grooming_detect.data.vtpan`), in training and test files alike, and labels conversations, not
authors. `pan12.load_vtpan_corpus` applies it (before the validation carve) and accounts for it; it
defines the corpus by ids, so it is never combined with the rule filters above.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilterSettings:
    """``data.filters`` in the config."""

    drop_single_author: bool = False
    drop_multi_party: bool = False
    min_messages_per_author: int = 0
    apply_to_test: bool = False
    #: Keep only the VTPAN conversations (both files) with conversation-level labels.
    vtpan: bool = False

    @property
    def active(self) -> bool:
        """Whether a rule filter is on (`vtpan` is not one: the loader applies it)."""
        return self.drop_single_author or self.drop_multi_party or self.min_messages_per_author > 0


def _conversations_to_drop(messages: pd.DataFrame, name: str, settings: FilterSettings) -> set:
    per_author = messages.groupby(["conversation_id", "author"]).size()
    n_authors = per_author.groupby(level="conversation_id").size()
    if name == "drop_single_author":
        return set(n_authors.index[n_authors == 1])
    if name == "drop_multi_party":
        return set(n_authors.index[n_authors > 2])
    fewest = per_author.groupby(level="conversation_id").min()
    return set(fewest.index[fewest < settings.min_messages_per_author])


def apply_filters(
    messages: pd.DataFrame, predators: set[str], settings: FilterSettings
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Remove the conversations the active filters select; return what is left and the account.

    Only ``train`` and ``validation`` are filtered unless `settings.apply_to_test`.
    """
    if not settings.active:
        return messages, []
    splits = ["train", "validation"] + (["test"] if settings.apply_to_test else [])
    steps = [
        name
        for name, on in (
            ("drop_single_author", settings.drop_single_author),
            ("drop_multi_party", settings.drop_multi_party),
            ("min_messages_per_author", settings.min_messages_per_author > 0),
        )
        if on
    ]
    account: list[dict[str, Any]] = []
    for name in steps:
        eligible = messages["split"].isin(splits)
        drop = _conversations_to_drop(messages[eligible], name, settings)
        removed = messages["conversation_id"].isin(drop) & eligible
        kept = messages[~removed]
        for split in splits:
            before = messages[messages["split"] == split]
            after = kept[kept["split"] == split]
            lost_authors = set(before["author"]) - set(after["author"])
            row = {
                "filter": name,
                "split": split,
                "conversations": before["conversation_id"].nunique()
                - after["conversation_id"].nunique(),
                "messages": len(before) - len(after),
                "authors": len(lost_authors),
                "predators": len(lost_authors & predators),
            }
            account.append(row)
            if row["predators"]:
                log.warning(
                    "Filter %s removed %d predator(s) from %s (all their conversations)",
                    name,
                    row["predators"],
                    split,
                )
        messages = kept
    return messages.reset_index(drop=True), account
