"""notebooks/calibration.ipynb reads the committed profile and check files, and is committed with
its plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "calibration.ipynb"
CHECK = REPO / "calibrate" / "profiles" / "cpu-2core.check.json"


def test_committed_check_file_has_the_fields_the_notebook_reads() -> None:
    data = json.loads(CHECK.read_text())
    assert data["summary"]["runs"] == len(data["runs"]) >= 1
    for r in data["runs"]:
        for key in ("measured_step_s", "predicted_step_s", "error_pct", "measured", "predicted", "plot",
                    "predicted_phases"):
            assert key in r, key
        p = r["predicted_phases"]
        assert p["forward_s"] + p["backward_s"] + p["comm_s"] + p["optimizer_s"] == pytest.approx(
            r["predicted_step_s"], rel=1e-6)
        assert r["error_pct"] == pytest.approx(
            100 * (r["predicted_step_s"] - r["measured_step_s"]) / r["measured_step_s"])


def test_committed_notebook_shows_its_plots() -> None:
    """The notebook is committed with its outputs (tests/test_notebooks.py re-executes it and
    compares its text; how long it takes is not a test's business: benchmarks/ measure speed)."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # GEMM efficiency, all-reduce, the check
