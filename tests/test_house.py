"""The rules of the house (DESIGN.md section 1), checked so that breaking one fails CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint_imports() -> str:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    return exe


def test_import_contract_holds():
    """The core imports no outer package or the front door; outer packages never the front door."""
    r = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_import_contract_catches_a_violation(tmp_path):
    """A core module importing workloads breaks the contract (the check can fail)."""
    copy = tmp_path / "repo"
    for pkg in ("dcsim", "topologies", "workloads", "calibrate"):
        shutil.copytree(ROOT / pkg, copy / pkg, ignore=shutil.ignore_patterns("*.json", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    engine = copy / "dcsim" / "engine.py"
    engine.write_text(engine.read_text() + "\nimport workloads.models  # a deliberate violation\n")
    r = subprocess.run([_lint_imports(), "--no-cache"], cwd=copy, capture_output=True, text=True,
                       env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0
    assert "dcsim.engine -> workloads.models" in r.stdout


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).parent / name)


def test_ruff_clean():
    """pyflakes + bugbear on the four packages (configured in pyproject.toml)."""
    r = subprocess.run([_tool("ruff"), "check", "--output-format", "concise",
                        "dcsim", "topologies", "workloads", "calibrate"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:]


def test_mypy_clean():
    """mypy on the four packages (configured in pyproject.toml) reports no error."""
    r = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
