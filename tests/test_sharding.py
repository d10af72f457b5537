"""ZeRO-3 / FSDP granularity: the frameworks' gather and reduce-scatter buckets, latency paid
per collective, and overlap bounded by the prefetch depth (workloads/sharding.py)."""

from __future__ import annotations

import pytest

from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import job_from_scenario, simulate
from tests.conftest import small_scenario
from workloads import sharded_step, sharding
from workloads.sharding import ShardingPlan, Zero3Impl, sharding_plan
from workloads.training import build_program


def test_fsdp_plan_is_one_gather_per_layer_prefetched_one_deep():
    plan = sharding_plan(Zero3Impl.FSDP, 1.8e9)
    assert (plan.gathers_per_layer, plan.prefetch_layers, plan.reduce_layers,
            plan.reduces_per_layer) == (1, 1, 1, 1)


def test_deepspeed_plan_follows_its_buckets():
    # GPT-3 175B layer (1.8e9 weights): four module gathers, one module ahead, and a 5e8
    # reduce bucket cut four times per layer
    big = sharding_plan(Zero3Impl.DEEPSPEED, 1.8e9)
    assert (big.gathers_per_layer, big.prefetch_layers, big.reduces_per_layer) == (4, 1, 4)
    # a 1e7-weight layer: the 5e7 prefetch bucket reaches five layers ahead, and a 5e8
    # reduce bucket holds fifty layers
    small = sharding_plan(Zero3Impl.DEEPSPEED, 1e7)
    assert (small.prefetch_layers, small.reduce_layers, small.reduces_per_layer) == (5, 50, 1)
    # a module larger than stage3_max_live_parameters leaves no room to prefetch
    huge = sharding_plan(Zero3Impl.DEEPSPEED, 4 * (sharding.DS_MAX_LIVE_PARAMS + 1))
    assert huge.prefetch_layers == 0


def _zero3(impl_switch: dict, **over) -> dict:
    par = {"tp": 1, "pp": 1, "dp": 16, **impl_switch}
    return small_scenario(**{"workload__parallelism": par,
                             "workload__batch": {"global": 32, "micro": 1}, **over})


def _dp_collectives(sc: dict) -> list:
    prog = build_program(job_from_scenario(load_scenario(sc)), fold=True)
    return [op for op in prog.ranks[0].ops if op.kind == "collective" and op.category == "dp"]


def test_deepspeed_issues_more_smaller_gathers_than_fsdp_same_bytes():
    ds = [o for o in _dp_collectives(_zero3({"zero": 3})) if o.collective.op == "all_gather"]
    fs = [o for o in _dp_collectives(_zero3({"fsdp": True})) if o.collective.op == "all_gather"]
    calls = {k: sum(o.repeat for o in v) for k, v in (("ds", ds), ("fs", fs))}
    vol = {k: sum(o.repeat * o.collective.size_bytes for o in v) for k, v in (("ds", ds), ("fs", fs))}
    assert vol["ds"] == pytest.approx(vol["fs"])
    assert calls["ds"] > calls["fs"]


def test_fsdp_switch_is_zero3_with_the_fsdp_plan():
    a = simulate(load_scenario(_zero3({"fsdp": True})))
    b = simulate(load_scenario(_zero3({"zero": 3, "zero3_impl": "fsdp"})))
    assert a.iteration_s == b.iteration_s


def test_more_smaller_gathers_cost_more_latency(monkeypatch):
    """The same bytes in four times the all-gathers per layer (and no prefetch, so every
    gather is on the critical path): each call pays its latency, so the step is longer."""
    sc = load_scenario(_zero3({"fsdp": True}))
    step = {}
    for n in (1, 4):
        monkeypatch.setattr(sharded_step, "sharding_plan",
                            lambda impl, params, n=n: ShardingPlan(n, 0, 1, 1))
        step[n] = simulate(sc)
    assert step[4].breakdown.exposed_comm_s["dp"] > step[1].breakdown.exposed_comm_s["dp"]
    assert step[4].iteration_s > step[1].iteration_s


def test_overlap_is_bounded_by_the_prefetch_depth(monkeypatch):
    """With no prefetch, every layer waits for its own gather; one layer ahead hides it
    behind the previous layer's compute; a deeper prefetch hides no less."""
    sc = _zero3({"fsdp": True})
    exposed = {}
    for depth in (0, 1, 3):
        monkeypatch.setattr(sharding, "FSDP_PREFETCH_UNITS", depth)
        r = simulate(load_scenario(sc))
        exposed[depth] = r.breakdown.exposed_comm_s["dp"]
    assert exposed[0] > exposed[1] >= exposed[3]


def test_gather_waits_for_the_layer_depth_before():
    """Layer k's gather depends on the compute op that starts layer k - depth (FSDP: k - 1)."""
    prog = build_program(job_from_scenario(load_scenario(_zero3({"fsdp": True}))), fold=True)
    ops = prog.ranks[0].ops
    by_id = {o.id: o for o in ops}
    gathers = [o for o in ops if o.label.startswith("F0/dense") and "param_all_gather" in o.label]
    assert len(gathers) == 8  # one per layer (8 layers on the single stage)
    for g in gathers[2:]:
        assert g.deps and all(by_id[d].stream == "compute" for d in g.deps)


def _gpt3_zero3(nics: int) -> dict:
    """GPT-3 175B, ZeRO-3 (DeepSpeed) data parallelism over 384 A100 (48 DGX A100)."""
    return {"name": "gpt3-175b-zero3-384xa100",
            "cluster": {"preset": "dgx-a100", "nodes": 48, "nics_per_node": nics},
            "workload": {"model": "gpt3-175b", "seq_len": 2048, "precision": "fp16",
                         "parallelism": {"dp": 384, "zero": 3},
                         "batch": {"global": 768, "micro": 1}},
            "run": {"network": "analytical", "fold": "auto", "seed": 0}}


def test_zero3_moves_one_and_a_half_times_data_parallel_volume():
    """ZeRO paper (Rajbhandari et al. SC'20, sec. 7.2.3): weight sharding moves 3 x params
    per step (gather forward, gather backward, reduce-scatter) where DP's all-reduce moves
    2 x params; with fp16 gradients both carry 2-byte elements."""
    sc = _gpt3_zero3(8)
    sc["workload"]["batch"]["global"] = 384  # one micro-batch
    z3 = _dp_collectives(sc)
    sc["workload"]["parallelism"] = {"dp": 384}
    dp = _dp_collectives(sc)
    traffic = {"all_reduce": 2, "all_gather": 1, "reduce_scatter": 1}  # ring factors
    vol = {k: sum(traffic[o.collective.op] * o.repeat * o.collective.size_bytes for o in ops)
           for k, ops in (("z3", z3), ("dp", dp))}
    assert vol["z3"] / vol["dp"] == pytest.approx(1.5, rel=1e-6)


@pytest.mark.parametrize("nics", [8, 2])
def test_zero3_175b_on_384_a100_respects_the_nic_bound(nics):
    """Every node receives (N-1)/N of the weights twice and of the gradients once per
    micro-batch through its NICs: the step is never shorter, and once that exceeds the
    compute (2 HDR NICs per node) the step is communication-bound."""
    sc = load_scenario(_gpt3_zero3(nics))
    job = job_from_scenario(sc)
    r = simulate(sc)
    weights = job.model.total_params()
    node_bw = nics * 200e9 / 8
    wire_s = job.micro_batches * 3 * 2 * weights * (47 / 48) / node_bw
    assert r.iteration_s >= wire_s
    if wire_s > r.breakdown.compute_s:
        assert r.breakdown.exposed_comm_s["dp"] > 0.5 * r.iteration_s
