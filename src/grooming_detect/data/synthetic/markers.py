"""Grooming-stage markers as paraphrase families, and which families each split may use.

A *family* is one way of saying one stage's move, written in a small grammar: ``(a|b|c)`` picks
one alternative, ``[x]`` keeps ``x`` half of the time, ``{slot}`` draws from `vocabulary.SLOTS`;
groups nest. One family therefore renders dozens to hundreds of wordings (synonyms, word order,
optional parts, slot values), and the renderer then fits each wording to the register of the
real message it joins (`surface.match_register`) and gives it the same chat noise as every line.

Families are split by role, so that the test split measures generalisation to new wording of
the same grooming stages rather than recall of a template set:

* ``train``: the training corpus uses them (and so validation, which is carved out of it);
* ``design``: held out from training while the generator was designed: with
  ``data.generator.held_out_families=design`` the training corpus leaves them out and the test
  split renders them instead of the test families, so the generator's settings were chosen on
  numbers that never touched the test families (the README says how);
* ``test``: rendered only in the test split of the default corpus.

Every family is non-explicit: the behavioural cues the grooming literature describes (rapport,
compliments, personal and age questions, secrecy, isolation, moving to another app, gifts,
meeting plans), never sexual content or a description of abuse.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from grooming_detect.data.synthetic.vocabulary import SLOTS

ROLES = ("train", "design", "test")
#: What ``held_out_families`` may be: the family role the test split renders, or ``none`` (both
#: splits render every family: template recall, for smoke runs and to measure the gap).
HELD_OUT = ("test", "design", "none")


@dataclass(frozen=True)
class Family:
    """One paraphrase family of one stage (see the module docstring for the grammar)."""

    stage: str
    role: str
    pattern: str


def _families(stage: str, train: list[str], design: list[str], test: list[str]) -> list[Family]:
    return [
        Family(stage, role, pattern)
        for role, patterns in (("train", train), ("design", design), ("test", test))
        for pattern in patterns
    ]


#: Stage -> its families. Within a stage the families share the move (ask an age, ask for
#: secrecy) and differ in wording and structure; the stage's lexical field recurs across roles
#: through shared slots ({guardian}, {friends}, {secret}, app names, places), as the same words
#: recur in any two people's phrasing of one move.
MARKER_FAMILIES: dict[str, list[Family]] = {
    family[0].stage: family
    for family in (
        _families(
            "rapport",
            [
                "(you're|ur|you are) (really|so|super) easy to {talk} to",
                "i (feel|think) [like ]we [really] (click|get each other|have a connection)",
                "i (love|like) (talking|chatting) (with|to) you[ so much]",
            ],
            [
                "(we|we really) (click|get each other)[, (it's|its) so easy to {talk} to you]",
                "(i love|i like) how (easy|fun) it is to {talk} (with|to) you",
            ],
            [
                "(talking|chatting) (with|to) you is (so easy|the best part of my day)",
                "(there's|we have) (a|such a) (real|special) connection (between us|here)",
            ],
        ),
        _families(
            "compliments",
            [
                "you (seem|sound|are) (really|so) {quality} for your age",
                "(you're|ur) (so|really|way) {quality}[, (more|way more) than kids your age]",
                "(you're|ur) (special|different)[,] not like the (others|other kids)",
            ],
            [
                "(you|u) (act|seem) (so|really) grown up[ for real]",
                "(you're|ur) (way|much) more {quality} than (other|most) kids your age",
            ],
            [
                "(honestly|tbh) (you're|ur) (really|so) {quality} (for|at) your age",
                "(nobody|no one) (your age|at your school) is as {quality} as you",
            ],
        ),
        _families(
            "personal_info",
            [
                "(how old (are you|r u)|what's your age|u old enough to be here)[?]",
                "where (do you|do u|abouts do you) (live|stay)[ now][?]",
                "(are|r) {guardian} (home|around)[ right now][?]",
            ],
            [
                "what (school|grade) (are you in|do you go to)[?]",
                "(what|which) (part of town|neighborhood|area) do you live in[?]",
            ],
            [
                "(when's|when is) your birthday[?] (how old will you be|what age are you "
                "turning)[?]",
                "(does|do) {guardian} (work late|get home late)[ on weekdays][?]",
            ],
        ),
        _families(
            "age",
            [
                "i'm {adult_age} (btw|by the way|fyi)[, age is just a number]",
                "(does|would) it (bother|bug|worry) you that i'm {older}[?]",
                "(you're|ur) {teen_age}? (you|u) (act|seem|sound) {older}",
            ],
            [
                "(most|all the) people my age are [so] (boring|dull)",
                "(does|would) (my age|being {older}) (bother|bug) you[?]",
            ],
            [
                "(the|our) age (gap|difference) (doesn't|does not) (matter|mean anything)[ to me]",
                "(it doesn't|doesn't) (bother|bug) me that (you're|ur) {teen_age}",
            ],
        ),
        _families(
            "secrecy",
            [
                "don't tell ({guardian}|anyone) (we talk|about me|about us)",
                "(this is|this stays|keep this) {secret}[ ok]",
                "(delete|erase) (our|this) (chat|convo) (after|later|when we're done)",
            ],
            [
                "keep (this|it|us) {secret}[ ok]",
                "(make sure|check that) {guardian} (doesn't|don't) see (this|our chat)",
            ],
            [
                "(you can't|u cant) tell ({guardian}|anyone) about (this|our chats)",
                "(this|our chat) has to stay {secret}",
            ],
        ),
        _families(
            "isolation",
            [
                "{guardian} (don't|doesn't|can't) understand you like i do",
                "{friends} (sound|seem) [so] (immature|childish)",
                "you can always (talk|come) to me instead[ of them]",
            ],
            [
                "(nobody|no one) (gets|knows) you like i do",
                "{friends} (don't|do not) deserve you",
            ],
            [
                "{guardian} (will never|won't ever) understand you (the way|like) i do",
                "(forget|never mind) {friends}, (talk|come) to me instead",
            ],
        ),
        _families(
            "platform",
            [
                "(add|find) me on {app}[ (btw|later)]",
                "(text|message|dm) me on {app} instead",
                "(do you|do u) have {app}? it's (more private|safer)",
            ],
            [
                "let's (move|switch) to {app}[, this site is lame]",
                "(what's|whats) your {app}[ name][?]",
            ],
            [
                "(we should|let's) {talk} on {app} (instead|from now on)",
                "(are you|r u) on {app}? (add|text) me there",
            ],
        ),
        _families(
            "gifts",
            [
                "i could (get|buy|send) you {gift}[ (tho|if u want)]",
                "(want|would you like) me to (send|get) you {gift}[?]",
                "i can (top up|add money to) your {game} account",
            ],
            [
                "i'll (buy|get) you {gift} if you want",
                "(you deserve|you should have) {gift}, i'll (get|buy) it",
            ],
            [
                "(what if|how about) i (get|send) you {gift}[?]",
                "(i'll|let me) (top up|pay for) your {game} (stuff|credits|account)",
            ],
        ),
        _families(
            "meeting",
            [
                "we should {meet} at {place} {day}",
                "i can (pick you up|give you a ride|come get you) after (school|practice)",
                "(meet|see) me at {place} at {clock}[ ok]",
            ],
            [
                "(can|could) you (sneak out|get out without them knowing) {day}[?]",
                "(i'd|i would) love to {meet} (sometime|soon)[, just us]",
            ],
            [
                "(let's|we could) {meet} {day} (at|near) {place}",
                "(i could|i'll) (drive over|come by) {day}[, just us]",
            ],
        ),
    )
}

#: The order stages usually come in (`renderer` drifts through it with jitter).
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


def families_for(split: str, held_out: str = "test") -> dict[str, list[Family]]:
    """The families `split` (``train`` or ``test``) renders, by stage.

    ``held_out="test"`` (the default corpus): training renders the train and design families,
    test the test families. ``held_out="design"``: training renders the train families only, test
    the design families, and no split renders a test family. ``held_out="none"``: both splits
    render every family (a template-recall task: smoke runs on tiny corpora, and the size of the
    generalisation gap).
    """
    if held_out not in HELD_OUT:
        raise ValueError(f"held_out_families must be one of {HELD_OUT}, got {held_out!r}")
    if held_out == "none":
        roles = set(ROLES)
    elif split == "test":
        roles = {held_out}
    else:
        roles = {"train", "design"} if held_out == "test" else {"train"}
    return {
        stage: [family for family in families if family.role in roles]
        for stage, families in MARKER_FAMILIES.items()
    }


# --- the grammar ---------------------------------------------------------------------------

_TOKEN = re.compile(r"[()\[\]|]|[^()\[\]|]+")


def _parse(pattern: str) -> list[object]:
    """A pattern as a tree: a sequence of strings, ``("alt", [sequences])`` and
    ``("opt", sequence)`` nodes. Raises ValueError on unbalanced brackets."""
    tokens = _TOKEN.findall(pattern)
    position = 0

    def sequence(closers: str) -> list[object]:
        nonlocal position
        items: list[object] = []
        while position < len(tokens) and tokens[position] not in closers:
            token = tokens[position]
            position += 1
            if token == "(":
                options = [sequence("|)")]
                while position < len(tokens) and tokens[position] == "|":
                    position += 1
                    options.append(sequence("|)"))
                _expect(")")
                items.append(("alt", options))
            elif token == "[":
                items.append(("opt", sequence("]")))
                _expect("]")
            elif token in ")]|":
                raise ValueError(f"unbalanced {token!r} in marker pattern {pattern!r}")
            else:
                items.append(token)
        return items

    def _expect(closer: str) -> None:
        nonlocal position
        if position >= len(tokens) or tokens[position] != closer:
            raise ValueError(f"expected {closer!r} in marker pattern {pattern!r}")
        position += 1

    tree = sequence("")
    if position != len(tokens):
        raise ValueError(f"unbalanced {tokens[position]!r} in marker pattern {pattern!r}")
    return tree


def _render(tree: list[object], choose: Callable[[int], int]) -> str:
    parts: list[str] = []
    for item in tree:
        if isinstance(item, str):
            parts.append(item)
        elif item[0] == "alt":  # type: ignore[index]
            options = item[1]  # type: ignore[index]
            parts.append(_render(options[choose(len(options))], choose))
        elif choose(2):
            parts.append(_render(item[1], choose))  # type: ignore[index]
    return "".join(parts)


def _tidy(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace(" ,", ",").replace(" ?", "?").strip()


_TREES: dict[str, list[object]] = {}


def render_family(family: Family, rng: random.Random) -> str:
    """One wording of `family`: alternatives, optional parts and slots drawn with `rng`."""
    tree = _TREES.get(family.pattern)
    if tree is None:
        tree = _TREES[family.pattern] = _parse(family.pattern)
    text = _render(tree, rng.randrange)
    if "{" in text:
        text = re.sub(r"\{(\w+)\}", lambda m: rng.choice(SLOTS[m.group(1)]), text)
    return _tidy(text)


def wordings(family: Family) -> list[str]:
    """Every wording of `family`, slots left as ``{slot}``: the exhaustive expansion a template
    lookup is built from."""
    return sorted({_tidy(text) for text in _expand(_parse(family.pattern))})


def _expand(tree: list[object]) -> list[str]:
    texts = [""]
    for item in tree:
        if isinstance(item, str):
            options = [item]
        elif item[0] == "alt":  # type: ignore[index]
            options = [text for option in item[1] for text in _expand(option)]  # type: ignore[index]
        else:
            options = ["", *_expand(item[1])]  # type: ignore[index]
        texts = [head + tail for head in texts for tail in options]
    return texts
