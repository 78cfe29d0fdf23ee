"""The text of each planned conversation: a real host window with the predator's stage markers,
the partner's replies or the hard negative's innocent cues injected, and the official files'
format quirks; multi-party technical chat from templates."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from grooming_detect.data import chitchat
from grooming_detect.data.synthetic.hosts import HostStream, Window
from grooming_detect.data.synthetic.planner import Conversation
from grooming_detect.data.synthetic.surface import paraphrase, vary_surface
from grooming_detect.data.synthetic.vocabulary import (
    HARD_NEGATIVES,
    IRC_TECH,
    PREDATOR_MARKERS,
    SHARED_CUES,
    SLOTS,
    SMALL_TALK,
    STAGE_ORDER,
    VICTIM_REPLIES,
    Vocabulary,
)

if TYPE_CHECKING:
    from grooming_detect.data.synthetic.settings import GeneratorSettings


class ConversationRenderer:
    """Fills planned conversations with text, drawing from the planner's seeded `rng`; host windows
    come from the split's pool in a stream of their own (seeded by `stream_seed`)."""

    def __init__(
        self,
        settings: GeneratorSettings,
        pool: dict[str, list[chitchat.HostConversation]],
        rng: random.Random,
        stream_seed: int,
    ) -> None:
        self.settings = settings
        self.rng = rng
        self.vocab = Vocabulary(rng)
        self.dialogues = HostStream(pool["dialogue"], random.Random(stream_seed))
        self._host_of = {h.source_id: h for h in pool["monologue"]}

    def render(self, conversation: Conversation) -> None:
        """Fill `conversation.lines` with (author, time, text, is_marker_line) tuples."""
        if conversation.kind == "multiparty":
            self._render_multiparty(conversation)
            return
        rng = self.rng
        if conversation.kind == "monologue":
            host = self._host_of[conversation.subkind]
            window = Window(host.speakers, host.minutes, host.texts, 0)
        else:
            window = self.dialogues.take(conversation.length)
        shift = rng.randint(-90, 90) if window.reuse else 0
        role = {0: conversation.authors[0], 1: conversation.authors[-1]}
        lines: list[Any] = []
        for position, (speaker, minute, text) in enumerate(
            zip(window.speakers, window.minutes, window.texts, strict=True)
        ):
            if window.reuse and rng.random() < self.settings.surface_variation:
                text = vary_surface(text, rng, changes=rng.randint(1, 3))
            author = role[min(speaker, 1)]
            progress = position / max(1, len(window.texts) - 1)
            text, marker = self._inject(conversation, author, text, progress, lines)
            time = (minute + shift) % 1440
            lines.append((author, f"{time // 60:02d}:{time % 60:02d}", self._quirk(text), marker))
        conversation.lines = lines
        conversation.length = len(lines)

    def _inject(
        self,
        conversation: Conversation,
        author: str,
        text: str,
        progress: float,
        previous: list[tuple[str, str, str, bool]],
    ) -> tuple[str, bool]:
        rng, vocab, difficulty = self.rng, self.vocab, self.settings.difficulty
        cue: str | None = None
        marker = False
        if conversation.kind == "predator":
            if author == conversation.predator:
                if rng.random() < conversation.intensity:
                    cue, marker = self._predator_marker(progress), True
                elif rng.random() < 0.03 + 0.07 * difficulty:
                    cue = vocab.pick(SHARED_CUES)
            elif previous and previous[-1][3] and rng.random() < 0.35:
                cue = vocab.pick(VICTIM_REPLIES)
        elif conversation.kind == "hard_negative":
            roll = rng.random()
            if roll < 0.3:
                cue = vocab.pick(HARD_NEGATIVES[conversation.subkind])
            elif roll < 0.3 + 0.2 * difficulty:
                cue = vocab.pick(SHARED_CUES)
            elif roll < 0.3 + 0.2 * difficulty + 0.03:
                cue = vocab.pick(PREDATOR_MARKERS[rng.choice(STAGE_ORDER)])
        elif rng.random() < 0.004:
            cue = vocab.pick(SHARED_CUES)
        if cue is None:
            return text, False
        cue = paraphrase(cue, rng)
        # A cue replaces the real message or follows it in the same message.
        return (cue if rng.random() < 0.5 else f"{text.rstrip()} {cue}"), marker

    def _render_multiparty(self, conversation: Conversation) -> None:
        rng, vocab = self.rng, self.vocab
        minute = rng.randrange(1440)
        lines = []
        for _ in range(conversation.length):
            author = rng.choice(conversation.authors)
            text = vocab.pick(IRC_TECH if rng.random() < 0.75 else SMALL_TALK)
            lines.append(
                (author, f"{minute // 60:02d}:{minute % 60:02d}", self._quirk(text), False)
            )
            minute = (minute + rng.choice((0, 0, 1, 1, 1, 2, 3))) % 1440
        conversation.lines = lines

    def _predator_marker(self, progress: float) -> str:
        # Stages drift from rapport and personal information to secrecy and meetings.
        centre = progress * (len(STAGE_ORDER) - 1)
        index = min(len(STAGE_ORDER) - 1, max(0, round(self.rng.gauss(centre, 1.5))))
        return self.vocab.pick(PREDATOR_MARKERS[STAGE_ORDER[index]])

    def _quirk(self, text: str) -> str:
        rng = self.rng
        if rng.random() >= self.settings.quirk_rate:
            return text
        kind = rng.randrange(6)
        if kind == 0:
            return ""
        if kind == 1:
            return f"{text}\nsorry, wrong window"
        if kind == 2:
            return f"{text} mail me at <email/>"
        if kind == 3:
            return f'{text} & "that" <3'
        if kind == 4:
            return f"{text} \u2014 caf\u00e9 \u00e0 {rng.choice(SLOTS['city'])}"
        return f"{text}!!! sooo coool"
