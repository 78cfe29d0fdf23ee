"""Planning one split: who talks to whom, in how many conversations of which length (no labels
yet), then the labels: predators among all two-person authors, hard negatives among the other
conversations."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from grooming_detect.data import chitchat
from grooming_detect.data.synthetic.markers import STAGE_ORDER
from grooming_detect.data.synthetic.vocabulary import HARD_NEGATIVES

if TYPE_CHECKING:
    from grooming_detect.data.synthetic.settings import GeneratorSettings


@dataclass
class Conversation:
    """One planned conversation; `lines` is filled by the renderer."""

    kind: str
    authors: list[str]
    length: int
    initiator: str | None = None
    predator: str | None = None
    intensity: float = 0.0
    subkind: str = ""
    #: The predator's stages, in order (`stage_plan`); empty for other conversations.
    stages: tuple[str, ...] = ()
    lines: list[tuple[str, str, str, bool]] = field(default_factory=list)


#: Conversations an actor starts: P(k) proportional to 1 / k**1.2 for k = 1..12.
_ACTOR_COUNTS = list(range(1, 13))
_ACTOR_WEIGHTS = [1.0 / k**1.2 for k in _ACTOR_COUNTS]


def random_id(rng: random.Random) -> str:
    """A fresh 32-hex-digit id, as PAN-2012's anonymised author and conversation ids."""
    return f"{rng.getrandbits(128):032x}"


def _fit_lengths(
    lengths: list[int], target: int | None, rng: random.Random, minimum: int = 1
) -> list[int]:
    """Rescale conversation lengths so they add up to exactly `target` messages."""
    if target is None:
        return lengths
    if target < minimum * len(lengths):
        raise ValueError(f"{target} messages cannot fill {len(lengths)} conversations")
    scale = target / sum(lengths)
    fitted = [max(minimum, round(length * scale)) for length in lengths]
    difference = target - sum(fitted)
    while difference != 0:
        index = rng.randrange(len(fitted))
        if difference > 0:
            fitted[index] += 1
            difference -= 1
        elif fitted[index] > minimum:
            fitted[index] -= 1
            difference += 1
    return fitted


class SplitPlanner:
    """Plans the conversations of one split (train or test) with its own author population."""

    def __init__(
        self,
        settings: GeneratorSettings,
        n_conversations: int,
        n_messages: int | None,
        n_predators: int | None,
        monologues: list[chitchat.HostConversation],
        rng: random.Random,
    ) -> None:
        self.settings = settings
        self.rng = rng
        self.n_conversations = n_conversations
        self.n_messages = n_messages
        self.n_predators = n_predators
        self.monologues = monologues

    def _dialogue_authors(self, n_dialogues: int) -> list[tuple[str, str]]:
        """(initiator, partner) of every two-person conversation, by one label-blind process:
        actors start k conversations with k different partners of their community."""
        rng = self.rng
        counts: list[int] = []
        while sum(counts) < n_dialogues:
            counts.append(rng.choices(_ACTOR_COUNTS, _ACTOR_WEIGHTS)[0])
        counts[-1] -= sum(counts) - n_dialogues
        pairs: list[tuple[str, str]] = []
        community: list[tuple[str, int]] = []
        planned = 0
        for index, count in enumerate(counts):
            community.append((random_id(rng), count))
            planned += count
            if planned >= 30 or index == len(counts) - 1:
                actors = [actor for actor, _ in community]
                members = actors + [random_id(rng) for _ in range(len(actors) + 12)]
                weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(members))]
                rng.shuffle(members)
                for actor, k in community:
                    candidates = [m for m in members if m != actor]
                    candidate_weights = [
                        w for m, w in zip(members, weights, strict=True) if m != actor
                    ]
                    chosen: list[str] = []
                    while len(chosen) < k:
                        partner = rng.choices(candidates, candidate_weights)[0]
                        if partner not in chosen:
                            chosen.append(partner)
                    pairs.extend((actor, partner) for partner in chosen)
                self.communities.append(members)
                community, planned = [], 0
        return pairs

    def plan(self) -> list[Conversation]:
        """Decide every conversation's kind, authors and length, then the labels."""
        settings, rng = self.settings, self.rng
        n = self.n_conversations
        n_mono = round(settings.monologue_share * n) if self.monologues else 0
        n_multi = round(settings.multiparty_share * n)
        n_dialogue = n - n_mono - n_multi
        if n_dialogue < 2:
            raise ValueError(f"{n} conversations leave fewer than 2 two-person conversations")
        self.communities: list[list[str]] = []
        conversations: list[Conversation] = []
        mean = settings.mean_conversation_length
        for initiator, partner in self._dialogue_authors(n_dialogue):
            pair = [initiator, partner]
            rng.shuffle(pair)
            length = 2 + int(rng.expovariate(1.0 / max(mean - 2.0, 1.0)))
            conversations.append(Conversation("dialogue", pair, length, initiator=initiator))
        for _ in range(n_mono):
            host = rng.choice(self.monologues)
            author = rng.choice(rng.choice(self.communities))
            conversations.append(
                Conversation("monologue", [author], len(host), subkind=host.source_id)
            )
        irc_members = [random_id(rng) for _ in range(max(5, n_multi // 2))]
        for _ in range(n_multi):
            authors = rng.sample(irc_members, rng.randint(3, min(7, len(irc_members))))
            length = 4 + int(rng.expovariate(1.0 / 14.0))
            conversations.append(Conversation("multiparty", authors, length))
        self._fit_to_total(conversations)
        self._label(conversations)
        rng.shuffle(conversations)
        return conversations

    def _fit_to_total(self, conversations: list[Conversation]) -> None:
        """Exact message totals: two-person conversations absorb the difference."""
        if self.n_messages is None:
            return
        dialogues = [c for c in conversations if c.kind == "dialogue"]
        fixed = sum(c.length for c in conversations if c.kind != "dialogue")
        fitted = _fit_lengths(
            [c.length for c in dialogues], self.n_messages - fixed, self.rng, minimum=2
        )
        for conversation, length in zip(dialogues, fitted, strict=True):
            conversation.length = length

    def _label(self, conversations: list[Conversation]) -> None:
        """Pick predators among all two-person authors, then hard negatives.

        Predators are drawn uniformly from everyone who takes part in a two-person conversation
        (whoever started it), so their number of conversations follows the negatives'
        distribution: a third of them have one, as a third of the others do, and
        ``model=metadata_only`` has no count to read.
        """
        settings, rng = self.settings, self.rng
        involving: dict[str, list[Conversation]] = {}
        for conversation in conversations:
            if conversation.initiator is not None:
                for author in conversation.authors:
                    involving.setdefault(author, []).append(conversation)
        candidates = sorted(involving)
        per_author = sum(len(c) for c in involving.values()) / max(1, len(candidates))
        n_predators = self.n_predators or max(
            1, round(settings.predator_share * len(conversations) / per_author)
        )
        chosen: list[str] = []
        met: set[str] = set()
        # In a seeded order, skipping anyone who talks with a predator already chosen (a
        # predator is never another predator's partner).
        for candidate in rng.sample(candidates, len(candidates)):
            if len(chosen) == n_predators:
                break
            if candidate in met:
                continue
            chosen.append(candidate)
            met.update(a for c in involving[candidate] for a in c.authors)
        if len(chosen) < n_predators:
            raise ValueError(
                f"{n_predators} predators asked for, but only {len(chosen)} authors of "
                f"{len(candidates)} never talk with each other: ask for more conversations or "
                "fewer predators"
            )
        for predator in chosen:
            intensity = rng.betavariate(2.0, 2.0) * (1.0 - 0.85 * settings.difficulty) + 0.05
            stages = stage_plan(rng)
            # Every two-person conversation of a predator is a predator conversation, also
            # those another actor started with them (partner picks are label-blind).
            for conversation in involving[predator]:
                conversation.kind, conversation.predator = "predator", predator
                conversation.intensity = intensity
                conversation.stages = stages
        predators = {c.predator for c in conversations if c.predator}
        innocent = [
            c for c in conversations if c.kind == "dialogue" and not set(c.authors) & predators
        ]
        n_hard = min(len(innocent), round(settings.hard_negative_share * len(conversations)))
        for conversation in rng.sample(innocent, n_hard):
            conversation.kind = "hard_negative"
            conversation.subkind = rng.choice(sorted(HARD_NEGATIVES))


def stage_plan(rng: random.Random) -> tuple[str, ...]:
    """The stages one predator goes through, in `STAGE_ORDER`: rapport nearly always, each later
    stage with its own chance (not every grooming process reaches secrecy or a meeting), never
    fewer than two."""
    chances = {"rapport": 0.9, "personal_info": 0.75, "meeting": 0.5}
    stages = [s for s in STAGE_ORDER if rng.random() < chances.get(s, 0.6)]
    while len(stages) < 2:
        extra = rng.choice([s for s in STAGE_ORDER if s not in stages])
        stages = [s for s in STAGE_ORDER if s in stages or s == extra]
    return tuple(stages)
