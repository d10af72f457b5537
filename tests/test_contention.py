"""Contention on shared links: oversubscription, jobs sharing the spine, link bandwidth.

Known directions, not fitted numbers: a thinner spine or a slower link is never faster; a job
whose data-parallel rings cross the spine (spread placement) slows down as the spine thins; two
jobs whose rings share the spine are each slower than alone (flow network).
"""

from __future__ import annotations

from typing import Any

import pytest

from dcsim.app.multijob import simulate_jobs
from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import simulate

# A data-parallel-heavy job: 1.6B parameters over TP 8 x DP n with one micro-batch per replica,
# so ~0.8 GB of fp32 gradients per GPU meet ~10 ms of compute per iteration.
MODEL = {"layers": 8, "hidden": 4096, "heads": 32, "ffn_hidden": 16384, "vocab": 32000}
OVERSUBSCRIPTION = (1, 2, 4, 8)


def dp_job(name: str, dp: int, placement: str = "spread", micro_batches: int = 1) -> dict[str, Any]:
    return {"name": name, "placement": placement,
            "workload": {"model": MODEL, "seq_len": 2048, "parallelism": {"tp": 8, "dp": dp},
                         "batch": {"global": dp * micro_batches}}}


def scenario(jobs: list[dict[str, Any]], nodes: int = 16, network: str = "flow",
             **fabric: Any) -> dict[str, Any]:
    return {"name": "contention",
            "cluster": {"preset": "dgx-h100", "nodes": nodes, "fabric": fabric},
            "jobs": jobs, "run": {"network": network}}


def iteration(sc: dict[str, Any]) -> float:
    return simulate(load_scenario(sc)).jobs[0].iteration_s


@pytest.mark.parametrize("nodes", [32, 64])
@pytest.mark.parametrize("placement", ["packed", "spread"])
def test_thinner_spine_is_never_faster_on_larger_fabrics(nodes: int, placement: str) -> None:
    """Leaves of 64 ports take 4, 5, 6 and 7 whole servers at 1, 2, 4 and 8:1, so leaf
    boundaries move as the spine thins; with InfiniBand's destination-mod-k routing the ring
    hops never share an uplink they need not, and the job never speeds up."""
    times = [iteration(scenario([dp_job("dp", nodes, placement)], nodes=nodes, oversubscription=o))
             for o in OVERSUBSCRIPTION]
    assert all(b >= a * (1 - 1e-9) for a, b in zip(times, times[1:])), times


@pytest.mark.parametrize("network", ["flow", "analytical"])
@pytest.mark.parametrize("placement", ["packed", "spread"])
def test_thinner_spine_is_never_faster(network: str, placement: str) -> None:
    times = [iteration(scenario([dp_job("dp", 16, placement)], network=network,
                                oversubscription=o)) for o in OVERSUBSCRIPTION]
    assert all(b >= a * (1 - 1e-9) for a, b in zip(times, times[1:])), times
    if placement == "spread":  # every ring hop crosses the spine: 8:1 hurts a lot
        assert times[-1] > 2.0 * times[0], times
    else:  # a packed ring crosses each leaf boundary once per channel: no effect here
        assert times[-1] == pytest.approx(times[0], rel=1e-6)


def test_two_jobs_sharing_the_spine_are_each_slower_than_alone() -> None:
    sc = scenario([dp_job("a", 8), dp_job("b", 8)], oversubscription=4)
    r = simulate_jobs(load_scenario(sc), compare_alone=True)
    assert [j.placement["crosses_spine"] for j in r.jobs] == [True, True]
    for j in r.jobs:
        assert j.slowdown is not None and j.slowdown > 1.2, (j.name, j.slowdown)
        assert j.iteration_s == pytest.approx(j.breakdown.total_s(), rel=1e-9)


def test_packed_jobs_under_their_own_leaves_do_not_interfere() -> None:
    # 1:1 leaves hold 4 DGX nodes each: two 4-node packed jobs own one leaf each.
    sc = scenario([dp_job("a", 4, "packed"), dp_job("b", 4, "packed")], nodes=8,
                  oversubscription=1)
    r = simulate_jobs(load_scenario(sc), compare_alone=True)
    assert [j.placement["leaves"] for j in r.jobs] == [1, 1]
    assert [j.slowdown for j in r.jobs] == pytest.approx([1.0, 1.0], rel=1e-9)


def test_analytical_network_prices_each_call_alone() -> None:
    sc = scenario([dp_job("a", 8), dp_job("b", 8)], network="analytical", oversubscription=4)
    r = simulate_jobs(load_scenario(sc), compare_alone=True)
    assert [j.slowdown for j in r.jobs] == pytest.approx([1.0, 1.0], rel=1e-9)
    assert "own call" in r.contention


def test_a_short_job_keeps_contending_while_a_long_one_runs() -> None:
    sc = scenario([dp_job("long", 8, micro_batches=8), dp_job("short", 8)], oversubscription=4)
    r = simulate_jobs(load_scenario(sc), compare_alone=True)
    long, short = r.job("long"), r.job("short")
    assert short.iterations_simulated > 1 and short.iterations_measured > 1
    assert long.iterations_simulated == long.iterations_measured == 1
    assert long.slowdown > 1.05 and short.slowdown > 1.05


@pytest.mark.parametrize("network", ["flow", "analytical"])
def test_faster_links_are_never_slower(network: str) -> None:
    times = [iteration(scenario([dp_job("dp", 16)], network=network, oversubscription=4,
                                link=link)) for link in ("ib-hdr-200", "ib-ndr-400", "ib-xdr-800")]
    assert all(b <= a * (1 + 1e-9) for a, b in zip(times, times[1:])), times
    assert times[0] > 1.5 * times[1], times


def test_the_result_names_the_routing_it_ran() -> None:
    base = scenario([dp_job("dp", 16)], oversubscription=4)
    r = simulate(load_scenario(base))
    assert r.cluster["routing"] == "dmodk"  # InfiniBand NDR: the subnet manager's routing
    hashed = simulate(load_scenario({**base, "run": {"network": "flow", "routing": "ecmp"}}))
    assert hashed.cluster["routing"] == "ecmp"
    # a spread job's ring hops all cross the spine: hashing them makes some share an uplink
    assert hashed.jobs[0].iteration_s >= r.jobs[0].iteration_s * (1 - 1e-9)
