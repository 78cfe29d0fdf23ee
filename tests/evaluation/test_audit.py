"""False alarms on benign traffic and the shortcut audit (evaluation/audit.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from grooming_detect import pipeline
from grooming_detect.config import ConfigError
from grooming_detect.data import chitchat
from grooming_detect.data.export import write_chatlog
from grooming_detect.data.synthetic.hosts import split_pool
from grooming_detect.evaluation.audit import (
    BenignSetError,
    check_no_overlap,
    mask_cues,
    parse_benign_sets,
)
from grooming_detect.stage import dataset_dir, latest_dir
from grooming_detect.validation import validate_config


def test_masking_removes_exactly_the_lexicon_words() -> None:
    lexicons = {"secrecy": ["our secret", "between us"], "age": ["how old"]}
    texts = pd.Series(
        [
            "Keep this our secret, OK?",
            "HOW OLD are you",
            "secretive ourselves",
            None,
            "between usual",
        ]
    )
    assert mask_cues(texts, lexicons).tolist() == [
        "Keep this , OK?",
        " are you",
        "secretive ourselves",  # not a phrase: word boundaries, as the cue features match
        "",
        "between usual",
    ]


def _messages(conversation: str, texts: list[str], split: str = "train") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "conversation_id": conversation,
            "line": range(1, len(texts) + 1),
            "author": ["a", "b"] * (len(texts) // 2) + ["a"] * (len(texts) % 2),
            "text": texts,
            "split": split,
        }
    )


def test_a_benign_set_that_overlaps_the_dataset_is_refused() -> None:
    chat = ["hi there, anyone around?", "hello", "how was the game last night", "we won 3-1"]
    dataset = pd.concat([_messages("c1", chat), _messages("c2", ["hi"], split="test")])
    with pytest.raises(BenignSetError, match=r"'ours': 1 of its conversations .* 'c1' = 'c1'"):
        check_no_overlap("ours", _messages("c1", chat), dataset)
    # The same messages under another id (a re-export) are the same conversation.
    copied = _messages("x9", ["Hi  there, anyone AROUND?", *chat[1:]])
    with pytest.raises(BenignSetError, match=r"message for message, e.g. 'x9' = 'c1' in split"):
        check_no_overlap("ours", copied, dataset)
    # An id that recurs with other messages (logs numbered 1, 2, ...) is not an overlap, nor
    # is a short exchange that happens to repeat, nor a different conversation.
    check_no_overlap("ours", _messages("c1", ["something", "else", "entirely"]), dataset)
    check_no_overlap("ours", _messages("x1", ["hi"]), dataset)
    check_no_overlap("ours", _messages("x2", [*chat[:3], "we lost"]), dataset)


def test_benign_set_entries_are_checked_at_start(compose_cfg, tmp_path: Path) -> None:
    bad = [
        ("[{name:a,source:twitter}]", r"benign_sets\[0\]: source 'twitter'"),
        ("[{name:a,source:chatlog}]", r"benign_sets\[0\]: source chatlog needs a path"),
        (f"[{{name:a,source:chatlog,path:{tmp_path}/none.csv}}]", r"none.csv does not exist"),
        ("[{name:a,source:chitchat},{name:a,source:chitchat}]", r"name 'a' is used twice"),
        ("[{name:'a b',source:chitchat}]", r"name 'a b'"),
        ("[{name:a,source:chitchat,show_text:yes}]", r"show_text 'yes'"),
    ]
    for value, reason in bad:
        with pytest.raises(ConfigError, match=reason):
            validate_config(compose_cfg("scale=tiny", f"evaluate.benign_sets={value}"))
    assert parse_benign_sets([{"name": "cc", "source": "chitchat"}])[0].show_text is False


def test_the_generator_never_uses_held_out_conversations() -> None:
    hosts = chitchat.load_conversations()
    pools = split_pool(hosts, seed=42, holdout_share=0.1)
    used = {h.source_id for split in pools.values() for kind in split.values() for h in kind}
    held_out = {h.source_id for h in chitchat.held_out_conversations(0.1)}
    assert held_out and not used & held_out
    assert 0.07 < len(held_out) / len(hosts) < 0.13
    assert held_out == {h.source_id for h in chitchat.held_out_conversations(0.1)}, "stable"


@pytest.mark.pipeline
@pytest.mark.slow
def test_audit_experiment_logs_benign_rates_ablation_probe_and_card(compose_cfg) -> None:
    cfg = compose_cfg(
        "experiment=audit",
        "scale=tiny",
        "evaluate.bootstrap.n_resamples=50",
        "evaluate.top_k=5",
        "progress=false",
    )
    result = pipeline.run(cfg)
    metrics = result.stages["evaluate"].metrics
    assert 0.0 <= metrics["benign/chitchat/false_positive_rate"] <= 1.0
    assert (
        metrics["benign/chitchat/false_positive_rate_ci_low"]
        <= metrics["benign/chitchat/false_positive_rate"]
        <= metrics["benign/chitchat/false_positive_rate_ci_high"]
    )
    n_held_out = len(chitchat.held_out_conversations(0.1))
    assert metrics["benign/chitchat/n_conversations"] == n_held_out
    assert 0.0 <= metrics["benign/chitchat/ks_vs_test_negatives"] <= 1.0
    assert 0.0 <= metrics["audit/cue_ablation/recall_masked"] <= 1.0
    assert metrics["audit/cue_ablation/n_positive"] > 0
    assert 0.0 <= metrics["audit/source_probe_auc"] <= 1.0
    evaluation = latest_dir(cfg.paths.run_dir, "evaluation")
    top = pd.read_parquet(evaluation / "benign-chitchat-top.parquet")
    assert len(top) == 5 and "question_rate" in top and "top_terms" in top
    assert "example_text" not in top, "real benign text only with the set's show_text"
    assert (evaluation / "benign-chitchat-scores.png").is_file()
    summary = json.loads((evaluation / "evaluation.json").read_text())
    assert summary["audit"]["source_probe"]["reading"]
    card = (latest_dir(cfg.paths.run_dir, "report") / "MODEL_CARD.md").read_text()
    assert "## Shortcut audit" in card and "| chitchat | chitchat |" in card
    assert "**Cue ablation**" in card and "**Source probe**" in card


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_chat_log_benign_set_that_is_the_dataset_is_refused(compose_cfg, tmp_path) -> None:
    """A team's export that is (partly) the data the model learned from is refused, read as
    the evaluate stage reads a benign set."""
    from grooming_detect.data.schema import read_table
    from grooming_detect.evaluation.audit import BenignSet, load_benign_messages

    cfg = compose_cfg("scale=tiny", "stages=[data]")
    pipeline.run(cfg)
    processed = dataset_dir(cfg)
    log = write_chatlog("log_no_times", processed, tmp_path / "logs")
    benign = load_benign_messages(BenignSet("mine", "chatlog", log), None)
    with pytest.raises(BenignSetError, match=r"benign set 'mine': \d+ of its conversations are in"):
        check_no_overlap("mine", benign, read_table(processed, "messages"))
    # Renamed conversations are still recognised by their messages.
    renamed = benign.assign(conversation_id="export-" + benign["conversation_id"])
    with pytest.raises(BenignSetError, match=r"message for message"):
        check_no_overlap("mine", renamed, read_table(processed, "messages"))
