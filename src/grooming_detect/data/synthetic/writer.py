"""Writing the official PAN-2012 format: the XML with the organisers' double escaping and the
padded author ids, the CRLF predator lists and the Problem-2 line truth, in the official
sub-folder layout."""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from grooming_detect.data import pan12
from grooming_detect.io import atomic_path, write_text

if TYPE_CHECKING:
    from grooming_detect.data.synthetic.planner import Conversation

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


def write_xml(
    path: Path,
    conversations: Iterable[tuple[str, Conversation]],
    quirk_rate: float,
    rng: random.Random,
) -> None:
    """The conversations as an official PAN-2012 XML file; author ids padded with spaces at
    `quirk_rate` (drawn from `rng`), as some official ones are."""
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


def write_lines(path: Path, lines: Iterable[str], newline: str) -> None:
    """`lines`, each ended by `newline` (the official id lists end in CRLF)."""
    write_text(path, "".join(f"{line}{newline}" for line in lines), newline="")


def write_line_truth(path: Path, marker_lines: Iterable[tuple[str, int]]) -> None:
    """Problem-2 line truth (``conversation_id<TAB>line``), one pair a line."""
    write_lines(path, (f"{cid}\t{line}" for cid, line in marker_lines), "\n")


#: Per split: its sub-folder, XML, predator list and line truth (the training one unofficial).
SPLIT_FILES = {
    "train": (pan12.TRAIN_DIR, pan12.TRAIN_XML, pan12.TRAIN_PREDATORS, pan12.TRAIN_PROBLEM2),
    "test": (pan12.TEST_DIR, pan12.TEST_XML, pan12.TEST_PROBLEM1, pan12.TEST_PROBLEM2),
}


def write_split(
    root: Path,
    split: str,
    conversations: list[tuple[str, Conversation]],
    labelled_predators: list[str],
    marker_lines: list[tuple[str, int]],
    quirk_rate: float,
    rng: random.Random,
) -> None:
    """The official files of `split` (``train`` or ``test``) under `root`: the XML (its author
    ids padded at `quirk_rate`, drawn from `rng`), the predator list and the line truth."""
    folder, xml, predators, lines = SPLIT_FILES[split]
    write_xml(root / folder / xml, conversations, quirk_rate, rng)
    write_lines(root / folder / predators, labelled_predators, "\r\n")
    write_line_truth(root / folder / lines, marker_lines)
