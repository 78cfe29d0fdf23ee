"""Deterministic generator of a real-text corpus in the official PAN-2012 layout.

The corpus exists so that every stage runs on a fresh machine with no data, on real chat text.
Host conversations are real ones from the ``chitchat-dataset`` package (the BYU PCC lab's
Chit-Chat Challenge, MIT licence), read at run time and never copied into this repository:
windows of its two-person conversations, and its unanswered one-author openers. Generated
multi-party technical chat (IRC-style templates) adds the shape PAN-2012's IRC logs have.

Grooming risk is expressed only through non-explicit behavioural markers (rapport, age and
location questions, compliments, secrecy, isolation, moving to another app, gifts, meeting plans)
that one author of a positive conversation (the predator) carries: wordings of the stage's
paraphrase families (`markers`), in the predator's drawn stage plan and order, placed in their
real messages in each message's register. Test markers come from families that training never
renders (``held_out_families``), so test measures new wording of the same stages. Hard negatives
are real conversations given the same kinds of cue innocently (a game clan asking ages, a
surprise party kept secret, a relative arranging a visit). Host windows holding sexual or abuse
vocabulary (`EXCLUDED_CONTENT`) are never used.

No surface or metadata tells: every two-person conversation is planned the same way before any
label exists ("actors" start a drawn number of conversations with partners from their
community, on host windows whose lengths come from one distribution); predators are then drawn
uniformly from every two-person author, so their conversation counts follow everyone's; every
line of every author gets the same chat noise; replies follow any cue at one rate. What remains
is measured, not hidden: the probe battery of ``experiment=audit`` (`evaluation.probes`).
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
whom, for how long, then the labels), `markers` (the paraphrase families and which split
renders which), `renderer` (each conversation's text: markers and `vocabulary`'s cues placed by
`surface` in the host's register, one chat noise for every line, format quirks), `writer` (the
official files), `corpus` (`generate_corpus`, tying them together).
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
