"""Write examples/: a small, harmless chat log shaped like a team's real export, and a benign set.

Why: the README's chat-log command has to run as written on a file anyone can open, and a
realistic export is small and densely linked (a few moderators talk in many rooms), which is
exactly what makes the default leakage-free split and cross-fitting impossible. These files show
the fallbacks the pipeline then takes (README, "Your own chat logs").

Every text is INVENTED from the synthetic generator's template vocabularies
(`grooming_detect.data.synthetic.vocabulary` and `.markers`): small talk, innocent uses of the
cues, replies to cues, and the non-explicit behavioural markers (age and location questions,
compliments, secrecy, isolation, moving to another app, gifts, meeting plans). No real chat text.

The output is deterministic (one seeded `random.Random`, no set iteration, no clock), so
`tests/test_examples.py` regenerates the files and checks that the committed ones are identical.

Usage: ``python scripts/make_examples.py [--out examples]``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pandas as pd

from grooming_detect.data.synthetic.markers import MARKER_FAMILIES, STAGE_ORDER, render_family
from grooming_detect.data.synthetic.vocabulary import (
    CUE_REPLIES,
    HARD_NEGATIVES,
    SMALL_TALK,
    Vocabulary,
)
from grooming_detect.io import write_csv, write_text

SEED = 2012
#: The example chat log's shape (the README and examples/README.md quote these numbers).
N_CONVERSATIONS = 300
N_RISKY_AUTHORS = 5
CONVERSATIONS_PER_RISKY_AUTHOR = 6
N_REGULAR_AUTHORS = 160
#: Moderators who post in many rooms: they link almost every conversation into one connected
#: component of the author-conversation graph, as in a real community export.
MODERATORS = ("mod_ada", "mod_bex", "mod_cy")
MODERATOR_SHARE = 0.35
N_BENIGN_CONVERSATIONS = 60
COLUMNS = ["conversation_id", "line", "time", "author", "text", "is_predator"]
#: Invented moderator lines (the vocabulary's slots fill them).
MODERATOR_LINES = [
    "welcome to the {game} room {emo}",
    "reminder: keep it friendly in here",
    "tournament signups close {day}",
    "please use the help channel for bug reports",
    "new here? say hi {emo}",
    "the {show} watch party starts at {clock}",
]


def _time(rng: random.Random) -> tuple[int, int]:
    return rng.randrange(15, 22), rng.randrange(0, 60)


def _rows(
    conversation: str, turns: list[tuple[str, str]], is_risky: set[str], rng: random.Random
) -> list[dict[str, object]]:
    hour, minute = _time(rng)
    rows = []
    for line, (author, text) in enumerate(turns, start=1):
        minute += rng.randrange(0, 3)
        hour, minute = min(hour + minute // 60, 23), minute % 60
        rows.append(
            {
                "conversation_id": conversation,
                "line": line,
                "time": f"{hour:02d}:{minute:02d}",
                "author": author,
                "text": text,
                "is_predator": int(author in is_risky),
            }
        )
    return rows


def _benign_turns(
    pair: list[str], vocabulary: Vocabulary, rng: random.Random
) -> list[tuple[str, str]]:
    """A short everyday chat: small talk, now and then an innocent use of a cue and a reply."""
    turns = []
    for turn in range(rng.randint(3, 5)):
        speaker = pair[turn % 2]
        if rng.random() < 0.2:
            cues = HARD_NEGATIVES[rng.choice(sorted(HARD_NEGATIVES))]
            turns.append((speaker, vocabulary.pick(cues)))
        elif rng.random() < 0.15:
            turns.append((speaker, vocabulary.pick(CUE_REPLIES)))
        else:
            turns.append((speaker, vocabulary.pick(SMALL_TALK)))
    return turns


def _risky_turns(
    risky: str, other: str, vocabulary: Vocabulary, rng: random.Random
) -> list[tuple[str, str]]:
    """A longer chat in which the risky author drifts through a few marker stages in order,
    each answered by a reply to the cue, between small talk."""
    start = rng.randrange(0, 4)
    stages = STAGE_ORDER[start : start + rng.randint(3, 4)]
    turns = [(other, vocabulary.pick(SMALL_TALK)), (risky, vocabulary.pick(SMALL_TALK))]
    for stage in stages:
        turns.append((risky, render_family(rng.choice(MARKER_FAMILIES[stage]), rng)))
        turns.append((other, vocabulary.pick(CUE_REPLIES)))
    return turns


def _moderated(turns: list[tuple[str, str]], vocabulary: Vocabulary, rng: random.Random) -> None:
    """Let a moderator post in the room (in place), at a random turn."""
    if rng.random() < MODERATOR_SHARE:
        where = rng.randrange(0, len(turns) + 1)
        turns.insert(where, (rng.choice(MODERATORS), vocabulary.pick(MODERATOR_LINES)))


def chat_log(rng: random.Random) -> pd.DataFrame:
    """The example chat log: `N_CONVERSATIONS` conversations, `N_RISKY_AUTHORS` risky authors
    with `CONVERSATIONS_PER_RISKY_AUTHOR` conversations each, no split column."""
    vocabulary = Vocabulary(rng)
    regulars = [f"user{number:03d}" for number in range(1, N_REGULAR_AUTHORS + 1)]
    risky = [f"user{number:03d}" for number in range(901, 901 + N_RISKY_AUTHORS)]
    plans = [("risky", author) for author in risky for _ in range(CONVERSATIONS_PER_RISKY_AUTHOR)]
    plans += [("benign", "")] * (N_CONVERSATIONS - len(plans))
    rng.shuffle(plans)
    rows: list[dict[str, object]] = []
    for number, (kind, author) in enumerate(plans, start=1):
        if kind == "risky":
            turns = _risky_turns(author, rng.choice(regulars), vocabulary, rng)
        else:
            turns = _benign_turns(rng.sample(regulars, 2), vocabulary, rng)
        _moderated(turns, vocabulary, rng)
        rows += _rows(f"c{number:04d}", turns, set(risky), rng)
    return pd.DataFrame(rows, columns=COLUMNS)


def benign_log(rng: random.Random) -> pd.DataFrame:
    """The benign set: everyday chats only, no risky author (for scoring: alerts here are
    false alarms)."""
    vocabulary = Vocabulary(rng)
    regulars = [f"member{number:03d}" for number in range(1, 81)]
    rows: list[dict[str, object]] = []
    for number in range(1, N_BENIGN_CONVERSATIONS + 1):
        turns = _benign_turns(rng.sample(regulars, 2), vocabulary, rng)
        rows += _rows(f"b{number:04d}", turns, set(), rng)
    return pd.DataFrame(rows, columns=COLUMNS)


def jsonl(frame: pd.DataFrame) -> str:
    """The same records as JSON lines (one message a line, keys in column order)."""
    return "".join(
        json.dumps(record, ensure_ascii=False) + "\n" for record in frame.to_dict("records")
    )


def write_examples(out: Path) -> list[Path]:
    """Write chatlog.csv, chatlog.jsonl and benign.csv into `out`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    log = chat_log(random.Random(SEED))
    benign = benign_log(random.Random(SEED + 1))
    return [
        write_csv(out / "chatlog.csv", log, neutralise_formulas=False),
        write_text(out / "chatlog.jsonl", jsonl(log)),
        write_csv(out / "benign.csv", benign, neutralise_formulas=False),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "examples")
    for path in write_examples(parser.parse_args(argv).out):
        print(path)


if __name__ == "__main__":
    main()
