"""Corpus verification: the table, the exit codes, and what the data stage records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import PAN12_FIXTURE, ComposeFn, pretend_official
from grooming_detect import pipeline
from grooming_detect.data import pan12, verify
from grooming_detect.io import sha256_file


def test_fixture_is_reported_as_not_official(capsys: pytest.CaptureFixture[str]) -> None:
    assert verify.main([str(PAN12_FIXTURE)]) == 1
    out = capsys.readouterr().out
    assert f"sha256 {pan12.TRAIN_XML}" in out and "MISMATCH" in out
    assert "training messages" in out and "903,607 / 18" in out


def test_matching_download_is_official(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pretend_official(monkeypatch, PAN12_FIXTURE)
    assert verify.main([str(PAN12_FIXTURE)]) == 0
    assert capsys.readouterr().out.strip().endswith(": official")


def test_checksum_ignores_crlf(tmp_path: Path) -> None:
    (tmp_path / "lf.txt").write_bytes(b"a\nb\n")
    (tmp_path / "crlf.txt").write_bytes(b"a\r\nb\r\n")
    assert sha256_file(tmp_path / "lf.txt") == sha256_file(
        tmp_path / "crlf.txt", normalise_newlines=True
    )


def test_missing_root_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert verify.main([str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.pipeline
def test_data_stage_on_pan12_records_verification(
    compose_cfg: ComposeFn, pan12_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = compose_cfg(
        "data=pan12",
        f"data.root={pan12_copy}",
        "stages=[data,features]",
        "data.validation_fraction=0.4",
    )
    result = pipeline.run(cfg)
    assert "THIS IS NOT THE OFFICIAL PAN-2012 CORPUS" in caplog.text
    manifest = json.loads(result.stages["data"].outputs["manifest"].read_text())
    assert manifest["verification"]["status"].startswith("mismatch")
    assert manifest["synthetic"] is False
    assert manifest["counts"]["test"]["messages"] == 5
    assert set(manifest["sources"]) == set(pan12.find_files(pan12_copy).present())
    tags = MlflowClient(cfg.tracking.uri).get_run(result.run_id).data.tags
    assert tags["synthetic"] == "false"
    assert tags["dataset_verification"].startswith("mismatch")


@pytest.mark.pipeline
def test_a_changed_input_file_rebuilds_the_tables(compose_cfg: ComposeFn, pan12_copy: Path) -> None:
    cfg = compose_cfg(
        "data=pan12", f"data.root={pan12_copy}", "stages=[data]", "data.validation_fraction=0.4"
    )
    first = json.loads(pipeline.run(cfg).stages["data"].outputs["manifest"].read_text())
    predators = pan12_copy / pan12.TRAIN_DIR / pan12.TRAIN_PREDATORS
    predators.write_bytes(predators.read_bytes() + b"c0ffee00000000000000000000000000\r\n")
    second = json.loads(pipeline.run(cfg).stages["data"].outputs["manifest"].read_text())
    assert first["fingerprint"] != second["fingerprint"]
    assert second["truth_ids_not_in_corpus"]["train"] == ["c0ffee00000000000000000000000000"]
