"""Real chat text from the ``chitchat-dataset`` package (BYU PCC lab's Chit-Chat Challenge, MIT).

The package ships one JSON file inside its wheel: a mapping from conversation UUID to
``{"prompt", "ratings", "start", "messages"}``, where ``messages`` is a list of turns and each
turn a list of ``{"text", "timestamp", "sender"}`` utterances. This module reads it at run time
(nothing of it is ever copied into this repository) and flattens it into `HostConversation`s:
one message per utterance, with the speaker as an index (0, 1, ...) in order of first appearance
and the time as minutes since midnight (the dataset's timestamps, as written).

In the package, 4,018 conversations have two senders and 3,150 have one: a single opening turn
nobody answered. Both kinds are kept; the synthetic generator uses the first as dialogue hosts
and the second as real one-author conversations.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from grooming_detect.errors import ChitchatUnavailableError

#: What a user runs when the package is missing.
INSTALL_HINT = "pip install chitchat-dataset  (it is a core dependency of grooming-detect)"


@dataclass(frozen=True)
class HostConversation:
    """One real conversation: parallel tuples of speaker index, minute of day and text."""

    source_id: str
    speakers: tuple[int, ...]
    minutes: tuple[int, ...]
    texts: tuple[str, ...]

    @property
    def n_speakers(self) -> int:
        return len(set(self.speakers))

    def __len__(self) -> int:
        return len(self.texts)


def dataset_path() -> Path:
    """Location of ``dataset.json`` inside the installed package."""
    try:
        import chitchat_dataset
    except ImportError as error:
        raise ChitchatUnavailableError(
            f"the real-text corpus needs the chitchat-dataset package: {INSTALL_HINT}"
        ) from error
    path = Path(chitchat_dataset.__file__).with_name("dataset.json")
    if not path.is_file():
        raise ChitchatUnavailableError(f"{path}: chitchat-dataset is installed without its data")
    return path


def _minute_of_day(stamp: str, where: str) -> int:
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: expected an ISO timestamp, found {stamp!r}") from error
    return moment.hour * 60 + moment.minute


def parse_conversations(path: Path) -> list[HostConversation]:
    """Flatten the package's JSON into host conversations, in sorted conversation-id order."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ChitchatUnavailableError(
            f"{path}: unreadable chitchat-dataset file ({error})"
        ) from error
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object of conversations")
    hosts = []
    for conversation_id in sorted(raw):
        record = raw[conversation_id]
        where = f"{path}: conversation {conversation_id}"
        if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
            raise ValueError(f"{where}: expected an object with a 'messages' list")
        speaker_index: dict[str, int] = {}
        speakers, minutes, texts = [], [], []
        for turn_number, turn in enumerate(record["messages"]):
            for utterance in turn:
                try:
                    sender, text, stamp = (
                        utterance["sender"],
                        utterance["text"],
                        utterance["timestamp"],
                    )
                except (KeyError, TypeError) as error:
                    raise ValueError(
                        f"{where}, turn {turn_number}: expected sender, text and timestamp"
                    ) from error
                speakers.append(speaker_index.setdefault(str(sender), len(speaker_index)))
                minutes.append(_minute_of_day(stamp, f"{where}, turn {turn_number}"))
                texts.append(str(text))
        if texts:
            hosts.append(
                HostConversation(conversation_id, tuple(speakers), tuple(minutes), tuple(texts))
            )
    return hosts


@lru_cache(maxsize=1)
def load_conversations() -> tuple[HostConversation, ...]:
    """Every conversation of the installed package (parsed once per process)."""
    return tuple(parse_conversations(dataset_path()))


@lru_cache(maxsize=1)
def dataset_digest() -> str:
    """SHA-256 of the package's data file (part of the synthetic corpus fingerprint)."""
    digest = hashlib.sha256()
    with open(dataset_path(), "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def is_held_out(host: HostConversation, share: float) -> bool:
    """Whether `host` is among the `share` of conversations the synthetic generator never uses
    (kept for the benign-traffic audit). Decided by a hash of the conversation's UUID, so the
    same conversations are held out for every seed and every corpus size."""
    if share <= 0:
        return False
    digest = hashlib.sha256(host.source_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def held_out_conversations(share: float) -> tuple[HostConversation, ...]:
    """The package's conversations that a synthetic corpus generated with
    ``benign_holdout_share=share`` does not use."""
    return tuple(host for host in load_conversations() if is_held_out(host, share))


__all__ = [
    "ChitchatUnavailableError",
    "HostConversation",
    "dataset_digest",
    "dataset_path",
    "held_out_conversations",
    "is_held_out",
    "load_conversations",
    "parse_conversations",
]
