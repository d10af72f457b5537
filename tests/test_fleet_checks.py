"""Fleet checks against known answers: the Llama 3 snapshot, RSC-1's MTTF, Young/Daly ETTR,
waits monotone in load, a checkpoint storm sharing storage bandwidth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from dcsim.fleet import FleetJob, StorageTier, simulate_fleet
from dcsim.fleet.checkpoint import expected_ettr, young_interval_s
from dcsim.fleet.config import FailureModel, FailureSpec, FleetSpec
from dcsim.fleet.failures import causes_for, mttf_s
from tests.test_fleet_core import layout

ROOT = Path(__file__).resolve().parents[1]
LLAMA3 = ROOT / "examples/fleet/llama3-405b-54days.yaml"
PUBLISHED = Path("/work/shared/validation/llama3-405b-interruptions.yaml")


@pytest.fixture(scope="module")
def llama3():
    from dcsim.app.fleet import run_fleet
    return run_fleet(LLAMA3)


def _published() -> dict[str, int]:
    if PUBLISHED.exists():
        table = yaml.safe_load(PUBLISHED.read_text())
        return {c["cause"]: c["count"] for c in table["causes"]}
    from dcsim.fleet.failures import LLAMA3_CAUSES
    return {k: v[1] for k, v in LLAMA3_CAUSES.items()}


def test_llama3_interruptions_by_cause_within_poisson_noise(llama3):
    """Every cause within 3 sigma of its published count (sigma = sqrt(count)), less the share
    of failures that land on the 64 spare servers or while the job is already restarting."""
    got = llama3.summary["interruptions"]
    pub = _published()
    for cause, n in pub.items():
        assert abs(got.get(cause, 0) - n) <= 3 * math.sqrt(n) + 2, (cause, got.get(cause), n)
    total = sum(got.values())
    assert abs(total - 419) <= 3 * math.sqrt(419)


def test_llama3_effective_training_time_above_90_percent(llama3):
    assert llama3.summary["ettr"] > 0.90
    job = llama3.jobs.iloc[0]
    assert job["restarts"] == sum(llama3.summary["interruptions"].values())


def test_rsc1_mttf_for_16384_gpus_is_1_8_hours():
    causes = causes_for(FailureSpec(model=FailureModel.RSC1))
    assert mttf_s(causes, nodes=2048) / 3600 == pytest.approx(1000 / (6.5 * 2048) * 24, rel=1e-9)
    assert mttf_s(causes, nodes=2048) / 3600 == pytest.approx(1.80, abs=0.01)


def test_ettr_matches_young_daly_closed_form():
    """One job, software failures only (no repair), a fixed interval: the simulated ETTR over a
    long horizon against 1 - C/(tau+C) - (R + (tau+C)/2)/M."""
    write_bw, size = 10e9, 600e9               # C = 60 s
    m_target = 8 * 3600.0                        # MTTF of the job's 8 nodes
    rate_per_node_day = 86400 / m_target / 8
    s = FleetSpec.model_validate({
        "horizon": "400 days", "seed": 1,
        "failures": {"model": "llama3", "rate_scale": 0.0, "detection": "5 min",
                     "requeue": "1 min", "startup": "2 min",
                     "causes": {"software bug": {"rate_per_component_day": rate_per_node_day}}},
        "checkpoint": {"interval": "30 min", "per_gpu_write_bw": "100 GB/s"}})
    job = FleetJob(id=0, name="t", submit_s=0, gpus=64, work_s=1e12, workload="w",
                   checkpoint_bytes=size)
    tier = StorageTier("pfs", read_bw_bytes_per_s=20e9, write_bw_bytes_per_s=write_bw)
    r = simulate_fleet(s, layout(nodes=8), [job], [tier])
    c = size / write_bw
    restart = 300 + 60 + 120 + size / 20e9
    want = expected_ettr(1800, c, m_target, restart)
    assert r.summary["ettr"] == pytest.approx(want, abs=0.01)
    assert young_interval_s(c, m_target) == pytest.approx(math.sqrt(2 * 60 * m_target))


def test_auto_interval_is_young():
    """`interval: auto` checkpoints every sqrt(2 C M) of work."""
    s = FleetSpec.model_validate({"horizon": "2 days", "failures": {"model": "rsc1"},
                                  "checkpoint": {"interval": "auto"}})
    job = FleetJob(id=0, name="t", submit_s=0, gpus=64, work_s=1e9, workload="w",
                   checkpoint_bytes=64 * 50e9 * 10)   # 10 s at 64 x 50 GB/s
    r = simulate_fleet(s, layout(nodes=8), [job], [StorageTier("pfs", 1e15, 1e15)])
    m = mttf_s(causes_for(s.failures), 8)
    tau = young_interval_s(10.0, m)
    ck = r.jobs.iloc[0]["checkpoints"]
    useful = r.jobs.iloc[0]["gpu_h_useful"] * 3600 / 64
    # the checkpoints written are those of the work done (committed or later lost)
    assert ck >= math.floor(useful / tau) - 1


def test_waits_rise_with_offered_load():
    from dcsim.fleet.sources import generate
    from dcsim.fleet.config import GeneratorSpec

    means = []
    for rate in (2.0, 3.0, 4.0, 5.0):
        g = GeneratorSpec.model_validate({"jobs": 1500, "arrival_rate_per_h": rate,
                                          "gpus": {"median": 8, "mean": 24, "max": 64},
                                          "duration": {"median": "2 h", "mean": "4 h"}})
        jobs = generate(g, 1.0, seed=0)
        s = FleetSpec.model_validate({"horizon": "400 days", "scheduler": {"policy": "backfill"}})
        r = simulate_fleet(s, layout(nodes=32), jobs, [])
        means.append(float(r.jobs["wait_s"].mean()))
    assert means == sorted(means) and means[-1] > 2 * means[0], means


def test_checkpoint_storm_shares_write_bandwidth():
    """n jobs checkpointing at once each take n x S / B (equal shares of the tier), one alone
    S / B."""
    size, bw = 100e9, 10e9

    def blocked_per_checkpoint(n: int) -> float:
        jobs = [FleetJob(id=i, name=f"j{i}", submit_s=0, gpus=8, work_s=3000, workload="w",
                         checkpoint_bytes=size) for i in range(n)]
        s = FleetSpec.model_validate({"horizon": "1 day", "checkpoint": {"interval": "1000 s"}})
        r = simulate_fleet(s, layout(nodes=8), jobs, [StorageTier("pfs", 1e12, bw)])
        j = r.jobs
        return float((j["gpu_h_checkpoint"] * 3600 / 8 / j["checkpoints"]).mean())

    assert blocked_per_checkpoint(1) == pytest.approx(size / bw, rel=1e-6)
    assert blocked_per_checkpoint(4) == pytest.approx(4 * size / bw, rel=1e-6)


def test_async_checkpoint_blocks_only_for_the_host_copy():
    size = 8 * 63e9  # 1 s of host copy per GPU at PCIe Gen5 x16
    job = FleetJob(id=0, name="a", submit_s=0, gpus=8, work_s=3000, workload="w",
                   checkpoint_bytes=size)
    s = FleetSpec.model_validate({"horizon": "1 day", "checkpoint": {"interval": "1000 s",
                                                                      "async": True}})
    r = simulate_fleet(s, layout(nodes=1), [job], [StorageTier("pfs", 1e12, 1e9)])
    j = r.jobs.iloc[0]
    assert j["gpu_h_checkpoint"] * 3600 / 8 == pytest.approx(j["checkpoints"] * 1.0, rel=1e-6) \
        or j["checkpoints"] < 2
    assert j["end_s"] < 3000 + 3 * 1.0 + 1e-6


def test_failure_model_none_has_no_interruptions():
    rng = np.random.default_rng(0)
    jobs = [FleetJob(id=i, name=f"j{i}", submit_s=float(i), gpus=8,
                     work_s=float(rng.exponential(3600))) for i in range(20)]
    r = simulate_fleet(FleetSpec.model_validate({"horizon": "2 days"}), layout(), jobs, [])
    assert r.summary["interruptions"] == {} and r.summary["gpu_hours"]["down"] == 0


def test_data_loading_beyond_the_tier_slows_every_reader():
    """Two jobs each reading 60% of the tier's read bandwidth at full speed run at 1/1.2 of it."""
    jobs = [FleetJob(id=i, name=f"j{i}", submit_s=0, gpus=8, work_s=3600, workload="w",
                     read_bytes_per_s=6e9) for i in range(2)]
    s = FleetSpec.model_validate({"horizon": "1 day", "data_tier": "pfs",
                                  "checkpoint": {"interval": None}})
    r = simulate_fleet(s, layout(nodes=2), jobs, [StorageTier("pfs", 10e9, 10e9)])
    assert list(r.jobs["run_s"]) == pytest.approx([3600 * 1.2] * 2, rel=1e-9)
    alone = simulate_fleet(s, layout(nodes=2), jobs[:1], [StorageTier("pfs", 10e9, 10e9)])
    assert alone.jobs["run_s"].iloc[0] == pytest.approx(3600, rel=1e-9)


def test_failure_noticed_at_once_is_a_restart_not_a_preemption():
    s = FleetSpec.model_validate({"horizon": "30 days", "seed": 2,
                                  "failures": {"model": "llama3", "rate_scale": 50,
                                               "detection": 0}})
    job = FleetJob(id=0, name="t", submit_s=0, gpus=64, work_s=1e9)
    j = simulate_fleet(s, layout(nodes=8), [job], []).jobs.iloc[0]
    assert j["restarts"] > 0 and j["preemptions"] == 0


def test_power_cap_slows_compute_by_the_cube_root_and_cuts_power():
    job = FleetJob(id=0, name="a", submit_s=0, gpus=8, work_s=3600)
    free = simulate_fleet(FleetSpec.model_validate({"horizon": "1 day"}), layout(nodes=1),
                          [job], [])
    capped = simulate_fleet(FleetSpec.model_validate({"horizon": "1 day",
                                                      "power": {"gpu_cap_w": "350 W"}}),
                            layout(nodes=1), [job], [])
    # a job given by duration computes all the time (compute share 1): time x (700/350)^(1/3)
    assert capped.jobs["run_s"].iloc[0] == pytest.approx(3600 * 2 ** (1 / 3), rel=1e-9)
    assert capped.series["it_power_w"].max() < free.series["it_power_w"].max()
