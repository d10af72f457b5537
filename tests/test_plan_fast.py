"""The plan's fast model against the full simulation, across many layouts."""

from __future__ import annotations

import pytest

from dcsim.app.planning.fast import FastModel
from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import build_cluster, cost_model_for, job_from_scenario, simulate

L8 = "examples/llama3-8b-fsdp-16xh100.yaml"
L70 = "examples/llama3-70b-64xh100.yaml"
MIX = "examples/mixtral-8x7b-512xh100.yaml"

# (scenario, overrides): tp / pp / vp / cp / ep, ZeRO 0-3, recompute, SP, micro-batch, overlaps,
# fp8, the framework era.
LAYOUTS = [
    (L8, ["workload.parallelism.fsdp=false", "workload.parallelism.zero=0"]),
    (L8, []),  # FSDP: gathers before every chunk
    (L8, ["workload.parallelism.fsdp=false", "workload.parallelism.zero=2",
          "workload.parallelism.dp=8", "workload.parallelism.tp=2"]),
    (L8, ["workload.parallelism.fsdp=false", "workload.parallelism.zero=1",
          "workload.parallelism.dp=4", "workload.parallelism.pp=4",
          "workload.parallelism.recompute=full"]),
    (L8, ["workload.parallelism.fsdp=false", "workload.parallelism.dp=4",
          "workload.parallelism.pp=2", "workload.parallelism.vp=2",
          "workload.parallelism.tp=2", "workload.parallelism.sequence_parallel=true"]),
    (L8, ["workload.parallelism.fsdp=false", "workload.parallelism.dp=8",
          "workload.parallelism.cp=2", "workload.parallelism.zero=2"]),
    (L8, ["workload.parallelism.fsdp=false", "workload.parallelism.dp=8",
          "workload.parallelism.tp=2", "workload.parallelism.overlap_grad_reduce=false",
          "workload.batch.micro=2"]),
    (L70, []),
    (L70, ["workload.parallelism.tp_comm_overlap=true"]),
    (L70, ["workload.parallelism.overlap_p2p_comm=false", "workload.parallelism.pp=4",
           "workload.parallelism.dp=2", "workload.parallelism.sequence_parallel=false"]),
    (L70, ["workload.parallelism.pp=4", "workload.parallelism.vp=4",
           "workload.parallelism.dp=2", "workload.parallelism.zero=0"]),
    (L70, ["workload.parallelism.tp=4", "workload.parallelism.pp=1", "workload.parallelism.dp=8",
           "workload.parallelism.cp=2", "workload.parallelism.zero=3"]),
    (MIX, ["cluster.nodes=8", "workload.parallelism.dp=16", "workload.batch.global=128"]),
    # the distributed optimizer's gathers overlapped with the first forwards
    (L70, ["workload.parallelism.overlap_param_gather=true"]),
    # gradients reduced after the pipeline drains (Megatron 2021), interleaved
    (L70, ["workload.parallelism.overlap_grad_reduce=false", "workload.parallelism.pp=4",
           "workload.parallelism.vp=2", "workload.parallelism.dp=2"]),
    (L8, ["workload.parallelism.fsdp=false", "workload.parallelism.zero=1",
          "workload.precision=fp8"]),
    (L70, ["workload.framework=megatron-2021"]),
]


@pytest.mark.parametrize("path,overrides", LAYOUTS, ids=[f"{i}" for i in range(len(LAYOUTS))])
def test_fast_model_agrees_with_simulation(path, overrides):
    """Within 2% of the flow simulation (what `dcsim plan` confirms with) and, since it replays
    the same schedule with the same closed-form prices, within 0.5% of the analytical one."""
    sc = load_scenario(path, overrides + ["run.network=flow"])
    cluster = build_cluster(sc)
    costs = cost_model_for(sc.run.calibration, cluster.gpu_spec)  # what simulate prices with
    est = FastModel(cluster, costs).estimate(job_from_scenario(sc))
    flow = simulate(sc)
    assert est.iteration_s == pytest.approx(flow.iteration_s, rel=0.02)
    ana = simulate(sc.model_copy(update={"run": sc.run.model_copy(update={"network": "analytical"})}))
    assert est.iteration_s == pytest.approx(ana.iteration_s, rel=0.005)
    # and it says where the time went: the parts add up to the iteration
    assert sum(est.breakdown.values()) == pytest.approx(est.iteration_s, rel=1e-6)
    assert est.breakdown["compute"] == pytest.approx(ana.breakdown.compute_s, rel=0.01)
