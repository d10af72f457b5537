"""Fleet core: books that close, nothing double-allocated, schedulers and placement behave."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcsim.fleet import FleetJob, FleetLayout, StorageTier, simulate_fleet
from dcsim.fleet.config import FleetSpec
from dcsim.fleet.placement import PLACEMENTS, get_placement, placement_info
from dcsim.fleet.pool import NodePool
import dcsim.fleet.sharing  # noqa: F401  (the GPU-sharing policies join the registry)


def layout(nodes: int = 16, gpn: int = 8, per_leaf: int = 4, pods: int = 1) -> FleetLayout:
    leaf = np.arange(nodes) // per_leaf
    return FleetLayout(gpus=np.full(nodes, gpn), gpu_type=np.zeros(nodes, dtype=int),
                       type_names=["h100-sxm"], cpu_milli=np.full(nodes, np.inf),
                       memory_mib=np.full(nodes, np.inf), leaf=leaf,
                       pod=leaf * pods // (leaf.max() + 1),
                       switches=int(leaf.max()) + 1,
                       switch_nodes=[np.flatnonzero(leaf == i) for i in range(leaf.max() + 1)])


def spec(**kw) -> FleetSpec:
    return FleetSpec.model_validate(kw)


def jobs_of(sizes, works, gap_s=300.0, ckpt=0.0):
    return [FleetJob(id=i, name=f"j{i}", submit_s=i * gap_s, gpus=g, work_s=w,
                     workload="w" if ckpt else None, checkpoint_bytes=ckpt)
            for i, (g, w) in enumerate(zip(sizes, works, strict=True))]


TIER = [StorageTier("pfs", 100e9, 50e9)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.sampled_from([1, 2, 4, 8, 16, 32, 64]), min_size=1, max_size=40),
       seed=st.integers(0, 1000),
       policy=st.sampled_from(["fifo", "backfill", "priority"]),
       placement=st.sampled_from(sorted(PLACEMENTS)),
       failures=st.sampled_from(["none", "llama3"]))
def test_books_close_and_nothing_double_allocated(sizes, seed, policy, placement, failures):
    """GPU-hours used + idle + down = capacity x time; used = the jobs' own held GPU-hours;
    allocated never exceeds the cluster (NodePool raises on any double allocation)."""
    rng = np.random.default_rng(seed)
    jobs = jobs_of(sizes, rng.exponential(20000, len(sizes)) + 1, ckpt=1e11)
    for j in jobs:
        j.priority = int(rng.integers(3))
    s = spec(horizon="5 days", seed=seed, scheduler={"policy": policy, "placement": placement},
             failures={"model": failures, "rate_scale": 200.0},
             checkpoint={"interval": "30 min"})
    lay = layout()
    r = simulate_fleet(s, lay, jobs, TIER)
    gh = r.summary["gpu_hours"]
    assert gh["used"] + gh["idle"] + gh["down"] == pytest.approx(gh["capacity"], rel=1e-9)
    assert gh["idle"] >= -1e-6 and gh["down"] >= 0
    assert gh["used"] == pytest.approx(r.jobs["gpu_h_held"].sum(), rel=1e-9, abs=1e-6)
    assert (r.series["allocated_gpus"] <= lay.n_gpus + 1e-9).all()
    # per node, placements never overlap beyond its GPUs
    for n in range(lay.n_nodes):
        spans = sorted((t0, t1, jid) for jid, t0, t1, nodes in r.segments if n in nodes)
        for (_a0, a1, ja), (b0, _b1, jb) in zip(spans, spans[1:], strict=False):
            both = jobs[ja].gpus + jobs[jb].gpus
            assert b0 >= a1 - 1e-9 or both <= 8, (n, ja, jb)


def test_fifo_order_and_completion():
    jobs = jobs_of([128, 8, 8], [3600, 600, 600], gap_s=1.0)
    r = simulate_fleet(spec(horizon="1 day"), layout(), jobs, TIER)
    j = r.jobs.set_index("name")
    assert j.loc["j0", "start_s"] == 0 and j.loc["j0", "end_s"] == pytest.approx(3600)
    # FIFO: the small jobs wait for the full-cluster job
    assert j.loc["j1", "start_s"] == pytest.approx(3600)
    assert r.summary["jobs"]["completed"] == 3


def test_backfill_lets_short_jobs_past_a_blocked_head():
    # j0 holds half the cluster for 10 h; j1 wants it all (waits); j2 is short and fits now.
    jobs = jobs_of([64, 128, 8], [36000, 3600, 600], gap_s=1.0)
    fifo = simulate_fleet(spec(horizon="2 days"), layout(), jobs, TIER).jobs.set_index("name")
    bf = simulate_fleet(spec(horizon="2 days", scheduler={"policy": "backfill"}), layout(),
                        jobs, TIER).jobs.set_index("name")
    assert fifo.loc["j2", "start_s"] >= 36000
    assert bf.loc["j2", "start_s"] == pytest.approx(2.0)
    assert bf.loc["j1", "start_s"] == pytest.approx(fifo.loc["j1", "start_s"])  # not delayed


def test_priority_preempts_and_loses_work_since_checkpoint():
    jobs = jobs_of([128, 64], [50000, 3600], gap_s=5000.0, ckpt=1e9)
    jobs[1].priority = 5
    r = simulate_fleet(spec(horizon="3 days", scheduler={"policy": "priority",
                                                         "preemption": "lose"},
                            checkpoint={"interval": "1 h"}), layout(), jobs, TIER)
    j = r.jobs.set_index("name")
    assert j.loc["j1", "start_s"] == pytest.approx(5000.0)
    assert j.loc["j0", "preemptions"] == 1
    # checkpoint after 3600 s of work (+ its write): the rest of the first 5000 s is lost
    assert j.loc["j0", "gpu_h_lost_preemption"] * 3600 / 128 == pytest.approx(
        5000 - 3600 - 1e9 / 50e9, rel=1e-6)
    assert j.loc["j0", "completed"]


def test_priority_preemption_with_a_checkpoint_loses_nothing():
    jobs = jobs_of([128, 64], [50000, 3600], gap_s=5000.0, ckpt=1e9)
    jobs[1].priority = 5
    r = simulate_fleet(spec(horizon="3 days", scheduler={"policy": "priority"},
                            checkpoint={"interval": "1 h"}), layout(), jobs, TIER)
    j = r.jobs.set_index("name")
    write_s = 1e9 / 50e9  # the tier's write bandwidth (the writers' NICs allow more)
    assert j.loc["j1", "start_s"] == pytest.approx(5000.0 + write_s)
    assert j.loc["j0", "preemptions"] == 1 and j.loc["j0", "gpu_h_lost_preemption"] == 0
    assert j.loc["j0", "completed"]


def test_packed_takes_fewest_leaves_spread_takes_many():
    lay = layout(nodes=32, per_leaf=4)
    job = FleetJob(id=0, name="a", submit_s=0, gpus=64, work_s=1)
    rng = np.random.default_rng(0)
    pool = NodePool(lay)
    packed = placement_info(pool, get_placement("packed", rng).place(pool, job))
    spread = placement_info(pool, get_placement("spread", rng).place(pool, job))
    assert packed.leaves == packed.min_leaves == 2
    assert spread.leaves == 8
    with pytest.raises(ValueError, match="fleet.scheduler.placement: unknown policy 'tetris'"):
        get_placement("tetris", rng)


def test_gpu_sharing_pods_pack_on_one_gpu():
    lay = layout(nodes=1)
    pool = NodePool(lay)
    place = get_placement("best-fit", np.random.default_rng(0))
    a = place.place(pool, FleetJob(id=0, name="a", submit_s=0, gpus=1, gpu_milli=400, work_s=1))
    pool.take(a)
    b = place.place(pool, FleetJob(id=1, name="b", submit_s=0, gpus=1, gpu_milli=500, work_s=1))
    pool.take(b)
    assert a.cols[0] == b.cols[0] and pool.free_milli[0, a.cols[0]] == 100
    assert pool.allocated_gpus == pytest.approx(0.9)
    with pytest.raises(AssertionError):
        pool.take(b)  # the same shares twice: more than the GPU has


def test_same_seed_same_result():
    def jobs():
        rng = np.random.default_rng(3)
        return jobs_of([int(x) for x in rng.choice([8, 16, 32], 50)],
                       list(rng.exponential(9000, 50)), ckpt=1e10)
    s = spec(horizon="4 days", seed=7, failures={"model": "llama3", "rate_scale": 100.0},
             scheduler={"policy": "backfill", "placement": "random"})
    a = simulate_fleet(s, layout(), jobs(), TIER)
    b = simulate_fleet(s, layout(), jobs(), TIER)
    assert a.summary == b.summary
    assert a.jobs.equals(b.jobs)
    c = simulate_fleet(spec(**{**s.model_dump(by_alias=True), "seed": 8}), layout(), jobs(), TIER)
    assert c.summary != a.summary


@pytest.mark.parametrize("policy", ["fgd", "gpu-packing", "gpu-clustering", "dot-product"])
def test_gpu_sharing_policies_in_the_fleet(policy):
    """The ATC'23 policies place shared and whole-GPU pods as they arrive and leave; their
    packing state follows the pool (every share returned at the end) and the books close."""
    from dcsim.fleet.sim import FleetSim

    lay = layout(nodes=6, gpn=4, per_leaf=2)
    lay.cpu_milli = np.full(6, 32000.0)
    lay.memory_mib = np.full(6, 131072.0)
    rng = np.random.default_rng(5)
    jobs = [FleetJob(id=i, name=f"p{i}", submit_s=float(i * 60), gpus=int(g),
                     gpu_milli=int(m) if g == 1 else 1000, work_s=float(rng.exponential(3600)),
                     cpu_milli=4000, memory_mib=8192)
            for i, (g, m) in enumerate(zip(rng.choice([1, 1, 1, 2, 4, 8], 120),
                                           rng.choice([250, 500, 1000], 120), strict=True))]
    s = spec(horizon="10 days", scheduler={"policy": "backfill", "placement": policy})
    sim = FleetSim(s, lay, jobs, [])
    sim.run()
    assert all(st.end is not None for st in sim.states)
    assert (sim.placement.cluster.gpu_free[sim.placement.cluster.gpu_exists] == 1000).all()
    assert (sim.pool.free_milli[:, :4] == 1000).all()
    r = simulate_fleet(s, lay, jobs, [])
    gh = r.summary["gpu_hours"]
    assert gh["used"] == pytest.approx(r.jobs["gpu_h_held"].sum(), rel=1e-9)
