"""Deterministic generator of a real-text corpus in the official PAN-2012 layout.

The corpus exists so that every stage runs on a fresh machine with no data, on real chat text.
Host conversations are real ones from the ``chitchat-dataset`` package (the BYU PCC lab's
Chit-Chat Challenge, MIT licence), read at run time and never copied into this repository:
windows of its two-person conversations, and its unanswered one-author openers. Generated
multi-party technical chat (IRC-style templates) adds the shape PAN-2012's IRC logs have.

Grooming risk is expressed only through non-explicit behavioural markers (rapport, age and
location questions, compliments, secrecy, isolation, moving to another app, gifts, meeting plans)
that one author of a positive conversation (the predator) carries, injected into their real
messages in stage order with paraphrase and typo variation. Hard negatives are real
conversations given the same kinds of cue innocently (a game clan asking ages, a surprise party
kept secret, a relative arranging a visit). Host windows holding sexual or abuse vocabulary
(`EXCLUDED_CONTENT`) are never used.

No metadata shortcut: every two-person conversation is planned the same way before any label
exists. "Actors" start a drawn number of conversations, each with a different partner from
their community, on a host window whose length is drawn from one distribution; predators are
then picked among actors with 2 to 8 conversations, and hard negatives among the other
conversations. So predators' conversations share the distributions of length, participants,
partner reuse and hour with everyone else's, and many negative authors recur as predators do.
What remains is measured, not hidden: predators always have at least two conversations while
about a third of negative authors have one, so conversation counts carry a weak signal
(``model=metadata_only`` reports how much: test author PR-AUC about 0.06 on the default corpus).
Label noise touches the training truth only (``test_label_noise`` for the test truth, default 0).

At PAN-2012 size (``scale=pan12``) host windows are reused; every reuse gets seeded surface
variation (typos, casing, elongations, emoticons, abbreviations) and new author names, so the
vocabulary keeps growing as real chat does. The official files' quirks are reproduced:
double-escaped entities, ``<email/>``, empty ``<text/>``, multi-line text, padded author ids,
CRLF id lists, times wrapping past midnight.

Problem-2 line truth is written for both corpora by one rule: the marker lines the generator
injected into a predator's own messages, for the predators the truth file lists
(`SplitTruth.marker_lines`). The test one is the official `pan12.TEST_PROBLEM2`; the training
one is `pan12.TRAIN_PROBLEM2`, a file the real PAN-2012 release does not have.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grooming_detect.data import chitchat, pan12
from grooming_detect.io import atomic_path, json_digest, write_text
from grooming_detect.progress import track

#: Written after every other file of a generated corpus.
COMPLETE_FILE = "generator.json"

#: Bumped whenever the generator's output changes for the same settings (invalidates caches).
GENERATOR_VERSION = 5


def _config_defaults() -> dict[str, Any]:
    """``data.generator`` of ``conf/data/synthetic.yaml``, its ``${corpus_seed}`` from
    ``conf/config.yaml``: the one place the generator's default settings are written."""
    from omegaconf import OmegaConf

    from grooming_detect.config import config_dir

    top = OmegaConf.load(config_dir() / "config.yaml")
    root = OmegaConf.create(
        {
            "seed": top.seed,
            "corpus_seed": top.corpus_seed,
            "generator": OmegaConf.load(config_dir() / "data" / "synthetic.yaml").generator,
        }
    )
    values = OmegaConf.to_container(root.generator, resolve=True)
    if not isinstance(values, dict):
        raise TypeError(f"data.generator in conf/data/synthetic.yaml is not a mapping: {values!r}")
    values["conversations_per_predator"] = tuple(values["conversations_per_predator"])
    return {str(key): value for key, value in values.items()}


_DEFAULTS = _config_defaults()


@dataclass(frozen=True)
class GeneratorSettings:
    """Knobs of the synthetic corpus (``data.generator`` in the config). A field left out takes
    its value from ``conf/data/synthetic.yaml``, so code and config cannot disagree."""

    seed: int = _DEFAULTS["seed"]
    n_train_conversations: int = _DEFAULTS["n_train_conversations"]
    n_test_conversations: int = _DEFAULTS["n_test_conversations"]
    n_train_messages: int | None = _DEFAULTS["n_train_messages"]
    n_test_messages: int | None = _DEFAULTS["n_test_messages"]
    predator_share: float = _DEFAULTS["predator_share"]
    n_train_predators: int | None = _DEFAULTS["n_train_predators"]
    n_test_predators: int | None = _DEFAULTS["n_test_predators"]
    conversations_per_predator: tuple[int, int] = _DEFAULTS["conversations_per_predator"]
    hard_negative_share: float = _DEFAULTS["hard_negative_share"]
    monologue_share: float = _DEFAULTS["monologue_share"]
    multiparty_share: float = _DEFAULTS["multiparty_share"]
    mean_conversation_length: float = _DEFAULTS["mean_conversation_length"]
    difficulty: float = _DEFAULTS["difficulty"]
    label_noise: float = _DEFAULTS["label_noise"]
    test_label_noise: float = _DEFAULTS["test_label_noise"]
    surface_variation: float = _DEFAULTS["surface_variation"]
    quirk_rate: float = _DEFAULTS["quirk_rate"]
    #: Share of the package's conversations never used, kept as benign traffic for the audit
    #: (`chitchat.is_held_out`; ``evaluate.benign_sets`` with ``source: chitchat``).
    benign_holdout_share: float = _DEFAULTS["benign_holdout_share"]

    def fingerprint(self) -> str:
        """Stable digest of the settings, generator version and host data (names the folder)."""
        return json_digest(
            {"version": GENERATOR_VERSION, "hosts": _hosts_digest(), **asdict(self)}
        )[:16]


def _hosts_digest() -> str:
    return chitchat.dataset_digest()


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
# Non-explicit grooming-stage markers, in the order the stages usually come.
PREDATOR_MARKERS: dict[str, list[str]] = {
    "rapport": [
        "you're really easy to talk to",
        "i feel like we really click",
        "haha you're funny, i like chatting with you",
        "what do you like doing after school?",
        "tell me more about you",
        "you can tell me anything",
    ],
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


STAGE_ORDER = [
    "rapport",
    "personal_info",
    "age",
    "compliments",
    "secrecy",
    "isolation",
    "platform",
    "gifts",
    "meeting",
]

#: Host windows holding any of these words are never used: the corpus carries no sexual content
#: and no description of abuse, whatever real people wrote in the host dataset.
EXCLUDED_CONTENT = re.compile(
    r"\b(sex\w*|nude\w*|naked|porn\w*|breast\w*|kiss\w*|bed\s?rooms?|explicit|"
    r"pic(?:ture)?s? of (?:you|u)|undress\w*|abus\w*|rape\w*|rap(?:ed|ist\w*|ing)|molest\w*|"
    r"horny|boobs?|boobies|dicks?|"
    r"penis\w*|vagina\w*|orgasm\w*|erotic\w*|fetish\w*|sluts?|whores?|hookers?|lingerie|"
    r"condoms?|virgins?|virginity|hook(?:ing|ed|s)? ?ups?|mak(?:e|ing) ?out|nsfw|xxx|onlyfans|"
    r"pedo\w*|paedo\w*|incest|prostitut\w*|grop(?:e|ed|ing)|genital\w*|seduc\w*|intercourse|"
    r"viagra|thongs?|booty|webcams?|strip ?clubs?|stripper\w*|grooming|groomer|predator\w*|"
    r"pervert\w*|creep\w*|stalk\w*|assault\w*|violen\w*|suicid\w*|touch\w*|body|bodies|cam)\b",
    re.IGNORECASE,
)


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


class _SlotFiller(dict[str, str]):
    def __init__(self, choice: object) -> None:
        super().__init__()
        self._choice = choice

    def __missing__(self, key: str) -> str:
        return self._choice(SLOTS[key])  # type: ignore[operator]


# --------------------------------------------------------------------------------------------
# Surface variation: paraphrase of injected cues, and the changes a reused host window gets.
# --------------------------------------------------------------------------------------------
_ABBREVIATIONS = {
    "you": "u",
    "your": "ur",
    "you're": "ur",
    "are": "r",
    "to": "2",
    "please": "pls",
    "because": "cuz",
    "really": "rly",
    "okay": "ok",
    "what": "wat",
    "tonight": "2nite",
    "don't": "dont",
    "i'm": "im",
    "that's": "thats",
}
_PREFIXES = ("btw ", "so ", "hey ", "lol ", "haha ", "oh and ", "also ", "ok ")
_SUFFIXES = (" :)", " ;)", " :P", " lol", " haha", "!!", " xD", " ^^", " :D", "?")
_KEYBOARD_NEIGHBOURS = {
    "a": "qsz", "b": "vgn", "c": "xdv", "d": "sfe", "e": "wrd", "f": "dgr", "g": "fht",
    "h": "gjy", "i": "uok", "j": "hku", "k": "jli", "l": "kop", "m": "nj", "n": "bmh",
    "o": "ipl", "p": "ol", "q": "wa", "r": "etf", "s": "adw", "t": "ryg", "u": "yij",
    "v": "cbf", "w": "qes", "x": "zcs", "y": "tuh", "z": "xa",
}  # fmt: skip


def _typo(word: str, rng: random.Random) -> str:
    """One keyboard slip in `word`: swap, drop, double or a neighbouring key."""
    if len(word) < 3:
        return word
    index = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[: index - 1] + word[index] + word[index - 1] + word[index + 1 :]
    if kind == 1:
        return word[:index] + word[index + 1 :]
    if kind == 2:
        return word[:index] + word[index] + word[index:]
    neighbours = _KEYBOARD_NEIGHBOURS.get(word[index].lower())
    return word[:index] + rng.choice(neighbours) + word[index + 1 :] if neighbours else word


def _elongate(word: str, rng: random.Random) -> str:
    vowels = [i for i, char in enumerate(word) if char in "aeiouy"]
    if not vowels:
        return word
    index = rng.choice(vowels)
    return word[: index + 1] + word[index] * rng.randint(2, 4) + word[index + 1 :]


def vary_surface(text: str, rng: random.Random, changes: int = 1) -> str:
    """Seeded surface variation of one message: typos, abbreviations, casing, elongation,
    emoticons. Meaning is kept; each call draws `changes` edits. A variation that would create
    an excluded word (a typo turning "can." into "cam.") is dropped."""
    varied = _vary_words(text, rng, changes)
    return text if EXCLUDED_CONTENT.search(varied) else varied


def _vary_words(text: str, rng: random.Random, changes: int) -> str:
    words = text.split(" ")
    for _ in range(changes):
        if not words or not text.strip():
            return text
        kind = rng.randrange(8)
        index = rng.randrange(len(words))
        word = words[index]
        if kind <= 2:
            words[index] = _typo(word, rng)
        elif kind == 3:
            words[index] = _ABBREVIATIONS.get(word.lower(), word)
        elif kind == 4:
            words[index] = _elongate(word, rng)
        elif kind == 5:
            words = [w.lower() for w in words] if rng.random() < 0.7 else [w.upper() for w in words]
        elif kind == 6:
            words[-1] = words[-1] + rng.choice(_SUFFIXES)
        else:
            words[index] = word.replace("'", "")
    return " ".join(words)


def _paraphrase(text: str, rng: random.Random) -> str:
    """A chat-like rendering of a template cue: prefix, abbreviations, suffix, casing, typo."""
    if rng.random() < 0.3:
        text = rng.choice(_PREFIXES) + text
    if rng.random() < 0.35:
        text = " ".join(_ABBREVIATIONS.get(w, w) for w in text.split(" "))
    if rng.random() < 0.25:
        text = text + rng.choice(_SUFFIXES)
    if rng.random() < 0.15:
        text = text[:1].upper() + text[1:]
    if rng.random() < 0.15:
        text = vary_surface(text, rng)
    return text


# --------------------------------------------------------------------------------------------
# Host windows
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Window:
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


class _HostStream:
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

    def take(self, length: int, need_speakers: int = 2) -> _Window:
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
            return _Window(
                speakers, host.minutes[start:end], host.texts[start:end], self.pass_number
            )


def _split_pool(
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


# --------------------------------------------------------------------------------------------
# Planning: who talks to whom, on which window (no labels yet), then labels
# --------------------------------------------------------------------------------------------
@dataclass
class _Conversation:
    kind: str
    authors: list[str]
    length: int
    initiator: str | None = None
    predator: str | None = None
    intensity: float = 0.0
    subkind: str = ""
    lines: list[tuple[str, str, str, bool]] = field(default_factory=list)


#: Conversations an actor starts: P(k) proportional to 1 / k**1.2 for k = 1..12.
_ACTOR_COUNTS = list(range(1, 13))
_ACTOR_WEIGHTS = [1.0 / k**1.2 for k in _ACTOR_COUNTS]


def _author_id(rng: random.Random) -> str:
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


class _SplitGenerator:
    """Generates the conversations of one split (train or test) with its own author population."""

    def __init__(
        self,
        settings: GeneratorSettings,
        n_conversations: int,
        n_messages: int | None,
        n_predators: int | None,
        pool: dict[str, list[chitchat.HostConversation]],
        seed: int,
    ) -> None:
        self.settings = settings
        self.rng = random.Random(seed)
        self.vocab = _Vocabulary(self.rng)
        self.n_conversations = n_conversations
        self.n_messages = n_messages
        self.n_predators = n_predators
        self.dialogues = _HostStream(pool["dialogue"], random.Random(seed + 1))
        self.monologues = pool["monologue"]
        self.windows: dict[int, _Window] = {}

    # -- population ---------------------------------------------------------------------------
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
            community.append((_author_id(rng), count))
            planned += count
            if planned >= 30 or index == len(counts) - 1:
                actors = [actor for actor, _ in community]
                members = actors + [_author_id(rng) for _ in range(len(actors) + 12)]
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

    def plan(self) -> list[_Conversation]:
        """Decide every conversation's kind, authors and length, then the labels."""
        settings, rng = self.settings, self.rng
        n = self.n_conversations
        n_mono = round(settings.monologue_share * n) if self.monologues else 0
        n_multi = round(settings.multiparty_share * n)
        n_dialogue = n - n_mono - n_multi
        if n_dialogue < 2:
            raise ValueError(f"{n} conversations leave fewer than 2 two-person conversations")
        self.communities: list[list[str]] = []
        conversations: list[_Conversation] = []
        mean = settings.mean_conversation_length
        for initiator, partner in self._dialogue_authors(n_dialogue):
            pair = [initiator, partner]
            rng.shuffle(pair)
            length = 2 + int(rng.expovariate(1.0 / max(mean - 2.0, 1.0)))
            conversations.append(_Conversation("dialogue", pair, length, initiator=initiator))
        for _ in range(n_mono):
            host = rng.choice(self.monologues)
            author = rng.choice(rng.choice(self.communities))
            conversations.append(
                _Conversation("monologue", [author], len(host), subkind=host.source_id)
            )
        self._host_of = {h.source_id: h for h in self.monologues}
        irc_members = [_author_id(rng) for _ in range(max(5, n_multi // 2))]
        for _ in range(n_multi):
            authors = rng.sample(irc_members, rng.randint(3, min(7, len(irc_members))))
            length = 4 + int(rng.expovariate(1.0 / 14.0))
            conversations.append(_Conversation("multiparty", authors, length))
        self._fit_to_total(conversations)
        self._label(conversations)
        rng.shuffle(conversations)
        return conversations

    def _fit_to_total(self, conversations: list[_Conversation]) -> None:
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

    def _label(self, conversations: list[_Conversation]) -> None:
        """Pick predators among actors with 2-8 conversations, then hard negatives."""
        settings, rng = self.settings, self.rng
        low, high = settings.conversations_per_predator
        started: dict[str, list[_Conversation]] = {}
        involving: dict[str, list[_Conversation]] = {}
        for conversation in conversations:
            if conversation.initiator is not None:
                started.setdefault(conversation.initiator, []).append(conversation)
                for author in conversation.authors:
                    involving.setdefault(author, []).append(conversation)
        eligible = sorted(a for a, convs in started.items() if low <= len(convs) <= high)
        n_dialogue = sum(len(convs) for convs in started.values())
        n_predators = self.n_predators or max(
            1, round(settings.predator_share * len(conversations) / ((low + high) / 2))
        )
        if n_predators > len(eligible):
            raise ValueError(
                f"{n_predators} predators asked for, but only {len(eligible)} authors start "
                f"{low}-{high} conversations in {n_dialogue} two-person conversations: "
                "ask for more conversations or fewer predators"
            )
        chosen: list[str] = []
        met: set[str] = set()
        # In a seeded order, skipping anyone who talks with a predator already chosen (a
        # predator is never another predator's partner).
        for candidate in rng.sample(eligible, len(eligible)):
            if len(chosen) == n_predators:
                break
            if candidate in met:
                continue
            chosen.append(candidate)
            met.update(a for c in involving[candidate] for a in c.authors)
        if len(chosen) < n_predators:
            raise ValueError(
                f"{n_predators} predators asked for, but only {len(chosen)} authors who never "
                "talk with each other start enough conversations: ask for more conversations"
            )
        for predator in chosen:
            intensity = rng.betavariate(2.0, 2.0) * (1.0 - 0.85 * settings.difficulty) + 0.05
            # Every two-person conversation of a predator is a predator conversation, also
            # those another actor started with them (partner picks are label-blind).
            for conversation in involving[predator]:
                conversation.kind, conversation.predator = "predator", predator
                conversation.intensity = intensity
        predators = {c.predator for c in conversations if c.predator}
        innocent = [
            c for c in conversations if c.kind == "dialogue" and not set(c.authors) & predators
        ]
        n_hard = min(len(innocent), round(settings.hard_negative_share * len(conversations)))
        for conversation in rng.sample(innocent, n_hard):
            conversation.kind = "hard_negative"
            conversation.subkind = rng.choice(sorted(HARD_NEGATIVES))

    # -- text ---------------------------------------------------------------------------------
    def render(self, conversation: _Conversation) -> None:
        """Fill `conversation.lines` with (author, time, text, is_marker_line) tuples."""
        if conversation.kind == "multiparty":
            self._render_multiparty(conversation)
            return
        rng = self.rng
        if conversation.kind == "monologue":
            host = self._host_of[conversation.subkind]
            window = _Window(host.speakers, host.minutes, host.texts, 0)
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
        conversation: _Conversation,
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
        cue = _paraphrase(cue, rng)
        # A cue replaces the real message or follows it in the same message.
        return (cue if rng.random() < 0.5 else f"{text.rstrip()} {cue}"), marker

    def _render_multiparty(self, conversation: _Conversation) -> None:
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
    #: Problem-2 truth lines: the injected marker lines of the predators in the truth file.
    marker_lines: list[tuple[str, int]]
    victims: list[str]
    hard_negative_authors: list[str]


def _write_line_truth(path: Path, truth: SplitTruth) -> None:
    """Problem-2 line truth (``conversation_id<TAB>line``): the split's `marker_lines`."""
    _write_lines(path, (f"{cid}\t{line}" for cid, line in truth.marker_lines), "\n")


def _generate_split(
    settings: GeneratorSettings,
    n_conversations: int,
    n_messages: int | None,
    n_predators: int | None,
    pool: dict[str, list[chitchat.HostConversation]],
    label_noise: float,
    seed: int,
    name: str = "split",
) -> tuple[list[tuple[str, _Conversation]], SplitTruth]:
    generator = _SplitGenerator(settings, n_conversations, n_messages, n_predators, pool, seed)
    planned = generator.plan()
    rng = generator.rng
    conversations = []
    predators: list[str] = []
    victims: set[str] = set()
    hard_negative_authors: set[str] = set()
    marker_lines: list[tuple[str, int]] = []
    for conversation in track(planned, f"generating {name} conversations", unit="conv"):
        generator.render(conversation)
        conversation_id = _author_id(rng)
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
    n_noisy = round(label_noise * len(predators))
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
    pools = _split_pool(chitchat.load_conversations(), settings.seed, settings.benign_holdout_share)
    train_dir, test_dir = root / pan12.TRAIN_DIR, root / pan12.TEST_DIR
    truths: dict[str, SplitTruth] = {}
    for split, n_conv, n_msg, n_pred, noise, offset in (
        (
            "train",
            settings.n_train_conversations,
            settings.n_train_messages,
            settings.n_train_predators,
            settings.label_noise,
            0,
        ),
        (
            "test",
            settings.n_test_conversations,
            settings.n_test_messages,
            settings.n_test_predators,
            settings.test_label_noise,
            1,
        ),
    ):
        conversations, truth = _generate_split(
            settings,
            n_conv,
            n_msg,
            n_pred,
            pools[split],
            noise,
            seed=settings.seed * 1000 + offset,
            name=split,
        )
        quirk_rng = random.Random(settings.seed * 1000 + 10 + offset)
        if split == "train":
            _write_xml(train_dir / pan12.TRAIN_XML, conversations, settings.quirk_rate, quirk_rng)
            _write_lines(train_dir / pan12.TRAIN_PREDATORS, truth.labelled_predators, "\r\n")
            _write_line_truth(train_dir / pan12.TRAIN_PROBLEM2, truth)
        else:
            _write_xml(test_dir / pan12.TEST_XML, conversations, settings.quirk_rate, quirk_rng)
            _write_lines(test_dir / pan12.TEST_PROBLEM1, truth.labelled_predators, "\r\n")
            _write_line_truth(test_dir / pan12.TEST_PROBLEM2, truth)
        truths[split] = truth
    # Written last: a folder without it is an interrupted generation, never reused.
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
    return truths


def is_complete(root: str | Path) -> bool:
    """True when `root` holds a corpus whose generation ran to its end."""
    return (Path(root) / COMPLETE_FILE).is_file()


def settings_from_config(generator_cfg: object) -> GeneratorSettings:
    """Build settings from the ``data.generator`` config node (a mapping)."""
    values = dict(generator_cfg)  # type: ignore[call-overload]
    values["conversations_per_predator"] = tuple(values["conversations_per_predator"])
    return GeneratorSettings(**values)


__all__ = [
    "EXCLUDED_CONTENT",
    "GENERATOR_VERSION",
    "GeneratorSettings",
    "SplitTruth",
    "generate_corpus",
    "html_escape",
    "is_complete",
    "settings_from_config",
    "vary_surface",
    "xml_escape",
]
