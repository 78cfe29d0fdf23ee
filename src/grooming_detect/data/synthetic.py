"""Deterministic generator of a synthetic corpus in the official PAN-2012 layout.

The corpus exists so that every stage runs on a fresh machine with no data. It contains no sexual
content and no description of abuse: grooming risk is expressed only through non-explicit
behavioural markers (age and location questions, compliments, secrecy requests, isolation, moving
to another app, gifts, meeting plans). Hard negatives reuse the same surface cues innocently
(peers asking ages in a game, a surprise party kept secret, relatives arranging a visit), and a
share of label noise is injected, so no model can be perfect.

Shape, after PAN-2012: most conversations are negatives of several kinds (two-person small talk,
multi-party IRC-style technical chat, one-author monologues, adult small talk between strangers);
a few percent contain a predator; predators recur across conversations with different partners;
partners are authors too and are not labelled predators; negative authors recur within
communities. The official files' quirks are reproduced: double-escaped entities, ``<email/>``,
empty ``<text/>``, multi-line text, padded author ids, CRLF id lists, times wrapping past midnight.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grooming_detect.data import pan12
from grooming_detect.io import atomic_path, json_digest, write_text

#: Bumped whenever the generator's output changes for the same settings (invalidates caches).
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class GeneratorSettings:
    """Knobs of the synthetic corpus (``data.generator`` in the config)."""

    seed: int = 42
    n_train_conversations: int = 2500
    n_test_conversations: int = 2500
    n_train_messages: int | None = None
    n_test_messages: int | None = None
    predator_share: float = 0.03
    n_train_predators: int | None = None
    n_test_predators: int | None = None
    conversations_per_predator: tuple[int, int] = (2, 8)
    hard_negative_share: float = 0.12
    difficulty: float = 0.5
    label_noise: float = 0.05
    quirk_rate: float = 0.02

    def fingerprint(self) -> str:
        """Stable digest of the settings and generator version (names the output directory)."""
        return json_digest({"version": GENERATOR_VERSION, **asdict(self)})[:16]


# --------------------------------------------------------------------------------------------
# Vocabulary. Slots in braces are filled from SLOTS. Nothing here is explicit: the markers are the
# behavioural cues that the grooming literature describes, phrased as a chat would phrase them.
# --------------------------------------------------------------------------------------------
SLOTS: dict[str, Sequence[str]] = {
    "name": ["sam", "alex", "jo", "mia", "leo", "kai", "zoe", "max", "ana", "ben", "lily", "omar"],
    "game": ["minecraft", "fortnite", "roblox", "overwatch", "rocket league", "valorant", "fifa"],
    "show": ["stranger things", "the office", "one piece", "bake off", "the mandalorian", "glee"],
    "team": ["lakers", "yankees", "chelsea", "packers", "celtics", "arsenal", "cubs"],
    "pet": ["dog", "cat", "hamster", "parrot", "rabbit"],
    "food": ["pizza", "tacos", "ramen", "pancakes", "burgers", "sushi"],
    "place": ["the mall", "the park", "the library", "the station", "the arcade", "the cinema"],
    "day": ["saturday", "sunday", "friday", "tomorrow", "next weekend", "after school monday"],
    "clock": ["3", "4", "5", "6", "noon", "7"],
    "app": ["snap", "kik", "whatsapp", "discord", "skype", "telegram"],
    "gift": ["a gift card", "a new phone", "some game credits", "headphones", "a hoodie"],
    "city": ["ohio", "texas", "leeds", "toronto", "sydney", "denver", "cork", "phoenix"],
    "tool": ["gcc", "the kernel", "apache", "python", "mysql", "vim", "xorg", "grub"],
    "job": ["nurse", "mechanic", "teacher", "developer", "chef", "driver", "accountant"],
    "grade": ["7th", "8th", "9th", "10th"],
    "teen_age": ["13", "14", "15", "13 and a half", "almost 15"],
    "adult_age": ["24", "29", "31", "35", "42", "27"],
    "topic": ["music", "movies", "football", "anime", "cars", "cooking", "space"],
    "emo": [":)", ":P", ";)", ":D", "<3", "xD", "^^"],
}

SMALL_TALK = [
    "hey",
    "hi",
    "whats up",
    "not much, you?",
    "just chilling",
    "lol",
    "lmao",
    "brb",
    "ok",
    "same",
    "haha yeah",
    "watching {show} rn",
    "did you see the {team} game",
    "homework is killing me",
    "my {pet} keeps barking",
    "i had {food} for dinner {emo}",
    "so bored today",
    "nice",
    "i'm playing {game} later",
    "that's cool",
    "idk",
    "yeah me too",
    "what are you up to",
    "my teacher gave us so much work",
    "can't wait for {day}",
    "it's raining again ugh",
    "do you like {topic}?",
    "i'm tired",
    "gtg soon",
    "hahaha",
    "no way",
    "wanna play {game}?",
    "the new {show} season is out",
    "sooo boredddd",
    "omg yesss",
    "k",
    "good night",
]
IRC_TECH = [
    "anyone know why {tool} segfaults on startup?",
    "try rebuilding with debug symbols",
    "did you check the logs?",
    "works on my machine",
    "which version of {tool}?",
    "paste the error on a pastebin",
    "you need to update your config",
    "reboot fixed it for me",
    "{tool} 2.4 broke that",
    "read the man page",
    "is the mirror down again?",
    "run it with sudo & see",
    "that's a known bug",
    "compile from source",
    "thanks, that worked",
    "anyone around?",
    "it's the driver, not {tool}",
    "try the stable branch",
    "what distro are you on",
    "i'll file a bug report",
    "check your PATH",
    "nm, fixed it",
]
MONOLOGUE = [
    "hello?",
    "anyone here?",
    "anyone wanna talk about {topic}",
    "bored",
    "hiii",
    "is this thing on",
    "helloooo",
    "ok bye then",
    "anyone from {city}?",
    "nobody talks here lol",
]
STRANGER_TALK = [
    "asl?",
    "{adult_age} m {city}",
    "{adult_age} f {city}",
    "where are you from?",
    "how old are you?",
    "what do you do for work",
    "i'm a {job}, you?",
    "nice, how's the weather in {city}",
    "long day at work",
    "just got home from work",
    "do you have kids?",
    "my wife likes {show}",
    "you seem nice",
    "what's your name?",
    "do you like {topic}?",
    "cool",
    "i'm off to bed, early shift",
    "my boss is annoying",
    "weekend plans?",
]
# Non-explicit grooming-stage markers, in the order the stages usually come.
PREDATOR_MARKERS: dict[str, list[str]] = {
    "compliments": [
        "you seem really mature for your age",
        "you're so smart, way smarter than kids your age",
        "you're really pretty you know that?",
        "i like talking to you more than anyone",
        "you're special, not like the others",
        "you're so grown up",
    ],
    "personal_info": [
        "how old are you?",
        "asl?",
        "where do you live?",
        "what school do you go to?",
        "are your parents home right now?",
        "do you have your own room?",
        "what grade are you in?",
        "do your parents check your phone?",
    ],
    "age": [
        "i'm {adult_age} btw, age is just a number",
        "does it bother you that i'm older?",
        "you're {teen_age}? you act older",
        "most people my age are boring",
    ],
    "secrecy": [
        "don't tell your parents we talk",
        "this is just between us ok?",
        "delete our chat after",
        "keep this our secret",
        "your mom wouldn't understand, so don't mention me",
        "don't tell anyone about me",
        "make sure nobody sees your phone",
    ],
    "isolation": [
        "your parents don't understand you like i do",
        "your friends sound immature",
        "you can always talk to me instead",
        "nobody gets you like i do",
        "you don't need them, you have me",
    ],
    "platform": [
        "add me on {app}",
        "do you have {app}? it's more private",
        "text me on {app} instead",
        "let's move to {app}, this site is lame",
        "what's your number?",
    ],
    "gifts": [
        "i could get you {gift}",
        "want me to send you {gift}?",
        "i'll buy you {gift} if you want",
        "i can top up your {game} account",
    ],
    "meeting": [
        "we should meet up at {place} {day}",
        "i can pick you up after school",
        "can you sneak out {day}?",
        "i'll drive to {city} to see you",
        "meet me at {place} at {clock}",
        "nobody has to know if we meet",
    ],
}
STAGE_ORDER = list(PREDATOR_MARKERS)
VICTIM_REPLIES = [
    "lol",
    "idk",
    "i'm {teen_age}",
    "my mom is strict",
    "ok",
    "i guess",
    "that's cool",
    "haha",
    "i live near {place}",
    "ya i have {app}",
    "i have school tomorrow",
    "really?",
    "thanks {emo}",
    "i'm in {grade} grade",
    "my parents are at work",
    "maybe",
    "i don't know...",
    "omg",
    "i can't, my dad would be mad",
    "wait why",
    "sure",
    "my friends are annoying today",
]
# Innocent uses of the same cues: the hard negatives.
HARD_NEGATIVES: dict[str, list[str]] = {
    "game_ages": [
        "how old r u? the clan needs 13+ for the tournament",
        "where u from? the lag is bad",
        "add me on {app} for voice chat",
        "what's your {game} name?",
        "you're so good at this",
        "gg",
        "we play {day} at {clock}",
        "i'm {teen_age}, you?",
        "don't tell the other team our plan",
        "nice shot!",
        "brb dinner",
    ],
    "surprise_party": [
        "don't tell {name}, it's a surprise party",
        "keep it secret ok?",
        "meet at {place} {day} at {clock}",
        "i'll get her {gift}",
        "delete this chat so she doesn't see",
        "she's going to love it",
        "can you bring {food}?",
        "just between us until saturday",
    ],
    "family_visit": [
        "i'll pick you up at the station {day}",
        "you're so grown up now!",
        "what grade are you in now?",
        "i have a gift for your birthday",
        "tell your mom i said hi",
        "how's school going?",
        "grandma can't wait to see you",
        "we could go to {place} when i visit",
    ],
    "coach": [
        "great job at practice, you're really talented",
        "practice moved to {day} at {clock}",
        "text me on {app} if you can't make it",
        "you're one of the most mature players",
        "your parents can pick you up at {clock}",
        "keep working on your passing",
    ],
}
# Cue phrasings that both predators and innocent speakers use (why the task is hard).
SHARED_CUES = [
    "how old are you?",
    "where do you live?",
    "add me on {app}",
    "don't tell anyone",
    "you're so smart",
    "we should meet at {place}",
    "i'll get you {gift}",
    "this stays between us",
]


@dataclass
class _Conversation:
    kind: str
    authors: list[str]
    length: int
    predator: str | None = None
    intensity: float = 0.0
    subkind: str = ""
    lines: list[tuple[str, str, str, bool]] = field(default_factory=list)


class _Vocabulary:
    """Fills template slots with a seeded RNG; template formatting is the generator's hot path."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def fill(self, template: str) -> str:
        if "{" not in template:
            return template
        choice = self.rng.choice
        return template.format_map(_SlotFiller(choice))

    def pick(self, templates: Sequence[str]) -> str:
        return self.fill(self.rng.choice(templates))


class _SlotFiller(dict):  # type: ignore[type-arg]
    def __init__(self, choice: object) -> None:
        super().__init__()
        self._choice = choice

    def __missing__(self, key: str) -> str:
        return self._choice(SLOTS[key])  # type: ignore[operator]


def _author_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _split_total(total: int, parts: int, minimum: int, rng: random.Random) -> list[int]:
    """Split `total` into `parts` integers >= `minimum`, at random (multinomial remainder)."""
    counts = [minimum] * parts
    for _ in range(max(0, total - minimum * parts)):
        counts[rng.randrange(parts)] += 1
    return counts


def _fit_lengths(lengths: list[int], target: int | None, rng: random.Random) -> list[int]:
    """Rescale conversation lengths so they add up to exactly `target` messages."""
    if target is None:
        return lengths
    if target < len(lengths):
        raise ValueError(f"{target} messages cannot fill {len(lengths)} conversations")
    scale = target / sum(lengths)
    fitted = [max(1, round(length * scale)) for length in lengths]
    difference = target - sum(fitted)
    while difference != 0:
        index = rng.randrange(len(fitted))
        if difference > 0:
            fitted[index] += 1
            difference -= 1
        elif fitted[index] > 1:
            fitted[index] -= 1
            difference += 1
    return fitted


def _length(rng: random.Random, mean: float, minimum: int) -> int:
    return minimum + int(rng.expovariate(1.0 / max(mean - minimum, 1.0)))


class _SplitGenerator:
    """Generates the conversations of one split (train or test) with its own author population."""

    def __init__(
        self,
        settings: GeneratorSettings,
        n_conversations: int,
        n_messages: int | None,
        n_predators: int | None,
        seed: int,
    ) -> None:
        self.settings = settings
        self.rng = random.Random(seed)
        self.vocab = _Vocabulary(self.rng)
        self.n_conversations = n_conversations
        self.n_messages = n_messages
        self.n_predators = n_predators

    # -- population ---------------------------------------------------------------------------
    def _communities(self, n_negative: int) -> list[tuple[list[str], list[float]]]:
        rng = self.rng
        n_communities = max(1, n_negative // 20)
        communities = []
        for _ in range(n_communities):
            size = rng.randint(18, 40)
            members = [_author_id(rng) for _ in range(size)]
            weights = [1.0 / (rank + 1) ** 1.1 for rank in range(size)]
            communities.append((members, weights))
        return communities

    def _pick_members(self, community: tuple[list[str], list[float]], count: int) -> list[str]:
        members, weights = community
        chosen: list[str] = []
        while len(chosen) < min(count, len(members)):
            author = self.rng.choices(members, weights)[0]
            if author not in chosen:
                chosen.append(author)
        return chosen

    def plan(self) -> list[_Conversation]:
        """Decide every conversation's kind, authors and length (no text yet)."""
        settings, rng = self.settings, self.rng
        n = self.n_conversations
        low, high = settings.conversations_per_predator
        n_predator_conversations = max(2, round(settings.predator_share * n))
        n_predators = self.n_predators or max(
            1, round(n_predator_conversations / ((low + high) / 2))
        )
        n_predator_conversations = max(n_predator_conversations, 2 * n_predators)
        n_hard = round(settings.hard_negative_share * n)
        n_negative = n - n_predator_conversations - n_hard
        if n_negative < 1:
            raise ValueError(
                f"{n} conversations leave no room for negatives after {n_predator_conversations} "
                f"predator and {n_hard} hard-negative conversations"
            )
        communities = self._communities(n_negative + n_hard)
        conversations: list[_Conversation] = []
        kinds = ["small_talk", "irc", "monologue", "stranger"]
        kind_weights = [0.45, 0.2, 0.1, 0.25]
        for _ in range(n_negative):
            kind = rng.choices(kinds, kind_weights)[0]
            community = rng.choice(communities)
            if kind == "irc":
                authors = self._pick_members(community, rng.randint(3, 7))
                length = _length(rng, 18, 4)
            elif kind == "monologue":
                authors = self._pick_members(community, 1)
                length = _length(rng, 3, 1)
            else:
                authors = self._pick_members(community, 2)
                length = _length(rng, 11, 2)
            conversations.append(_Conversation(kind, authors, length))
        for _ in range(n_hard):
            subkind = rng.choice(list(HARD_NEGATIVES))
            authors = self._pick_members(rng.choice(communities), rng.choice([2, 2, 3]))
            conversations.append(
                _Conversation("hard_negative", authors, _length(rng, 16, 4), subkind=subkind)
            )
        per_predator = _split_total(n_predator_conversations, n_predators, 2, rng)
        for count in per_predator:
            predator = _author_id(rng)
            # Most predators use markers often; some rarely (they look like small talk).
            intensity = rng.betavariate(2.0, 2.0) * (1.0 - 0.85 * settings.difficulty) + 0.05
            for _ in range(count):
                victim = rng.choice(rng.choice(communities)[0])
                conversations.append(
                    _Conversation(
                        "predator",
                        [predator, victim],
                        _length(rng, 24, 6),
                        predator=predator,
                        intensity=intensity,
                    )
                )
        rng.shuffle(conversations)
        lengths = _fit_lengths([c.length for c in conversations], self.n_messages, rng)
        for conversation, length in zip(conversations, lengths, strict=True):
            conversation.length = length
        return conversations

    # -- text ---------------------------------------------------------------------------------
    def _speakers(self, authors: list[str], length: int) -> list[str]:
        rng = self.rng
        if len(authors) == 1:
            return authors * length
        speakers = [rng.choice(authors)]
        for _ in range(length - 1):
            previous = speakers[-1]
            if len(authors) == 2:
                speakers.append(previous if rng.random() < 0.25 else _other(authors, previous))
            else:
                speakers.append(rng.choice(authors))
        return speakers

    def render(self, conversation: _Conversation) -> None:
        """Fill `conversation.lines` with (author, time, text, is_marker_line) tuples."""
        rng, vocab = self.rng, self.vocab
        speakers = self._speakers(conversation.authors, conversation.length)
        minute = rng.randrange(1440) if rng.random() > 0.15 else rng.randrange(1380, 1440)
        difficulty = self.settings.difficulty
        for position, author in enumerate(speakers):
            marker = False
            progress = position / max(1, conversation.length - 1)
            if conversation.kind == "predator":
                if author == conversation.predator:
                    if rng.random() < conversation.intensity:
                        text, marker = self._predator_marker(progress), True
                    elif rng.random() < 0.1 + 0.2 * difficulty:
                        text = vocab.pick(HARD_NEGATIVES[rng.choice(list(HARD_NEGATIVES))])
                    else:
                        text = vocab.pick(SMALL_TALK)
                else:
                    text = vocab.pick(VICTIM_REPLIES if rng.random() < 0.6 else SMALL_TALK)
            elif conversation.kind == "hard_negative":
                roll = rng.random()
                if roll < 0.45:
                    text = vocab.pick(HARD_NEGATIVES[conversation.subkind])
                elif roll < 0.45 + 0.25 * difficulty:
                    text = vocab.pick(SHARED_CUES)
                elif roll < 0.45 + 0.25 * difficulty + 0.04:
                    text = vocab.pick(PREDATOR_MARKERS[rng.choice(STAGE_ORDER)])
                else:
                    text = vocab.pick(SMALL_TALK)
            elif conversation.kind == "irc":
                text = vocab.pick(IRC_TECH if rng.random() < 0.75 else SMALL_TALK)
            elif conversation.kind == "monologue":
                text = vocab.pick(MONOLOGUE)
            elif conversation.kind == "stranger":
                text = vocab.pick(STRANGER_TALK if rng.random() < 0.6 else SMALL_TALK)
            else:
                text = vocab.pick(SMALL_TALK if rng.random() > 0.03 else SHARED_CUES)
            text = self._quirk(text)
            conversation.lines.append(
                (author, f"{minute // 60:02d}:{minute % 60:02d}", text, marker)
            )
            minute = (minute + rng.choice((0, 0, 1, 1, 1, 2, 3))) % 1440

    def _predator_marker(self, progress: float) -> str:
        # Stages drift from rapport (compliments, personal information) to secrecy and meetings.
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


def _other(authors: list[str], author: str) -> str:
    return authors[1] if authors[0] == author else authors[0]


# --------------------------------------------------------------------------------------------
# Writing the official format
# --------------------------------------------------------------------------------------------
_HTML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
_EMAIL = "<email/>"
_EMAIL_PLACEHOLDER = "\x00EMAIL\x00"


def html_escape(text: str) -> str:
    """Escape as the organisers did before XML escaping: named entities, non-ASCII as ``&#N;``."""
    text = text.replace(_EMAIL, _EMAIL_PLACEHOLDER)
    out = []
    for char in text:
        if char in _HTML_ESCAPES:
            out.append(_HTML_ESCAPES[char])
        elif ord(char) > 127:
            out.append(f"&#{ord(char)};")
        else:
            out.append(char)
    # The anonymisation replaced addresses after escaping, so the marker is escaped only once.
    return "".join(out).replace(_EMAIL_PLACEHOLDER, _EMAIL)


def xml_escape(text: str) -> str:
    """Escape character data for XML."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _write_xml(
    path: Path,
    conversations: Iterable[tuple[str, _Conversation]],
    quirk_rate: float,
    rng: random.Random,
) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write('<?xml version="1.0" encoding="UTF-8"?>\n<conversations>\n')
        for conversation_id, conversation in conversations:
            parts = [f'<conversation id="{conversation_id}">\n']
            for line, (author, time, text, _) in enumerate(conversation.lines, start=1):
                shown_author = f"  {author} " if rng.random() < quirk_rate else author
                body = f"<text>{xml_escape(html_escape(text))}</text>" if text else "<text/>"
                parts.append(
                    f'<message line="{line}">\n<author>{shown_author}</author>\n'
                    f"<time>{time}</time>\n{body}\n</message>\n"
                )
            parts.append("</conversation>\n")
            handle.write("".join(parts))
        handle.write("</conversations>\n")


def _write_lines(path: Path, lines: Iterable[str], newline: str) -> None:
    write_text(path, "".join(f"{line}{newline}" for line in lines), newline="")


@dataclass(frozen=True)
class SplitTruth:
    """What the generator knows about one split (for tests and the manifest)."""

    n_conversations: int
    n_messages: int
    predators: list[str]
    labelled_predators: list[str]
    marker_lines: list[tuple[str, int]]
    victims: list[str]


def _generate_split(
    settings: GeneratorSettings,
    n_conversations: int,
    n_messages: int | None,
    n_predators: int | None,
    seed: int,
) -> tuple[list[tuple[str, _Conversation]], SplitTruth]:
    generator = _SplitGenerator(settings, n_conversations, n_messages, n_predators, seed)
    planned = generator.plan()
    rng = generator.rng
    conversations = []
    predators: list[str] = []
    victims: set[str] = set()
    marker_lines: list[tuple[str, int]] = []
    for conversation in planned:
        generator.render(conversation)
        conversation_id = _author_id(rng)
        conversations.append((conversation_id, conversation))
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
    n_noisy = round(settings.label_noise * len(predators))
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
    )


def generate_corpus(out_dir: str | Path, settings: GeneratorSettings) -> dict[str, SplitTruth]:
    """Write a training and a test corpus in the official PAN-2012 sub-folder layout.

    Returns what the generator knows about each split. Same settings, same bytes.
    """
    root = Path(out_dir)
    train_dir, test_dir = root / pan12.TRAIN_DIR, root / pan12.TEST_DIR
    truths: dict[str, SplitTruth] = {}
    for split, folder, n_conv, n_msg, n_pred, offset in (
        (
            "train",
            train_dir,
            settings.n_train_conversations,
            settings.n_train_messages,
            settings.n_train_predators,
            0,
        ),
        (
            "test",
            test_dir,
            settings.n_test_conversations,
            settings.n_test_messages,
            settings.n_test_predators,
            1,
        ),
    ):
        conversations, truth = _generate_split(
            settings, n_conv, n_msg, n_pred, seed=settings.seed * 1000 + offset
        )
        quirk_rng = random.Random(settings.seed * 1000 + 10 + offset)
        if split == "train":
            _write_xml(folder / pan12.TRAIN_XML, conversations, settings.quirk_rate, quirk_rng)
            _write_lines(folder / pan12.TRAIN_PREDATORS, truth.labelled_predators, "\r\n")
        else:
            _write_xml(folder / pan12.TEST_XML, conversations, settings.quirk_rate, quirk_rng)
            _write_lines(folder / pan12.TEST_PROBLEM1, truth.labelled_predators, "\r\n")
            _write_lines(
                folder / pan12.TEST_PROBLEM2,
                (f"{cid}\t{line}" for cid, line in truth.marker_lines),
                "\n",
            )
        truths[split] = truth
    return truths


def settings_from_config(generator_cfg: object) -> GeneratorSettings:
    """Build settings from the ``data.generator`` config node (a mapping)."""
    values = dict(generator_cfg)  # type: ignore[call-overload]
    values["conversations_per_predator"] = tuple(values["conversations_per_predator"])
    return GeneratorSettings(**values)


__all__ = [
    "GENERATOR_VERSION",
    "GeneratorSettings",
    "SplitTruth",
    "generate_corpus",
    "html_escape",
    "settings_from_config",
    "xml_escape",
]
