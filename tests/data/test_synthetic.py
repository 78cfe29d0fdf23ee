"""The synthetic PAN-format corpus: deterministic, PAN-shaped, quirky, free of explicit content."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from grooming_detect.data import pan12
from grooming_detect.data.synthetic import (
    EXCLUDED_CONTENT,
    HARD_NEGATIVES,
    MARKER_FAMILIES,
    STAGE_ORDER,
    GeneratorSettings,
    families_for,
    generate_corpus,
    html_escape,
    render_family,
    wordings,
    xml_escape,
)
from grooming_detect.data.synthetic.settings import config_defaults

SMALL = GeneratorSettings(
    seed=7,
    n_train_conversations=1500,
    n_test_conversations=600,
    n_train_predators=30,
    n_test_predators=10,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synthetic")
    truths = generate_corpus(root, SMALL)
    return root, truths


@pytest.mark.pipeline
def test_same_settings_same_bytes(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = corpus
    generate_corpus(tmp_path, SMALL)
    for path in root.rglob("*.*"):
        assert (tmp_path / path.relative_to(root)).read_bytes() == path.read_bytes(), path.name


@pytest.mark.pipeline
def test_other_seed_other_corpus(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = corpus
    other = GeneratorSettings(
        seed=8,
        n_train_conversations=1500,
        n_test_conversations=600,
        n_train_predators=None,
        n_test_predators=None,
    )
    generate_corpus(tmp_path, other)
    name = f"{pan12.TRAIN_DIR}/{pan12.TRAIN_XML}"
    assert (tmp_path / name).read_bytes() != (root / name).read_bytes()
    assert other.fingerprint() != SMALL.fingerprint()


@pytest.mark.pipeline
def test_official_layout_and_quirks(corpus: tuple[Path, dict]) -> None:
    root, _ = corpus
    files = pan12.find_files(root)
    assert files.test_xml and files.test_problem1 and files.test_problem2
    raw = files.train_xml.read_text(encoding="utf-8")
    assert "&amp;apos;" in raw  # HTML-escaped, then XML-escaped
    assert "&amp;#8212;" in raw  # non-ASCII as a numeric HTML entity
    assert "&lt;email/&gt;" in raw
    assert "<text/>" in raw
    assert re.search(r"<author> +[0-9a-f]{32} +</author>", raw), "padded author ids"
    assert re.search(r"<text>[^<]*\n[^<]*</text>", raw), "multi-line text"
    assert files.train_predators.read_bytes().count(b"\r\n") >= 2, "CRLF id list"


@pytest.mark.pipeline
def test_pan_shape(corpus: tuple[Path, dict]) -> None:
    root, truths = corpus
    columns = pan12.parse_messages(pan12.find_files(root).train_xml, show_progress=False)
    authors_of: dict[str, set[str]] = defaultdict(set)
    for conversation, author in zip(columns.conversation_id, columns.author, strict=True):
        authors_of[conversation].add(author)
    assert columns.n_conversations == 1500
    sizes = Counter(len(a) for a in authors_of.values())
    assert sizes[1] > 0 and sizes[2] > 0 and max(sizes) >= 3, "one, two and many authors"
    truth = truths["train"]
    predators = set(truth.predators)
    assert len(predators) == SMALL.n_train_predators
    # Predators are drawn from every two-person author: their conversation counts follow the
    # others' (some recur with different partners, some speak in one conversation only).
    counts = {p: sum(p in a for a in authors_of.values()) for p in predators}
    assert sum(n == 1 for n in counts.values()) >= 3 and sum(n >= 2 for n in counts.values()) >= 3
    for predator in (p for p, n in counts.items() if n >= 2):
        partners = [a - {predator} for a in authors_of.values() if predator in a]
        assert len({frozenset(p) for p in partners}) >= 2, "with different partners"
    dialogue_negatives = [
        sum(author in a for a in authors_of.values())
        for author in {x for a in authors_of.values() if len(a) == 2 for x in a} - predators
    ]
    mean_negative = sum(dialogue_negatives) / len(dialogue_negatives)
    assert 0.6 < (sum(counts.values()) / len(counts)) / mean_negative < 1.6
    # Partners are authors, not predators (label noise adds only non-partner negatives).
    assert not set(truth.victims) & set(truth.labelled_predators)
    negative_counts = Counter(
        a for c, authors in authors_of.items() for a in authors if not authors & predators
    )
    assert sum(1 for n in negative_counts.values() if n >= 2) > 100, "negative authors recur"


@pytest.mark.pipeline
def test_real_host_text_with_injected_markers(corpus: tuple[Path, dict]) -> None:
    root, truths = corpus
    files = pan12.find_files(root)
    columns = pan12.parse_messages(files.train_xml, show_progress=False)
    words = Counter(w for text in columns.text for w in text.lower().split())
    # Real chat: thousands of distinct words, few messages that are a template as written.
    assert len(words) > 5000
    templates = {w for group in MARKER_FAMILIES.values() for f in group for w in wordings(f)}
    assert sum(text in templates for text in columns.text) < 0.05 * len(columns.text)
    # Problem-2 truth lines are the predators' own lines.
    test_columns = pan12.parse_messages(files.test_xml, show_progress=False)
    author_of_line = {
        (c, int(line)): a
        for c, line, a in zip(
            test_columns.conversation_id, test_columns.line, test_columns.author, strict=True
        )
    }
    marker_lines = truths["test"].marker_lines
    assert marker_lines
    assert {author_of_line[(c, line)] for c, line in marker_lines} <= set(truths["test"].predators)


@pytest.mark.pipeline
def test_predators_share_the_shape_of_other_conversations(corpus: tuple[Path, dict]) -> None:
    """No metadata shortcut by construction: predators' conversations are two-person
    conversations of the same length distribution as the others'."""
    root, truths = corpus
    columns = pan12.parse_messages(pan12.find_files(root).train_xml, show_progress=False)
    lengths: Counter[str] = Counter(columns.conversation_id)
    authors_of: dict[str, set[str]] = defaultdict(set)
    for conversation, author in zip(columns.conversation_id, columns.author, strict=True):
        authors_of[conversation].add(author)
    predators = set(truths["train"].predators)
    with_predator = [lengths[c] for c, a in authors_of.items() if a & predators]
    others = [lengths[c] for c, a in authors_of.items() if len(a) == 2 and not a & predators]
    mean_with, mean_others = sum(with_predator) / len(with_predator), sum(others) / len(others)
    assert abs(mean_with - mean_others) < 0.25 * mean_others
    assert all(len(a) <= 2 for a in authors_of.values() if a & predators)


@pytest.mark.pipeline
def test_label_noise_on_training_truth_only(corpus: tuple[Path, dict]) -> None:
    _, truths = corpus
    train, test = truths["train"], truths["test"]
    n_noisy = round(SMALL.label_noise * len(train.predators))
    assert n_noisy > 0
    assert len(set(train.predators) - set(train.labelled_predators)) == n_noisy
    assert len(train.labelled_predators) == len(train.predators)
    # Test truth is clean by default (test_label_noise = 0).
    assert test.labelled_predators == test.predators


def test_content_filter_refuses_host_windows() -> None:
    assert EXCLUDED_CONTENT.search("we kissed at the party")
    assert EXCLUDED_CONTENT.search("that was CREEPY")
    assert not EXCLUDED_CONTENT.search("i live in virginia and love anybody's cooking")


@pytest.mark.pipeline
def test_times_wrap_past_midnight(corpus: tuple[Path, dict]) -> None:
    root, _ = corpus
    columns = pan12.parse_messages(pan12.find_files(root).train_xml, show_progress=False)
    wrapped = any(
        a == b and t1 and t2 and t1 > "23:5" and t2 < "00:1"
        for a, b, t1, t2 in zip(
            columns.conversation_id,
            columns.conversation_id[1:],
            columns.time,
            columns.time[1:],
            strict=False,
        )
    )
    assert wrapped


@pytest.mark.pipeline
def test_exact_sizes_when_asked(tmp_path: Path) -> None:
    settings = GeneratorSettings(
        seed=3,
        n_train_conversations=400,
        n_train_messages=5000,
        n_train_predators=5,
        n_test_conversations=300,
        n_test_messages=3100,
        n_test_predators=4,
    )
    truths = generate_corpus(tmp_path, settings)
    assert (truths["train"].n_conversations, truths["train"].n_messages) == (400, 5000)
    assert len(truths["train"].predators) == 5
    assert (truths["test"].n_messages, len(truths["test"].predators)) == (3100, 4)


# Words that would break the content rules; none may appear anywhere in the vocabulary or corpus.
FORBIDDEN = re.compile(
    r"\b(sex\w*|nude\w*|naked|porn\w*|breast\w*|kiss\w*|bed\s?room|touch\w*|body|bodies|"
    r"undress\w*|abus\w*|rape\w*|molest\w*|explicit|pic(?:ture)?s? of you|webcam|cam)\b",
    re.IGNORECASE,
)


@pytest.mark.pipeline
def test_no_explicit_content(corpus: tuple[Path, dict]) -> None:
    root, _ = corpus
    vocabulary = [
        *(w for group in MARKER_FAMILIES.values() for f in group for w in wordings(f)),
        *(t for ts in HARD_NEGATIVES.values() for t in ts),
    ]
    assert not [t for t in vocabulary if FORBIDDEN.search(t)]
    for path in root.rglob("*.xml"):
        match = FORBIDDEN.search(path.read_text(encoding="utf-8"))
        assert match is None, f"{path.name}: {match.group(0) if match else ''}"


def test_escaping_round_trips_through_the_reader(tmp_path: Path) -> None:
    text = 'a & b <3 "q" it\'s caf\u00e9 \u2014 mail <email/>'
    escaped = xml_escape(html_escape(text))
    assert escaped.count("&amp;amp;") == 1 and "&lt;email/&gt;" in escaped
    path = tmp_path / "one.xml"
    path.write_text(
        '<conversations><conversation id="c"><message line="1"><author>x</author>'
        f"<time>10:00</time><text>{escaped}</text></message></conversation></conversations>",
        encoding="utf-8",
    )
    assert pan12.parse_messages(path, show_progress=False).text == [text]


@pytest.mark.pipeline
def test_every_labelled_predator_speaks(tmp_path: Path) -> None:
    # Heavy label noise: many non-predators are added to the truth; all must have spoken.
    noisy = GeneratorSettings(
        seed=5,
        n_train_conversations=800,
        n_test_conversations=300,
        label_noise=1.0,
        test_label_noise=1.0,
        predator_share=0.04,
        n_train_predators=None,
        n_test_predators=None,
    )
    truths = generate_corpus(tmp_path, noisy)
    files = pan12.find_files(tmp_path)
    for split, xml in (("train", files.train_xml), ("test", files.test_xml)):
        authors = set(pan12.parse_messages(xml, show_progress=False).author)
        assert set(truths[split].labelled_predators) - set(truths[split].predators)
        assert set(truths[split].labelled_predators) <= authors, split


def test_every_marker_stage_is_in_the_stage_order() -> None:
    assert sorted(STAGE_ORDER) == sorted(MARKER_FAMILIES)
    assert len(STAGE_ORDER) == len(set(STAGE_ORDER))


@pytest.mark.pipeline
def test_importing_the_generator_reads_no_config_file() -> None:
    # Defaults come from conf/data/synthetic.yaml on first use, never at import.
    code = (
        "from grooming_detect.data.synthetic import settings; "
        "print(settings.config_defaults.cache_info().currsize)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
    assert (
        GeneratorSettings(seed=1).n_train_conversations
        == config_defaults()["n_train_conversations"]
    )


def test_marker_grammar_expands_alternatives_options_and_slots() -> None:
    import random

    from grooming_detect.data.synthetic.markers import Family, _parse

    family = Family("rapport", "train", "(you're|ur) [so ]easy to {talk} to")
    assert wordings(family) == sorted(
        ["you're easy to {talk} to", "you're so easy to {talk} to", "ur easy to {talk} to",
         "ur so easy to {talk} to"]
    )  # fmt: skip
    rendered = {render_family(family, random.Random(seed)) for seed in range(60)}
    assert rendered == {
        f"{who} {so}easy to {verb} to"
        for who in ("you're", "ur")
        for so in ("", "so ")
        for verb in ("talk", "chat")
    }
    for bad in ("(a|b", "a]", "[a", "a|b)"):
        with pytest.raises(ValueError, match="marker pattern"):
            _parse(bad)


def test_test_families_are_never_rendered_in_training() -> None:
    every = {f for group in MARKER_FAMILIES.values() for f in group}
    default_train = {f for group in families_for("train").values() for f in group}
    default_test = {f for group in families_for("test").values() for f in group}
    assert default_train and default_test and not default_train & default_test
    assert {f.role for f in default_test} == {"test"}
    design_train = {f for group in families_for("train", "design").values() for f in group}
    design_test = {f for group in families_for("test", "design").values() for f in group}
    assert {f.role for f in design_train} == {"train"}
    assert {f.role for f in design_test} == {"design"}
    assert not (design_train | design_test) & {f for f in every if f.role == "test"}
    # Every stage has families in every role, each with real variety.
    for stage, group in MARKER_FAMILIES.items():
        assert {f.role for f in group} == {"train", "design", "test"}, stage
    assert all(
        len(wordings(f)) >= 2 or "{" in f.pattern
        for group in MARKER_FAMILIES.values()
        for f in group
    )
    everything = {f for group in families_for("test", "none").values() for f in group}
    assert (
        everything
        == every
        == {f for group in families_for("train", "none").values() for f in group}
    )
    with pytest.raises(ValueError, match="held_out_families"):
        families_for("test", "validation")


def test_marker_wordings_hold_no_excluded_word() -> None:
    import random

    rng = random.Random(0)
    for group in MARKER_FAMILIES.values():
        for family in group:
            for _ in range(30):
                text = render_family(family, rng)
                assert not EXCLUDED_CONTENT.search(text), text


def test_a_cue_takes_the_register_of_the_message_it_joins() -> None:
    import random

    from grooming_detect.data.synthetic.surface import match_register, place_cue

    assert match_register("i could get you a gift card", "Sounds good.") == (
        "I could get you a gift card."
    )
    assert match_register("how old are you?", "That is wild!") == "How old are you?"
    assert match_register("i could get you a gift card", "lol ok") == "i could get you a gift card"
    host = "We went hiking. It rained all day."
    placed = {place_cue("add me on kik", host, random.Random(seed)) for seed in range(40)}
    assert "Add me on kik." in placed  # replaces the message
    assert any(p.startswith("We went hiking.") and "Add me on kik." in p for p in placed)
    assert all("Add me on kik" in p for p in placed)
