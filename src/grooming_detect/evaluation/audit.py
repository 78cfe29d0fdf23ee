"""False alarms on benign traffic, and a shortcut audit (``evaluate.benign_sets``,
``evaluate.audit``).

Benign sets. Each entry of ``evaluate.benign_sets`` names a corpus known to hold no grooming:
``{name, source: chitchat | chatlog | pan12, path, show_text}``. ``chitchat`` is the part of the
chitchat-dataset package that the synthetic generator never used
(``data.generator.benign_holdout_share``; for other data, every package conversation). A set is
scored by the code ``grooming-detect-score`` runs, with the trained model, its calibrator and
its tuned threshold, and logged under ``benign/<name>/``: units and conversations scored, the
false-positive rate of the model's unit with a bootstrap interval, alerts per 10k
conversations, the KS statistic of its scores against the test negatives' (and a histogram of
both), and the top-K highest-scoring items with their behavioural profile and the terms that
pushed them up (linear models). The sets are real people's chat: no text is written unless the
set says ``show_text: true``, and a term is named only when ``evaluate.min_term_authors`` items
of the set use it. A set that shares a conversation with the dataset (the same
``conversation_id``, or the same sequence of messages) is refused.

Cue ablation (``evaluate.audit.cue_ablation``). The test positives are scored again with every
lexicon phrase (``features.lexicons``, matched as the cue features match them) removed from the
messages of their conversations; ``audit/cue_ablation/*`` records recall at the threshold
before and after. A model that keeps its recall without the cues reads something else.

Probe battery (``evaluate.audit.probes``): metadata-only, style-only, partner-only and
template-lookup probes, each with test PR-AUC beside chance (`evaluation.probes`); written to
``probes.csv`` and shown on the card.

Source probe (``evaluate.audit.source_probe``). A TF-IDF logistic regression learns to tell
conversations with a positive author from the others on cue-masked text (lexicon phrases
removed, and the predators' marker lines too where line truth names them: the embedded corpus;
train and validation conversations) and is scored on the test conversations:
``audit/source_probe_auc``. Near 0.5:
without the cue words the two classes' conversations look alike; near 1: words other than the
cues (or the sources' style) separate them, and a model can learn the corpus instead of the
behaviour.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from scipy.stats import binomtest, ks_2samp

from grooming_detect.data import chitchat
from grooming_detect.data.schema import read_table
from grooming_detect.evaluation.profiles import profiles
from grooming_detect.features.behaviour import lexicon_pattern
from grooming_detect.stage import StageContext

log = logging.getLogger(__name__)

BENIGN_SOURCES = ("chitchat", "chatlog", "pan12")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
#: A conversation under another id counts as the same conversation only with at least this
#: many messages and characters (a short "hi" / "hello" / "bye" is no match).
MIN_MESSAGES_FOR_CONTENT_MATCH = 4
MIN_CHARS_FOR_CONTENT_MATCH = 40
#: Share of the chitchat-dataset conversations held out when the data is not the synthetic
#: corpus (whose generator records its own): the same conversations, by hash.
DEFAULT_HOLDOUT_SHARE = 0.1


class BenignSetError(ValueError):
    """A benign set is misconfigured, unreadable, or overlaps the dataset."""


@dataclass(frozen=True)
class BenignSet:
    name: str
    source: str
    path: Path | None = None
    show_text: bool = False


def parse_benign_sets(entries: Any) -> list[BenignSet]:
    """Check ``evaluate.benign_sets`` (a list of mappings); errors name the entry."""
    if entries is None:
        return []
    if isinstance(entries, str | bytes) or not isinstance(entries, Sequence):
        raise BenignSetError(
            f"evaluate.benign_sets: expected a list of {{name, source, path}} entries, got "
            f"{entries!r:.100}"
        )
    sets: list[BenignSet] = []
    for index, entry in enumerate(entries):
        where = f"evaluate.benign_sets[{index}]"
        if not isinstance(entry, Mapping):
            raise BenignSetError(f"{where}: expected a mapping with name and source")
        unknown = set(entry) - {"name", "source", "path", "show_text"}
        if unknown:
            raise BenignSetError(
                f"{where}: unknown key(s) {sorted(unknown)}; expected name, source, path, show_text"
            )
        name, source = entry.get("name"), entry.get("source")
        if not isinstance(name, str) or not _NAME.match(name):
            raise BenignSetError(f"{where}: name {name!r}; expected letters, digits, _ . -")
        if name in {s.name for s in sets}:
            raise BenignSetError(f"{where}: name {name!r} is used twice")
        if source not in BENIGN_SOURCES:
            raise BenignSetError(f"{where}: source {source!r}; expected one of {BENIGN_SOURCES}")
        show_text = entry.get("show_text", False)
        if not isinstance(show_text, bool):
            raise BenignSetError(f"{where}: show_text {show_text!r}; expected true or false")
        path = entry.get("path")
        if source == "chitchat":
            if path is not None:
                raise BenignSetError(f"{where}: source chitchat reads the package; drop path")
            sets.append(BenignSet(name, source, None, show_text))
            continue
        if not isinstance(path, str) or not path:
            raise BenignSetError(f"{where}: source {source} needs a path to the file")
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            raise BenignSetError(f"{where}: {resolved} does not exist or is not a file")
        suffix = resolved.suffix.lower()
        if source == "pan12" and suffix != ".xml":
            raise BenignSetError(f"{where}: source pan12 expects a PAN-2012 .xml file")
        if source == "chatlog" and suffix not in (".csv", ".jsonl", ".ndjson"):
            raise BenignSetError(f"{where}: source chatlog expects a .csv or .jsonl file")
        sets.append(BenignSet(name, source, resolved, show_text))
    return sets


def chitchat_messages(share: float | None) -> pd.DataFrame:
    """The held-out package conversations as messages (``share`` None: the default share,
    for data that did not come from the synthetic generator, a chat log exported from it
    included)."""
    hosts = chitchat.held_out_conversations(DEFAULT_HOLDOUT_SHARE if share is None else share)
    if not hosts:
        raise BenignSetError(
            "benign set chitchat: the dataset's generator used every chitchat conversation "
            "(data.generator.benign_holdout_share=0), so none is unseen benign traffic; "
            "regenerate with a share above 0"
        )
    rows: dict[str, list[Any]] = {k: [] for k in ("conversation_id", "line", "author", "time")}
    texts: list[str] = []
    for host in hosts:
        conversation = f"chitchat-{host.source_id}"
        rows["conversation_id"] += [conversation] * len(host)
        rows["line"] += list(range(1, len(host) + 1))
        rows["author"] += [f"{conversation}-s{speaker}" for speaker in host.speakers]
        rows["time"] += [f"{m // 60:02d}:{m % 60:02d}" for m in host.minutes]
        texts += host.texts
    return pd.DataFrame({**rows, "text": texts})


def load_benign_messages(benign: BenignSet, holdout_share: float | None) -> pd.DataFrame:
    if benign.source == "chitchat":
        return chitchat_messages(holdout_share)
    from grooming_detect.scoring.messages import read_messages

    assert benign.path is not None
    return read_messages(benign.path).drop(columns=["split"], errors="ignore")


def conversation_digests(messages: pd.DataFrame) -> pd.DataFrame:
    """Per conversation: a digest of its message texts in line order (case and spacing
    ignored), and whether it is long enough to be recognised under another id."""
    ordered = messages.sort_values(["conversation_id", "line"], kind="stable")
    normal = ordered["text"].fillna("").astype(str).str.lower().str.split().str.join(" ")
    grouped = normal.groupby(ordered["conversation_id"], sort=False)
    joined = grouped.agg("\x1f".join)
    return pd.DataFrame(
        {
            "digest": joined.map(lambda text: hashlib.sha256(text.encode("utf-8")).hexdigest()),
            "distinctive": (grouped.size() >= MIN_MESSAGES_FOR_CONTENT_MATCH)
            & (joined.str.len() >= MIN_CHARS_FOR_CONTENT_MATCH),
        }
    )


def check_no_overlap(name: str, benign: pd.DataFrame, dataset: pd.DataFrame) -> None:
    """Refuse a benign set that shares a conversation with the dataset (any split): the same
    messages under the same id, or (for a conversation of some length) under another id. An id
    that merely recurs with other messages (logs numbered 1, 2, ...) is no overlap."""
    split_of = dataset.drop_duplicates("conversation_id").set_index("conversation_id")["split"]
    theirs = conversation_digests(dataset)
    ours = conversation_digests(benign)
    same_id = ours.index.isin(theirs.index)
    same_text = ours["digest"].to_numpy() == theirs["digest"].reindex(ours.index).to_numpy()
    known = theirs.loc[theirs["distinctive"]]
    first_of = pd.Series(known.index, index=known["digest"].to_numpy())
    first_of = first_of[~first_of.index.duplicated()]
    copied = ours["distinctive"].to_numpy() & ours["digest"].isin(first_of.index).to_numpy()
    overlap = same_id & same_text | copied
    if overlap.any():
        example = ours.index[overlap][0]
        position = ours.index.get_loc(example)
        match = (
            example
            if same_id[position] and same_text[position]
            else first_of[ours.loc[example, "digest"]]
        )
        raise BenignSetError(
            f"benign set {name!r}: {int(overlap.sum())} of its conversations are in the "
            f"dataset, message for message, e.g. {example!r} = {match!r} in split "
            f"{split_of[match]!r}; a benign set must be traffic no model has seen"
        )
    if same_id.any():
        log.info(
            "benign set %s: %d conversation id(s) also name other conversations of the dataset "
            "(different messages; not an overlap)",
            name,
            int(same_id.sum()),
        )


def mask_cues(texts: pd.Series, lexicons: Mapping[str, Sequence[str]]) -> pd.Series:
    """`texts` with every lexicon phrase removed (matched as the cue features match them:
    case-insensitive, on word boundaries); nothing else changes."""
    pattern = lexicon_pattern([p for phrases in lexicons.values() for p in phrases])
    return texts.fillna("").astype(str).str.replace(pattern, "", regex=True)


def rate_interval(flags: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """The share of True in `flags` and its exact (Clopper-Pearson) interval. Not a bootstrap:
    with no false positive, the usual benign result, a bootstrap interval collapses to [0, 0],
    while the exact one says how many could still hide behind zero (n=1,000: up to 0.37 %)."""
    flags = np.asarray(flags, dtype=bool)
    if len(flags) == 0:
        return float("nan"), float("nan"), float("nan")
    interval = binomtest(int(flags.sum()), len(flags)).proportion_ci(confidence, "exact")
    return float(flags.mean()), float(interval.low), float(interval.high)


def interpret_probe(auc: float) -> str:
    if not np.isfinite(auc):
        return "not measured (one class missing from a split)"
    if auc < 0.6:
        return (
            "without the cue words the two classes' conversations look alike; little source signal"
        )
    if auc < 0.8:
        return "some signal beyond the cue words separates the classes; check what a model reads"
    return (
        "words other than the lexicon's cue words separate the classes (paraphrased cues, "
        "style, or the source); a model can score well on this corpus without the behaviour "
        "the cues describe, so check which before trusting it on other traffic"
    )


def interpret_ablation(recall: float, masked: float) -> str:
    if not recall:
        return "no positive reached the threshold before masking"
    kept = masked / recall
    if kept >= 0.8:
        return (
            f"the model keeps {kept:.0%} of its recall without the cue words: it reads "
            "something besides them (other words, style, or the source)"
        )
    return f"the model keeps {kept:.0%} of its recall without the cue words: it relies on them"


def interpret_ks(ks: float) -> str:
    if ks < 0.1:
        return "its scores look like the test negatives'"
    if ks < 0.3:
        return "its scores differ somewhat from the test negatives'"
    return (
        "its scores differ clearly from the test negatives': the test set is not like this traffic"
    )


# --------------------------------------------------------------------------------------------
# Running the audit inside the evaluate stage
# --------------------------------------------------------------------------------------------
@dataclass
class AuditContext:
    """What the evaluate stage hands over: the model and its settings, the dataset, the test
    negatives' scores, and where to write."""

    model: Any
    meta: dict[str, Any]
    threshold: float
    lexicons: dict[str, list[str]]
    separator: str
    messages: pd.DataFrame
    conversations: pd.DataFrame
    test_predictions: pd.DataFrame
    out_dir: Path
    confidence: float
    top_k: int
    min_term_authors: int
    max_text_chars: int
    #: The predators' marker lines where line truth exists (``predator_lines``), else None.
    truth_lines: pd.DataFrame | None = None


def _score(actx: AuditContext, messages: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Calibrated unit scores and conversation scores of `messages`, as grooming-detect-score
    computes them."""
    from grooming_detect.scoring.messages import SPLIT, score_messages

    authors, conversations = score_messages(
        actx.model, actx.meta, messages.assign(split=SPLIT), actx.lexicons, actx.separator
    )
    conversation_scores = conversations.set_index("conversation_id")["score"]
    if actx.meta.get("unit", "author") == "conversation":
        return conversation_scores, conversation_scores
    return authors.set_index("author")["score"], conversation_scores


def _top_items(
    actx: AuditContext, benign: BenignSet, messages: pd.DataFrame, scores: pd.Series
) -> pd.DataFrame:
    from grooming_detect.evaluation import error_analysis
    from grooming_detect.models.units import INPUTS, UNITS, features_of
    from grooming_detect.scoring.messages import SPLIT, model_rows

    unit = UNITS[actx.meta.get("unit", "author")]
    top = scores.sort_values(ascending=False).head(actx.top_k)
    table = pd.DataFrame(
        {
            "id": top.index.astype(str),
            "score": top.to_numpy(),
            "flagged": top.to_numpy() >= actx.threshold,
        }
    )
    profile = profiles(messages.assign(split=SPLIT), unit.name, actx.lexicons)
    profile = profile.reset_index().rename(columns={unit.id_column: "id"}).drop(columns="split")
    table = table.merge(profile, on="id", how="left")
    kind = INPUTS[actx.meta.get("input") or unit.name]
    if kind.name == unit.name and error_analysis.linear_parts(actx.model) is not None:
        _, _, reference = model_rows(
            actx.meta, messages.assign(split=SPLIT), actx.lexicons, actx.separator, actx.model
        )
        rows = reference.set_index(unit.id_column).loc[table["id"]].reset_index()
        table["top_terms"] = error_analysis.linear_explanations(
            actx.model,
            features_of(rows, kind),
            reference=features_of(reference, kind),
            min_term_rows=0 if benign.show_text else actx.min_term_authors,
        )
    if benign.show_text:
        first = messages.sort_values(["conversation_id", "line"]).groupby(unit.id_column)["text"]
        joined = first.agg(lambda texts: " | ".join(texts.head(5)))
        limit = actx.max_text_chars
        table["example_text"] = [
            text if len(text) <= limit else text[: limit - 1] + "…"
            for text in table["id"].map(joined).fillna("")
        ]
    return table


def _benign_metrics(
    actx: AuditContext,
    scores: pd.Series,
    conversation_scores: pd.Series,
    negatives: np.ndarray,
    n_messages: int,
    unit: str,
) -> dict[str, float]:
    """A benign set's measures at the model's threshold: counts, the false-positive rate with its
    interval, alerts per 10k conversations, and its scores against the test negatives'."""
    flags = scores.to_numpy() >= actx.threshold
    fpr, low, high = rate_interval(flags, actx.confidence)
    ks = float(ks_2samp(scores.to_numpy(), negatives).statistic) if len(negatives) else np.nan
    conversation_flags = conversation_scores.to_numpy() >= actx.threshold
    return {
        f"n_{unit}s": float(len(scores)),
        "n_conversations": float(len(conversation_scores)),
        "n_messages": float(n_messages),
        "false_positive_rate": fpr,
        "false_positive_rate_ci_low": low,
        "false_positive_rate_ci_high": high,
        "n_flagged": float(flags.sum()),
        "alerts_per_10k_conversations": float(conversation_flags.mean() * 10_000),
        "ks_vs_test_negatives": ks,
        "median_score": float(np.median(scores)),
        "test_negatives_median_score": float(np.median(negatives)) if len(negatives) else np.nan,
    }


def benign_set_report(
    actx: AuditContext, benign: BenignSet, messages: pd.DataFrame
) -> tuple[dict[str, float], dict[str, Any], dict[str, Path]]:
    """Score one benign set; its metrics, its summary for the card and its files."""
    from grooming_detect.evaluation import plots
    from grooming_detect.io import write_parquet

    check_no_overlap(benign.name, messages, actx.messages)
    unit = actx.meta.get("unit", "author")
    scores, conversation_scores = _score(actx, messages)
    negatives = actx.test_predictions.loc[~actx.test_predictions["label"], "score"].to_numpy()
    prefix = f"benign/{benign.name}"
    measures = _benign_metrics(actx, scores, conversation_scores, negatives, len(messages), unit)
    metrics = {f"{prefix}/{name}": value for name, value in measures.items()}
    ks = measures["ks_vs_test_negatives"]
    top = _top_items(actx, benign, messages, scores)
    outputs = {
        f"benign_{benign.name}_top": write_parquet(
            actx.out_dir / f"benign-{benign.name}-top.parquet", top
        ),
        f"benign_{benign.name}_histogram": plots.distribution_figure(
            {
                f"{benign.name} ({unit}s, n={len(scores)})": scores.to_numpy(),
                f"test negatives (n={len(negatives)})": negatives,
            },
            actx.threshold,
            f"Benign traffic against test negatives ({unit}s)",
            actx.out_dir / f"benign-{benign.name}-scores.png",
        ),
    }
    summary = {
        "name": benign.name,
        "source": benign.source,
        "unit": unit,
        **measures,
        "ks_reading": interpret_ks(ks) if np.isfinite(ks) else "no test negatives",
        "confidence": actx.confidence,
    }
    log.info(
        "benign set %s: %d %ss, %d flagged (false-positive rate %.4f [%.4f, %.4f]), %.1f alerts "
        "per 10k conversations, KS %.3f against the test negatives",
        benign.name,
        len(scores),
        unit,
        int(measures["n_flagged"]),
        measures["false_positive_rate"],
        measures["false_positive_rate_ci_low"],
        measures["false_positive_rate_ci_high"],
        measures["alerts_per_10k_conversations"],
        ks,
    )
    return metrics, summary, outputs


def cue_ablation(actx: AuditContext) -> tuple[dict[str, float], dict[str, Any]]:
    """Recall on the test positives at the threshold, with and without the cue words."""
    unit = actx.meta.get("unit", "author")
    predictions = actx.test_predictions
    positives = set(predictions.loc[predictions["label"], "id"])
    test = actx.messages[actx.messages["split"] == "test"]
    key = "author" if unit == "author" else "conversation_id"
    conversations = set(test.loc[test[key].isin(positives), "conversation_id"])
    messages = test[test["conversation_id"].isin(conversations)].drop(columns="split")
    if not positives or messages.empty:
        return {}, {"skipped": "no positive in the test split"}
    pattern = lexicon_pattern([p for phrases in actx.lexicons.values() for p in phrases])
    own = messages[messages[key].isin(positives)]
    cue_share = float(own["text"].fillna("").str.contains(pattern).mean())
    before, _ = _score(actx, messages)
    after, _ = _score(actx, messages.assign(text=mask_cues(messages["text"], actx.lexicons)))
    # Every positive counts: one the scorer did not return (no message left) is not flagged.
    ids = sorted(positives)
    before = before.reindex(ids).fillna(0.0)
    after = after.reindex(ids).fillna(0.0)
    recall = float((before >= actx.threshold).mean())
    masked = float((after >= actx.threshold).mean())
    metrics = {
        "audit/cue_ablation/recall": recall,
        "audit/cue_ablation/recall_masked": masked,
        "audit/cue_ablation/recall_drop": recall - masked,
        "audit/cue_ablation/mean_score": float(before.mean()),
        "audit/cue_ablation/mean_score_masked": float(after.mean()),
        "audit/cue_ablation/positive_messages_with_cues": cue_share,
        "audit/cue_ablation/n_positive": float(len(ids)),
    }
    summary = {
        **{k.removeprefix("audit/cue_ablation/"): v for k, v in metrics.items()},
        "reading": interpret_ablation(recall, masked),
    }
    log.info(
        "cue ablation: recall %.3f -> %.3f with the cue words masked (%s)",
        recall,
        masked,
        summary["reading"],
    )
    return metrics, summary


def source_probe(actx: AuditContext) -> tuple[dict[str, float], dict[str, Any]]:
    """ROC-AUC of a classifier telling positive from negative conversations on cue-masked
    text: trained on train and validation conversations, scored on test."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline

    messages = actx.messages.sort_values(["conversation_id", "line"], kind="stable")
    n_truth_lines = 0
    if actx.truth_lines is not None and len(actx.truth_lines):
        # Where the line truth names the predators' marker lines (the embedded corpus, for every
        # split), those lines go too: the lexicon does not know every wording, and the probe
        # asks what separates the conversations *besides* the markers.
        keys = pd.MultiIndex.from_frame(actx.truth_lines[["conversation_id", "line"]])
        marked = pd.MultiIndex.from_frame(messages[["conversation_id", "line"]]).isin(keys)
        n_truth_lines = int(marked.sum())
        messages = messages[~marked]
    masked = messages.assign(text=mask_cues(messages["text"], actx.lexicons))
    texts = masked.groupby("conversation_id", sort=False)["text"].agg(" ".join)
    table = actx.conversations.drop_duplicates("conversation_id").set_index("conversation_id")
    table = table.assign(text=texts.reindex(table.index).fillna(""))
    train = table[table["split"].isin(["train", "validation"])]
    test = table[table["split"] == "test"]
    labels_train = train["has_predator"].to_numpy(dtype=bool)
    labels_test = test["has_predator"].to_numpy(dtype=bool)
    if len(set(labels_train)) < 2 or len(set(labels_test)) < 2:
        summary = {"auc": float("nan"), "reading": interpret_probe(float("nan"))}
        return {}, summary
    probe = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=200_000, sublinear_tf=True),
        LogisticRegression(max_iter=2000, class_weight="balanced"),
    )
    try:
        probe.fit(train["text"], labels_train)
    except ValueError as error:  # e.g. no term in two conversations of a tiny corpus
        log.warning("source probe not measured: %s", error)
        return {}, {"auc": float("nan"), "reading": f"not measured ({error})"}
    auc = float(roc_auc_score(labels_test, probe.predict_proba(test["text"])[:, 1]))
    metrics = {
        "audit/source_probe_auc": auc,
        "audit/source_probe_n_train": float(len(train)),
        "audit/source_probe_n_test": float(len(test)),
        "audit/source_probe_masked_truth_lines": float(n_truth_lines),
    }
    summary = {
        "auc": auc,
        "n_train": len(train),
        "n_test": len(test),
        "masked_truth_lines": n_truth_lines,
        "reading": interpret_probe(auc),
    }
    log.info("source probe on cue-masked text: ROC-AUC %.3f (%s)", auc, summary["reading"])
    return metrics, summary


def probe_battery_report(
    actx: AuditContext, authors: pd.DataFrame, held_out_families: str | None, seed: int
) -> tuple[dict[str, float], dict[str, Any], dict[str, Path]]:
    """The probe battery (`evaluation.probes`) on the dataset: metrics, the card's rows, and
    ``probes.csv`` (the table the card shows)."""
    from grooming_detect.evaluation.probes import probe_battery, training_wordings
    from grooming_detect.io import write_csv

    wordings = training_wordings(held_out_families) if held_out_families else None
    try:
        table = probe_battery(actx.messages, authors, wordings, seed=seed)
    except ValueError as error:
        log.warning("probe battery not measured: %s", error)
        return {}, {"skipped": str(error)}, {}
    path = actx.out_dir / "probes.csv"
    write_csv(path, table)
    metrics = {f"audit/probe/{row.probe}_pr_auc": float(row.pr_auc) for row in table.itertuples()}
    metrics["audit/probe/chance"] = float(table["chance"].iloc[0])
    summary = {"rows": table.to_dict(orient="records")}
    return metrics, summary, {"probes": path}


def run_audit(
    actx: AuditContext,
    benign_sets: list[BenignSet],
    holdout_share: float | None,
    ablation: bool,
    probe: bool,
) -> tuple[dict[str, float], dict[str, Any], dict[str, Path]]:
    """Every configured part of the audit: metrics, the summary the card reads, files."""
    metrics: dict[str, float] = {}
    summary: dict[str, Any] = {"benign_sets": []}
    outputs: dict[str, Path] = {}
    for benign in benign_sets:
        messages = load_benign_messages(benign, holdout_share)
        set_metrics, set_summary, set_outputs = benign_set_report(actx, benign, messages)
        metrics |= set_metrics
        summary["benign_sets"].append(set_summary)
        outputs |= set_outputs
    if ablation:
        ablation_metrics, summary["cue_ablation"] = cue_ablation(actx)
        metrics |= ablation_metrics
    if probe:
        probe_metrics, summary["source_probe"] = source_probe(actx)
        metrics |= probe_metrics
    return metrics, summary, outputs


def audit_from_config(
    cfg: DictConfig,
    ctx: StageContext,
    model: Any,
    meta: dict[str, Any],
    split_predictions: dict[str, pd.DataFrame],
    messages: pd.DataFrame,
    metrics: dict[str, float],
    outputs: dict[str, Path],
) -> dict[str, Any]:
    """Benign sets, cue ablation and source probe (`evaluation.audit`), when configured; adds
    to `metrics` and `outputs` and returns the summary the model card reads."""
    # Imported here: validation reads this module's benign-set parser before MLflow is loaded.
    from grooming_detect import tracking
    from grooming_detect.scoring.messages import feature_settings

    benign_sets = parse_benign_sets(OmegaConf.to_container(cfg.evaluate.benign_sets, resolve=True))
    ablation, probe = bool(cfg.evaluate.audit.cue_ablation), bool(cfg.evaluate.audit.source_probe)
    battery = bool(cfg.evaluate.audit.probes)
    if not (benign_sets or ablation or probe or battery):
        return {}
    if "test" not in split_predictions:
        raise ValueError(
            "evaluate.benign_sets and evaluate.audit compare with the test split; add test to "
            "evaluate.splits"
        )
    lexicons, separator = feature_settings(meta, None, None)
    actx = AuditContext(
        model=model,
        meta=meta,
        threshold=float(meta["threshold"]),
        lexicons=lexicons,
        separator=separator,
        messages=messages,
        conversations=read_table(ctx.dataset_dir, "conversations"),
        test_predictions=split_predictions["test"],
        out_dir=ctx.evaluation_dir,
        confidence=float(cfg.evaluate.bootstrap.confidence),
        top_k=int(cfg.evaluate.top_k),
        min_term_authors=int(cfg.evaluate.min_term_authors),
        max_text_chars=int(cfg.evaluate.max_text_chars),
        truth_lines=(
            read_table(ctx.dataset_dir, "predator_lines")
            if (ctx.dataset_dir / "predator_lines.parquet").is_file()
            else None
        ),
    )
    holdout = (
        float(cfg.data.generator.benign_holdout_share) if cfg.data.source == "synthetic" else None
    )
    audit_metrics, summary, audit_outputs = run_audit(actx, benign_sets, holdout, ablation, probe)
    if battery:
        held_out = (
            str(cfg.data.generator.held_out_families) if cfg.data.source == "synthetic" else None
        )
        authors = read_table(ctx.dataset_dir, "authors")
        battery_metrics, summary["probes"], battery_outputs = probe_battery_report(
            actx, authors, held_out, int(cfg.seed)
        )
        audit_metrics |= battery_metrics
        audit_outputs |= battery_outputs
    metrics.update(audit_metrics)
    outputs.update(audit_outputs)
    for benign in benign_sets:
        tracking.log_table(
            pd.read_parquet(audit_outputs[f"benign_{benign.name}_top"]),
            f"tables/benign-{benign.name}-top.json",
        )
    return summary
