"""The text of each planned conversation: a real host window with the predator's stage markers
(`markers`: the split's paraphrase families), replies to cues, or the hard negative's innocent
cues placed in it in the host's register, and the official files'
format quirks; multi-party technical chat from templates."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from grooming_detect.data import chitchat
from grooming_detect.data.synthetic.hosts import HostStream, Window
from grooming_detect.data.synthetic.markers import STAGE_ORDER, families_for, render_family
from grooming_detect.data.synthetic.planner import Conversation
from grooming_detect.data.synthetic.surface import place_cue, vary_surface
from grooming_detect.data.synthetic.vocabulary import (
    CUE_REPLIES,
    HARD_NEGATIVES,
    IRC_TECH,
    SHARED_CUES,
    SLOTS,
    SMALL_TALK,
    Vocabulary,
)

if TYPE_CHECKING:
    from grooming_detect.data.synthetic.settings import GeneratorSettings

#: Share of lines, of every author, given one chat-noise edit (`surface.vary_surface`).
LINE_NOISE = 0.08
#: Chance that the line after someone else's cue (of any kind) is a reply phrase.
REPLY_RATE = 0.15
#: Chance that any other line of a two-person conversation is a reply phrase all the same.
UNPROMPTED_REPLY_RATE = 0.05


class ConversationRenderer:
    """Fills planned conversations with text, drawing from the planner's seeded `rng`; host windows
    come from the split's pool in a stream of their own (seeded by `stream_seed`)."""

    def __init__(
        self,
        settings: GeneratorSettings,
        pool: dict[str, list[chitchat.HostConversation]],
        rng: random.Random,
        stream_seed: int,
        split: str = "train",
    ) -> None:
        self.settings = settings
        self.rng = rng
        self.families = families_for(split, settings.held_out_families)
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
        cue_before = False
        for position, (speaker, minute, text) in enumerate(
            zip(window.speakers, window.minutes, window.texts, strict=True)
        ):
            if window.reuse and rng.random() < self.settings.surface_variation:
                text = vary_surface(text, rng, changes=rng.randint(1, 3))
            author = role[min(speaker, 1)]
            progress = position / max(1, len(window.texts) - 1)
            replying = cue_before and bool(lines) and lines[-1][0] != author
            cue, marker = self._cue(conversation, author, progress, replying)
            cue_before = cue is not None
            if cue is not None:
                text = place_cue(cue, text, rng)
            # The same chat noise on every line of every author, cue or not: no surface tells.
            if rng.random() < LINE_NOISE:
                text = vary_surface(text, rng)
            time = (minute + shift) % 1440
            lines.append((author, f"{time // 60:02d}:{time % 60:02d}", self._quirk(text), marker))
        conversation.lines = lines
        conversation.length = len(lines)

    def _cue(
        self, conversation: Conversation, author: str, progress: float, replying: bool
    ) -> tuple[str | None, bool]:
        """The cue `author` says in this line, if any, and whether it is a predator's marker.

        Replies to a cue come at one rate whoever said the cue (a predator, a hard negative, an
        innocent speaker), and reply phrases also turn up unprompted in any conversation: the
        partner's side carries no label.
        """
        rng, vocab, difficulty = self.rng, self.vocab, self.settings.difficulty
        if replying and rng.random() < REPLY_RATE:
            return vocab.pick(CUE_REPLIES), False
        if conversation.kind == "predator" and author == conversation.predator:
            if rng.random() < conversation.intensity:
                return self._predator_marker(conversation.stages, progress), True
            if rng.random() < 0.03 + 0.07 * difficulty:
                return vocab.pick(SHARED_CUES), False
        elif conversation.kind == "hard_negative":
            roll = rng.random()
            if roll < 0.3:
                return vocab.pick(HARD_NEGATIVES[conversation.subkind]), False
            if roll < 0.3 + 0.2 * difficulty:
                return vocab.pick(SHARED_CUES), False
            if roll < 0.3 + 0.2 * difficulty + 0.03:
                family = rng.choice(self.families[rng.choice(STAGE_ORDER)])
                return render_family(family, rng), False
        elif rng.random() < 0.004:
            return vocab.pick(SHARED_CUES), False
        if rng.random() < UNPROMPTED_REPLY_RATE:
            return vocab.pick(CUE_REPLIES), False
        return None, False

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

    def _predator_marker(self, stages: tuple[str, ...], progress: float) -> str:
        """A wording of one of the predator's stages: stages drift from rapport and personal
        questions towards secrecy and meetings as the conversation goes on, with jitter."""
        stages = stages or tuple(STAGE_ORDER)
        centre = progress * (len(stages) - 1)
        index = min(len(stages) - 1, max(0, round(self.rng.gauss(centre, 1.2))))
        family = self.rng.choice(self.families[stages[index]])
        return render_family(family, self.rng)

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
