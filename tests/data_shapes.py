"""Chat logs of every supported shape, built from the tiny synthetic corpus (real chat text from
the chitchat-dataset package with non-explicit markers; written under a test's temporary folder,
never committed).

Shapes: the PAN-format corpus itself, and the chat-log shapes of
`grooming_detect.data.export.CHATLOG_SHAPES` (author-labelled CSV; conversation-labelled JSONL;
a log without times; a log with one author per conversation, labelled per conversation).
"""

from __future__ import annotations

from pathlib import Path

from grooming_detect.data.export import CHATLOG_SHAPES, write_chatlog

SHAPES = ("pan_author", *CHATLOG_SHAPES)


def write_shape(shape: str, processed: Path, folder: Path) -> Path:
    """Write the chat log of `shape` from a processed tiny synthetic dataset; its path."""
    return write_chatlog(shape, processed, folder)
