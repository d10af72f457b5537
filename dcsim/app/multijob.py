"""Several training jobs on one cluster: placement, one shared simulation, per-job results.

`simulate_jobs(sc)` places every job of `sc.jobs` on the cluster's nodes in order, builds each
job's program on its GPUs (a rank map, disjoint op ids), merges them into one Program and runs
one Engine, so with `run.network: flow` the jobs' flows share links max-min fairly and slow each
other down where they meet (leaf uplinks, spines). With `run.network: analytical` every
collective is priced in closed form with the load of *its own call's groups only*: jobs do not
see each other's traffic there, so contention needs the flow network.

Placement (whole nodes, in job order, from the nodes still free):
- packed: consecutive nodes under as few leaf switches as possible (a window of free nodes that
  spans the fewest leaves, then pods);
- spread: nodes taken round-robin over the leaf groups (and pods), so the job's data-parallel
  rings cross the spine, as a fragmented cluster would place it.

Per-job figures: a job's iteration is the latest end among its ranks. When the jobs' iterations
differ in length (flow network), the shorter jobs keep iterating (`iterations_simulated`) until
the longest job's first iteration ends, so nobody finishes its measurement on an idle network;
a job's figures are then the mean of its iterations that started inside that window
(`iterations_measured`; 1 for the longest job, and for every job when they are equally long).
The breakdown comes from the job's own critical rank, by the engine's attribution rule
(dcsim.attribution). The result is a SimulationResult with multi_job set and a JobResult
per job.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from dcsim.attribution import summarize as summarize_timing
from dcsim.cluster import Cluster, ClusterCaches
from dcsim.costs import CostModel
from dcsim.engine import Engine
from dcsim.pricing import Pricing
from dcsim.program import Program, RankProgram
from dcsim.results import JobResult, SimulationResult
from dcsim.timing import IterationTiming, OpTiming
from dcsim.app.scenario import JobSpec, Scenario, ScenarioError
from dcsim.app.simulate import (apply_degraded_links, build_cluster, cost_model_for,
                            job_from_workload, record_routing, summarize)
from workloads.parallelism import ParallelismError, TrainingJob, validate_job
from dcsim.app.rank_order import full_bisection_domains, resolve_rank_order
from workloads.training import build_program

# Shorter jobs repeat until the longest job's first iteration ends, at most this many times
# (a bound on simulation cost; a job's iterations_simulated says when it was reached).
MAX_BACKGROUND_ITERATIONS = 32
# A job whose iterations end within this share of the window needs no more of them.
BACKGROUND_TOLERANCE = 1e-3
# Runs of the shared simulation at most (the first, then longer background where it fell short).
MAX_PASSES = 3


# --- placement ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSite:
    """Where one server plugs into the fabric: the leaf switches of its NICs and their pods."""

    leaves: tuple[int, ...]
    pods: tuple[int, ...]


@dataclass(frozen=True)
class Placement:
    """The cluster GPUs of one job: gpus[i] runs job rank i (the program's rank map)."""

    job: str
    policy: str
    gpus: tuple[int, ...]
    nodes: tuple[int, ...]
    leaves: int  # leaf switches the job's NICs attach to
    pods: int  # pods (3-tier fabrics) the job spans; 1 on a 2-tier fabric

    @property
    def crosses_spine(self) -> bool:
        return self.leaves > 1

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "nodes": list(self.nodes), "gpus": len(self.gpus),
                "first_gpu": self.gpus[0], "leaves": self.leaves, "pods": self.pods,
                "crosses_spine": self.crosses_spine}


def node_sites(cluster: Cluster) -> list[NodeSite]:
    """The fabric attachment of every server, from the compiled network (no graph walks later)."""
    from dcsim.network.compiled import compile_network

    net = compile_network(cluster)
    g = cluster.graph
    gpn = cluster.gpus_per_node
    sites = []
    for s in range(cluster.n_nodes):
        leaves = sorted({net.nic_leaf[int(net.rank_nic[r])]
                         for r in range(s * gpn, (s + 1) * gpn)
                         if int(net.rank_nic[r]) in net.nic_leaf})
        pods = sorted({int(g.nodes[net.node_ids[leaf]].get("pod", 0)) for leaf in leaves})
        sites.append(NodeSite(tuple(leaves), tuple(pods)))
    return sites


def _span(sites: list[NodeSite], nodes: Sequence[int]) -> tuple[int, int]:
    leaves = {leaf for n in nodes for leaf in sites[n].leaves}
    pods = {p for n in nodes for p in sites[n].pods}
    return len(leaves), max(1, len(pods))


def _packed(sites: list[NodeSite], free: list[int], k: int) -> list[int] | None:
    """k consecutive free nodes spanning the fewest leaves (then pods, then the lowest index);
    without such a run, the free nodes of the leaf groups with the most room first."""
    free_set = set(free)
    best: tuple[tuple[int, int, int], list[int]] | None = None
    starts = [n for n in free if n - 1 not in free_set or sites[n].leaves != sites[n - 1].leaves]
    for s in starts:
        window = list(range(s, s + k))
        if window[-1] >= len(sites) or any(n not in free_set for n in window):
            continue
        key = (*_span(sites, window), s)
        if best is None or key < best[0]:
            best = (key, window)
    if best is not None:
        return best[1]
    groups: dict[tuple[int, ...], list[int]] = {}
    for n in free:
        groups.setdefault(sites[n].leaves, []).append(n)
    chosen: list[int] = []
    for grp in sorted(groups.values(), key=lambda g: (-len(g), g[0])):
        chosen += grp[:k - len(chosen)]
        if len(chosen) == k:
            return sorted(chosen)
    return None


def _spread(sites: list[NodeSite], free: list[int], k: int) -> list[int] | None:
    """k free nodes taken one per leaf group in turn, the groups ordered to alternate pods."""
    if len(free) < k:
        return None
    groups: dict[tuple[int, ...], list[int]] = {}
    for n in free:
        groups.setdefault(sites[n].leaves, []).append(n)
    by_pod: dict[int, list[list[int]]] = {}
    for key in sorted(groups):
        pod = sites[groups[key][0]].pods[0] if sites[groups[key][0]].pods else 0
        by_pod.setdefault(pod, []).append(groups[key])
    pods = [by_pod[p] for p in sorted(by_pod)]
    order = [p[i] for i in range(max(len(p) for p in pods)) for p in pods if i < len(p)]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < k:
        for grp in order:
            if depth < len(grp):
                chosen.append(grp[depth])
                if len(chosen) == k:
                    break
        depth += 1
    return chosen


PLACEMENTS = {"packed": _packed, "spread": _spread}


def place_jobs(cluster: Cluster, specs: Sequence[JobSpec],
               jobs: Sequence[TrainingJob]) -> list[Placement]:
    """Place the jobs in order on whole free nodes; ScenarioError (one line) when they do not fit."""
    sites = node_sites(cluster)
    gpn = cluster.gpus_per_node
    free = list(range(cluster.n_nodes))
    out: list[Placement] = []
    for i, (spec, job) in enumerate(zip(specs, jobs, strict=False)):
        world = job.par.world
        k = math.ceil(world / gpn)
        nodes = PLACEMENTS[spec.placement](sites, free, k) if k <= len(free) else None
        if nodes is None:
            p = job.par
            raise ScenarioError(
                f"jobs[{i}].workload.parallelism: job {spec.name!r} needs tp x pp x dp x cp = "
                f"{p.tp}x{p.pp}x{p.dp}x{p.cp} = {world} GPUs ({k} nodes of {gpn}) but "
                f"{len(free)} of the cluster's {cluster.n_nodes} nodes are free after the jobs "
                f"before it")
        taken = set(nodes)
        free = [n for n in free if n not in taken]
        gpus = tuple(nodes[r // gpn] * gpn + r % gpn for r in range(world))
        leaves, pods = _span(sites, nodes)
        out.append(Placement(spec.name, spec.placement, gpus, tuple(nodes), leaves, pods))
    return out


# --- results ------------------------------------------------------------------------------------


CONTENTION = {
    "flow": "flow network: the jobs' flows share every link max-min fairly",
    "analytical": ("analytical network: each collective is priced with the load of its own "
                   "call's groups only, so jobs do not slow each other (use run.network: flow)"),
}


# --- simulation ---------------------------------------------------------------------------------


@dataclass
class _Built:
    """One job as simulated: its ranks with every simulated iteration appended in order, and the
    op-id range of each iteration (iteration n holds ids [starts[n], ends[n]))."""

    name: str
    ranks: list[RankProgram]
    starts: list[int]
    ends: list[int]
    folded: bool

    @property
    def iterations(self) -> int:
        return len(self.ends)

    def window(self, m: int) -> Program:
        """The job's first m iterations as one program (for its summary and its trace)."""
        end = self.ends[m - 1]
        ranks = [RankProgram(rp.rank, rp.multiplicity, [o for o in rp.ops if o.id < end], rp.meta)
                 for rp in self.ranks]
        return Program(ranks=ranks, folded=self.folded, meta={"job": self.name, "iterations": m})


def _build(job: TrainingJob, name: str, fold: bool, gpus: Sequence[int], first_id: int,
           iterations: int) -> _Built:
    """The job's program on its GPUs, `iterations` times on the same ranks: each iteration's
    ops follow the previous one's on every stream, as a training loop runs them."""
    ranks: list[RankProgram] = []
    starts: list[int] = []
    ends: list[int] = []
    nxt = first_id
    for n in range(iterations):
        prog = build_program(job, fold=fold, rank_map=gpus, first_op_id=nxt)
        starts.append(nxt)
        nxt = prog.meta["next_op_id"]
        ends.append(nxt)
        if n == 0:
            ranks = prog.ranks
            for rp in ranks:
                rp.meta["job"] = name
        else:
            for rp, more in zip(ranks, prog.ranks, strict=False):
                rp.ops += more.ops
    return _Built(name, ranks, starts, ends, fold)


def _run(cluster: Cluster, costs: CostModel, sc: Scenario, jobs: Sequence[TrainingJob],
         names: Sequence[str], placements: Sequence[Placement], fold: bool,
         iterations: Sequence[int]) -> tuple[list[_Built], IterationTiming]:
    """One Engine over the merged programs of the jobs (disjoint GPUs, disjoint op ids)."""
    built: list[_Built] = []
    next_id = 0
    for job, name, pl, n in zip(jobs, names, placements, iterations, strict=False):
        built.append(_build(job, name, fold, pl.gpus, next_id, n))
        next_id = built[-1].ends[-1]
    merged = Program(ranks=[rp for b in built for rp in b.ranks], folded=fold,
                     meta={"jobs": list(names), "next_op_id": next_id})
    timing = Engine(merged, cluster, costs, network=sc.run.network,
                    slow_ranks=sc.run.perturb.slow_gpus, routing=sc.run.routing,
                    seed=sc.run.seed).run()
    timing.program = merged
    return built, timing


def iteration_ends(built: Sequence[_Built], timing: IterationTiming) -> list[list[float]]:
    """When each simulated iteration of each job ended (the latest end among its ranks)."""
    bounds: list[int] = []
    where: list[tuple[int, int]] = []
    for j, b in enumerate(built):
        for n, e in enumerate(b.ends):
            bounds.append(e)
            where.append((j, n))
    out = [[0.0] * b.iterations for b in built]
    for t in timing.timings:
        j, n = where[bisect.bisect_right(bounds, t.op.id)]
        if t.end_s > out[j][n]:
            out[j][n] = t.end_s
    return out


def job_timing(program: Program, timing: IterationTiming, cluster: Cluster,
               costs: CostModel) -> IterationTiming:
    """A job's ops cut out of the shared run, summarized by the engine's own rule (critical
    rank, gap attribution) over the job's ranks only."""
    ids = {o.id for rp in program.ranks for o in rp.ops}
    mine: list[OpTiming] = [t for t in timing.timings if t.op.id in ids]
    times = {t.op.id: (t.start_s, t.end_s) for t in mine}
    pricing = Pricing(cluster, costs)
    pricing.tally(program)  # provenance of this job's compute only
    out = summarize_timing(program, times, mine, cluster.gpu_spec.comm_overlaps_compute,
                           pricing.provenance_s, pricing.extrapolated_s)
    out.program = program
    return out


def _per_iteration(t: IterationTiming, m: int) -> IterationTiming:
    """The mean iteration of a window of m iterations (the breakdown still adds up)."""
    if m == 1:
        return t
    return dataclasses.replace(t, iteration_s=t.iteration_s / m,
                               breakdown={k: v / m for k, v in t.breakdown.items()})


def _simulate_window(cluster: Cluster, costs: CostModel, sc: Scenario,
                     jobs: Sequence[TrainingJob], names: Sequence[str],
                     placements: Sequence[Placement], fold: bool
                     ) -> tuple[list[_Built], IterationTiming, list[int], float]:
    """Run the jobs together; in the flow model, repeat the shorter jobs until the longest
    job's first iteration ends. Returns the runs, the timing, per job how many of its iterations
    started inside that window (its figures are their mean), and the window's end."""
    iterations = [1] * len(jobs)
    for _ in range(MAX_PASSES):
        built, timing = _run(cluster, costs, sc, jobs, names, placements, fold, iterations)
        ends = iteration_ends(built, timing)
        window = max(e[0] for e in ends)
        if sc.run.network != "flow" or len(jobs) == 1:
            break
        short = [j for j, e in enumerate(ends) if e[-1] < window * (1 - BACKGROUND_TOLERANCE)
                 and iterations[j] < MAX_BACKGROUND_ITERATIONS]
        if not short:
            break
        for j in short:  # +1: the long job stretches once its neighbours keep contending
            per = ends[j][-1] / iterations[j]
            iterations[j] = min(MAX_BACKGROUND_ITERATIONS, math.ceil(window / per) + 1)
    # iterations that started inside the window (back to back: one starts as the last ends)
    measured = [1 + sum(1 for x in e[:-1] if x < window * (1 - BACKGROUND_TOLERANCE)) for e in ends]
    return built, timing, measured, window


def _job_cluster(cluster: Cluster, pl: Placement) -> Cluster:
    """The job's view of the cluster: its GPUs only (per-GPU figures count these)."""
    description = dict(cluster.description, placement=pl.to_dict())
    return dataclasses.replace(cluster, gpu_nodes=[cluster.gpu_nodes[g] for g in pl.gpus],
                               description=description, cache=ClusterCaches())  # its own ranks: its own arrays


def _jobs_of(sc: Scenario) -> list[TrainingJob]:
    """Validated TrainingJobs; errors name jobs[i]."""
    specs = sc.jobs or []
    if not specs:
        raise ScenarioError("jobs: give at least one job")
    seen: set[str] = set()
    jobs = []
    for i, spec in enumerate(specs):
        if spec.name in seen:
            raise ScenarioError(f"jobs[{i}].name: {spec.name!r} is used by an earlier job")
        seen.add(spec.name)
        try:
            job = job_from_workload(spec.workload)
            validate_job(job)
        except (ScenarioError, ParallelismError) as exc:
            msg = str(exc)
            raise ScenarioError(f"jobs[{i}].{msg}" if msg.startswith("workload") else
                                f"jobs[{i}].workload: {msg}") from None
        asked = getattr(spec, "gpus", None)  # a JobSpec may state its GPU count
        p = job.par
        if asked is not None and asked != p.world:
            raise ScenarioError(
                f"jobs[{i}].workload.parallelism: tp x pp x dp x cp = {p.tp}x{p.pp}x{p.dp}x{p.cp}"
                f" = {p.world} but the job asks for {asked} GPUs")
        jobs.append(job)
    return jobs


def simulate_jobs(sc: Scenario, compare_alone: bool = False) -> SimulationResult:
    """Simulate the jobs of a scenario together on its cluster (see the module docstring).

    compare_alone: also simulate every job alone on the same GPUs and report its slowdown.
    """
    t0 = time.perf_counter()
    cluster = build_cluster(sc)
    record_routing(sc, cluster)
    jobs = _jobs_of(sc)
    specs = list(sc.jobs or [])
    names = [s.name for s in specs]
    placements = place_jobs(cluster, specs, jobs)
    domains = full_bisection_domains(cluster)
    resolved = [resolve_rank_order(job, cluster, pl.gpus, domains)
                for job, pl in zip(jobs, placements, strict=True)]
    jobs = [job for job, _ in resolved]
    orders = [order for _, order in resolved]
    costs = cost_model_for(sc.run.calibration, cluster.gpu_spec)
    perturb = sc.run.perturb
    apply_degraded_links(cluster, perturb.degraded_links)
    fold = sc.run.fold == "auto" and not perturb.any
    built, timing, measured, window = _simulate_window(cluster, costs, sc, jobs, names,
                                                       placements, fold)
    wall = time.perf_counter() - t0
    results: list[JobResult] = []
    for spec, job, pl, b, m, order in zip(specs, jobs, placements, built, measured, orders,
                                          strict=False):
        program = b.window(m)
        jt = _per_iteration(job_timing(program, timing, cluster, costs), m)
        job_sc = Scenario(name=spec.name, cluster=sc.cluster, workload=spec.workload, run=sc.run)
        r = dataclasses.replace(
            summarize(job_sc, job, _job_cluster(cluster, pl), costs, jt, len(program.ranks), wall,
                      order),
            placement=pl.to_dict(), iterations_measured=m, iterations_simulated=b.iterations)
        if compare_alone:
            r.alone_iteration_s = _alone(cluster, costs, sc, job, spec.name, pl, fold)
            r.slowdown = r.iteration_s / r.alone_iteration_s
        results.append(r)
    return SimulationResult(
        name=sc.name, jobs=results, gpus=cluster.n_gpus, multi_job=True,
        gpus_used=sum(len(p.gpus) for p in placements), network=sc.run.network,
        contention=CONTENTION[sc.run.network],
        window_s=window,
        events=len(timing.timings), wall_s=time.perf_counter() - t0, scenario=sc.resolved(),
        cluster=cluster.description, timing=timing)


def _alone(cluster: Cluster, costs: CostModel, sc: Scenario, job: TrainingJob, name: str,
           pl: Placement, fold: bool) -> float:
    """The job's iteration on the same GPUs with no other job on the cluster."""
    _, timing = _run(cluster, costs, sc, [job], [name], [pl], fold, [1])
    return timing.iteration_s


# --- the CLI table ------------------------------------------------------------------------------


def print_multijob(result: SimulationResult, console: Any, timing: bool = True) -> None:
    """A rich table of the jobs (one row each) and a line on how they contend."""
    from rich.table import Table

    from dcsim import units

    t = Table(title=f"{result.name}: {len(result.jobs)} jobs on {result.gpus_used} of "
                    f"{result.gpus} GPUs ({result.network} network)",
              show_header=True, header_style="bold")
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
        ("job", "left"), ("placement", "left"), ("GPUs", "right"), ("leaves", "right"),
        ("iteration", "right"), ("tokens/s", "right"), ("MFU", "right"),
        ("exposed comm", "right"), ("bubble", "right"))
    for col, just in columns:
        t.add_column(col, justify=just)
    alone = any(j.slowdown is not None for j in result.jobs)
    if alone:
        t.add_column("vs alone", justify="right")
    for j in result.jobs:
        b = j.breakdown
        comm = sum(b.exposed_comm_s.values())
        pl = j.placement or {}
        row = [j.name, pl.get("policy", ""), str(j.gpus), str(pl.get("leaves", "")),
               units.format_duration(j.iteration_s), f"{j.tokens_per_s:,.0f}",
               f"{100 * j.mfu:.1f}%", f"{units.format_duration(comm)} ({100 * comm / j.iteration_s:.0f}%)",
               units.format_duration(b.pipeline_bubble_s)]
        if alone:
            row.append(f"{100 * (j.slowdown - 1):+.1f}%" if j.slowdown is not None else "")
        t.add_row(*row)
    console.print(t)
    wall = f" in {units.format_duration(result.wall_s)}" if timing else ""
    console.print(f"contention: {result.contention}; simulated {result.events:,} ops{wall}",
                  highlight=False)
