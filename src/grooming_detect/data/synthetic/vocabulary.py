"""What the generator says besides the markers (`markers`): template slots, word lists, replies to
cues, innocent uses of the cues, the excluded vocabulary, and the seeded filling of slots.

Slots in braces are filled from `SLOTS`. Nothing here is explicit: the markers are the behavioural
cues that the grooming literature describes, phrased as a chat would phrase them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

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
    # The lexical fields the marker families of one stage share (`markers`).
    "guardian": ["your parents", "your mom", "your dad", "your family", "your folks"],
    "friends": ["your friends", "your classmates", "the kids at school", "your so called friends"],
    "secret": ["our secret", "just between us", "between you and me", "our little secret"],
    "quality": ["mature", "smart", "grown up", "clever", "wise"],
    "older": ["older", "a bit older", "a lot older", "kind of older"],
    "talk": ["talk", "chat"],
    "meet": ["meet up", "hang out", "get together", "see each other"],
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
# Replies to a cue, whoever said it (a predator's marker, a clan's age check, a relative's
# visit): the same phrases follow innocent cues, and turn up unprompted too.
CUE_REPLIES = [
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


class Vocabulary:
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
