"""Parallelism-aware rank placement (issue 11 item 5): Llama 3's [TP, CP, PP, DP] order on a
fabric tapered above its pods, Megatron's tp-cp-dp-pp elsewhere; the oversubscribed tier then
carries data-parallel traffic only."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dcsim.app.cli import app
from dcsim.app.rank_order import choose_rank_order, full_bisection_domains, resolve_rank_order
from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import build_cluster, job_from_scenario, simulate
from dcsim.program import Category, OpKind
from workloads.parallelism import Parallelism, RankOrder
from workloads.training import build_program

# 16 servers of 8 H100 on a three-tier RoCE Clos: leaves of 2 servers, pods of 4 leaves
# (64 GPUs), the spine tier oversubscribed 4:1 to the core (radix 16: 12 down, 3 up).
TAPERED = {
    "preset": "roce-24k-clos", "nodes": 16,
    "fabric": {"topology": "clos", "tiers": 3, "link": "roce-400",
               "radix": {"leaf": 32, "spine": 16, "core": 64},
               "oversubscription": {"leaf": 1, "spine": 7}, "pod_leaves": 4,
               "flows_per_connection": 16},
}


def _scenario(cluster: dict[str, Any], parallelism: dict[str, Any],
              network: str = "analytical") -> dict[str, Any]:
    return {
        "name": "order",
        "cluster": cluster,
        "workload": {"model": {"layers": 4, "hidden": 1024, "heads": 16, "ffn_hidden": 4096,
                               "vocab": 32000},
                     "seq_len": 1024, "parallelism": parallelism,
                     "batch": {"global": 32, "micro": 1}},
        "run": {"network": network, "fold": "off"},
    }


@pytest.mark.parametrize("order", [RankOrder.TP_CP_DP_PP, RankOrder.TP_CP_PP_DP])
def test_each_order_is_a_bijection_with_tp_groups_in_consecutive_ranks(order):
    p = Parallelism(tp=2, cp=2, pp=3, dp=4, rank_order=order)
    ranks = [p.rank(pp, dp, tp, cp) for pp, dp, tp, cp in
             itertools.product(range(3), range(4), range(2), range(2))]
    assert sorted(ranks) == list(range(p.world))
    for pp, dp, cp in itertools.product(range(3), range(4), range(2)):
        tp_group = [p.rank(pp, dp, t, cp) for t in range(2)]
        assert tp_group[1] - tp_group[0] == 1


def test_llama3_order_keeps_a_pipeline_in_consecutive_ranks_and_megatron_a_replica():
    llama = Parallelism(tp=2, cp=2, pp=3, dp=4, rank_order=RankOrder.TP_CP_PP_DP)
    megatron = replace(llama, rank_order=RankOrder.TP_CP_DP_PP)
    block = llama.tp * llama.cp * llama.pp
    for dp in range(4):
        ranks = {llama.rank(pp, dp, t, c) for pp in range(3) for t in range(2) for c in range(2)}
        assert ranks == set(range(dp * block, (dp + 1) * block))
    replica = megatron.tp * megatron.cp * megatron.dp
    for pp in range(3):
        ranks = {megatron.rank(pp, d, t, c) for d in range(4) for t in range(2) for c in range(2)}
        assert ranks == set(range(pp * replica, (pp + 1) * replica))
    # unresolved `auto` is Megatron's order
    auto = replace(llama, rank_order=RankOrder.AUTO)
    assert all(auto.rank(*i) == megatron.rank(*i) for i in
               itertools.product(range(3), range(4), range(2), range(2)))


def test_domains_are_the_pods_below_a_tapered_spine_tier():
    cluster = build_cluster(load_scenario(_scenario(TAPERED, {"tp": 8, "pp": 2, "dp": 8})))
    domains = full_bisection_domains(cluster)
    assert domains is not None and domains.tier == "spine" and domains.ratio > 1
    assert domains.gpus_per_domain() == 64
    assert domains.of_gpu[:64] == (0,) * 64 and domains.of_gpu[64:] == (1,) * 64


def test_domains_are_leaf_groups_below_a_tapered_leaf_tier_and_none_at_full_bisection():
    leafy = {"preset": "dgx-h100", "nodes": 8,
             "fabric": {"topology": "fat-tree", "tiers": 2, "link": "ib-ndr-400",
                        "radix": {"leaf": 24, "spine": 64},
                        "oversubscription": {"leaf": 2}}}
    cluster = build_cluster(load_scenario(_scenario(leafy, {"tp": 8, "dp": 8})))
    domains = full_bisection_domains(cluster)
    assert domains is not None and domains.tier == "leaf" and domains.ratio == pytest.approx(2)
    per_server = [domains.of_gpu[s * 8] for s in range(8)]
    assert all(len(set(domains.of_gpu[s * 8:(s + 1) * 8])) == 1 for s in range(8))
    assert len(set(per_server)) == 4  # 16 NICs down per leaf: two servers a leaf
    # auto keeps Megatron's order there: Llama 3's rule is for pods under a tapered spine
    job = job_from_scenario(load_scenario(_scenario(leafy, {"tp": 8, "dp": 8})))
    choice = choose_rank_order(job, domains)
    assert choice.order == RankOrder.TP_CP_DP_PP and "leaves" in choice.reason
    full = build_cluster(load_scenario(_scenario({"preset": "dgx-h100", "nodes": 2},
                                                 {"tp": 8, "dp": 2})))
    assert full_bisection_domains(full) is None


def _job_and_cluster(cluster: dict[str, Any], parallelism: dict[str, Any]):
    sc = load_scenario(_scenario(cluster, parallelism))
    return job_from_scenario(sc), build_cluster(sc)


def test_auto_chooses_llama3_order_only_where_a_job_crosses_a_tapered_tier():
    job, cluster = _job_and_cluster(TAPERED, {"tp": 8, "pp": 2, "dp": 8})
    resolved, choice = resolve_rank_order(job, cluster)
    assert choice.order == RankOrder.TP_CP_PP_DP and "2 pods" in choice.reason
    assert resolved.par.rank_order == RankOrder.TP_CP_PP_DP
    # the same job on its first 64 GPUs fits in one pod; an explicit order is kept
    small, _ = _job_and_cluster(TAPERED, {"tp": 8, "pp": 2, "dp": 4})
    assert choose_rank_order(small, full_bisection_domains(cluster)).order == \
        RankOrder.TP_CP_DP_PP
    forced = replace(job, par=replace(job.par, rank_order=RankOrder.TP_CP_DP_PP))
    assert resolve_rank_order(forced, cluster)[1].order == RankOrder.TP_CP_DP_PP
    # a pipeline larger than a pod keeps Megatron's order
    deep, _ = _job_and_cluster(TAPERED, {"tp": 8, "pp": 16})
    deep = replace(deep, global_batch=32)
    choice = choose_rank_order(deep, full_bisection_domains(cluster))
    assert choice.order == RankOrder.TP_CP_DP_PP and "larger than" in choice.reason
    # expert parallelism (a MoE job) keeps Megatron's order: its all-to-alls would cross pods
    moe = replace(job, model=replace(job.model, experts=8, top_k=2, moe_ffn_hidden=1024),
                  par=replace(job.par, ep=2))
    assert choose_rank_order(moe, full_bisection_domains(cluster)).order == RankOrder.TP_CP_DP_PP
    # placed on GPUs that alternate between the pods (a spread placement), a pipeline of two
    # servers would straddle them: Megatron's order
    four = replace(job, par=replace(job.par, dp=4))
    alternating = [g for s in range(4) for pod in (0, 64) for g in range(pod + 8 * s, pod + 8 * s + 8)]
    choice = choose_rank_order(four, full_bisection_domains(cluster), alternating)
    assert choice.order == RankOrder.TP_CP_DP_PP and "straddle" in choice.reason
    # a full-bisection fabric keeps Megatron's order
    flat, flat_cluster = _job_and_cluster({"preset": "dgx-h100", "nodes": 16},
                                          {"tp": 8, "pp": 2, "dp": 8})
    assert resolve_rank_order(flat, flat_cluster)[1].order == RankOrder.TP_CP_DP_PP


def _cross_domain_categories(order: str, parallelism: dict[str, Any]) -> set[Category]:
    """The comm categories of the program with a group spanning more than one pod."""
    job, cluster = _job_and_cluster(TAPERED, dict(parallelism, rank_order=order))
    domain = full_bisection_domains(cluster).of_gpu  # type: ignore[union-attr]
    crossing: set[Category] = set()
    for rp in build_program(job, fold=False).ranks:
        for op in rp.ops:
            if op.kind == OpKind.COLLECTIVE and op.collective is not None:
                for group in op.collective.groups:
                    if len({domain[g] for g in group}) > 1:
                        crossing.add(op.category)
    return crossing


@pytest.mark.parametrize("parallelism", [{"tp": 8, "pp": 2, "dp": 8},
                                         {"tp": 4, "cp": 2, "pp": 2, "dp": 8}])
def test_under_llama3_order_only_data_parallel_traffic_crosses_the_taper(parallelism):
    assert _cross_domain_categories("tp-cp-pp-dp", parallelism) == {Category.DP}
    # Megatron's order sends the pipeline's activations across it instead
    assert Category.PP in _cross_domain_categories("tp-cp-dp-pp", parallelism)


def test_result_and_resolved_scenario_say_which_order_ran(tmp_path: Path):
    result = simulate(load_scenario(_scenario(TAPERED, {"tp": 8, "pp": 2, "dp": 8})))
    assert result.rank_order is not None and result.rank_order["order"] == "tp-cp-pp-dp"
    assert result.scenario["workload"]["parallelism"]["rank_order"] == "tp-cp-pp-dp"
    record = result.to_dict()
    assert record["rank_order"]["order"] == "tp-cp-pp-dp"
    # the two orders price the same job differently on this fabric, and both finish
    other = simulate(load_scenario(_scenario(
        TAPERED, {"tp": 8, "pp": 2, "dp": 8, "rank_order": "tp-cp-dp-pp"})))
    assert other.rank_order == {"order": "tp-cp-dp-pp", "reason": "set by the scenario"}
    assert other.iteration_s > 0 and result.iteration_s > 0


def test_cli_shows_the_order_and_refuses_an_unknown_one(tmp_path: Path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(_scenario(TAPERED, {"tp": 8, "pp": 2, "dp": 8})))
    runner = CliRunner()
    res = runner.invoke(app, ["simulate", str(f)])
    assert res.exit_code == 0, res.output
    assert "rank order" in res.output and "tp-cp-pp-dp" in res.output
    res = runner.invoke(app, ["simulate", str(f), "--json"])
    assert json.loads(res.stdout)["rank_order"]["order"] == "tp-cp-pp-dp"
    res = runner.invoke(app, ["simulate", str(f), "--set",
                              "workload.parallelism.rank_order=dp-first"])
    assert res.exit_code == 2
    assert "workload.parallelism.rank_order" in res.stderr and "Traceback" not in res.output


def _tapered(spine: float):
    from topologies import build_cluster as build_preset
    fabric = dict(TAPERED["fabric"], oversubscription={"leaf": 1, "spine": spine})
    return build_preset("roce-24k-clos", nodes=16, fabric=fabric)


def _times(call) -> tuple[tuple[float, float], tuple[float, float]]:
    """(analytical, flow) seconds of a call on the 4:1-tapered fabric and on the same fabric
    untapered."""
    import simpy

    from dcsim.network.analytical import analytical_time
    from dcsim.network.flow_backend import FlowBackend
    out = []
    for cluster_of in (lambda: _tapered(7), lambda: _tapered(1)):
        a = analytical_time(cluster_of(), call).time_s
        env = simpy.Environment()
        env.run(FlowBackend(env, cluster_of()).run(call))
        out.append((a, env.now))
    return out[0], out[1]


def test_the_taper_charges_the_bytes_that_cross_it_and_no_more():
    from dcsim.collectives import CollectiveCall
    # a data-parallel ring with one rank per server over both pods crosses the taper twice:
    # it costs what it costs on a full-bisection fabric (both back ends)
    ring = CollectiveCall("all_reduce", (tuple(range(0, 128, 8)),), 2.0 ** 28)
    tapered, full = _times(ring)
    for t, f in zip(tapered, full, strict=True):
        assert t == pytest.approx(f, rel=0.02)
    # every GPU of pod 0 sending to its twin in pod 1 puts all 64 NICs' bytes on the 4:1 tier:
    # never faster than those bytes over the tier (16 spines x one 400 Gb/s link up), and
    # several times the untapered time (hashed ECMP collisions slow the flow model's untapered
    # case too, so the flow ratio stays under 4)
    across = CollectiveCall("send_recv", tuple((g, g + 64) for g in range(64)), 2.0 ** 28)
    bound = 64 * 2.0 ** 28 / _tapered(7).description["fabric_summary"]["bisection_bytes_per_s"]
    tapered, full = _times(across)
    for t, f in zip(tapered, full, strict=True):
        assert t >= 0.99 * bound and t > 2.5 * f
    assert tapered[0] == pytest.approx(4 * full[0], rel=0.05)  # closed form: exactly the taper


def test_topo_show_names_the_full_bisection_domains():
    runner = CliRunner()
    res = runner.invoke(app, ["topo", "show", "roce-24k-clos", "--nodes", "1024", "--json"])
    assert res.exit_code == 0, res.output
    dom = json.loads(res.stdout)["full_bisection_domains"]
    assert dom["kind"] == "pod" and dom["count"] == 3 and dom["gpus_max"] == 3072
    assert dom["gpus_min"] == 8192 - 2 * 3072
    res = runner.invoke(app, ["topo", "show", "roce-24k-clos", "--nodes", "1024"])
    assert "3 pods of 2,048-3,072 GPUs" in res.stdout
    res = runner.invoke(app, ["topo", "show", "dgx-h100", "--nodes", "4", "--json"])
    assert json.loads(res.stdout)["full_bisection_domains"] is None
