"""The notebooks run top to bottom against a real run, so they cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_notebooks_are_stored_without_outputs() -> None:
    assert [p.name for p in NOTEBOOKS] == ["01-corpus.ipynb", "02-compare-runs.ipynb"]
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


@pytest.mark.pipeline
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(default_run, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _, _ = default_run
    monkeypatch.setenv("GROOMING_DETECT_ROOT", str(cfg.paths.root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(cfg.tracking.uri))
    monkeypatch.setenv("GD_DATASET", str(cfg.data.name))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
