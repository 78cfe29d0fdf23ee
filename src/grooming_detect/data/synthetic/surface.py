"""Surface variation: the chat noise every line may get (typos, abbreviations, casing,
elongations, emoticons), and the placing of an injected cue in a real message, in its register."""

from __future__ import annotations

import random
import re

from grooming_detect.data.synthetic.vocabulary import EXCLUDED_CONTENT

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


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LOWER_I = re.compile(r"\bi(?=\b|')")
_INNER_SENTENCE = re.compile(r"(?<=[.!?] )[a-z]")


def match_register(cue: str, host: str) -> str:
    """`cue` written the way the real message `host` is: a capital first letter and a capital
    "I" where the host writes them, and the host's closing full stop or exclamation mark (a
    question keeps its mark). Injected text then has the casing and punctuation of the
    author's real lines, not a template's all-lowercase look."""
    stripped = host.strip()
    if not stripped or not cue:
        return cue
    if stripped[0].isupper() or re.search(r"\bI\b", stripped):
        cue = _LOWER_I.sub("I", cue)
    if stripped[0].isupper():
        # A writer who starts sentences with a capital starts the cue's inner ones with one too.
        cue = _INNER_SENTENCE.sub(lambda m: m.group(0).upper(), cue[0].upper() + cue[1:])
    end = stripped[-1]
    if end in ".!?" and cue[-1] not in ".!?":
        # A writer who closes their sentences closes the cue too.
        cue += end if end in ".!" else "."
    # Writers who never use an apostrophe or a comma do not start for one line.
    if "'" not in stripped:
        cue = cue.replace("'", "")
    if "," not in stripped:
        cue = cue.replace(",", "")
    return cue


def place_cue(cue: str, host: str, rng: random.Random) -> str:
    """The real message `host` with `cue` in it, in the host's register: the cue replaces the
    message, takes the place of one of its sentences, or stands before or after it."""
    cue = match_register(cue, host)
    sentences = [s for s in _SENTENCE_END.split(host.strip()) if s]
    roll = rng.random()
    if roll < 0.55 or not sentences:
        return cue
    if len(sentences) > 1 and roll < 0.8:
        sentences[rng.randrange(len(sentences))] = cue
        return " ".join(sentences)
    # Joined with a space only: a full stop or comma the host does not use would be a tell.
    if rng.random() < 0.5:
        return host.strip() + " " + cue
    return cue + " " + host.strip()
