"""Every catalog GPU has a preset: dgx-h200 and dgx-b200 build, and `dcsim collective` runs."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from dcsim.app.cli import app
from dcsim.app.validate import bundled_validation_dir

NCCL = yaml.safe_load((bundled_validation_dir() / "nccl-dgx-h100-allreduce.yaml").read_text())


def _busbw(preset: str, size: int) -> float:
    r = CliRunner().invoke(app, ["collective", "all_reduce", "--preset", preset, "--size",
                                 f"{size} B", "--json"])
    assert r.exit_code == 0, r.output
    return float(json.loads(r.output)["busbw_GBps"])


@pytest.mark.parametrize("point", [p for p in NCCL["points"] if p["size_bytes"] >= 2**20],
                         ids=lambda p: str(p["size_bytes"]))
def test_h200_intra_node_all_reduce_within_10pct_of_the_published_dgx_h100(point) -> None:
    """DGX H200 has the DGX H100's NVLink4 / NVSwitch (datasheets): its NCCL curve is the
    H100's, held to the published nccl-tests figures within the H100's own 10%."""
    got = _busbw("dgx-h200", point["size_bytes"])
    assert got == pytest.approx(point["busbw_GBps"], rel=0.10)
    assert got == pytest.approx(_busbw("dgx-h100", point["size_bytes"]), rel=1e-9)


def test_b200_nvlink5_carries_more_than_h100_and_both_presets_simulate() -> None:
    size = 128 * 2**20
    assert _busbw("dgx-b200", size) > 1.4 * _busbw("dgx-h100", size)  # 900 vs 450 GB/s per direction
    from dcsim.app.scenario import load_scenario
    from dcsim.app.simulate import simulate

    for preset in ("dgx-h200", "dgx-b200"):
        sc = {"name": preset, "cluster": {"preset": preset, "nodes": 1},
              "workload": {"model": "llama3-8b", "seq_len": 2048, "precision": "bf16",
                           "parallelism": {"tp": 8}, "batch": {"global": 8, "micro": 1}},
              "run": {"network": "analytical"}}
        r = simulate(load_scenario(sc))
        assert r.iteration_s > 0 and r.provenance.calibration.startswith("auto:h100-sxm")
