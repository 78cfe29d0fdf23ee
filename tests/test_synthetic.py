"""The synthetic PAN-format corpus: deterministic, PAN-shaped, quirky, free of explicit content."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from grooming_detect.data import pan12
from grooming_detect.data.synthetic import (
    HARD_NEGATIVES,
    PREDATOR_MARKERS,
    GeneratorSettings,
    generate_corpus,
    html_escape,
    xml_escape,
)

SMALL = GeneratorSettings(seed=7, n_train_conversations=1500, n_test_conversations=600)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synthetic")
    truths = generate_corpus(root, SMALL)
    return root, truths


def test_same_settings_same_bytes(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = corpus
    generate_corpus(tmp_path, SMALL)
    for path in root.rglob("*.*"):
        assert (tmp_path / path.relative_to(root)).read_bytes() == path.read_bytes(), path.name


def test_other_seed_other_corpus(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = corpus
    other = GeneratorSettings(seed=8, n_train_conversations=1500, n_test_conversations=600)
    generate_corpus(tmp_path, other)
    name = f"{pan12.TRAIN_DIR}/{pan12.TRAIN_XML}"
    assert (tmp_path / name).read_bytes() != (root / name).read_bytes()
    assert other.fingerprint() != SMALL.fingerprint()


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


def test_pan_shape(corpus: tuple[Path, dict]) -> None:
    root, truths = corpus
    columns = pan12.parse_messages(pan12.find_files(root).train_xml, show_progress=False)
    authors_of: dict[str, set[str]] = defaultdict(set)
    for conversation, author in zip(columns.conversation_id, columns.author, strict=True):
        authors_of[conversation].add(author)
    assert columns.n_conversations == 1500
    sizes = Counter(len(a) for a in authors_of.values())
    assert sizes[1] > 0 and sizes[2] > 0 and max(sizes) >= 5, "one, two and many authors"
    truth = truths["train"]
    predators = set(truth.predators)
    with_predator = [c for c, a in authors_of.items() if a & predators]
    assert 0.02 <= len(with_predator) / 1500 <= 0.04
    for predator in predators:
        partners = [a - {predator} for a in authors_of.values() if predator in a]
        assert len(partners) >= 2, "predators recur"
        assert len({frozenset(p) for p in partners}) == len(partners), "with different partners"
    # Partners are authors, not predators (label noise adds only non-partner negatives).
    assert not set(truth.victims) & set(truth.labelled_predators)
    negative_counts = Counter(
        a for c, authors in authors_of.items() for a in authors if not authors & predators
    )
    assert sum(1 for n in negative_counts.values() if n >= 2) > 100, "negative authors recur"


def test_label_noise_and_line_truth(corpus: tuple[Path, dict]) -> None:
    _, truths = corpus
    truth = truths["test"]
    assert len(truth.labelled_predators) == len(truth.predators)
    n_noisy = round(SMALL.label_noise * len(truth.predators))
    assert len(set(truth.predators) - set(truth.labelled_predators)) == n_noisy
    assert truth.marker_lines, "problem-2 lines exist for the test corpus"


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


def test_no_explicit_content(corpus: tuple[Path, dict]) -> None:
    root, _ = corpus
    vocabulary = [
        t for group in (PREDATOR_MARKERS, HARD_NEGATIVES) for ts in group.values() for t in ts
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


def test_every_labelled_predator_speaks(tmp_path: Path) -> None:
    # Heavy label noise: many non-predators are added to the truth; all must have spoken.
    noisy = GeneratorSettings(
        seed=5,
        n_train_conversations=800,
        n_test_conversations=300,
        label_noise=1.0,
        predator_share=0.04,
    )
    truths = generate_corpus(tmp_path, noisy)
    files = pan12.find_files(tmp_path)
    for split, xml in (("train", files.train_xml), ("test", files.test_xml)):
        authors = set(pan12.parse_messages(xml, show_progress=False).author)
        assert set(truths[split].labelled_predators) - set(truths[split].predators)
        assert set(truths[split].labelled_predators) <= authors, split
