"""Compose a scenario into a simulation: build the cluster, the program, the costs; run it."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import topologies
from dcsim.costs import CostModel, SpecRoofline
from dcsim.engine import Engine
from dcsim.results import Breakdown, CheckpointCost, JobResult, Provenance, SimulationResult
from dcsim.timing import IterationTiming
from dcsim.app.scenario import Scenario, ScenarioError
from workloads.flops import iteration_flops
from workloads.memory import memory_footprint
from workloads.models import ModelError, get_model, model_from_dict
from workloads.parallelism import Parallelism, ParallelismError, TrainingJob, validate_job
from workloads.training import build_program


def job_from_scenario(sc: Scenario) -> TrainingJob:
    return job_from_workload(sc.workload)


def job_from_workload(w) -> TrainingJob:
    """A WorkloadSpec (validated scenario data) -> the TrainingJob workloads/ builds from."""
    try:
        if isinstance(w.model, str):
            model = get_model(w.model)
        else:
            model = model_from_dict(w.model.model_dump(exclude_none=True))
    except ModelError as exc:
        raise ScenarioError(str(exc)) from None
    spec = w.parallelism.model_dump()
    distributed_optimizer, fsdp = spec.pop("distributed_optimizer"), spec.pop("fsdp")
    if fsdp:
        spec["zero"] = max(spec["zero"], 3)
    elif distributed_optimizer:
        spec["zero"] = max(spec["zero"], 1)
    par = Parallelism(**spec)
    return TrainingJob(model=model, par=par, seq_len=w.seq_len, global_batch=w.batch.global_,
                       micro_batch=w.batch.micro, precision=w.precision,
                       flash_attention=w.flash_attention, moe_imbalance=w.moe_imbalance)


def cost_model_for(name: str) -> CostModel:
    """'spec', a profile name under calibrate/profiles, or a path to a profile file."""
    if name == "spec":
        return SpecRoofline()
    from dcsim.app.profiles import load_cost_model
    return load_cost_model(name)


def build_cluster(sc: Scenario):
    c = sc.cluster
    fabric = c.fabric.model_dump(exclude_unset=True) if c.fabric else None
    try:
        return topologies.build_cluster(c.preset, nodes=c.nodes, fabric=fabric)
    except topologies.TopologyError as exc:
        raise ScenarioError(str(exc)) from None


def record_routing(sc: Scenario, cluster) -> None:
    """Put the routing the flow network runs (run.routing resolved) in the cluster's
    description, which every result carries."""
    if sc.run.network == "flow":
        from dcsim.network.routing import resolve_routing
        cluster.description["routing"] = resolve_routing(sc.run.routing, cluster)


def apply_degraded_links(cluster, links) -> None:
    """Scale the NIC-to-leaf link of each named GPU (before anything compiles the graph)."""
    g = cluster.graph
    for d in links:
        if d.gpu >= cluster.n_gpus:
            raise ScenarioError(f"run.perturb.degraded_links: gpu {d.gpu} is not in the cluster "
                                f"(0..{cluster.n_gpus - 1})")
        node = cluster.gpu_nodes[d.gpu]
        nics = [n for n in g.neighbors(node) if g.nodes[n].get("kind") == "nic"]
        edges = [(nic, up) for nic in nics for up in g.neighbors(nic)
                 if g.nodes[up].get("kind") not in ("gpu", "nic")]
        if not edges:
            raise ScenarioError(f"run.perturb.degraded_links: gpu {d.gpu} has no network link")
        for a, b in edges:
            g.edges[a, b]["bw_bytes_per_s"] *= d.factor
    if links:
        cluster.cache.clear()


def simulate(sc: Scenario, progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Run one scenario end to end and return its result record; `progress(done, total)` hears
    how many ops the engine has finished (single-job scenarios)."""
    if sc.jobs is not None:
        from dcsim.app.multijob import simulate_jobs  # several jobs sharing one cluster
        return simulate_jobs(sc)
    t0 = time.perf_counter()
    job = job_from_scenario(sc)
    cluster = build_cluster(sc)
    try:
        validate_job(job, cluster.n_gpus)
    except ParallelismError as exc:
        raise ScenarioError(str(exc)) from None
    costs = cost_model_for(sc.run.calibration)
    perturb = sc.run.perturb
    apply_degraded_links(cluster, perturb.degraded_links)
    record_routing(sc, cluster)
    # Folding needs symmetry: a straggler or a slow link makes every rank worth simulating.
    fold = sc.run.fold == "auto" and not perturb.any
    program = build_program(job, fold=fold)
    timing = Engine(program, cluster, costs, network=sc.run.network,
                    slow_ranks=perturb.slow_gpus, routing=sc.run.routing, seed=sc.run.seed,
                    progress=progress).run()
    timing.program = program  # for the timeline export (stages, multiplicities)
    record = summarize(sc, job, cluster, costs, timing, len(program.ranks),
                       time.perf_counter() - t0)
    return SimulationResult(name=record.name, jobs=[record], gpus=record.gpus,
                            events=record.events, wall_s=record.wall_s,
                            scenario=record.scenario, cluster=record.cluster,
                            network=sc.run.network, timing=timing)


def summarize(sc: Scenario, job: TrainingJob, cluster, costs: CostModel,
              timing: IterationTiming, simulated_ranks: int, wall_s: float) -> JobResult:
    """One job's figures from its iteration timing (per-GPU figures count the cluster's
    GPUs: a multi-job run passes the job's own view of the cluster)."""
    it = timing.iteration_s
    n = cluster.n_gpus
    fl = iteration_flops(job)
    peak = cluster.gpu_spec.peak(job.precision)
    mem = memory_footprint(job, cluster.gpu_spec.hbm_bytes)
    assert sc.workload is not None  # a job's scenario names its workload
    tokens = sc.workload.train.tokens
    iters = math.ceil(tokens / job.tokens_per_iteration) if tokens else None
    ckpt = checkpoint_cost(sc, job, iters * it if iters else None)
    total_prov = sum(timing.provenance_s.values()) or 1.0
    note = getattr(costs, "note", "")
    return JobResult(
        name=sc.name,
        iteration_s=it,
        tokens_per_s=job.tokens_per_iteration / it,
        model_tflops_per_gpu=fl.model / it / n / 1e12,
        mfu=fl.model / it / n / peak,
        hardware_tflops_per_gpu=fl.hardware / it / n / 1e12,
        hfu=fl.hardware / it / n / peak,
        memory_per_gpu_bytes=mem.total_bytes,
        fits_in_memory=mem.fits,
        # Training plus blocking checkpoint writes; failures belong to the fleet model.
        time_to_train_s=iters * it + (ckpt.total_s if ckpt else 0.0) if iters else None,
        iterations_to_train=iters,
        checkpoint=ckpt,
        breakdown=Breakdown.from_categories(timing.breakdown),
        provenance=Provenance(
            calibration=getattr(costs, "name", "spec"),
            measured=timing.provenance_s["measured"] / total_prov,
            fitted=timing.provenance_s["fitted"] / total_prov,
            spec=timing.provenance_s["spec"] / total_prov,
            extrapolated=timing.extrapolated_s / total_prov,
            note=note,
        ),
        memory=mem.to_dict(),
        gpus=n,
        critical_rank=timing.critical_rank,
        simulated_ranks=simulated_ranks,
        events=timing.events,
        wall_s=wall_s,
        scenario=sc.resolved(),
        cluster=cluster.description,
        timing=timing,
    )


# Bytes of model state a checkpoint holds per parameter: bf16 weights (2) + fp32 master
# weights, Adam momentum and variance (12), as in the ZeRO paper's mixed-precision Adam.
CHECKPOINT_BYTES_PER_PARAM = 14


def checkpoint_cost(sc: Scenario, job: TrainingJob, train_s: float | None) -> CheckpointCost | None:
    """Checkpoints over the training run and their blocking write time (see CheckpointCost)."""
    assert sc.workload is not None
    every = sc.workload.train.checkpoint_every
    if every is None or train_s is None:
        return None
    count = int(train_s // every)
    size = CHECKPOINT_BYTES_PER_PARAM * job.model.total_params()
    storage = sc.cluster.storage
    if storage:
        write_s = size / storage[0].write_bw
        note = f"blocking writes to {storage[0].tier} at its write bandwidth"
    else:
        write_s = 0.0
        note = "no cluster.storage tier given: checkpoint writes not priced"
    return CheckpointCost(every, count, size, write_s, count * write_s, note)


def simulate_file(path: str | Path, overrides: list[str] | None = None) -> SimulationResult:
    from dcsim.app.scenario import load_scenario
    return simulate(load_scenario(path, overrides))
