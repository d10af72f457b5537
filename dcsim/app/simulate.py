"""Compose a scenario into a simulation: build the cluster, the program, the costs; run it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import topologies
from dcsim.costs import CostModel, SpecRoofline
from dcsim.engine import Engine
from dcsim.hardware import GPUSpec
from dcsim.results import Breakdown, CheckpointCost, JobResult, Provenance, SimulationResult
from dcsim.program import Category
from dcsim.timing import IterationTiming
from dcsim.app.scenario import DegradedLink, Scenario, ScenarioError, WorkloadSpec
from dcsim.cluster import Cluster
from dcsim.fields import abbreviate
from dcsim.profile import ProfileError
from dcsim.limits import LimitExceeded, estimate_ops
from topologies import BuildSpec
from dcsim.vocabulary import CHECKPOINT_BYTES_PER_PARAM
from workloads.flops import iteration_flops
from workloads.memory import memory_footprint
from workloads.parallelism import ParallelismError, TrainingJob, validate_job
from dcsim.app.rank_order import RankOrderChoice, resolve_rank_order
from workloads.training import build_program


def job_from_scenario(sc: Scenario) -> TrainingJob:
    """The single job of a scenario (WorkloadSpec.to_job, the one conversion)."""
    if sc.workload is None:
        raise ScenarioError("workload: required for a single-job run (this scenario has jobs)")
    return sc.workload.to_job()


def job_from_workload(w: WorkloadSpec) -> TrainingJob:
    """A WorkloadSpec (validated scenario data) -> TrainingJob; see WorkloadSpec.to_job."""
    return w.to_job()


def cost_model_for(name: str, gpu: GPUSpec | None = None) -> CostModel:
    """'auto' (the shipped profile of `gpu`'s device, dcsim.calibrated.resolve_cost_model),
    'spec', a profile name under calibrate/profiles, or a path to a profile file."""
    if name == "spec":
        return SpecRoofline()
    from dcsim.app.profiles import resolve
    if len(name) > 4096:  # no file or profile name is this long: do not search for it
        raise ScenarioError(f"run.calibration: {abbreviate(name)} is not a profile name or path")
    try:
        return resolve(name, gpu)
    except ProfileError as exc:  # the profile loader's one-line errors, kept to one short line
        msg = str(exc)
        raise ScenarioError(msg if msg.startswith("run.calibration") else
                            f"run.calibration: {msg}") from None


def plan_cluster(sc: Scenario) -> BuildSpec:
    """The scenario's cluster resolved (every field checked) without building anything."""
    try:
        return topologies.resolve_spec(sc.cluster)
    except topologies.TopologyError as exc:
        raise ScenarioError(_in_cluster(str(exc))) from None


def _in_cluster(message: str) -> str:
    """A topology message that names a cluster field, with the scenario's full path to it."""
    fields = ("fabric", "storage", "nodes", "gpu", "nvlink", "nics_per_node", "nic", "host_link")
    head = message.split(" ", 1)[0].split(":", 1)[0].split(".", 1)[0]
    if message.startswith("unknown preset"):
        return f"cluster.preset: {message}"
    return f"cluster.{message}" if head in fields else message


def build_cluster(sc: Scenario, spec: BuildSpec | None = None) -> Cluster:
    """The scenario's cluster graph, after its size is checked against the run's limits."""
    spec = spec or plan_cluster(sc)
    try:
        sc.run.limits.resolve().check_cluster(spec.nodes, spec.server.gpus, where="cluster.nodes")
        return topologies.build_from_spec(spec)
    except (topologies.TopologyError, LimitExceeded) as exc:
        raise ScenarioError(str(exc)) from None


def check_before_build(sc: Scenario, spec: BuildSpec) -> list[TrainingJob]:
    """Every check that needs no graph, before anything is allocated: group sizes against the
    cluster's GPUs, GPU ranks named by perturbations, and the size of the simulation against
    the run's limits (the cluster graph and the ops of every job's program)."""
    gpus = spec.gpus
    limits = sc.run.limits.resolve()
    try:
        limits.check_cluster(spec.nodes, spec.server.gpus, where="cluster.nodes")
    except LimitExceeded as exc:
        raise ScenarioError(str(exc)) from None
    sc.run.perturb.check_ranks(gpus)
    fold = sc.run.fold == "auto" and not sc.run.perturb.any
    if sc.workload is not None:
        jobs = [job_from_scenario(sc)]
        try:
            validate_job(jobs[0], gpus)
        except ParallelismError as exc:
            raise ScenarioError(str(exc)) from None
        where = "workload"
    else:
        jobs = [j.workload.to_job(where=f"jobs.{i}.workload") for i, j in enumerate(sc.jobs or [])]
        where = "jobs"
    ops = 0.0
    for job in jobs:
        p = job.par
        ranks = p.pp if fold else p.world
        ops += estimate_ops(ranks, job.micro_batches, job.model.layers / p.pp)
    try:
        limits.check_program(ops, gpus, where=where)
    except LimitExceeded as exc:
        raise ScenarioError(str(exc)) from None
    return jobs


def record_routing(sc: Scenario, cluster: Cluster) -> None:
    """Put the routing the flow network runs (run.routing resolved) in the cluster's
    description, which every result carries."""
    if sc.run.network == "flow":
        from dcsim.network.routing import resolve_routing
        cluster.description["routing"] = resolve_routing(sc.run.routing, cluster)


def apply_degraded_links(cluster: Cluster, links: list[DegradedLink]) -> None:
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
    spec = plan_cluster(sc)
    jobs = check_before_build(sc, spec)
    if sc.jobs is not None:
        from dcsim.app.multijob import simulate_jobs  # several jobs sharing one cluster
        return simulate_jobs(sc)
    t0 = time.perf_counter()
    job = jobs[0]
    cluster = build_cluster(sc, spec)
    costs = cost_model_for(sc.run.calibration, cluster.gpu_spec)
    perturb = sc.run.perturb
    apply_degraded_links(cluster, perturb.degraded_links)
    record_routing(sc, cluster)
    # Folding needs symmetry: a straggler or a slow link makes every rank worth simulating.
    fold = sc.run.fold == "auto" and not perturb.any
    job, order = resolve_rank_order(job, cluster)
    program = build_program(job, fold=fold)
    timing = Engine(program, cluster, costs, network=sc.run.network,
                    slow_ranks=perturb.slow_gpus, routing=sc.run.routing, seed=sc.run.seed,
                    progress=progress).run()
    timing.program = program  # for the timeline export (stages, multiplicities)
    record = summarize(sc, job, cluster, costs, timing, len(program.ranks),
                       time.perf_counter() - t0, order)
    return SimulationResult(name=record.name, jobs=[record], gpus=record.gpus,
                            events=record.events, wall_s=record.wall_s,
                            scenario=record.scenario, cluster=record.cluster,
                            network=sc.run.network, timing=timing)


def _workload(sc: Scenario) -> WorkloadSpec:
    """The workload of a single-job scenario (multi-job runs summarize each job's own)."""
    if sc.workload is None:
        raise ScenarioError("workload: required for a single-job summary")
    return sc.workload


@dataclass(frozen=True)
class DataLoading:
    """One iteration's training data read from storage, and how much of it the step hides."""
    bytes_per_iteration: float
    load_s: float          # reading it at the tier's read bandwidth
    exposed_s: float       # what the step does not hide: max(step, load) - step
    note: str


def bytes_per_token(w: WorkloadSpec, job: TrainingJob) -> float:
    """Bytes of one token on disk: the scenario's, or Megatron's indexed dataset rule
    (megatron/core/datasets/indexed_dataset.py, DType.optimal_dtype: uint16 ids when the
    vocabulary has under 65,500 entries, int32 otherwise)."""
    if w.data.bytes_per_token is not None:
        return float(w.data.bytes_per_token)
    return 2.0 if job.model.vocab < 65500 else 4.0


def data_loading(sc: Scenario, job: TrainingJob, step_s: float) -> DataLoading | None:
    """Data loading per iteration, prefetched by data-loader workers while the step runs
    (PyTorch's DataLoader with num_workers > 0 and prefetch_factor: batches are read ahead in
    background processes), so an iteration takes max(step, load). Each sample is seq_len + 1
    tokens (megatron/core/datasets/gpt_dataset.py: labels are the inputs shifted by one).
    None when no storage tier gives a read bandwidth."""
    w = _workload(sc)
    tiers = [t for t in sc.cluster.storage or [] if t.read_bw is not None]
    if w.data.tier is not None:
        tiers = [t for t in sc.cluster.storage or [] if t.tier == w.data.tier]
        if not tiers:
            names = ", ".join(t.tier for t in sc.cluster.storage or []) or "none given"
            raise ScenarioError(f"workload.data.tier: {abbreviate(w.data.tier)} is not a "
                                f"cluster.storage tier ({names})")
        if tiers[0].read_bw is None:
            raise ScenarioError(f"workload.data.tier: tier {tiers[0].tier} has no read_bw")
    read_bw = tiers[0].read_bw if tiers else None
    if read_bw is None:
        return None
    tier = tiers[0]
    size = job.global_batch * (job.seq_len + 1) * bytes_per_token(w, job)
    load_s = size / read_bw
    return DataLoading(size, load_s, max(load_s - step_s, 0.0),
                       f"read from {tier.tier} at its read bandwidth, prefetched during the step")


def summarize(sc: Scenario, job: TrainingJob, cluster: Cluster, costs: CostModel,
              timing: IterationTiming, simulated_ranks: int, wall_s: float,
              order: RankOrderChoice | None = None
              ) -> JobResult:
    """One job's figures from its iteration timing (per-GPU figures count the cluster's
    GPUs: a multi-job run passes the job's own view of the cluster). `order` is the rank
    order the job ran in; the resolved scenario says it instead of `auto`."""
    load = data_loading(sc, job, timing.iteration_s)
    io_s = load.exposed_s if load is not None else 0.0
    it = timing.iteration_s + io_s
    n = cluster.n_gpus
    fl = iteration_flops(job)
    peak = cluster.gpu_spec.peak(job.precision)
    mem = memory_footprint(job, cluster.gpu_spec.hbm_bytes)
    tokens = _workload(sc).train.tokens
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
        breakdown=Breakdown.from_categories({
            **timing.breakdown, Category.IO: timing.breakdown.get(Category.IO, 0.0) + io_s}),
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
        scenario=_with_rank_order(sc.resolved(), job),
        cluster=cluster.description,
        rank_order=({"order": str(order.order), "reason": order.reason}
                    if order is not None else None),
        timing=timing,
    )


def _with_rank_order(resolved: dict[str, Any], job: TrainingJob) -> dict[str, Any]:
    """The resolved scenario with `workload.parallelism.rank_order` as the job ran it."""
    par = (resolved.get("workload") or {}).get("parallelism")
    if isinstance(par, dict) and par.get("rank_order") == "auto":
        par["rank_order"] = str(job.par.rank_order)
    return resolved


def checkpoint_cost(sc: Scenario, job: TrainingJob, train_s: float | None) -> CheckpointCost | None:
    """Checkpoints over the training run and their blocking write time (see CheckpointCost)."""
    every = _workload(sc).train.checkpoint_every
    if every is None or train_s is None:
        return None
    count = int(train_s // every)
    size = CHECKPOINT_BYTES_PER_PARAM * job.model.total_params()
    tier = next((t for t in sc.cluster.storage or [] if t.write_bw is not None), None)
    if tier is not None and tier.write_bw is not None:
        write_s = size / tier.write_bw
        note = f"blocking writes to {tier.tier} at its write bandwidth"
    else:
        write_s = 0.0
        note = "no cluster.storage tier with a write_bw given: checkpoint writes not priced"
    return CheckpointCost(every, count, size, write_s, count * write_s, note)


def simulate_file(path: str | Path, overrides: list[str] | None = None) -> SimulationResult:
    from dcsim.app.scenario import load_scenario
    return simulate(load_scenario(path, overrides))
