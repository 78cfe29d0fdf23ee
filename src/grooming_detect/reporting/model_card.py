"""The model card (Mitchell et al. 2019, "Model Cards for Model Reporting"), rendered from the
evaluation summary, the model metadata and the data manifest of one run.

Every number comes from ``evaluation.json``, which holds exactly the metrics logged to the
evaluate stage's MLflow run that the card names. On synthetic data the card's first line says
that its numbers say nothing about real-world performance.
"""

from __future__ import annotations

import html
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd

from grooming_detect import __version__
from grooming_detect.data.schema import SPLITS
from grooming_detect.reporting.summary import MIN_POSITIVES, few_positives

TEMPLATE = Path(__file__).with_name("templates") / "model_card.md"
SYNTHETIC_CARD_WARNING = (
    "> **Synthetic data.** Every number in this card comes from the embedded synthetic corpus "
    "and says nothing about real-world performance.\n\n"
)
#: Section headings the card must hold (checked by the tests).
SECTIONS = (
    "Model details",
    "Intended use",
    "Out-of-scope use",
    "Factors",
    "Metrics",
    "Evaluation data",
    "Training data",
    "Quantitative analyses",
    "Calibration",
    "False-positive analysis",
    "Ethical considerations",
    "Caveats and recommendations",
)


#: Characters that Markdown reads as formatting or links: escaped with a backslash.
_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]()!#|~"})


def markdown_text(value: object) -> str:
    """User data (an id, a message, a term, a dataset name) as inert Markdown inline text: HTML
    escaped (a ``<script>`` in an id is shown, never run, wherever the Markdown is rendered),
    Markdown's formatting and link characters escaped, line breaks flattened. Every report and
    card writes user data through this one function."""
    text = html.escape(str(value), quote=False).translate(_MARKDOWN_SPECIAL)
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def percent_text(confidence: float | None) -> str:
    """A confidence level as a percentage for prose (``0.95`` -> ``95``)."""
    return "95" if confidence is None else f"{100 * float(confidence):g}"


def fmt(value: float | None) -> str:
    """Three decimals, or ``n/a`` for a missing or undefined value."""
    return "n/a" if value is None or value != value else f"{value:.3f}"


def rate_text(value: float | None) -> str:
    """A rate per 10,000 items for prose and tables: one decimal (``157.2``), ``n/a`` when
    undefined."""
    return _count(value, ",.1f")


#: What a reader must know about each kind of data before trusting a number, by manifest source.
PAN12_CAVEATS = (
    "- **PAN-2012 shortcut.** Positives are chats of convicted offenders with adult decoys "
    "posing as\n  minors, from one source; negatives come from other sources (IRC logs, adult "
    "chat sites). A model\n  can learn the source rather than grooming: check false positives "
    "and try source-matched\n  negatives before trusting a score.\n"
    "- English only, from 2012-era platforms: language, platforms and behaviour have changed "
    "since.\n"
    "- The Problem 2 (line) truth is pooled from participants' submissions and partial: "
    "line-level\n  recall against it is a lower bound of little precision.\n"
    "- The authors of the eSPD (early sexual predator detection) datasets warn that models "
    "trained on\n  PAN-2012 should not be used in practice; this card does not lift that "
    "warning.\n"
)
SYNTHETIC_CAVEATS = (
    "- **Synthetic positives.** Risk in the embedded corpus is template behavioural markers "
    "injected\n  into real chit-chat: the numbers say how well the model finds those markers, "
    "not grooming,\n  and nothing about PAN-2012 or any platform.\n"
    "- English only, from one 2018 university-lab chat collection.\n"
)
CHATLOG_CAVEATS = (
    "- **Your own labels.** The numbers hold for this chat log's platform, period and "
    "labelling\n  procedure only; labels that follow past moderation decisions teach the "
    "model those decisions,\n  including their blind spots.\n"
)


def pan12_caveats(manifest: dict[str, Any], short: bool = False) -> str:
    """The data caveats (Markdown bullets) that fit the run's data: the PAN-2012 ones for the
    official corpus only; `short` keeps the first bullet."""
    if manifest.get("synthetic"):
        text = SYNTHETIC_CAVEATS
    elif manifest.get("source") == "pan12":
        text = PAN12_CAVEATS
    else:
        text = CHATLOG_CAVEATS
    if short:
        return text.split("\n- ")[0].rstrip("\n") + "\n"
    return text


def with_interval(metrics: dict[str, float], key: str) -> str:
    """``0.846 [0.701, 0.957]`` when the bootstrap interval exists, else the value alone."""
    value = fmt(metrics.get(key))
    if f"{key}_ci_low" not in metrics:
        return value
    return f"{value} [{fmt(metrics[f'{key}_ci_low'])}, {fmt(metrics[f'{key}_ci_high'])}]"


def metric_rows(
    metrics: dict[str, float], unit: str, splits: list[str], labels: dict[str, str] | None = None
) -> str:
    """The headline table: counts, set measures at the threshold, ranking measures with CIs
    (a row per split, named by `labels` where given)."""
    rows = []
    for split in splits:
        cells = [
            (labels or {}).get(split, split),
            _count(metrics.get(f"{split}/{unit}/n"), ".0f"),
            _count(metrics.get(f"{split}/{unit}/n_positive"), ".0f"),
            *(
                with_interval(metrics, f"{split}/{unit}/{name}")
                for name in ("precision", "recall", "f1", "f0_5", "pr_auc", "roc_auc")
            ),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def crossfitted(summary: dict[str, Any]) -> bool:
    """Whether the run's decisions were fitted on out-of-fold scores (validation is then
    training data)."""
    if "selection" in summary:
        return summary["selection"] == "crossfit"
    return str(summary.get("threshold_fitted_on", "")).startswith("out-of-fold")


#: PAN-2012 Problem 1 measures the PAN scorer computes from the written submission.
PAN_MEASURES = ("precision", "recall", "f1", "f0_5")


def headline_rows(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """The card's headline table: test first (the PAN-2012 scorer's numbers where they differ
    from the test table's), then the cross-validated decision measures (crossfit) or the
    validation split (holdout, labelled as the in-sample tuning set)."""
    metrics, unit = dict(summary["metrics"]), summary["unit"]
    splits, labels = [], {}
    pan = {name: metrics.get(f"test/{unit}/pan_{name}") for name in PAN_MEASURES}
    if unit == "author" and all(v is not None for v in pan.values()):
        agrees = all(abs(pan[n] - metrics.get(f"test/{unit}/{n}", -1)) < 1e-9 for n in pan)
        if agrees:
            labels["test"] = "test (equals the PAN-2012 scorer)"
        else:
            metrics.update({f"pan/{unit}/{n}": v for n, v in pan.items() if v is not None})
            splits.append("pan")
            labels["pan"] = "**test, PAN-2012 scorer (full truth file)**"
            labels["test"] = "test, authors in the test table only"
    if f"test/{unit}/n" in metrics:
        splits.append("test")
    if crossfitted(summary):
        folds = (meta.get("selection") or {}).get("folds", "K")
        metrics.update({f"cv/{unit}/{k}": v for k, v in (meta.get("at_threshold") or {}).items()})
        splits.append("cv")
        labels["cv"] = (
            "cross-validated scores, threshold and calibrator fitted on them "
            f"({folds} grouped folds of train + validation)"
        )
    elif f"validation/{unit}/n" in metrics:
        splits.append("validation")
        labels["validation"] = "validation (tuning set, in-sample)"
    return metric_rows(metrics, unit, splits, labels)


#: Measures the seeds section quotes, with their names in prose.
SEEDS_MEASURES = (("f0_5", "F0.5"), ("precision", "precision"), ("recall", "recall"))
SEEDS_RANKING = (("pr_auc", "PR-AUC"), ("ece", "ECE"))


def seeds_section(seeds: dict[str, Any] | None, metrics: dict[str, float], unit: str) -> str:
    """Mean ± sd over a sweep's seeds beside this run's bootstrap interval (empty without a
    sweep; see `grooming_detect.sweeps`)."""
    if not seeds:
        return ""
    stats = seeds["measures"]
    rows = []
    for name, label in (*SEEDS_MEASURES, *SEEDS_RANKING):
        key = f"test/{unit}/{name}"
        if key not in stats:
            continue
        spread = stats[key]
        rows.append(
            f"| {label} | {fmt(spread['mean'])} ± {fmt(spread['sd'])} "
            f"| {fmt(spread['min'])}–{fmt(spread['max'])} | {with_interval(metrics, key)} |"
        )
    return (
        f"\nAcross {seeds['n_runs']} runs with seeds {', '.join(map(str, seeds['seeds']))} "
        f"({seeds['varies']}; MLflow run `{seeds.get('summary_run_id', 'n/a')}`), on `test`:\n\n"
        "| measure | mean ± sd over seeds | min–max | this run [bootstrap interval] |\n"
        "|---|---|---|---|\n" + "\n".join(rows) + "\n\nThe bootstrap interval resamples the "
        "test set for one fitted model; the spread over seeds comes from what a seed moves "
        "(above). Where the spread is wider than the interval, the interval understates how much "
        "the reported number depends on the procedure.\n"
    )


def calibration_rows(metrics: dict[str, float], unit: str, splits: list[str]) -> str:
    """Calibration table rows: ECE, Brier and log-loss before and after calibration."""
    names = (
        "ece_uncalibrated",
        "ece",
        "brier_uncalibrated",
        "brier",
        "log_loss_uncalibrated",
        "log_loss",
    )
    return "\n".join(
        "| " + " | ".join([s, *(fmt(metrics.get(f"{s}/{unit}/{n}")) for n in names)]) + " |"
        for s in splits
    )


def problem2_text(summary: dict[str, Any]) -> str:
    """PAN-2012 Problem 2 on `test`: the rule the run applied (and where its threshold came
    from, or why it fell back) beside the all-lines baseline."""
    metrics = summary["metrics"]
    if "test/line/f3" not in metrics:
        return ""
    rule, threshold = summary.get("line_rule"), summary.get("line_threshold")
    applied = (
        f"lines whose own score reaches {threshold:.4f}"
        if rule == "scored" and threshold is not None
        else "every line of each named author"
    )
    note = summary.get("line_rule_note")
    text = (
        f"PAN-2012 Problem 2 (lines) on `test`, {applied}"
        + (f" ({note})" if note else "")
        + f": precision {fmt(metrics['test/line/precision'])}, recall "
        f"{fmt(metrics['test/line/recall'])}, F3 {fmt(metrics['test/line/f3'])}."
    )
    if "test/line/f3_all_lines" in metrics and rule == "scored":
        text += (
            " The trivial baseline, every line of each named author, scores precision "
            f"{fmt(metrics['test/line/precision_all_lines'])}, recall "
            f"{fmt(metrics['test/line/recall_all_lines'])}, F3 "
            f"{fmt(metrics['test/line/f3_all_lines'])}: it measures author detection only."
        )
    return text


def _other_levels(metrics: dict[str, float], unit: str, problem2: str = "") -> str:
    if unit != "author":
        return ""
    lines = []
    if "test/conversation/precision" in metrics:
        lines.append(
            "Conversation level on `test` (a conversation scores its highest-scoring author): "
            f"precision {fmt(metrics['test/conversation/precision'])}, recall "
            f"{fmt(metrics['test/conversation/recall'])}, PR-AUC "
            f"{fmt(metrics['test/conversation/pr_auc'])}."
        )
    if problem2:
        lines.append(problem2)
    return ("\n" + "\n".join(lines) + "\n") if lines else ""


def _data_description(manifest: dict[str, Any]) -> str:
    source = manifest["source"]
    if manifest.get("synthetic"):
        generator = (manifest.get("config") or {}).get("generator") or {}
        train_noise = float(generator.get("label_noise", 0.0))
        test_noise = float(generator.get("test_label_noise", 0.0))
        return (
            "The embedded corpus in the official PAN-2012 layout, generated by "
            "`grooming_detect.data.synthetic`: real chat text from the `chitchat-dataset` "
            "package (MIT licence; the BYU PCC lab's Chit-Chat Challenge, an open-domain "
            "conversational dataset of 7,168 conversations between 1,315 participants, "
            "Myers, Etchart and Fulda, 2020) as host conversations, with grooming risk "
            "injected only as non-explicit behavioural markers carried by one author of a "
            "positive conversation, and the same cues used innocently in hard negatives. "
            "No real conversation in it involves grooming. "
            f"Label noise: {train_noise:.0%} of the training truth (train and validation), "
            f"{test_noise:.0%} of the test truth"
            + (" (test labels are clean)." if test_noise == 0 else ".")
        )
    if source == "pan12":
        return "The official PAN-2012 Sexual Predator Identification training and test corpora."
    return f"A team chat log ({source}); labels at {manifest.get('label_level')} level."


def split_shares(manifest: dict[str, Any]) -> str:
    """The achieved shares of each carved split and the train/test author overlap, as card
    bullets (empty for a manifest that does not record them)."""
    lines = []
    for name, entry in sorted((manifest.get("split") or {}).items()):
        largest = entry.get("largest_component") or {}
        override = entry.get("override")
        leak = (
            f"; override `{override}`: {entry.get('authors_on_both_sides', 0)} authors "
            f"({entry.get('positive_authors_on_both_sides', 0)} positive) on both sides"
            if override
            else "; no author on both sides"
        )
        lines.append(
            f"- `{name}` carving: {fmt(entry.get('share_conversations'))} of the conversations "
            f"and {fmt(entry.get('share_positives'))} of the positive conversations (target "
            f"{fmt(entry.get('target_share'))}, tolerance {fmt(entry.get('tolerance'))}); "
            f"largest connected component {largest.get('conversations', '?')} conversations, "
            f"{largest.get('authors', '?')} authors, {largest.get('positives', '?')} positive"
            f"{leak}"
        )
    overlap = manifest.get("author_overlap")
    if overlap:
        lines.append(
            f"- Authors in both the training and the test files: {overlap['authors']} "
            f"({overlap['predators']} predators; {fmt(overlap['share_of_test_authors'])} of "
            "the test authors). They are disclosed, not removed: their test scores may reflect "
            "memorised authors."
        )
    return "".join(f"{line}\n" for line in lines)


def _filters(manifest: dict[str, Any]) -> str:
    settings = manifest.get("config", {}).get("filters")
    removed = manifest.get("filters_removed") or []
    if settings and settings.get("vtpan"):
        account = manifest.get("vtpan_ids") or {}
        found = ", ".join(
            f"{split} {entry.get('found', '?')} of {entry.get('ids', '?')}"
            for split, entry in account.items()
        )
        return (
            "the eSPD benchmark split (VTPAN, Vogt, Leser and Akbik 2021): only its "
            f"conversations are kept, labelled per conversation ({found or 'ids found: n/a'})"
        )
    if not settings or not any(
        settings.get(k)
        for k in ("drop_single_author", "drop_multi_party", "min_messages_per_author")
    ):
        return "none"
    total = (
        pd.DataFrame(removed).groupby("filter")[["conversations", "authors", "predators"]].sum()
        if removed
        else None
    )
    detail = (
        ""
        if total is None
        else "; removed "
        + ", ".join(
            f"{name}: {r.conversations} conversations, {r.authors} authors, {r.predators} predators"
            for name, r in total.iterrows()
        )
    )
    return f"`{json.dumps(settings, sort_keys=True)}`{detail}"


def _slice_rows(evaluation_dir: Path) -> tuple[str, int, int]:
    path = evaluation_dir / "test-fp-slices.parquet"
    if not path.is_file():
        return "| n/a | | | | |", 0, 0
    rates = pd.read_parquet(path)
    rows = "\n".join(
        f"| {r.slice.replace('_', ' ')} | {r.bucket} | {r.negatives} | {r.false_positives} "
        f"| {fmt(r.false_positive_rate)} |"
        for r in rates.itertuples()
    )
    first = rates[rates["slice"] == rates["slice"].iloc[0]]
    return rows, int(first["false_positives"].sum()), int(first["negatives"].sum())


def _rate(value: float, low: float, high: float) -> str:
    return f"{value:.2%} [{low:.2%}, {high:.2%}]"


def shortcut_audit_section(audit: dict[str, Any], threshold: float) -> str:
    """The card's "Shortcut audit" section (empty when the run had no audit)."""
    if not audit or not (
        audit.get("benign_sets") or audit.get("cue_ablation") or audit.get("source_probe")
    ):
        return ""
    lines = [
        "",
        "## Shortcut audit",
        "",
        "Where the model will be used, and whether it reads grooming behaviour or the corpus "
        f"(threshold {threshold:.4f}; `grooming_detect/evaluation/audit.py`).",
        "",
    ]
    sets = audit.get("benign_sets") or []
    if sets:
        lines += [
            f"| benign set | source | units scored | conversations | false-positive rate "
            f"[{sets[0].get('confidence', 0.95):.0%} exact CI] "
            "| alerts per 10k conversations | KS vs test negatives |",
            "|---|---|---|---|---|---|---|",
        ]
        for item in sets:
            unit = item["unit"]
            rate = _rate(
                item["false_positive_rate"],
                item["false_positive_rate_ci_low"],
                item["false_positive_rate_ci_high"],
            )
            lines.append(
                f"| {item['name']} | {item['source']} | {int(item[f'n_{unit}s'])} {unit}s "
                f"| {int(item['n_conversations'])} | {rate} "
                f"| {item['alerts_per_10k_conversations']:.1f} "
                f"| {item['ks_vs_test_negatives']:.3f} |"
            )
        lines.append("")
        for item in sets:
            scored = int(item[f"n_{item['unit']}s"])
            lines.append(
                f"- **{item['name']}**: {int(item['n_flagged'])} of {scored} benign "
                f"{item['unit']}s reach the threshold; {item['ks_reading']}."
            )
        lines.append("")
    ablation = audit.get("cue_ablation") or {}
    if "recall" in ablation:
        lines.append(
            f"- **Cue ablation**: with the lexicon cue words removed from the test positives' "
            f"conversations, recall at the threshold goes from {ablation['recall']:.3f} to "
            f"{ablation['recall_masked']:.3f} ({int(ablation['n_positive'])} positives; "
            f"{ablation['positive_messages_with_cues']:.1%} of their messages hold a cue). "
            f"{ablation['reading'].capitalize()}."
        )
    elif ablation.get("skipped"):
        lines.append(f"- **Cue ablation**: not measured ({ablation['skipped']}).")
    probe = audit.get("source_probe") or {}
    if probe:
        auc = probe.get("auc", float("nan"))
        lines.append(
            f"- **Source probe**: a TF-IDF classifier that never sees the cue words tells "
            f"conversations with a positive author from the others with ROC-AUC {auc:.3f} on "
            f"the test conversations: {probe['reading']}."
        )
    return "\n".join(lines) + "\n"


def shortcut_baseline_text(metrics: dict[str, float], unit: str) -> str:
    """One paragraph: the model's test PR-AUC beside the metadata-only baseline's (empty when
    the run did not train the baseline)."""
    baseline = metrics.get(f"test/{unit}/pr_auc_metadata_only")
    own = metrics.get(f"test/{unit}/pr_auc")
    if baseline is None or own is None:
        return ""
    chance = metrics.get(f"test/{unit}/positive_rate")
    chance_text = f" (chance: the positive rate, {fmt(chance)})" if chance is not None else ""
    return (
        f"\nShortcut baseline: on `test`, a model of metadata alone (how much, when and with "
        f"whom people chat; no text, no lexicon cue; `metadata_only` on the same split) reaches "
        f"PR-AUC {fmt(baseline)}{chance_text}, against {fmt(own)} for this model. The gap is "
        "what the text adds; a baseline far above chance means the labels can be read off the "
        "corpus's structure, and this model's numbers may rest on it too.\n"
    )


def _count(value: float | None, spec: str = "g") -> str:
    """A count or rate for a table cell, ``n/a`` when undefined (no warning at all)."""
    return "n/a" if value is None or value != value else format(value, spec)


def early_detection_section(early: dict[str, Any], metrics: dict[str, float], figures: str) -> str:
    """The card's "Early detection" section (empty when the run did not measure it)."""
    splits = [s for s in early.get("splits", []) if f"{s}/early/f1" in metrics] if early else []
    if not splits:
        return ""
    rows = []
    for split in splits:
        m = {k.split("/")[-1]: v for k, v in metrics.items() if k.startswith(f"{split}/early/")}
        name = f"{split} (tuning set, in-sample)" if split == "validation" else split
        rows.append(
            f"| {name} | {int(m['n_conversations'])} ({int(m['n_positive'])}) "
            f"| {fmt(m['precision'])} | {fmt(m['recall'])} | {fmt(m['f1'])} | {fmt(m['speed'])} "
            f"| {fmt(m['latency_weighted_f1'])} | {_count(m['latency_median'])} "
            f"| {_count(m['latency_q25'])}–{_count(m['latency_q75'])} "
            f"| {_count(m['false_warnings_per_1k_negatives'], '.1f')} |"
        )
    method = (
        "exact scores of the conversation so far (the TF-IDF model updated message by message)"
        if early["method"] == "incremental"
        else f"the model re-reading the last {early['window']} messages every "
        f"{early['step']} message(s)"
    )
    return "\n".join(
        [
            "",
            "## Early detection",
            "",
            "How early the model warns while a conversation is still running (eSPD, Vogt, Leser "
            f"and Akbik 2021). The risk after message k is computed from messages 1..k only: "
            f"{method}. A conversation is warned when its risk reaches {early['threshold']:.4f} "
            f"in {early['patience']} consecutive scored step(s); that threshold was fitted on "
            f"{early['threshold_fitted_on']}. Latency is the number of messages read at the "
            "first correct warning; speed = 1 − median penalty(latency), with penalty(k) = "
            f"−1 + 2/(1 + exp(−p(k − 1))), p = {early['penalty_p']:.5f} (a warning after 90 "
            "messages costs half); latency-weighted F1 = F1 × speed.",
            "",
            "| split | conversations (positive) | precision | recall | F1 | speed "
            "| latency-weighted F1 | median latency | latency IQR | false warnings / 1,000 "
            "negatives |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"![Warnings against messages read]({figures}/early/warned-by-messages.png)",
            f"![Latency of correct warnings]({figures}/early/latency-histogram.png)",
            "",
            "A chat's label says whether a predator took part at all, not when the risk became "
            "visible, so an early warning on a positive conversation can still rest on small "
            "talk; the example curves (`early/risk-curves.png`) show one conversation per class.",
            "",
        ]
    )


def _few_positives_note(summary: dict[str, Any]) -> str:
    """The few-positives warning as a card paragraph (empty when every split has enough)."""
    warning = few_positives(summary["metrics"], int(summary.get("min_positives", MIN_POSITIVES)))
    return f"> **{warning}**\n\n" if warning else ""


def _training_data(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """The card's "Training data" paragraph: what the model and its decisions were fitted on."""
    if crossfitted(summary):
        selection = meta.get("selection") or {}
        return (
            f"`train` and `validation` above, together: the calibration and the threshold were "
            f"fitted on out-of-fold scores of {selection.get('folds', 'K')} folds of whole "
            "connected components of the author-conversation graph (no author, and nobody who "
            "shared a conversation with them, on both sides of a fold), and the model was then "
            "refit on both splits. `validation` is training data here, so its rows are not "
            "reported. The cross-validated row above is measured on the scores the threshold "
            "and calibrator were fitted on, so it is optimistic for them, as a tuning set is. "
            "The refit model saw 1/K more data than each fold model, so its raw scores can run "
            "a little higher than the calibrator expects; the test calibration table below "
            "shows what that costs. `test` was touched once, by the evaluate stage."
        )
    return (
        "The `train` split above; the threshold and the calibration were fitted on `validation` "
        "only, and `test` was touched once, by the evaluate stage."
    )


def render_model_card(
    summary: dict[str, Any],
    meta: dict[str, Any],
    manifest: dict[str, Any],
    *,
    run_id: str,
    experiment: str,
    tracking_uri: str,
    commit: str,
    evaluation_dir: Path,
    card_dir: Path,
    figures_dir: Path,
    ethics_path: Path,
    seeds: dict[str, Any] | None = None,
) -> str:
    """The card as Markdown; figure and ethics links are relative to `card_dir`."""
    metrics = summary["metrics"]
    unit = summary["unit"]
    # Under crossfit, validation is training data: no calibration row of its own.
    in_sample = ("validation",) if crossfitted(summary) else ()
    splits = [
        s for s in ("validation", "test") if f"{s}/{unit}/n" in metrics and s not in in_sample
    ]
    slice_rows, false_positives, negatives = _slice_rows(evaluation_dir)
    counts = manifest["counts"]
    calibration = summary.get("calibration", {"method": "none"})
    settings = meta.get("settings", {})
    card = Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        warning=SYNTHETIC_CARD_WARNING if summary["synthetic"] else "",
        model=summary["model"],
        dataset=summary["dataset"],
        evaluate_run_id=summary.get("evaluate_run_id") or "unknown",
        run_id=run_id,
        experiment=experiment,
        tracking_uri=tracking_uri,
        model_description=settings.get("description", "see the configuration"),
        unit=unit,
        unit_plural=f"{unit}s",
        version=__version__,
        commit=commit,
        threshold=f"{summary['threshold']:.4f}",
        objective=summary["threshold_objective"].replace("_", "."),
        calibration=calibration.get("method", "none"),
        imbalance=meta.get("imbalance_handling", "not recorded"),
        settings=json.dumps(settings.get("estimator", {}), sort_keys=True),
        dropped_features=(
            ", ".join(f"`{c}`" for c in (meta.get("features") or {}).get("dropped", []))
            + " (no value for any row of this dataset)"
            if (meta.get("features") or {}).get("dropped")
            else "none"
        ),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        n_resamples=summary.get("bootstrap", {}).get("n_resamples", "n/a"),
        confidence=percent_text(summary.get("bootstrap", {}).get("confidence")),
        ece_bins=summary.get("ece_bins", "the configured number of"),
        bootstrap_seed=summary.get("bootstrap", {}).get("seed", "n/a"),
        metric_rows=headline_rows(summary, meta),
        fitted_on=f"`{summary.get('threshold_fitted_on', 'validation')}`",
        training_data=_training_data(summary, meta),
        seeds_section=seeds_section(seeds, metrics, unit),
        p_at_r80=fmt(metrics.get(f"test/{unit}/precision_at_recall_0_8")),
        p_at_r90=fmt(metrics.get(f"test/{unit}/precision_at_recall_0_9")),
        r_at_fpr=fmt(metrics.get(f"test/{unit}/recall_at_fpr_1e-3")),
        alerts=rate_text(metrics.get(f"test/{unit}/alerts_per_10k")),
        few_positives=_few_positives_note(summary),
        caveats=pan12_caveats(manifest),
        other_levels=_other_levels(metrics, unit, problem2_text(summary)),
        shortcut_baseline=shortcut_baseline_text(metrics, unit),
        data_description=_data_description(manifest),
        count_rows="\n".join(
            f"| {s} | {counts[s]['conversations']} | {counts[s]['messages']} "
            f"| {counts[s]['authors']} | {counts[s]['predators']} |"
            for s in SPLITS
        ),
        sources=", ".join(
            f"`{name}` (sha256 {meta_['sha256'][:12]}…)"
            for name, meta_ in sorted(manifest["sources"].items())
        ),
        verification=manifest.get("verification", {}).get("status", "not recorded"),
        filters=_filters(manifest),
        split_method=manifest.get("split_method", "not recorded"),
        split_shares=split_shares(manifest),
        figures=Path(os.path.relpath(figures_dir, card_dir)).as_posix(),
        calibration_rows=calibration_rows(metrics, unit, splits),
        n_false_positives=false_positives,
        n_negatives=negatives,
        fpr=fmt(false_positives / negatives if negatives else None),
        slice_rows=slice_rows,
        shortcut_audit=shortcut_audit_section(summary.get("audit") or {}, summary["threshold"]),
        early_detection=early_detection_section(
            summary.get("early") or {},
            metrics,
            Path(os.path.relpath(figures_dir, card_dir)).as_posix(),
        ),
    )
    ethics = Path(os.path.relpath(ethics_path, card_dir)).as_posix()
    return card.replace("(ETHICS.md)", f"({ethics})")
