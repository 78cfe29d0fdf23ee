"""The model card (Mitchell et al. 2019, "Model Cards for Model Reporting"), rendered from the
evaluation summary, the model metadata and the data manifest of one run.

Every number comes from ``evaluation.json``, which holds exactly the metrics logged to the
evaluate stage's MLflow run that the card names. On synthetic data the card's first line says
that its numbers say nothing about real-world performance.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from grooming_detect import __version__
from grooming_detect.data.schema import SPLITS
from grooming_detect.reporting.markdown import (
    code_span,
    count_text,
    fmt,
    markdown_table,
    markdown_text,
    render,
)
from grooming_detect.reporting.summary import MIN_POSITIVES, few_positives

#: The data tables' count columns, in order (the card shows the first four).
COUNT_COLUMNS = ("conversations", "messages", "authors", "predators", "predator_conversations")
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


def percent_text(confidence: float | None) -> str:
    """A confidence level as a percentage for prose (``0.95`` -> ``95``)."""
    return "95" if confidence is None else f"{100 * float(confidence):g}"


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
) -> list[list[str]]:
    """The headline table's rows: counts, set measures at the threshold, ranking measures with
    CIs (a row per split, named by `labels` where given)."""
    return [
        [
            (labels or {}).get(split, split),
            count_text(metrics.get(f"{split}/{unit}/n"), ".0f"),
            count_text(metrics.get(f"{split}/{unit}/n_positive"), ".0f"),
            *(
                with_interval(metrics, f"{split}/{unit}/{name}")
                for name in ("precision", "recall", "f1", "f0_5", "pr_auc", "roc_auc")
            ),
        ]
        for split in splits
    ]


def crossfitted(summary: dict[str, Any]) -> bool:
    """Whether the run's decisions were fitted on out-of-fold scores (validation is then
    training data)."""
    if "selection" in summary:
        return summary["selection"] == "crossfit"
    return str(summary.get("threshold_fitted_on", "")).startswith("out-of-fold")


#: PAN-2012 Problem 1 measures the PAN scorer computes from the written submission.
PAN_MEASURES = ("precision", "recall", "f1", "f0_5")


def headline_rows(summary: dict[str, Any], meta: dict[str, Any]) -> list[list[str]]:
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
#: Measures the card's headline quotes from a sweep.
SEEDS_HEADLINE = (("f0_5", "F0.5"), ("pr_auc", "PR-AUC"))


def _seeds_grid(seeds: dict[str, Any]) -> str:
    """The sweep's seeds in words: ``seeds 0, 1 on corpus seeds 1, 2`` (or seeds alone)."""
    text = f"seeds {', '.join(map(str, seeds.get('procedure_seeds') or seeds['seeds']))}"
    corpus = seeds.get("corpus_seed_values") or []
    return text + (f" on corpus seeds {', '.join(map(str, corpus))}" if corpus else "")


def seeds_headline(seeds: dict[str, Any] | None, metrics: dict[str, float], unit: str) -> str:
    """The card's opening note after a sweep (``grooming_detect.sweeps``): which corpus seed
    and seed this card shows, and its headline test measures beside their mean ± sd across
    corpus seeds and the sd the procedure seeds add (empty without a sweep)."""
    if not seeds:
        return ""
    run = seeds.get("run") or {}
    corpus = seeds.get("corpus_seed_values") or []
    n_seeds = len(seeds.get("procedure_seeds") or seeds["seeds"])
    lines = []
    for name, label in SEEDS_HEADLINE:
        key = f"test/{unit}/{name}"
        if key not in seeds["measures"] or key not in metrics:
            continue
        stats = seeds["measures"][key]
        here = f"test {label} {fmt(metrics[key])}"
        if len(corpus) > 1:
            lines.append(
                f"{here} on corpus seed {run.get('corpus_seed', 'n/a')}; across {len(corpus)} "
                f"corpus seeds {fmt(stats['mean'])} ± {fmt(stats['sd_corpus'])} (procedure "
                f"seeds add ± {fmt(stats['sd_procedure'])})"
            )
        elif corpus:
            lines.append(
                f"{here} on corpus seed {corpus[0]}, the sweep's only one (no data component "
                f"measured); across {n_seeds} procedure seeds {fmt(stats['mean'])} ± "
                f"{fmt(stats['sd_procedure'])}"
            )
        else:
            lines.append(
                f"{here} with seed {run.get('seed', 'n/a')}; across {n_seeds} procedure seeds "
                f"{fmt(stats['mean'])} ± {fmt(stats['sd_procedure'])} (`corpus_seed` does not "
                "shape this data: no data component measured)"
            )
    if not lines:
        return ""
    shown = (
        f"corpus seed {run.get('corpus_seed')}, procedure seed {run.get('seed')}"
        if run.get("corpus_seed") is not None
        else f"seed {run.get('seed', 'n/a')}"
    )
    return (
        f"> **One run of a sweep.** This card shows {shown}, one of {seeds['n_runs']} runs "
        f"({_seeds_grid(seeds)}; MLflow run `{seeds.get('summary_run_id', 'n/a')}`, spread "
        "under Metrics):\n>\n" + "".join(f"> - {line}\n" for line in lines) + "\n"
    )


def seeds_section(seeds: dict[str, Any] | None, metrics: dict[str, float], unit: str) -> str:
    """Mean ± sd over a sweep's runs, split into the sd across corpus seeds and across
    procedure seeds, beside this run's bootstrap interval (empty without a sweep; see
    `grooming_detect.sweeps`)."""
    if not seeds:
        return ""
    stats = seeds["measures"]
    rows = [
        [
            label,
            f"{fmt(stats[key]['mean'])} ± {fmt(stats[key]['sd'])}",
            fmt(stats[key].get("sd_corpus")),
            fmt(stats[key].get("sd_procedure", stats[key]["sd"])),
            f"{fmt(stats[key]['min'])}–{fmt(stats[key]['max'])}",
            with_interval(metrics, key),
        ]
        for name, label in (*SEEDS_MEASURES, *SEEDS_RANKING)
        if (key := f"test/{unit}/{name}") in stats
    ]
    header = [
        "measure",
        "mean ± sd over all runs",
        "sd across corpus seeds",
        "sd across procedure seeds",
        "min–max",
        "this run [bootstrap interval]",
    ]
    data = (
        "The sd across corpus seeds (of each corpus seed's mean over its procedure seeds) is how "
        "much the number depends on which corpus, training and test set alike, was drawn; the "
        "bootstrap interval sees only the test set's share of that, and the procedure seeds "
        "(pooled sd within each corpus seed) none of it. "
        if len(seeds.get("corpus_seed_values") or []) > 1
        else "No data component is measured here: every run saw the same data. "
    )
    return (
        f"\nAcross {seeds['n_runs']} runs with {_seeds_grid(seeds)} "
        f"({seeds['varies']}; MLflow run `{seeds.get('summary_run_id', 'n/a')}`), on `test`:\n\n"
        + markdown_table(header, rows)
        + "\n\nThe bootstrap interval resamples the test set for one fitted model; the spread "
        "over seeds comes from what a seed moves (above). "
        + data
        + "Where the spread is wider than the interval, the interval understates how much the "
        "reported number depends on the data and the procedure.\n"
    )


def calibration_rows(metrics: dict[str, float], unit: str, splits: list[str]) -> list[list[str]]:
    """Calibration table rows: ECE, Brier and log-loss before and after calibration."""
    names = (
        "ece_uncalibrated",
        "ece",
        "brier_uncalibrated",
        "brier",
        "log_loss_uncalibrated",
        "log_loss",
    )
    return [[s, *(fmt(metrics.get(f"{s}/{unit}/{n}")) for n in names)] for s in splits]


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
            + _held_out_text(str(generator.get("held_out_families", "test")))
            + "No real conversation in it involves grooming. "
            f"Label noise: {train_noise:.0%} of the training truth (train and validation), "
            f"{test_noise:.0%} of the test truth"
            + (" (test labels are clean)." if test_noise == 0 else ".")
        )
    if source == "pan12":
        return "The official PAN-2012 Sexual Predator Identification training and test corpora."
    return f"A team chat log ({source}); labels at {manifest.get('label_level')} level."


def _held_out_text(held_out: str) -> str:
    """What the card says of the marker wording test holds (`data.synthetic.markers`)."""
    if held_out == "test":
        return (
            "Test markers are worded by paraphrase families that training never renders "
            "(`held_out_families: test`): test measures new wording of the same stages. "
        )
    if held_out == "design":
        return (
            "Test markers are worded by the design families, held out of training "
            "(`held_out_families: design`, the corpus the generator was designed on). "
        )
    return (
        "Training and test share every marker family (`held_out_families: none`): test "
        "measures recall of known wording, not generalisation. "
    )


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


def _slices(evaluation_dir: Path) -> dict[str, Any]:
    """The test false-positive rates by slice: table rows, and the false positives and
    negatives of all slices (those of the first slice, which covers every negative)."""
    path = evaluation_dir / "test-fp-slices.parquet"
    if not path.is_file():
        return {"rows": [["n/a", "", "", "", ""]], "false_positives": 0, "negatives": 0}
    rates = pd.read_parquet(path)
    rows = [
        [
            r.slice.replace("_", " "),
            r.bucket,
            r.negatives,
            r.false_positives,
            fmt(r.false_positive_rate),
        ]
        for r in rates.itertuples()
    ]
    first = rates[rates["slice"] == rates["slice"].iloc[0]]
    false_positives, negatives = int(first["false_positives"].sum()), int(first["negatives"].sum())
    return {"rows": rows, "false_positives": false_positives, "negatives": negatives}


def _rate(value: float, low: float, high: float) -> str:
    return f"{value:.2%} [{low:.2%}, {high:.2%}]"


def _benign_sets(sets: list[dict[str, Any]]) -> list[str]:
    """The audit's benign-set table and a line per set (nothing without benign sets)."""
    if not sets:
        return []
    header = [
        "benign set",
        "source",
        "units scored",
        "conversations",
        f"false-positive rate [{sets[0].get('confidence', 0.95):.0%} exact CI]",
        "alerts per 10k conversations",
        "KS vs test negatives",
    ]
    rows = [
        [
            markdown_text(item["name"]),
            markdown_text(item["source"]),
            f"{int(item['n_' + item['unit'] + 's'])} {item['unit']}s",
            int(item["n_conversations"]),
            _rate(
                item["false_positive_rate"],
                item["false_positive_rate_ci_low"],
                item["false_positive_rate_ci_high"],
            ),
            f"{item['alerts_per_10k_conversations']:.1f}",
            f"{item['ks_vs_test_negatives']:.3f}",
        ]
        for item in sets
    ]
    flagged = [
        f"- **{markdown_text(item['name'])}**: {int(item['n_flagged'])} of "
        f"{int(item['n_' + item['unit'] + 's'])} benign {item['unit']}s reach the threshold; "
        f"{item['ks_reading']}."
        for item in sets
    ]
    return [markdown_table(header, rows), "", *flagged, ""]


def shortcut_audit_section(audit: dict[str, Any], threshold: float) -> str:
    """The card's "Shortcut audit" section (empty when the run had no audit)."""
    if not audit or not (
        audit.get("benign_sets")
        or audit.get("cue_ablation")
        or audit.get("source_probe")
        or audit.get("probes")
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
    lines += _benign_sets(audit.get("benign_sets") or [])
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
            "- **Source probe**: a TF-IDF classifier that never sees the cue words"
            + (
                f" (nor the {probe['masked_truth_lines']:,} marker lines the line truth names)"
                if probe.get("masked_truth_lines")
                else ""
            )
            + " tells "
            f"conversations with a positive author from the others with ROC-AUC {auc:.3f} on "
            f"the test conversations: {probe['reading']}."
        )
    lines += _probe_battery(audit.get("probes") or {})
    return "\n".join(lines) + "\n"


def _probe_battery(probes: dict[str, Any]) -> list[str]:
    """The probe battery's table (from the rows ``probes.csv`` holds)."""
    if probes.get("skipped"):
        return ["", f"Probe battery: not measured ({probes['skipped']})."]
    rows = probes.get("rows") or []
    if not rows:
        return []
    table = markdown_table(
        ("probe (what it sees)", "test PR-AUC", "chance", "× chance", "bound", "within"),
        [
            (
                PROBE_LABELS.get(row["probe"], row["probe"]),
                f"{row['pr_auc']:.3f}",
                f"{row['chance']:.3f}",
                f"{row['ratio']:.1f}",
                f"{row['bound']:.3f}",
                "yes" if row["within"] else "**no**",
            )
            for row in rows
        ],
    )
    first = rows[0]
    return [
        "",
        f"Probe battery (`grooming_detect/evaluation/probes.py`; {first['n_test_positives']} "
        f"positive of {first['n_test_authors']} test authors): each probe sees only what a "
        "model should not need, learns on train and validation, and ranks the test authors. "
        "Near chance, the corpus gives nothing away; a probe over its bound means this "
        "model's numbers may rest on that shortcut.",
        "",
        table,
    ]


#: How the card names each probe of the battery.
PROBE_LABELS = {
    "metadata": "metadata only (no text)",
    "style": "style only (no word identity)",
    "partner": "partners' messages only",
    "template_lookup": "lookup of the generator's training wordings (no training)",
}


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
        "what the text adds beyond the corpus's structure (whether that is behaviour or the "
        "corpus's making is what the audit's probe battery asks); a baseline far above chance "
        "means the labels can be read off the corpus's structure, and this model's numbers "
        "may rest on it too.\n"
    )


#: The early-detection table's columns.
EARLY_HEADER = (
    "split",
    "conversations (positive)",
    "precision",
    "recall",
    "F1",
    "speed",
    "latency-weighted F1",
    "median latency",
    "latency IQR",
    "false warnings / 1,000 negatives",
    "penalty p (positive median length)",
)


def early_detection_section(early: dict[str, Any], metrics: dict[str, float], figures: str) -> str:
    """The card's "Early detection" section (empty when the run did not measure it)."""
    splits = [s for s in early.get("splits", []) if f"{s}/early/f1" in metrics] if early else []
    if not splits:
        return ""
    rows = []
    for split in splits:
        m = {k.split("/")[-1]: v for k, v in metrics.items() if k.startswith(f"{split}/early/")}
        rows.append(
            [
                f"{split} (tuning set, in-sample)" if split == "validation" else split,
                f"{int(m['n_conversations'])} ({int(m['n_positive'])})",
                *(fmt(m[name]) for name in ("precision", "recall", "f1", "speed")),
                fmt(m["latency_weighted_f1"]),
                count_text(m["latency_median"]),
                f"{count_text(m['latency_q25'])}–{count_text(m['latency_q75'])}",
                count_text(m["false_warnings_per_1k_negatives"], ".1f"),
                f"{count_text(m.get('penalty_p'), '.5f')} "
                f"({count_text(m.get('positive_median_length'))})",
            ]
        )
    # Summaries written before skepticism and the derived p name the policy by patience alone.
    policy = early.get("warning_policy") or (
        f"its risk reached the threshold in {early['patience']} consecutive scored step(s)"
    )
    rule = early.get("penalty_rule") or f"p = {early['penalty_p']:.5f}"
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
            f"{method}. Only non-empty messages are steps, as in eSPD's evaluation. A "
            f"conversation is warned when {policy}; the threshold, {early['threshold']:.4f}, "
            f"was fitted on {early['threshold_fitted_on']}. Latency is the number of non-empty "
            "messages read at the first correct warning; speed = 1 − median penalty(latency) "
            "over the correctly warned positive conversations, with penalty(k) = "
            f"−1 + 2/(1 + exp(−p(k − 1))) and {rule}; latency-weighted F1 = F1 × speed. F1 and "
            "speed are both taken over the split's conversations (eSPD takes F1 over segments "
            "of chats and speed over the full chats; these conversations are not grouped into "
            "longer chats).",
            "",
            markdown_table(EARLY_HEADER, rows),
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


def design_chosen(manifest: dict[str, Any], meta: dict[str, Any]) -> str:
    """The card's "Design chosen for this data" line: the split and the decision procedure the
    run used, and each one the pipeline chose in place of a default because the data did not
    allow it (the data manifest's and model.json's ``fallbacks``: "from -> to: reason")."""
    fallbacks = {**(manifest.get("fallbacks") or {}), **(meta.get("fallbacks") or {})}
    selection = meta.get("selection") or {}
    procedure = (
        f"cross-fitted decisions ({selection.get('folds', 'K')} folds)"
        if selection.get("method") == "crossfit"
        else "holdout decisions (calibrator and threshold fitted on validation)"
    )
    overrides = {
        str(report.get("override")) for report in (manifest.get("split") or {}).values()
    } - {"None"}
    split = (
        "held-out splits by author groups (authors may appear on both sides)"
        if overrides
        else "the split the data stage recorded above"
    )
    if not fallbacks:
        return f"{split}; {procedure}; no setting had to give way to the data."
    chosen = "; ".join(f"`{setting}` {choice}" for setting, choice in sorted(fallbacks.items()))
    return (
        f"{split}; {procedure}. The defaults could not be used on this data, so the pipeline "
        f"chose: {chosen}. Numbers from these designs are weaker evidence than from the "
        "defaults (see the positives each rests on)."
    )


def _data_context(manifest: dict[str, Any]) -> dict[str, Any]:
    """The card's "Evaluation data" section: description, counts, sources, filters, splits."""
    return {
        "data_description": _data_description(manifest),
        "count_rows": [
            [split, *(manifest["counts"][split][k] for k in COUNT_COLUMNS[:4])] for split in SPLITS
        ],
        "sources": ", ".join(
            f"{code_span(name)} (sha256 {entry['sha256'][:12]}…)"
            for name, entry in sorted(manifest["sources"].items())
        ),
        "filters": _filters(manifest),
        "split_shares": split_shares(manifest),
    }


def decision_context(summary: dict[str, Any]) -> dict[str, Any]:
    """What the report and the card both say about the run's decision procedure: unit,
    threshold, its objective and tuning data, interval level, calibration and ECE bins."""
    bootstrap = summary.get("bootstrap", {})
    return {
        "unit": summary["unit"],
        "threshold": f"{summary['threshold']:.4f}",
        "objective": summary["threshold_objective"].replace("_", "."),
        "fitted_on": str(summary.get("threshold_fitted_on", "validation")),
        "calibration": summary.get("calibration", {}).get("method", "none"),
        "bootstrap": bootstrap,
        "confidence": percent_text(bootstrap.get("confidence")),
        "ece_bins": summary.get("ece_bins", "the configured number of"),
    }


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
    """The card as Markdown (``templates/model_card.md.j2``); figure and ethics links are
    relative to `card_dir`."""
    metrics = summary["metrics"]
    unit = summary["unit"]
    # Under crossfit, validation is training data: no calibration row of its own.
    in_sample = ("validation",) if crossfitted(summary) else ()
    splits = [
        s for s in ("validation", "test") if f"{s}/{unit}/n" in metrics and s not in in_sample
    ]
    settings = meta.get("settings", {})
    figures = Path(os.path.relpath(figures_dir, card_dir)).as_posix()
    return render(
        "model_card.md.j2",
        **decision_context(summary),
        summary=summary,
        meta=meta,
        manifest=manifest,
        run_id=run_id,
        experiment=experiment,
        tracking_uri=tracking_uri,
        commit=commit,
        version=__version__,
        settings=settings,
        estimator_settings=json.dumps(settings.get("estimator", {}), sort_keys=True),
        dropped_features=(meta.get("features") or {}).get("dropped", []),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        few_positives=few_positives(metrics, int(summary.get("min_positives", MIN_POSITIVES))),
        metric_rows=headline_rows(summary, meta),
        test={k.split("/")[-1]: v for k, v in metrics.items() if k.startswith(f"test/{unit}/")},
        seeds_headline=seeds_headline(seeds, metrics, unit),
        seeds_section=seeds_section(seeds, metrics, unit),
        shortcut_baseline=shortcut_baseline_text(metrics, unit),
        other_levels=_other_levels(metrics, unit, problem2_text(summary)),
        **_data_context(manifest),
        training_data=_training_data(summary, meta),
        design_chosen=design_chosen(manifest, meta),
        figures=figures,
        calibration_rows=calibration_rows(metrics, unit, splits),
        slices=_slices(evaluation_dir),
        shortcut_audit=shortcut_audit_section(summary.get("audit") or {}, summary["threshold"]),
        early_detection=early_detection_section(summary.get("early") or {}, metrics, figures),
        caveats=pan12_caveats(manifest),
        ethics=Path(os.path.relpath(ethics_path, card_dir)).as_posix(),
    )
