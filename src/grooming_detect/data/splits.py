"""Leakage-free held-out splits (validation, or test for chat logs without a split column).

Conversations are carved as whole connected components of the author-conversation graph, so no
author and no conversation sits on both sides. Components are bin-packed toward target shares of
both conversations and positive conversations (`holdout_conversations`); the achieved shares are
checked against ``data.split_tolerance`` and a miss raises `SplitError` instead of a lopsided
split. The explicit override ``data.split_override: author`` splits by authors instead: every
conversation stays whole, but authors may then appear on both sides (disclosed in the
`SplitReport`, which the data manifest records). ``auto`` (the chat-log default) tries whole
components first and takes the author split only when components cannot be split, saying so in
one log line and in the report's ``fallback``: a small export linked by a few very active authors
still runs, while an explicit ``null`` insists on components and keeps the `SplitError`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from grooming_detect.errors import SplitError

log = logging.getLogger(__name__)

#: ``data.split_override`` values besides null (whole connected components) and `AUTO`.
SPLIT_OVERRIDES = ("author",)
#: ``data.split_override: auto``: whole connected components, falling back to ``author`` (with
#: the reason recorded) when they cannot give a split within the tolerance.
AUTO = "auto"

#: Default ``data.split_tolerance``: the largest absolute miss of a held-out share (of
#: conversations, and of positive conversations) before the split is refused. 0.1 lets a 0.2
#: validation share land in [0.1, 0.3]: at least half, at most one and a half times the target,
#: still a usable validation set; the default synthetic corpora miss by under 0.01.
DEFAULT_TOLERANCE = 0.1


@dataclass(frozen=True)
class SplitSettings:
    """How held-out splits are carved (``data.split_tolerance``, ``data.split_override``).

    Attributes:
        tolerance: largest absolute miss of an achieved share, beyond one item's step (with n
            conversations a share moves in steps of 1/n, so a tiny corpus is not refused for
            its granularity alone).
        override: None (whole connected components: no author on both sides), ``author``
            (whole author groups: conversations stay whole, authors may cross sides) or
            ``auto`` (components, falling back to author groups when they cannot be split).
    """

    tolerance: float = DEFAULT_TOLERANCE
    override: str | None = None

    def __post_init__(self) -> None:
        if self.override is not None and self.override not in (*SPLIT_OVERRIDES, AUTO):
            raise ValueError(
                f"data.split_override: {self.override!r}; expected null or one of "
                f"{[*SPLIT_OVERRIDES, AUTO]}"
            )
        if not 0.0 <= self.tolerance <= 1.0:
            raise ValueError(f"data.split_tolerance: {self.tolerance}; expected a number in [0, 1]")


@dataclass(frozen=True)
class SplitReport:
    """What carving one held-out split achieved (the data manifest's ``split.<name>``).

    Attributes:
        split: the held-out split (``validation`` or ``test``).
        method: ``connected components`` or ``authors (override)``.
        override: ``data.split_override`` (None: whole components).
        target_share: the configured fraction of conversations (and of positives) held out.
        tolerance: ``data.split_tolerance``.
        conversations, held_conversations: conversations carved from, and held out.
        positives, held_positives: positive conversations carved from, and held out.
        units: components (or author groups, with the override) that were packed.
        largest_component: conversations, authors and positive conversations of the largest
            connected component of the author-conversation graph.
        components_broken: components the author override broke into author groups (those
            holding more than `tolerance` of the conversations or positives; 0 without it).
        authors_on_both_sides: authors speaking on both sides (0 without the override).
        positive_authors_on_both_sides: those of them that are positive authors.
        fallback: with ``data.split_override: auto``, ``components -> author: <reason>`` when
            whole components could not be split (None: the design asked for was used).
    """

    split: str
    method: str
    override: str | None
    target_share: float
    tolerance: float
    conversations: int
    held_conversations: int
    positives: int
    held_positives: int
    units: int
    largest_component: dict[str, int]
    components_broken: int
    authors_on_both_sides: int
    positive_authors_on_both_sides: int
    fallback: str | None = None

    @property
    def share_conversations(self) -> float:
        """Held-out share of the conversations."""
        return self.held_conversations / self.conversations if self.conversations else 0.0

    @property
    def share_positives(self) -> float | None:
        """Held-out share of the positive conversations (None when there are none)."""
        return self.held_positives / self.positives if self.positives else None

    def to_dict(self) -> dict[str, Any]:
        """The report with its achieved shares, for the manifest."""
        return {
            **asdict(self),
            "share_conversations": self.share_conversations,
            "share_positives": self.share_positives,
        }


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
    pairs: pd.DataFrame,
    positive_conversations: set[str],
    fraction: float,
    seed: int,
    *,
    split: str = "validation",
    settings: SplitSettings | None = None,
    positive_authors: set[str] | None = None,
) -> tuple[set[str], SplitReport]:
    """Conversations to hold out (validation or test), as whole connected components.

    Components (with ``settings.override == "author"``, the components too large for the
    tolerance broken into author groups: see `override_units`) are bin-packed toward
    `fraction` of the positive conversations and of the conversations (`pack_units`): both
    sides hold a positive whenever two units do, and no author or conversation sits on both
    sides without the override (with it, conversations still stay whole).

    Args:
        pairs: one row per (conversation_id, author) that occurs.
        positive_conversations: conversations that hold a predator (or carry a positive label).
        fraction: share of conversations (and of positives) to hold out, in (0, 1).
        seed: seed of the tie-breaking shuffle (another seed, another carving).
        split: name of the held-out split, for messages and the report.
        settings: tolerance and override (default: `SplitSettings()`).
        positive_authors: predators, kept whole by the author override and counted when they
            cross sides (None: conversation-level labels).

    Returns:
        The held-out conversations and the `SplitReport` of what was achieved.

    Raises:
        SplitError: (a ValueError) when every positive conversation sits in one unit, or an
            achieved share misses `fraction` by more than ``settings.tolerance`` (with ``auto``:
            when the author fallback misses too).
    """
    settings = settings or SplitSettings()
    if settings.override == AUTO:
        return _components_or_authors(
            pairs, positive_conversations, fraction, seed, split, settings, positive_authors
        )
    components = conversation_components(pairs)
    component_sizes = unit_sizes(pairs, components, positive_conversations)
    units, sizes, broken = components, component_sizes, 0
    if settings.override == "author":
        units, broken = override_units(
            pairs, components, component_sizes, positive_authors or set(), settings.tolerance
        )
        sizes = unit_sizes(pairs, units, positive_conversations)
    if (sizes["positives"] > 0).sum() == 1:
        raise SplitError(_one_positive_unit(split, settings.override))
    held_units = pack_units(sizes, fraction, np.random.default_rng(seed))
    held = set(units.index[units.isin(list(held_units))])
    report = split_report(
        pairs,
        held,
        positive_conversations,
        split=split,
        fraction=fraction,
        settings=settings,
        units=len(sizes),
        component_sizes=component_sizes,
        components_broken=broken,
        positive_authors=positive_authors,
    )
    check_shares(report)
    _log_report(report)
    return held, report


def _components_or_authors(
    pairs: pd.DataFrame,
    positive_conversations: set[str],
    fraction: float,
    seed: int,
    split: str,
    settings: SplitSettings,
    positive_authors: set[str] | None,
) -> tuple[set[str], SplitReport]:
    """``data.split_override: auto``: whole components, else author groups with the reason in
    the report's ``fallback`` and one warning line (see `holdout_conversations`)."""
    try:
        return holdout_conversations(
            pairs,
            positive_conversations,
            fraction,
            seed,
            split=split,
            settings=replace(settings, override=None),
            positive_authors=positive_authors,
        )
    except SplitError as error:
        reason = str(error)
    log.warning(
        "Design chosen for this data: the %s split is carved by author groups instead of whole "
        "connected components (data.split_override auto -> author), because %s. Set "
        "data.split_override=null to insist on components (the run then stops), or "
        "data.split_override=author to choose this split yourself",
        split,
        _first_sentence(reason),
    )
    held, report = holdout_conversations(
        pairs,
        positive_conversations,
        fraction,
        seed,
        split=split,
        settings=replace(settings, override="author"),
        positive_authors=positive_authors,
    )
    return held, replace(report, fallback=f"components -> author: {_first_sentence(reason)}")


def _first_sentence(reason: str) -> str:
    """The first sentence of a split error (what failed), without the advice that follows."""
    return reason.split("; a leakage-free")[0].split(". ")[0].rstrip(".")


def unit_sizes(
    pairs: pd.DataFrame, units: pd.Series, positive_conversations: set[str]
) -> pd.DataFrame:
    """Conversations, authors and positive conversations of each unit.

    Args:
        pairs: one row per (conversation_id, author) that occurs.
        units: unit label of each conversation (indexed by conversation_id).
        positive_conversations: the positive conversations.

    Returns:
        One row per unit label, columns ``conversations``, ``authors`` and ``positives``.
    """
    frame = pd.DataFrame(
        {"unit": units.to_numpy(), "positive": units.index.isin(list(positive_conversations))}
    )
    sizes = frame.groupby("unit").agg(
        conversations=("positive", "size"), positives=("positive", "sum")
    )
    unit_of_pair = pairs["conversation_id"].map(units).to_numpy()
    sizes["authors"] = pairs["author"].groupby(unit_of_pair).nunique()
    return sizes.astype(int)


def pack_units(sizes: pd.DataFrame, fraction: float, rng: np.random.Generator) -> set[Any]:
    """Bin-pack units into the held-out side and the rest, toward `fraction` of each total.

    Units holding positives go first, largest (in positives, then conversations) first, each to
    the side whose relative deficit in positives (then in conversations) is largest, and the
    result is improved by moving or swapping units (`_rebalance`); then the units without
    positives, largest first, each to the side whose relative deficit in conversations is
    largest. Ties go to the larger side; units of equal size are met in an order shuffled by
    `rng`, so another seed gives another carving of the same corpus. With two or more positive
    units, both sides get one.

    Returns:
        Labels of the units held out.
    """
    shuffled = sizes.iloc[rng.permutation(len(sizes))]
    positive = shuffled[shuffled["positives"] > 0].sort_values(
        ["positives", "conversations"], ascending=False, kind="stable"
    )
    negative = shuffled[shuffled["positives"] == 0].sort_values(
        "conversations", ascending=False, kind="stable"
    )
    totals = sizes[["positives", "conversations"]].sum().to_numpy(dtype=float)
    targets = np.array([fraction * totals, (1.0 - fraction) * totals])  # held-out, rest
    amounts = positive[["positives", "conversations"]].to_numpy(dtype=float)
    held_positive = _assign(amounts, targets, np.zeros_like(targets), [0, 1])
    held_positive = _rebalance(amounts, held_positive, targets[0])
    filled = np.array([amounts[held_positive].sum(axis=0), amounts[~held_positive].sum(axis=0)])
    held_negative = _assign(
        negative[["positives", "conversations"]].to_numpy(dtype=float), targets, filled, [1]
    )
    return set(positive.index[held_positive]) | set(negative.index[held_negative])


def _assign(
    amounts: np.ndarray, targets: np.ndarray, filled: np.ndarray, columns: list[int]
) -> np.ndarray:
    """Greedy pass: each unit in turn (rows of `amounts`) to `_neediest_side`, `filled` (rows:
    held-out, rest) updated in place; returns whether each unit is held out."""
    held = np.zeros(len(amounts), dtype=bool)
    for row, amount in enumerate(amounts):
        side = _neediest_side(targets, filled, columns)
        filled[side] += amount
        held[row] = side == 0
    return held


def _rebalance(amounts: np.ndarray, held: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Local search after the greedy pass: while moving one unit to the other side, or swapping
    two, brings the held-out positives (then conversations) strictly closer to `target`, make
    the best such change. A move never empties a side, so both keep a positive unit.

    Args:
        amounts: positives and conversations of each unit (rows).
        held: whether each unit is held out (not changed).
        target: the held-out side's target positives and conversations.

    Returns:
        The improved held-out flags.
    """
    held = held.copy()
    for _ in range(4 * len(amounts)):  # each change strictly improves: this bound is a guard
        current = amounts[held].sum(axis=0)
        changes, first, second = _candidate_changes(amounts, held)
        errors = np.abs(current + changes - target)
        if not len(errors):
            break
        best = int(np.lexsort((errors[:, 1], errors[:, 0]))[0])
        if tuple(errors[best]) >= tuple(np.abs(current - target)):
            break
        for unit in (first[best], second[best]):
            if unit >= 0:
                held[unit] = not held[unit]
    return held


def _candidate_changes(
    amounts: np.ndarray, held: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every change of the held-out totals one move or swap can make (one unit of each distinct
    size per side stands for its size): the changes, and the unit(s) each flips (-1: none)."""
    sides = [np.flatnonzero(held), np.flatnonzero(~held)]
    held_units, rest_units = (
        units[np.unique(amounts[units], axis=0, return_index=True)[1]] for units in sides
    )
    from_held = held_units if len(sides[0]) > 1 else held_units[:0]
    from_rest = rest_units if len(sides[1]) > 1 else rest_units[:0]
    swaps = amounts[rest_units][None, :, :] - amounts[held_units][:, None, :]
    changes = np.concatenate([-amounts[from_held], amounts[from_rest], swaps.reshape(-1, 2)])
    first = np.concatenate([from_held, from_rest, np.repeat(held_units, len(rest_units))])
    moves = np.full(len(from_held) + len(from_rest), -1)
    second = np.concatenate([moves, np.tile(rest_units, len(held_units))])
    return changes, first, second


def _neediest_side(targets: np.ndarray, filled: np.ndarray, columns: list[int]) -> int:
    """0 (held-out) or 1 (rest): the side whose relative deficit, compared column by column
    in `columns`, is largest; ties go to the side with the larger conversation target."""
    safe = np.where(targets > 0, targets, 1.0)
    deficit = np.where(targets > 0, (targets - filled) / safe, -np.inf)
    keys = [(*deficit[side, columns], targets[side, 1]) for side in (0, 1)]
    return 0 if keys[0] > keys[1] else 1


def override_units(
    pairs: pd.DataFrame,
    components: pd.Series,
    component_sizes: pd.DataFrame,
    positive_authors: set[str],
    tolerance: float,
) -> tuple[pd.Series, int]:
    """Units under the author override: whole components, except those holding more than
    `tolerance` of the conversations or of the positive conversations, which are broken into
    `author_groups`. Only authors of a broken component can then cross sides.

    Returns:
        Unit label of each conversation (``component:<n>`` or ``author:<id>``), indexed by
        conversation_id, and how many components were broken.
    """
    totals = component_sizes[["conversations", "positives"]].sum()
    too_large = component_sizes.index[
        (component_sizes["conversations"] > tolerance * totals["conversations"])
        | (component_sizes["positives"] > tolerance * totals["positives"])
    ]
    units = "component:" + components.astype(str)
    inside = pairs[pairs["conversation_id"].map(components).isin(too_large)]
    owners = author_groups(inside, positive_authors)
    units.loc[owners.index] = "author:" + owners
    return units, len(too_large)


def author_groups(pairs: pd.DataFrame, positive_authors: set[str]) -> pd.Series:
    """Unit of each conversation under the author override: the author it is assigned with.

    A conversation goes with its positive author (the one with the most conversations when it
    has several), so a predator's conversations stay together on one side; otherwise with its
    author who has the fewest conversations (ties by id), so the groups stay small and the
    authors who link many conversations (hubs) are the ones that cross sides.

    Returns:
        Author label of each conversation (indexed by conversation_id).
    """
    n_conversations = pairs["author"].map(pairs["author"].value_counts()).to_numpy()
    positive = pairs["author"].isin(positive_authors).to_numpy()
    ranked = pairs.assign(
        _other=~positive, _rank=np.where(positive, -n_conversations, n_conversations)
    ).sort_values(["conversation_id", "_other", "_rank", "author"], kind="stable")
    owners = ranked.drop_duplicates("conversation_id").set_index("conversation_id")["author"]
    return owners.rename(None)


def split_report(
    pairs: pd.DataFrame,
    held: set[str],
    positive_conversations: set[str],
    *,
    split: str,
    fraction: float,
    settings: SplitSettings,
    units: int,
    component_sizes: pd.DataFrame,
    components_broken: int = 0,
    positive_authors: set[str] | None = None,
) -> SplitReport:
    """The `SplitReport` of holding out `held` from the conversations of `pairs`.

    Args:
        pairs: one row per (conversation_id, author) that occurs.
        held: the held-out conversations.
        positive_conversations: the positive conversations.
        split: name of the held-out split.
        fraction: the target share.
        settings: the tolerance and override used.
        units: how many units (components or author groups) were packed.
        component_sizes: `unit_sizes` of the connected components.
        components_broken: components the author override broke into author groups.
        positive_authors: predators (None: conversation-level labels).
    """
    conversations = set(pairs["conversation_id"])
    positives = positive_conversations & conversations
    crossing = authors_on_both_sides(pairs, held)
    largest = component_sizes.sort_values(["conversations", "positives"], ascending=False)
    return SplitReport(
        split=split,
        method="authors (override)" if settings.override else "connected components",
        override=settings.override,
        target_share=float(fraction),
        tolerance=float(settings.tolerance),
        conversations=len(conversations),
        held_conversations=len(held & conversations),
        positives=len(positives),
        held_positives=len(held & positives),
        units=units,
        largest_component={k: int(v) for k, v in largest.iloc[0].items()} if len(largest) else {},
        components_broken=components_broken,
        authors_on_both_sides=len(crossing),
        positive_authors_on_both_sides=len(crossing & (positive_authors or set())),
    )


def authors_on_both_sides(pairs: pd.DataFrame, held: set[str]) -> set[str]:
    """Authors who speak both in `held` conversations and in the others."""
    sides = pairs["conversation_id"].isin(held).groupby(pairs["author"].to_numpy()).nunique()
    return set(sides.index[sides.to_numpy() > 1])


def check_shares(report: SplitReport) -> None:
    """Refuse a split whose achieved shares miss the target by more than the tolerance (plus
    one item's step, 1/n of n items).

    Raises:
        SplitError: naming the split, the achieved and target shares, the largest component
            and the override.
    """
    allowed = {
        "conversations": report.tolerance + 1 / max(report.conversations, 1),
        "positives": report.tolerance + 1 / max(report.positives, 1),
    }
    achieved = {"conversations": report.share_conversations, "positives": report.share_positives}
    missed = [
        name
        for name, share in achieved.items()
        if share is not None and abs(share - report.target_share) > allowed[name]
    ]
    if missed:
        raise SplitError(_missed_message(report))


def _missed_message(report: SplitReport) -> str:
    """`check_shares`' error: what was achieved and expected, why, and what to do."""
    largest = report.largest_component
    positives = f"{report.share_positives:.1%}" if report.share_positives is not None else "n/a"
    advice = (
        "Set data.split_override=author to split by authors instead (conversations stay whole; "
        "authors may then appear on both sides, disclosed in the manifest), or raise "
        "data.split_tolerance."
        if report.override is None
        else "The author-level override cannot reach it either (one author's group is too "
        "large a share); change the held-out fraction or raise data.split_tolerance."
    )
    return (
        f"{report.split} split: the held-out side holds {report.share_conversations:.1%} of the "
        f"{report.conversations:,} conversations and {positives} of the {report.positives:,} "
        f"positive conversations; expected {report.target_share:.1%} of each within "
        f"data.split_tolerance={report.tolerance:g}. The largest connected component of the "
        f"author-conversation graph holds {largest.get('conversations', 0):,} conversations "
        f"({largest.get('conversations', 0) / max(report.conversations, 1):.0%} of them), "
        f"{largest.get('authors', 0):,} authors and {largest.get('positives', 0):,} positive "
        f"conversations ({report.units:,} units were packed, method: {report.method}). {advice}"
    )


def _one_positive_unit(split: str, override: str | None) -> str:
    """The error when every positive conversation sits in one unit."""
    if override == "author":
        return (
            f"{split} split: all positive conversations belong to one author's group; even "
            "data.split_override=author cannot put positives on both sides"
        )
    return (
        f"{split} split: all positives are linked into one component of the "
        "author-conversation graph; a leakage-free split with positives on both sides is "
        "impossible. Set data.split_override=author to split by authors instead (authors may "
        "then appear on both sides, disclosed in the manifest)"
    )


def _log_report(report: SplitReport) -> None:
    """Log the achieved shares; warn when the author override let authors cross sides."""
    log.info(
        "%s split (%s): %.1f%% of %d conversations and %s of %d positive conversations held "
        "out (target %.1f%%); the largest component holds %d conversations",
        report.split,
        report.method,
        100 * report.share_conversations,
        report.conversations,
        "n/a" if report.share_positives is None else f"{report.share_positives:.1%}",
        report.positives,
        100 * report.target_share,
        report.largest_component.get("conversations", 0),
    )
    if report.override:
        log.warning(
            "%s split with data.split_override=%s: %d component(s) broken into author groups; "
            "%d author(s), %d of them positive, appear on both sides; scores on %s are "
            "optimistic by that leakage",
            report.split,
            report.override,
            report.components_broken,
            report.authors_on_both_sides,
            report.positive_authors_on_both_sides,
            report.split,
        )


def positive_conversations_of(pairs: pd.DataFrame, predators: set[str]) -> set[str]:
    """Conversations in which at least one of `predators` speaks."""
    return set(pairs.loc[pairs["author"].isin(predators), "conversation_id"])


def carve_validation(
    pairs: pd.DataFrame,
    predators: set[str],
    fraction: float,
    seed: int,
    settings: SplitSettings | None = None,
) -> tuple[dict[str, str], SplitReport]:
    """Assign each training conversation to ``train`` or ``validation`` (see
    `holdout_conversations`), stratified by the presence of a predator.

    Returns:
        conversation_id -> ``train`` or ``validation``, and the `SplitReport`.

    Raises:
        SplitError: see `holdout_conversations`.
    """
    held, report = holdout_conversations(
        pairs,
        positive_conversations_of(pairs, predators),
        fraction,
        seed,
        split="validation",
        settings=settings,
        positive_authors=predators,
    )
    assignment = {
        conversation: "validation" if conversation in held else "train"
        for conversation in pairs["conversation_id"].unique()
    }
    return assignment, report
