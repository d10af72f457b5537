"""Physical lower bounds, over many generated scenarios (issue 11 item 6).

Whatever the schedule and overlap, one iteration is never shorter than (a) the compute the
busiest simulated rank runs back to back on its one compute stream, nor (b) the inter-node bytes
the busiest node must receive divided by its NICs' bandwidth: a collective over a group whose
ranks sit on N nodes brings each of those nodes at least (N - 1) / N of its buffer (all-reduce,
all-gather, reduce-scatter as nccl-tests size them; a pipeline send brings the receiver all of it).
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import build_cluster, cost_model_for, job_from_scenario, simulate
from workloads.training import build_program


def _node_nic_bw(cluster, rank: int) -> float:
    """Bytes/s into one server through its NICs (every GPU's NIC uplinks on that server)."""
    g = cluster.graph
    server = cluster.server_of(rank)
    total = 0.0
    for r, node in enumerate(cluster.gpu_nodes):
        if cluster.server_of(r) != server:
            continue
        for nic in (n for n in g.neighbors(node) if g.nodes[n].get("kind") == "nic"):
            total += sum(g.edges[nic, up]["bw_bytes_per_s"] for up in g.neighbors(nic)
                         if g.nodes[up].get("kind") not in ("gpu", "nic"))
    return total


def _bounds(sc) -> tuple[float, float]:
    """(compute bound, network bound) in seconds for a scenario."""
    job, cluster = job_from_scenario(sc), build_cluster(sc)
    costs = cost_model_for(sc.run.calibration, cluster.gpu_spec)
    program = build_program(job, fold=True)
    compute = 0.0
    for rp in program.ranks:
        t = sum(op.repeat * sum(costs.kernel_time(k, cluster.gpu_spec).time_s for k in op.kernels)
                for op in rp.ops if op.kind == "compute")
        compute = max(compute, t)
    into: dict[int, float] = defaultdict(float)
    for rp in program.ranks:
        for op in rp.ops:
            call = op.collective
            if call is None:
                continue
            for group in call.groups:
                servers = {cluster.server_of(r) for r in group}
                if len(servers) < 2:
                    continue
                share = 1.0 if call.op == "send_recv" else (len(servers) - 1) / len(servers)
                targets = servers if call.op != "send_recv" else {cluster.server_of(group[-1])}
                for s in targets:
                    into[s] += op.repeat * call.size_bytes * share
    net = 0.0
    for server, nbytes in into.items():
        rank = next(r for r in range(cluster.n_gpus) if cluster.server_of(r) == server)
        net = max(net, nbytes / _node_nic_bw(cluster, rank))
    return compute, net


@st.composite
def scenarios(draw):
    tp = draw(st.sampled_from([1, 2, 4, 8]))
    pp = draw(st.sampled_from([1, 2]))
    nodes = draw(st.sampled_from([1, 2, 4]))
    assume(8 * nodes % (tp * pp) == 0)
    dp = 8 * nodes // (tp * pp)
    micro = draw(st.sampled_from([1, 2, 4]))
    preset = draw(st.sampled_from(["dgx-h100", "dgx-a100"]))
    zero = draw(st.sampled_from([0, 1]))
    return {
        "name": "bound", "cluster": {"preset": preset, "nodes": nodes},
        "workload": {
            "model": {"layers": 4 * pp, "hidden": 1024 * draw(st.sampled_from([1, 2])), "heads": 16,
                      "ffn_hidden": 4096, "vocab": 32000},
            "seq_len": draw(st.sampled_from([512, 2048])), "precision": "bf16",
            "parallelism": {"tp": tp, "pp": pp, "dp": dp, "zero": zero,
                            "overlap_grad_reduce": draw(st.booleans())},
            "batch": {"global": dp * micro * draw(st.sampled_from([1, 2])), "micro": micro},
        },
        "run": {"network": "analytical", "calibration": draw(st.sampled_from(["auto", "spec"]))},
    }


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_iteration_is_never_shorter_than_compute_or_nic_bytes(data) -> None:
    sc = load_scenario(data)
    compute, net = _bounds(sc)
    it = simulate(sc).iteration_s
    assert it >= compute * (1 - 1e-9), (it, compute)
    assert it >= net * (1 - 1e-9), (it, net)


def test_the_bounds_are_not_vacuous_for_a_data_parallel_job_across_nodes() -> None:
    sc = load_scenario({
        "name": "dp", "cluster": {"preset": "dgx-h100", "nodes": 4},
        "workload": {"model": {"layers": 4, "hidden": 4096, "heads": 32, "ffn_hidden": 16384,
                               "vocab": 32000},
                     "seq_len": 512, "precision": "bf16",
                     "parallelism": {"tp": 8, "dp": 4, "overlap_grad_reduce": False},
                     "batch": {"global": 4, "micro": 1}},
        "run": {"network": "analytical"}})
    compute, net = _bounds(sc)
    it = simulate(sc).iteration_s
    assert compute > 0 and net > 0.05 * it  # gradients of ~1 GB per node over 400 GB/s
    assert it >= max(compute, net)
