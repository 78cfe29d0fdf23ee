"""Host windows: runs of real messages cut from the chitchat-dataset conversations, and the
assignment of each host conversation to one split."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from grooming_detect.data import chitchat
from grooming_detect.data.synthetic.vocabulary import EXCLUDED_CONTENT


@dataclass(frozen=True)
class Window:
    """A run of messages cut from a real host conversation (speaker indexes as in the host)."""

    speakers: tuple[int, ...]
    minutes: tuple[int, ...]
    texts: tuple[str, ...]
    reuse: int


def _excluded_prefix_counts(host: chitchat.HostConversation) -> list[int]:
    """Cumulative count of excluded messages (for O(1) 'window is clean' checks)."""
    counts = [0]
    for text in host.texts:
        counts.append(counts[-1] + (1 if EXCLUDED_CONTENT.search(text) else 0))
    return counts


class HostStream:
    """Cuts non-overlapping windows from a split's pool of real hosts, one host after another.

    Hosts are visited round-robin in a seeded order, one window per visit (so consecutive
    conversations come from different hosts), each host's cursor moving past a small seeded
    gap after every window. A window must hold both speakers (a dialogue) and no excluded
    message. When every host is used up a new pass starts in a new order, and the windows of
    that pass are marked as reuses (they get surface variation).
    """

    def __init__(self, hosts: Sequence[chitchat.HostConversation], rng: random.Random) -> None:
        if not hosts:
            raise ValueError("no host conversations to cut windows from")
        self.hosts = list(hosts)
        self.excluded = [_excluded_prefix_counts(host) for host in self.hosts]
        self.rng = rng
        self.passes = 0
        self.longest = max(len(host) for host in self.hosts)
        self._new_pass()

    def _new_pass(self) -> None:
        self.active = list(range(len(self.hosts)))
        self.rng.shuffle(self.active)
        self.cursors = [self.rng.randrange(3) for _ in self.hosts]
        self.turn = 0
        self.pass_number = self.passes
        self.passes += 1

    def take(self, length: int, need_speakers: int = 2) -> Window:
        """The next clean window of `length` messages (at most the longest host's length)."""
        length = min(length, self.longest)
        fresh_passes = misses = 0
        while True:
            if misses > 2 * len(self.active) + 8:
                self.active, misses = [], 0
            if not self.active:
                fresh_passes += 1
                if fresh_passes > 2:
                    raise ValueError(f"no clean host window of {length} messages exists")
                self._new_pass()
            self.turn %= len(self.active)
            host_index = self.active[self.turn]
            host, excluded = self.hosts[host_index], self.excluded[host_index]
            start = self.cursors[host_index]
            end = start + length
            if len(host) - start < 2:
                self.active.pop(self.turn)
                continue
            self.turn += 1
            if end > len(host):
                misses += 1
                continue
            self.cursors[host_index] = end + self.rng.randrange(3)
            speakers = host.speakers[start:end]
            if excluded[end] - excluded[start] or len(set(speakers)) < min(need_speakers, length):
                misses += 1
                continue
            return Window(
                speakers, host.minutes[start:end], host.texts[start:end], self.pass_number
            )


def split_pool(
    hosts: Sequence[chitchat.HostConversation], seed: int, holdout_share: float = 0.0
) -> dict[str, dict[str, list[chitchat.HostConversation]]]:
    """Each real conversation goes to exactly one split (no text shared by train and test), or
    to none when it is held out as benign traffic (`chitchat.is_held_out`)."""
    rng = random.Random(seed)
    pools: dict[str, dict[str, list[chitchat.HostConversation]]] = {
        split: {"dialogue": [], "monologue": []} for split in ("train", "test")
    }
    for host in hosts:
        split = "train" if rng.random() < 0.5 else "test"
        if chitchat.is_held_out(host, holdout_share):
            continue
        if host.n_speakers == 2:
            pools[split]["dialogue"].append(host)
        elif host.n_speakers == 1 and not any(EXCLUDED_CONTENT.search(t) for t in host.texts):
            pools[split]["monologue"].append(host)
    return pools
