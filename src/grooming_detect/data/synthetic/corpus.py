"""Generating a whole corpus: each split planned, rendered and written, the completion file last."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

from grooming_detect.data import chitchat
from grooming_detect.data.synthetic import writer
from grooming_detect.data.synthetic.hosts import split_pool
from grooming_detect.data.synthetic.planner import Conversation, SplitPlanner, random_id
from grooming_detect.data.synthetic.renderer import ConversationRenderer
from grooming_detect.data.synthetic.settings import GENERATOR_VERSION, GeneratorSettings
from grooming_detect.io import write_text
from grooming_detect.progress import track

#: Written after every other file of a generated corpus.
COMPLETE_FILE = "generator.json"


@dataclass(frozen=True)
class SplitTruth:
    """What the generator knows about one split (for tests and the manifest)."""

    n_conversations: int
    n_messages: int
    predators: list[str]
    labelled_predators: list[str]
    #: Problem-2 truth lines: the injected marker lines of the predators in the truth file.
    marker_lines: list[tuple[str, int]]
    victims: list[str]
    hard_negative_authors: list[str]


class _SplitSize(NamedTuple):
    """What `GeneratorSettings` ask of one split."""

    n_conversations: int
    n_messages: int | None
    n_predators: int | None
    label_noise: float


def _split_size(settings: GeneratorSettings, split: str) -> _SplitSize:
    """The size and label noise `settings` ask of `split` (``train`` or ``test``)."""
    if split == "train":
        return _SplitSize(
            settings.n_train_conversations,
            settings.n_train_messages,
            settings.n_train_predators,
            settings.label_noise,
        )
    return _SplitSize(
        settings.n_test_conversations,
        settings.n_test_messages,
        settings.n_test_predators,
        settings.test_label_noise,
    )


def _generate_split(
    settings: GeneratorSettings,
    size: _SplitSize,
    pool: dict[str, list[chitchat.HostConversation]],
    seed: int,
    name: str = "split",
) -> tuple[list[tuple[str, Conversation]], SplitTruth]:
    """Plan and render the conversations of one split; what the generator knows about them."""
    rng = random.Random(seed)
    renderer = ConversationRenderer(settings, pool, rng, stream_seed=seed + 1, split=name)
    planner = SplitPlanner(
        settings, size.n_conversations, size.n_messages, size.n_predators, pool["monologue"], rng
    )
    planned = planner.plan()
    conversations = []
    predators: list[str] = []
    victims: set[str] = set()
    hard_negative_authors: set[str] = set()
    marker_lines: list[tuple[str, int]] = []
    for conversation in track(planned, f"generating {name} conversations", unit="conv"):
        renderer.render(conversation)
        conversation_id = random_id(rng)
        conversations.append((conversation_id, conversation))
        if conversation.kind == "hard_negative":
            hard_negative_authors.update(conversation.authors)
        if conversation.predator is not None:
            if conversation.predator not in predators:
                predators.append(conversation.predator)
            victims.update(a for a in conversation.authors if a != conversation.predator)
            marker_lines.extend(
                (conversation_id, line)
                for line, (author, _, _, marker) in enumerate(conversation.lines, start=1)
                if marker and author == conversation.predator
            )
    # Label noise: some predators are missing from the truth and as many other authors are in it.
    n_noisy = round(size.label_noise * len(predators))
    dropped = set(rng.sample(predators, n_noisy)) if n_noisy else set()
    # Only authors who actually wrote a message (a planned participant may stay silent).
    speakers = {author for _, c in conversations for author, *_ in c.lines}
    negatives = sorted(speakers - set(predators) - victims)
    added = rng.sample(negatives, min(n_noisy, len(negatives))) if n_noisy else []
    labelled = [p for p in predators if p not in dropped] + added
    predator_of = {cid: c.predator for cid, c in conversations if c.predator is not None}
    truth_lines = [(cid, line) for cid, line in marker_lines if predator_of[cid] not in dropped]
    total = sum(len(c.lines) for _, c in conversations)
    return conversations, SplitTruth(
        n_conversations=len(conversations),
        n_messages=total,
        predators=predators,
        labelled_predators=labelled,
        marker_lines=truth_lines,
        victims=sorted(victims),
        hard_negative_authors=sorted(hard_negative_authors - set(predators)),
    )


def generate_corpus(out_dir: str | Path, settings: GeneratorSettings) -> dict[str, SplitTruth]:
    """Write a training and a test corpus in the official PAN-2012 sub-folder layout.

    Returns what the generator knows about each split. Same settings, same bytes. Each real host
    conversation feeds one split only, so no text is shared between training and test.
    """
    root = Path(out_dir)
    pools = split_pool(chitchat.load_conversations(), settings.seed, settings.benign_holdout_share)
    truths: dict[str, SplitTruth] = {}
    for split, offset in (("train", 0), ("test", 1)):
        conversations, truth = _generate_split(
            settings,
            _split_size(settings, split),
            pools[split],
            settings.seed * 1000 + offset,
            split,
        )
        writer.write_split(
            root,
            split,
            conversations,
            truth.labelled_predators,
            truth.marker_lines,
            settings.quirk_rate,
            random.Random(settings.seed * 1000 + 10 + offset),
        )
        truths[split] = truth
    # Written last: a folder without it is an interrupted generation, never reused.
    _write_complete(root, settings, truths)
    return truths


def _write_complete(root: Path, settings: GeneratorSettings, truths: dict[str, SplitTruth]) -> None:
    """The completion file: settings, generator version, fingerprint and counts per split."""
    write_text(
        root / COMPLETE_FILE,
        json.dumps(
            {
                "settings": asdict(settings),
                "generator_version": GENERATOR_VERSION,
                "fingerprint": settings.fingerprint(),
                "counts": {
                    split: {
                        "conversations": t.n_conversations,
                        "messages": t.n_messages,
                        "predators": len(t.predators),
                    }
                    for split, t in truths.items()
                },
            },
            indent=2,
            sort_keys=True,
        )
        + "\n",
    )


def is_complete(root: str | Path) -> bool:
    """True when `root` holds a corpus whose generation ran to its end."""
    return (Path(root) / COMPLETE_FILE).is_file()
