"""The import contracts in pyproject.toml ([tool.importlinter]): layers and no cycles."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(config_dir: Path, package_dir: Path) -> subprocess.CompletedProcess:
    """Check the contracts in ``config_dir`` on the transferkit found in ``package_dir``."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(config_dir / "pyproject.toml")],
        cwd=config_dir,
        env={**os.environ, "PYTHONPATH": str(package_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_of_the_project(tmp_path: Path) -> Path:
    """transferkit and its pyproject.toml copied into ``tmp_path``, to break on purpose."""
    shutil.copytree(
        ROOT / "src" / "transferkit",
        tmp_path / "transferkit",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_lazy_import(module: Path, statement: str) -> None:
    # inside a function, as the cycles the contracts removed were written
    module.write_text(module.read_text() + f"\n\ndef _added():\n    {statement}\n")


def test_the_package_keeps_its_import_contracts():
    result = _lint_imports(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    copy = _copy_of_the_project(tmp_path)
    _add_lazy_import(copy / "transferkit" / "metrics.py", "from transferkit import training")
    result = _lint_imports(copy, copy)
    assert result.returncode == 1
    assert "transferkit.metrics is not allowed to import transferkit.training" in result.stdout


def test_a_cycle_inside_a_package_breaks_the_build(tmp_path):
    copy = _copy_of_the_project(tmp_path)
    # the registry importing a module that registers into it: the cycle the catalog removed
    registry = copy / "transferkit" / "backbones" / "registry.py"
    _add_lazy_import(registry, "from transferkit.backbones import text_specs")
    result = _lint_imports(copy, copy)
    assert result.returncode == 1
    assert "No cycles are allowed in transferkit.backbones" in result.stdout
