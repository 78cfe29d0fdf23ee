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

Modules, in the order a corpus is made: `settings` (the knobs, defaults from the config file),
`hosts` (windows cut from real conversations, one split per host), `planner` (who talks to
whom, for how long, then the labels), `renderer` (each conversation's text: `vocabulary`'s cues
injected with `surface` variation, format quirks), `writer` (the official files), `corpus`
(`generate_corpus`, tying them together).
"""

from __future__ import annotations

from grooming_detect.data.synthetic.corpus import (
    COMPLETE_FILE,
    SplitTruth,
    generate_corpus,
    is_complete,
)
from grooming_detect.data.synthetic.hosts import split_pool
from grooming_detect.data.synthetic.markers import (
    MARKER_FAMILIES,
    STAGE_ORDER,
    Family,
    families_for,
    render_family,
    wordings,
)
from grooming_detect.data.synthetic.settings import (
    GENERATOR_VERSION,
    GeneratorSettings,
    settings_from_config,
)
from grooming_detect.data.synthetic.surface import vary_surface
from grooming_detect.data.synthetic.vocabulary import (
    CUE_REPLIES,
    EXCLUDED_CONTENT,
    HARD_NEGATIVES,
    SMALL_TALK,
)
from grooming_detect.data.synthetic.writer import html_escape, xml_escape

__all__ = [
    "COMPLETE_FILE",
    "CUE_REPLIES",
    "EXCLUDED_CONTENT",
    "GENERATOR_VERSION",
    "HARD_NEGATIVES",
    "MARKER_FAMILIES",
    "SMALL_TALK",
    "STAGE_ORDER",
    "Family",
    "GeneratorSettings",
    "SplitTruth",
    "families_for",
    "generate_corpus",
    "html_escape",
    "is_complete",
    "render_family",
    "settings_from_config",
    "split_pool",
    "vary_surface",
    "wordings",
    "xml_escape",
]
