"""The layers of ARCHITECTURE.md hold.

import-linter's contracts (pyproject.toml) pass, name every module, and can fail.
"""

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` of the virtual environment, on the packages and pyproject.toml found in ``cwd``."""
    executable = Path(sys.executable).with_name("lint-imports")
    if not executable.exists():
        executable = shutil.which("lint-imports")
    assert executable, "lint-imports not installed (requirements.txt pins import-linter)"
    return subprocess.run([str(executable), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def contracts() -> list[dict]:
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_module_of_the_package_has_a_layer():
    """A new top-level module or package must be placed in a layer (ARCHITECTURE.md's table), not left out."""
    layers = next(c for c in contracts() if c["type"] == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}
    found = {f"keras_s2v.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "keras_s2v")])}
    assert found - placed == set(), f"modules in no layer of pyproject.toml: {sorted(found - placed)}"
    assert placed - found - {"export"} == set(), f"layers naming no module: {sorted(placed - found - {'export'})}"


VIOLATIONS = {
    # A lower layer reaching up, inside a function: the layers and the runtime's contract break.
    "data imports training": (
        "keras_s2v/data/audio.py",
        "from keras_s2v.training import train_lib",
        "keras_s2v.data is not allowed to import keras_s2v.training",
    ),
    "runtime imports export": (
        "keras_s2v/frame_loop.py",
        "from export import formats",
        "keras_s2v.frame_loop is not allowed to import export",
    ),
    # A loop inside one layer: only the acyclic contract sees it.
    "loop inside data": (
        "keras_s2v/data/features.py",
        "from keras_s2v.data import pipeline",
        "No cycles are allowed in keras_s2v.data",
    ),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_a_broken_contract_fails_the_check(case, tmp_path):
    """The same contracts on a copy of the code with one bad import, in a function as the old loops were."""
    path, statement, message = VIOLATIONS[case]
    for package in ("keras_s2v", "export"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / path, "a") as f:
        f.write(f"\n\ndef _deliberate_violation():\n    {statement}\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0 and message in result.stdout, result.stdout + result.stderr
