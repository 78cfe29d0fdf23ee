"""The data stage: official-layout raw files (real or synthetic) -> canonical tables."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from grooming_detect import __version__
from grooming_detect.config import ConfigError
from grooming_detect.data import chatlog, pan12, synthetic, verify, vtpan
from grooming_detect.data.filters import FilterSettings
from grooming_detect.data.schema import SCHEMA_VERSION, Tables, write_tables
from grooming_detect.data.sources import chatlog_files
from grooming_detect.data.splits import DEFAULT_TOLERANCE, SplitSettings
from grooming_detect.io import (
    file_digests,
    folder_lock,
    json_digest,
    outputs_intact,
    read_json,
    sha256_file,
    write_json,
    write_text,
)
from grooming_detect.stage import (
    LATEST_DATA,
    StageContext,
    StageResult,
    data_settings,
    fallback_tags,
)

log = logging.getLogger(__name__)


def corpus_root(cfg: DictConfig) -> Path:
    """Directory holding the official-layout files: generated for synthetic data if needed."""
    if cfg.data.source == "pan12":
        return Path(str(cfg.data.root)).expanduser()
    settings = synthetic.settings_from_config(cfg.data.generator)
    root = Path(cfg.paths.raw) / "synthetic" / settings.fingerprint()
    if synthetic.is_complete(root):
        return root
    if root.exists():
        log.warning("%s: incomplete generated corpus (an interrupted run?): regenerating", root)
        shutil.rmtree(root)
    log.info("Generating the synthetic PAN-format corpus into %s", root)
    # Generated in a temporary sibling and renamed into place whole: never half a corpus.
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(root)
    host = socket.gethostname().replace("-", "_")
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-{os.getpid()}-{host}-", dir=root.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would hide the corpus from others
    try:
        synthetic.generate_corpus(staging, settings)
        os.rename(staging, root)
    except OSError:
        if not synthetic.is_complete(root):  # not a concurrent run that finished first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _remove_abandoned_staging(root: Path) -> None:
    """Delete staging folders of generations killed on this host (their process is gone).
    Folders of other hosts (a shared file system under SLURM) are left alone."""
    host = socket.gethostname().replace("-", "_")
    for staging in root.parent.glob(f".{root.name}-*-{host}-*"):
        try:
            os.kill(int(staging.name.split("-")[1]), 0)
        except (ValueError, IndexError, ProcessLookupError):
            shutil.rmtree(staging, ignore_errors=True)
        except PermissionError:  # another user's live process
            continue


def fingerprint(sources: dict[str, dict[str, Any]], settings: dict[str, Any]) -> str:
    """Digest of the inputs' content and every setting that shapes the tables."""
    payload = {
        "schema_version": SCHEMA_VERSION,
        "sources": {name: meta["sha256"] for name, meta in sorted(sources.items())},
        "settings": settings,
    }
    return json_digest(payload)


def _cached_manifest(manifest_path: Path, expected: str) -> dict[str, Any] | None:
    """The manifest, when its fingerprint is `expected` and every table it lists still has the
    content it recorded (a run killed between table writes leaves a mismatch: rebuild)."""
    if not manifest_path.is_file():
        return None
    manifest = read_json(manifest_path)
    if manifest.get("fingerprint") != expected:
        return None
    if not outputs_intact(manifest_path.parent, manifest.get("table_sha256")):
        log.warning(
            "%s: tables differ from the checksums in the manifest (an interrupted run?): "
            "rebuilding them",
            manifest_path.parent,
        )
        return None
    return manifest


PAN_SPLIT_METHOD = (
    "validation carved from training by whole connected components of the author-conversation "
    "graph, bin-packed toward the validation share of positive conversations and of "
    "conversations (achieved shares under `split`), seeded; test is the official test corpus"
)
#: Appended to the split method when ``data.split_override`` is set.
OVERRIDE_SPLIT_METHOD = (
    "; data.split_override={}: components larger than data.split_tolerance broken into author "
    "groups, so authors may appear on both sides (counted under `split`)"
)
VTPAN_SPLIT_METHOD = (
    "VTPAN (eSPD benchmark, Vogt et al. 2021): the packaged VTPAN conversation ids of each "
    "official file; validation carved from VTPAN-train by whole connected components of the "
    "author-conversation graph, bin-packed toward the validation share of positive "
    "conversations and of conversations, seeded; test is VTPAN-test; labels per conversation"
)


def filter_settings(cfg: DictConfig) -> FilterSettings:
    """`cfg.data.filters`; the VTPAN filter only on the real corpus (its ids are PAN-2012's)."""
    settings = FilterSettings(**cfg.data.get("filters", {}))
    if settings.vtpan and cfg.data.source != "pan12":
        raise ConfigError(
            f"data/filters=vtpan keeps the eSPD benchmark's conversations of the real PAN-2012 "
            f"corpus; data={cfg.data.name} ({cfg.data.source}) has none of them. Use it with "
            "data=pan12 data.root=/path"
        )
    return settings


def split_settings(cfg: DictConfig) -> SplitSettings:
    """``data.split_tolerance`` and ``data.split_override`` (defaults where a config lacks them)."""
    override = cfg.data.get("split_override")
    return SplitSettings(
        tolerance=float(cfg.data.get("split_tolerance", DEFAULT_TOLERANCE)),
        override=None if override is None else str(override),
    )


def source_files(cfg: DictConfig) -> dict[str, Path]:
    """Input files of the configured dataset, by name (they key the cache)."""
    if cfg.data.source == "chatlog":
        return chatlog_files(cfg.data)
    use_vtpan = filter_settings(cfg).vtpan  # refused on generated data before generating it
    files = pan12.find_files(corpus_root(cfg)).present()
    if use_vtpan:  # the packaged id lists shape the tables: they key the cache
        files.update({name: vtpan.FOLDER / name for name in vtpan.FILES.values()})
    return files


def check_sources(cfg: DictConfig) -> None:
    """The data stage's refusals that read nothing: the input files exist (a chat log and its id
    list, a PAN-2012 download's files) and the filters suit the data. `pipeline.run` calls this
    before it opens an MLflow run; a generated corpus is not generated here."""
    if cfg.data.source in ("chatlog", "pan12"):
        source_files(cfg)
    else:
        filter_settings(cfg)


def load_tables(cfg: DictConfig) -> tuple[Tables, dict[str, Any]]:
    """Parse the configured dataset into canonical tables plus what loading found."""
    seed = int(cfg.seed)
    if cfg.data.source == "chatlog":
        predator_ids = cfg.data.predator_ids
        tables, chat_report = chatlog.load_chatlog(
            Path(str(cfg.data.path)).expanduser(),
            Path(str(predator_ids)).expanduser() if predator_ids else predator_ids,
            float(cfg.data.validation_fraction),
            float(cfg.data.test_fraction),
            seed,
            max_message_chars=cfg.data.get("max_message_chars", chatlog.MAX_MESSAGE_CHARS),
            long_messages=str(cfg.data.get("long_messages", "error")),
            split_settings=split_settings(cfg),
        )
        details = asdict(chat_report)
        details["split_method"] = f"{chat_report.split_source}; stratified, seeded"
        if _overrides_used(chat_report.split):
            details["split_method"] += OVERRIDE_SPLIT_METHOD.format(
                "/".join(_overrides_used(chat_report.split))
            )
        return tables, details
    filters = filter_settings(cfg)
    root = corpus_root(cfg)
    log.info("Reading %s", root)
    tables, pan_report = pan12.load_corpus(
        pan12.find_files(root),
        float(cfg.data.validation_fraction),
        seed,
        filters=filters,
        split_settings=split_settings(cfg),
    )
    pan_details: dict[str, Any] = {
        "split_method": VTPAN_SPLIT_METHOD if filters.vtpan else PAN_SPLIT_METHOD,
        "truth_ids_not_in_corpus": pan_report.truth_ids_not_in_corpus,
        "truth_lines_not_in_corpus": pan_report.truth_lines_not_in_corpus,
        # The unofficial training line truth (pan12.TRAIN_PROBLEM2), None without it.
        "training_line_truth": pan_report.training_line_truth or None,
        "diff_lines_metadata_only": pan_report.diff_lines,
        "filters_removed": pan_report.filtered,
        "split": pan_report.split,
        "author_overlap": pan_report.author_overlap,
    }
    if filters.vtpan:
        pan_details["vtpan_ids"] = pan_report.vtpan
    if _overrides_used(pan_report.split):
        pan_details["split_method"] += OVERRIDE_SPLIT_METHOD.format(
            "/".join(_overrides_used(pan_report.split))
        )
    return tables, pan_details


def _overrides_used(split_reports: dict[str, dict[str, Any]]) -> list[str]:
    """The ``data.split_override`` values the carved splits were actually cut with (``author``
    also when ``auto`` fell back to it)."""
    return sorted({str(r["override"]) for r in split_reports.values() if r.get("override")})


def split_fallbacks(manifest: dict[str, Any]) -> dict[str, str]:
    """The split designs the data stage chose in place of the default (``data.split_override:
    auto`` falling back to author groups), as ``{"data.split_override": "components -> author:
    <split>: <reason>; ..."}``; empty when every carve used the design asked for."""
    reasons = [
        report["fallback"].split(": ", 1)[1]
        for report in (manifest.get("split") or {}).values()
        if report.get("fallback")
    ]
    return {"data.split_override": "auto -> author: " + "; ".join(reasons)} if reasons else {}


def _verification(
    cfg: DictConfig, sources: dict[str, dict[str, Any]], counts: dict[str, dict[str, int]]
) -> dict[str, Any]:
    """Official-corpus verification for the manifest; other sources are labelled as such."""
    if cfg.data.synthetic:
        return {"status": "synthetic (not the official corpus)", "checks": []}
    if cfg.data.source != "pan12":
        return {"status": f"not applicable ({cfg.data.source})", "checks": []}
    checks = verify.checksum_checks({name: meta["sha256"] for name, meta in sources.items()})
    if filter_settings(cfg).vtpan:  # the tables hold the VTPAN subset, not the whole corpus
        checks += [
            verify.Check(
                f"VTPAN {split} conversations",
                f"{vtpan.EXPECTED_COUNTS[split]:,}",
                f"{sum(counts.get(s, {}).get('conversations', 0) for s in splits):,}",
            )
            for split, splits in (("train", ("train", "validation")), ("test", ("test",)))
        ]
    else:
        checks += verify.count_checks(verify.counts_from_tables(counts))
    return {
        "status": verify.summarise(checks),
        "checks": [
            {"item": c.item, "expected": c.expected, "found": c.found, "ok": c.ok} for c in checks
        ],
    }


def run_data(cfg: DictConfig, ctx: StageContext) -> StageResult:
    """Build (or reuse) the canonical tables and their manifest for `cfg.data`: one run at a
    time per settings folder (a second run with the same settings waits, then reuses them)."""
    with folder_lock(ctx.dataset_dir, "the dataset"):
        return _build_or_reuse(cfg, ctx)


def _build_or_reuse(cfg: DictConfig, ctx: StageContext) -> StageResult:
    sources = {
        name: {
            "path": str(path),
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path, normalise_newlines=True),
        }
        for name, path in source_files(cfg).items()
    }
    settings = data_settings(cfg)
    digest = fingerprint(sources, settings)
    manifest = _cached_manifest(ctx.manifest_path, digest)
    if manifest is not None:
        log.info("Inputs unchanged (fingerprint %s): reusing %s", digest[:12], ctx.dataset_dir)
        for setting, choice in (manifest.get("fallbacks") or {}).items():
            log.warning("Design chosen for this data (reused tables): %s %s", setting, choice)
    else:
        manifest = _build(cfg, ctx, sources, settings, digest)
    write_text(ctx.dataset_dir.parent / LATEST_DATA, f"{ctx.dataset_dir.name}\n")
    if manifest["verification"]["status"].startswith("mismatch"):
        log.warning(
            "THIS IS NOT THE OFFICIAL PAN-2012 CORPUS (%s); numbers are not comparable with "
            "published results. Run grooming-detect-verify %s for the full table.",
            manifest["verification"]["status"],
            cfg.data.root,
        )
    counts = manifest["counts"]
    metrics = {
        f"{split}/{name}": float(value)
        for split, split_counts in counts.items()
        for name, value in split_counts.items()
    }
    metrics.update(split_metrics(manifest))
    # MLflow is imported here, by the stage: the command checks the inputs (`check_sources`)
    # with this module before it loads MLflow.
    from grooming_detect import tracking

    tracking.log_metrics(metrics)
    tags = {
        "dataset_verification": manifest["verification"]["status"],
        "dataset_digest": digest,
        "dataset": str(cfg.data.name),
        "label_level": manifest["label_level"],
        "synthetic": str(bool(cfg.data.synthetic)).lower(),
        **fallback_tags(manifest.get("fallbacks") or {}),
    }
    tracking.set_tags(tags)
    tracking.log_artifact(ctx.manifest_path, "data")
    return StageResult(
        stage="data",
        outputs={"manifest": ctx.manifest_path, "dataset_dir": ctx.dataset_dir},
        metrics=metrics,
        parent_tags=tags,
    )


def _build(
    cfg: DictConfig,
    ctx: StageContext,
    sources: dict[str, dict[str, Any]],
    settings: dict[str, Any],
    digest: str,
) -> dict[str, Any]:
    """Load the tables, write them and their manifest (with the official-corpus verification)
    into `ctx.dataset_dir`; the manifest."""
    tables, details = load_tables(cfg)
    # No manifest while tables are rewritten: a kill in between leaves nothing reusable.
    ctx.manifest_path.unlink(missing_ok=True)
    written = write_tables(tables, ctx.dataset_dir)
    manifest = {
        "dataset": str(cfg.data.name),
        "source": str(cfg.data.source),
        "synthetic": bool(cfg.data.synthetic),
        "label_level": tables.label_level,
        "fingerprint": digest,
        "schema_version": SCHEMA_VERSION,
        "code_version": __version__,
        "sources": sources,
        "config": settings,
        "counts": tables.counts(),
        **details,
        "tables": {name: path.name for name, path in written.items()},
        "table_sha256": file_digests(ctx.dataset_dir, [p.name for p in written.values()]),
    }
    manifest["verification"] = _verification(cfg, sources, manifest["counts"])
    # The designs chosen in place of the defaults, with the reason: the card and MLflow read
    # them from here (`fallback/<setting>` tags), also when the tables are reused.
    manifest["fallbacks"] = split_fallbacks(manifest)
    write_json(ctx.manifest_path, manifest)
    log.info("Wrote %s tables to %s", ", ".join(written), ctx.dataset_dir)
    return manifest


def split_metrics(manifest: dict[str, Any]) -> dict[str, float]:
    """The carved splits' achieved shares and the train/test author overlap (PAN layout) of a
    manifest, as data-stage metrics; a split carved with the author override is warned about on
    every run, the manifest's tables included when reused.

    Returns:
        ``data/<split>_share_conversations``, ``data/<split>_share_positives`` (positive
        conversations), ``data/<split>_authors_on_both_sides`` for each carved split, and
        ``data/train_test_author_overlap``, ``data/train_test_predator_overlap``,
        ``data/train_test_author_overlap_share`` when the corpus has a test split.
    """
    metrics: dict[str, float] = {}
    for split, report in (manifest.get("split") or {}).items():
        metrics[f"data/{split}_share_conversations"] = float(report["share_conversations"])
        if report["share_positives"] is not None:
            metrics[f"data/{split}_share_positives"] = float(report["share_positives"])
        metrics[f"data/{split}_authors_on_both_sides"] = float(report["authors_on_both_sides"])
        if report["override"]:
            log.warning(
                "%s split carved with data.split_override=%s: %d author(s) appear on both "
                "sides (see split.%s in the data manifest)",
                split,
                report["override"],
                report["authors_on_both_sides"],
                split,
            )
    overlap = manifest.get("author_overlap") or {}
    if overlap:
        metrics["data/train_test_author_overlap"] = float(overlap["authors"])
        metrics["data/train_test_predator_overlap"] = float(overlap["predators"])
        metrics["data/train_test_author_overlap_share"] = float(overlap["share_of_test_authors"])
    return metrics
