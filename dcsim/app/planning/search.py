"""`dcsim plan`'s search: enumerate layouts, reject what cannot run (the same validity and
memory rules as `simulate`), rank the rest with the fast model, confirm the best by simulation."""

from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

from dcsim.app.planning.fast import FastEstimate, FastModel
from dcsim.app.planning.spec import Objective, PlanSpec
from dcsim.app.scenario import Scenario, load_scenario
from dcsim.app.simulate import build_cluster, cost_model_for, job_from_scenario
from dcsim.costs import CostModel
from dcsim.results import COMM_DIMS, SimulationResult
from workloads.flops import IterationFlops, iteration_flops
from workloads.memory import memory_footprint
from workloads.parallelism import ParallelismError, TrainingJob, validate_job

J_PER_KWH = 3.6e6
S_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Candidate:
    """One point of the search: a building block, a size and a layout."""

    preset: str | None  # None: the scenario's inline cluster
    nodes: int | None
    tp: int
    pp: int
    vp: int
    cp: int
    ep: int
    dp: int
    zero: int
    micro: int
    recompute: str
    sequence_parallel: bool

    def fields(self) -> dict[str, Any]:
        return {"preset": self.preset, "nodes": self.nodes, "tp": self.tp, "pp": self.pp,
                "vp": self.vp, "dp": self.dp, "cp": self.cp, "ep": self.ep, "zero": self.zero,
                "micro": self.micro, "recompute": self.recompute,
                "sequence_parallel": self.sequence_parallel}

    def label(self) -> str:
        sp = " sp" if self.sequence_parallel and self.tp > 1 else ""
        parts = [f"tp{self.tp}", f"pp{self.pp}"] + ([f"vp{self.vp}"] if self.vp > 1 else [])
        parts += [f"dp{self.dp}"] + ([f"cp{self.cp}"] if self.cp > 1 else [])
        parts += [f"ep{self.ep}"] if self.ep > 1 else []
        parts += [f"z{self.zero}", f"mb{self.micro}", self.recompute]
        return " ".join(parts) + sp


@dataclass
class Ranked:
    """A feasible candidate priced by the fast model (and maybe confirmed by simulation)."""

    cand: Candidate
    gpus: int
    est: FastEstimate
    tokens_per_s: float
    mfu: float
    memory_per_gpu_bytes: float
    capacity_bytes: float
    time_to_train_s: float | None
    cost_usd: float | None
    energy_kwh: float | None
    score: float                      # lower is better
    confirmed: SimulationResult | None = None
    scenario: dict[str, Any] = field(default_factory=dict)
    why: str = ""
    same_as: list[str] = field(default_factory=list)  # layouts with identical figures

    @property
    def headroom(self) -> float:
        return 1.0 - self.memory_per_gpu_bytes / self.capacity_bytes


@dataclass
class PlanResult:
    evaluated: int
    feasible: int
    rejected: dict[str, int]
    rejected_example: dict[str, str]
    best: list[Ranked]
    objective: Objective
    ranking_wall_s: float
    confirm_wall_s: float
    wall_s: float


def candidates(sc: Scenario, plan: PlanSpec, gpus_of: Callable[[str | None, int | None], int]
               ) -> Iterator[tuple[Candidate, int]]:
    """Every combination of the search space, with the GPUs it runs on."""
    s = plan.search
    # None: the scenario's own cluster (a preset, or an inline description)
    presets: list[str | None] = list(s.preset) if s.preset else [sc.cluster.preset]
    for preset in presets:
        sizes: list[int | None] = list(s.nodes) if s.nodes else [sc.cluster.nodes]
        for nodes in sizes:
            gpus = gpus_of(preset, nodes)
            for tp, pp, vp, cp, ep, zero, micro, rc, sp in itertools.product(
                    s.tp, s.pp, s.vp, s.cp, s.ep, s.zero, s.micro, s.recompute,
                    s.sequence_parallel):
                if vp > 1 and pp == 1 or sp and tp == 1 and len(s.sequence_parallel) > 1:
                    continue  # the same layout as vp=1 / sp off: not a distinct candidate
                dp = max(1, gpus // (tp * pp * cp))
                yield Candidate(preset, nodes, tp, pp, vp, cp, ep, dp, zero, micro, rc, sp), gpus


class _Evaluator:
    """Holds one cluster, fast model and FLOP count per building block and size."""

    def __init__(self, sc: Scenario, plan: PlanSpec) -> None:
        self.sc, self.plan = sc, plan
        self.base = job_from_scenario(sc)
        self.costs: dict[str, CostModel] = {}  # per GPU: `auto` picks the device's profile
        self.models: dict[tuple[str | None, int | None], FastModel] = {}
        self.flops: dict[tuple[Any, ...], IterationFlops] = {}

    def model(self, preset: str | None, nodes: int | None) -> FastModel:
        key = (preset, nodes)
        fm = self.models.get(key)
        if fm is None:
            c = self.sc.cluster.model_copy(update={"preset": preset, "nodes": nodes})
            cluster = build_cluster(self.sc.model_copy(update={"cluster": c}))
            gpu = cluster.gpu_spec
            costs = self.costs.get(gpu.name)
            if costs is None:
                costs = self.costs[gpu.name] = cost_model_for(self.sc.run.calibration, gpu)
            fm = self.models[key] = FastModel(cluster, costs)
        return fm

    def gpus(self, preset: str | None, nodes: int | None) -> int:
        return self.model(preset, nodes).cluster.n_gpus

    def job(self, c: Candidate) -> TrainingJob:
        par = replace(self.base.par, tp=c.tp, pp=c.pp, vp=c.vp, cp=c.cp, ep=c.ep, dp=c.dp,
                      zero=c.zero, recompute=c.recompute, sequence_parallel=c.sequence_parallel)
        return replace(self.base, par=par, micro_batch=c.micro)

    def iteration_flops(self, job: TrainingJob) -> IterationFlops:
        p = job.par
        key = (p.tp, p.cp, p.sequence_parallel, p.recompute, job.micro_batch)
        got = self.flops.get(key)
        if got is None:
            got = self.flops[key] = iteration_flops(job)
        return got


def _reason(message: str) -> str:
    """A rejection's reason: the field it names (validate_job's messages start with it)."""
    return message.split(":", 1)[0]


def rank(sc: Scenario, plan: PlanSpec, progress: Callable[[int, int], None] | None = None
         ) -> tuple[list[Ranked], int, int, dict[str, int], dict[str, str]]:
    """Stage one: every candidate through the shared rules and the fast model; returns the
    ranked rows (identical results collapsed), the counts evaluated and feasible, and the
    rejections by reason with an example message each."""
    ev = _Evaluator(sc, plan)
    cons = plan.constraints
    tokens = sc.workload.train.tokens if sc.workload else None
    rejected: dict[str, int] = {}
    example: dict[str, str] = {}
    ranked: list[Ranked] = []
    evaluated = 0

    def reject(reason: str, msg: str) -> None:
        rejected[reason] = rejected.get(reason, 0) + 1
        example.setdefault(reason, msg)

    todo = list(candidates(sc, plan, ev.gpus))
    for cand, _gpus in todo:
        evaluated += 1
        if progress is not None and evaluated % 64 == 0:
            progress(evaluated, len(todo))
        fm = ev.model(cand.preset, cand.nodes)
        n = fm.cluster.n_gpus
        if cons.max_gpus is not None and n > cons.max_gpus:
            reject("plan.constraints.max_gpus", f"{n} GPUs > max_gpus {cons.max_gpus}")
            continue
        job = ev.job(cand)
        try:
            validate_job(job, n)  # the one validity function `simulate` runs
        except ParallelismError as exc:
            reject(_reason(str(exc)), str(exc))
            continue
        gpu = fm.cluster.gpu_spec
        mem = memory_footprint(job, gpu.hbm_bytes)
        if mem.total_bytes > gpu.hbm_bytes * (1.0 - cons.min_memory_headroom):
            reject("memory", f"{mem.total_bytes / 2**30:.1f} GiB per GPU does not fit in "
                             f"{gpu.hbm_bytes * (1 - cons.min_memory_headroom) / 2**30:.1f} GiB")
            continue
        est = fm.estimate(job)
        r = _figures(ev, job, cand, n, est, mem.total_bytes, gpu, tokens, plan)
        if cons.deadline is not None and (r.time_to_train_s or math.inf) > cons.deadline:
            reject("plan.constraints.deadline", f"time to train {r.time_to_train_s:.3g} s > "
                                                f"deadline {cons.deadline:.3g} s")
            continue
        if cons.max_cost_usd is not None and (r.cost_usd or math.inf) > cons.max_cost_usd:
            reject("plan.constraints.max_cost_usd", f"cost {r.cost_usd:,.0f} USD > "
                                                    f"{cons.max_cost_usd:,.0f}")
            continue
        ranked.append(r)
    ranked.sort(key=lambda r: (r.score, r.gpus, r.cand.label()))
    if progress is not None:
        progress(evaluated, len(todo))
    return _collapse(ranked), evaluated, len(ranked), rejected, example


def _collapse(ranked: list[Ranked]) -> list[Ranked]:
    """One row per distinct result: layouts with the same figures (e.g. selective recompute
    under flash attention, which recomputes nothing more) are listed on the first one."""
    out: list[Ranked] = []
    for r in ranked:
        prev = out[-1] if out else None
        if (prev is not None and prev.score == r.score and prev.gpus == r.gpus
                and prev.memory_per_gpu_bytes == r.memory_per_gpu_bytes
                and prev.est.iteration_s == r.est.iteration_s):
            prev.same_as.append(r.cand.label())
            continue
        out.append(r)
    return out


def _figures(ev: _Evaluator, job: TrainingJob, cand: Candidate, n: int, est: FastEstimate,
             mem_bytes: float, gpu: Any, tokens: float | None, plan: PlanSpec) -> Ranked:
    """The objective figures of one priced candidate (the same formulas as `simulate`)."""
    it = est.iteration_s
    fl = ev.iteration_flops(job)
    tps = job.tokens_per_iteration / it
    ttt = math.ceil(tokens / job.tokens_per_iteration) * it if tokens else None
    gpu_h = n * ttt / S_PER_HOUR if ttt else None
    cost = gpu_h * plan.prices.gpu_hour_usd if gpu_h and plan.prices.gpu_hour_usd else None
    # GPU board power at its datasheet TDP (an upper bound), times the PUE.
    energy = n * gpu.tdp_w * plan.prices.pue * ttt / J_PER_KWH if ttt else None
    score = {Objective.TIME_TO_TRAIN: ttt, Objective.COST: cost, Objective.ENERGY: energy,
             Objective.TOKENS_PER_S_PER_GPU: -tps / n}[plan.objective]
    return Ranked(cand, n, est, tps, fl.model / it / n / gpu.peak(job.precision), mem_bytes,
                  gpu.hbm_bytes, ttt, cost, energy, score if score is not None else math.inf)


def scenario_data(raw: dict[str, Any], c: Candidate) -> dict[str, Any]:
    """The plan file's scenario with a candidate's fields written in."""
    data = copy.deepcopy(raw)
    if c.preset is not None:
        data["cluster"]["preset"] = c.preset
    if c.nodes is not None:
        data["cluster"]["nodes"] = c.nodes
    w = data["workload"]
    par = dict(w.get("parallelism") or {})
    par.update(tp=c.tp, pp=c.pp, vp=c.vp, dp=c.dp, cp=c.cp, ep=c.ep, zero=c.zero,
               recompute=c.recompute, sequence_parallel=c.sequence_parallel,
               distributed_optimizer=False, fsdp=False)
    w["parallelism"] = par
    w["batch"] = {**w["batch"], "micro": c.micro}
    data["name"] = f"{data.get('name', 'plan')} [{c.label()}]"
    return data


def confirm(best: list[Ranked], raw: dict[str, Any], plan: PlanSpec,
            simulate_fn: Callable[[Scenario], SimulationResult]) -> None:
    """Stage two: the full simulation of the top K (plan.confirm_network, flow by default)."""
    for r in best:
        data = scenario_data(raw, r.cand)
        sc = load_scenario(data)
        r.scenario = sc.resolved()
    for r in best[:plan.confirm]:
        data = scenario_data(raw, r.cand)
        data.setdefault("run", {})["network"] = plan.confirm_network
        sc = load_scenario(data)
        r.confirmed = simulate_fn(sc)
        r.scenario = sc.resolved()


def agreement_pct(r: Ranked) -> float | None:
    """Fast model against the confirming simulation, in percent of the simulated time."""
    if r.confirmed is None:
        return None
    return 100.0 * (r.est.iteration_s / r.confirmed.iteration_s - 1.0)


def explain(best: list[Ranked]) -> None:
    """Say why each row wins or loses: its biggest costs, and against the leader its extra
    seconds by category; plus its memory headroom."""
    if not best:
        return
    lead = best[0]
    for i, r in enumerate(best):
        bd = r.est.breakdown
        it = r.est.iteration_s
        head = f"memory headroom {100 * r.headroom:.0f}%"
        if i == 0:
            top = sorted(((v, k) for k, v in bd.items() if k != "compute" and v > 0), reverse=True)
            parts = [f"compute {100 * bd.get('compute', 0) / it:.0f}%"]
            parts += [f"{_name(k)} {100 * v / it:.0f}%" for v, k in top[:2] if v >= 0.005 * it]
            r.why = "best: " + ", ".join(parts) + f"; {head}"
            continue
        # the global batch is fixed, so iterations compare second for second
        diffs = [(bd.get(k, 0.0) - lead.est.breakdown.get(k, 0.0), k)
                 for k in sorted(set(bd) | set(lead.est.breakdown))]
        diffs.sort(reverse=True)
        # differences under 1% of the iteration are noise for this purpose
        worse = [f"{_name(k)} +{d:.3g} s" for d, k in diffs[:2] if d > 0.01 * it]
        better = [f"{_name(k)} {d:.3g} s" for d, k in sorted(diffs)[:1] if d < -0.01 * it]
        gap = 100.0 * (r.score / lead.score - 1.0) if lead.score not in (0.0, math.inf) else 0.0
        if r.score < 0:
            gap = 100.0 * (lead.score / r.score - 1.0)
        r.why = (f"{gap:+.1f}% vs best: " + ", ".join(worse or ["even"])
                 + (f" (gains {better[0]})" if better else "") + f"; {head}")


def _name(cat: str) -> str:
    return {"pipeline_bubble": "bubble", "compute": "compute", "optimizer": "optimizer"}.get(
        cat, f"exposed {cat} comm" if cat in COMM_DIMS else cat)


def run_plan(sc: Scenario, plan: PlanSpec, raw: dict[str, Any],
             simulate_fn: Callable[[Scenario], SimulationResult] | None = None,
             progress: Callable[[int, int], None] | None = None) -> PlanResult:
    """Both stages; `simulate_fn` defaults to `dcsim.app.simulate.simulate`."""
    if simulate_fn is None:
        from dcsim.app.simulate import simulate
        simulate_fn = simulate
    t0 = time.perf_counter()
    ranked, evaluated, feasible, rejected, example = rank(sc, plan, progress)
    t1 = time.perf_counter()
    best = ranked[:plan.top]
    confirm(best, raw, plan, simulate_fn)
    if plan.confirm:
        k = min(plan.confirm, len(best))
        best[:k] = sorted(best[:k], key=lambda r: (_confirmed_score(r, plan), r.gpus))
    explain(best)
    t2 = time.perf_counter()
    return PlanResult(evaluated, feasible, rejected, example, best, plan.objective,
                      t1 - t0, t2 - t1, t2 - t0)


def _confirmed_score(r: Ranked, plan: PlanSpec) -> float:
    """The objective recomputed from the confirmed iteration time (scales with it, or
    inversely for throughput)."""
    if r.confirmed is None:
        return r.score
    ratio = r.confirmed.iteration_s / r.est.iteration_s
    return r.score / ratio if plan.objective is Objective.TOKENS_PER_S_PER_GPU else r.score * ratio
