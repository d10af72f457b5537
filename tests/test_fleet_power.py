"""Fleet power: switches and storage in energy and cost, a cluster-wide cap as a per-GPU cap."""

from __future__ import annotations

import pytest

from dcsim.fleet import FleetJob, simulate_fleet
from dcsim.fleet.config import FleetSpec
from dcsim.fleet.power import PUE, SWITCH_W, PowerModel
from tests.test_fleet_core import layout


def _run(power: dict, switches: int = 0, work_s: float = 3600.0):
    lay = layout(nodes=1)
    lay.fabric_switches = switches
    job = FleetJob(id=0, name="a", submit_s=0, gpus=8, work_s=work_s)
    return simulate_fleet(FleetSpec.model_validate({"horizon": "1 day", "power": power}),
                          lay, [job], [])


def test_switches_and_storage_add_their_energy_over_the_horizon():
    base = _run({})
    more = _run({"storage_w": "2 kW"}, switches=3)
    extra_w = 3 * SWITCH_W + 2000.0
    assert more.summary["energy_kwh"] - base.summary["energy_kwh"] == pytest.approx(
        extra_w * 86400 * PUE / 3.6e6, rel=1e-9)
    assert more.summary["power"]["switches_w"] == 3 * SWITCH_W
    assert more.summary["power"]["storage_w"] == 2000.0
    assert more.summary["cost_usd"] > base.summary["cost_usd"]
    assert (more.series["it_power_w"] - base.series["it_power_w"]).min() == pytest.approx(extra_w)


def test_cluster_cap_becomes_the_per_gpu_cap_that_holds_it():
    # 8 GPUs, node overhead 4.6 kW (DGX H100), 1 switch: a 9 kW cap leaves
    # (9000 - 4600 - 1720) / 8 = 335 W per GPU
    r = _run({"cluster_cap_w": "9 kW"}, switches=1)
    per_gpu = (9000 - 4600 - SWITCH_W) / 8
    assert r.summary["power"]["gpu_cap_w"] == pytest.approx(per_gpu)
    assert r.jobs["run_s"].iloc[0] == pytest.approx(3600 * (700 / per_gpu) ** (1 / 3), rel=1e-9)
    assert r.series["it_power_w"].max() <= 9000 + 1e-6


def test_the_tighter_of_the_two_caps_wins():
    r = _run({"cluster_cap_w": "100 kW", "gpu_cap_w": "500 W"})
    assert r.summary["power"]["gpu_cap_w"] == 500.0


def test_a_cluster_cap_below_the_fixed_draw_is_refused():
    with pytest.raises(ValueError, match="fleet.power.cluster_cap_w"):
        PowerModel.from_spec(FleetSpec.model_validate(
            {"power": {"cluster_cap_w": "5 kW"}}).power, "h100-sxm", n_gpus=8, n_switches=1)
