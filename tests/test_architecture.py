"""docs/architecture.md's list of layers is the import-linter contract's, in its order."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _contract_layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    return [{name.strip() for name in layer.split("|")} for layer in layers]


def _documented_layers() -> list[set[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("<!-- layers:", 1)[1].split("<!-- /layers -->", 1)[0]
    layers = []
    for row in block.splitlines():
        if not row.startswith("| `"):
            continue
        first_cell = row.split("|")[1]
        names = re.findall(r"`([\w.]+)`", first_cell)
        # "`grooming_detect.tracking`, `stage`, …": later names are siblings of the first.
        package = names[0].rsplit(".", 1)[0]
        layers.append({names[0], *(f"{package}.{name}" for name in names[1:])})
    return layers


def test_the_documented_layers_are_the_contract():
    assert _documented_layers() == _contract_layers()


def test_every_package_module_is_in_a_layer():
    """A new top-level module or package must be placed in the contract (and so in the doc)."""
    package = ROOT / "src" / "grooming_detect"
    modules = {
        f"grooming_detect.{path.stem if path.is_file() else path.name}"
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").is_file())
    }
    layered = set().union(*_contract_layers())
    assert modules <= layered, f"not in any layer: {sorted(modules - layered)}"
