"""Bisection on nodes: each size runs the fleet once per seed (the same seeds at every size, so
sizes are compared on the same job streams); a size meets the service level when its deciding
figure (upper end of the interval, or the mean) does."""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dcsim.app.capacity_search.spec import CapacitySpec, Decide
from dcsim.app.scenario import ScenarioError


@dataclass
class Interval:
    """A figure over seeds: mean and a Student-t confidence interval."""

    mean: float
    ci_low: float
    ci_high: float
    seeds: list[float]

    @classmethod
    def of(cls, xs: list[float], confidence: float) -> "Interval":
        m = statistics.fmean(xs)
        if len(xs) < 2:
            return cls(m, m, m, xs)
        from scipy.stats import t
        half = float(t.ppf(0.5 + confidence / 2, len(xs) - 1)) * statistics.stdev(xs) / math.sqrt(len(xs))
        return cls(m, max(0.0, m - half), m + half, xs)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "seeds": self.seeds}


@dataclass
class SizeResult:
    nodes: int
    gpus: int
    queue_wait_s_p95: Interval
    completed_share: Interval
    utilization: float
    cost_usd: float
    energy_kwh: float
    meets_slo: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": self.nodes, "gpus": self.gpus,
                "queue_wait_s_p95": self.queue_wait_s_p95.to_dict(),
                "completed_share": self.completed_share.to_dict(),
                "utilization": self.utilization, "cost_usd": self.cost_usd,
                "energy_kwh": self.energy_kwh, "meets_slo": self.meets_slo, "note": self.note}


@dataclass
class CapacityResult:
    name: str
    spec: CapacitySpec
    demand_scale: float
    recommendation: SizeResult | None
    tried: list[SizeResult] = field(default_factory=list)
    runs: int = 0
    wall_s: float = 0.0


RunFleet = Callable[[dict[str, Any]], dict[str, Any]]


def scaled_demand(data: dict[str, Any], scale: float) -> dict[str, Any]:
    """The fleet scenario with its job arrivals scaled (a generator's job count and rate)."""
    d = copy.deepcopy(data)
    if scale == 1.0:
        return d
    jobs = (d.get("fleet") or {}).get("jobs") or {}
    if jobs.get("source", "list") != "generator":
        raise ScenarioError("capacity.demand.growth_per_month: growth needs a generator job "
                            "source (fleet.jobs.source: generator)")
    g = jobs.setdefault("generator", {})
    g["jobs"] = max(1, round(g.get("jobs", 1000) * scale))
    if g.get("arrival_rate_per_h"):
        g["arrival_rate_per_h"] = g["arrival_rate_per_h"] * scale
    return d


def absolute_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Trace and node-list paths made absolute (the fleet loader reads a mapping from cwd)."""
    d = copy.deepcopy(data)
    jobs = (d.get("fleet") or {}).get("jobs") or {}
    if jobs.get("path") and not Path(jobs["path"]).is_absolute():
        jobs["path"] = str((base / jobs["path"]).resolve())
    cl = d.get("cluster") or {}
    if cl.get("node_list") and not Path(cl["node_list"]).is_absolute():
        cl["node_list"] = str((base / cl["node_list"]).resolve())
    return d


def fleet_runner() -> RunFleet:
    """`dcsim fleet run` as a function of the scenario data, with one price cache for every
    size and seed of a search (a job shape is priced by the single-job simulator once)."""
    from dcsim.app.fleet import run_fleet
    cache: dict[str, Any] = {}

    def run(data: dict[str, Any]) -> dict[str, Any]:
        return run_fleet(data, price_cache=cache).summary
    return run


def evaluate(data: dict[str, Any], spec: CapacitySpec, nodes: int, gpus_per_node: int,
             run: RunFleet) -> tuple[SizeResult, int]:
    """One size over every seed; (result, fleet runs made)."""
    waits: list[float] = []
    done: list[float] = []
    util: list[float] = []
    cost: list[float] = []
    energy: list[float] = []
    for seed in spec.seeds:
        d = copy.deepcopy(data)
        d["cluster"]["nodes"] = nodes
        d.setdefault("fleet", {})["seed"] = seed
        try:
            s = run(d)
        except ScenarioError as exc:
            if "asks for" in str(exc):  # the demand has jobs bigger than this cluster
                nan = Interval(math.inf, math.inf, math.inf, [])
                return SizeResult(nodes, nodes * gpus_per_node, nan, Interval(0, 0, 0, []),
                                  0.0, 0.0, 0.0, False, str(exc)), len(waits) + 1
            raise
        waits.append(float(s["queue_wait_s"]["p95"]))
        jobs = s["jobs"]
        done.append(jobs["completed"] / max(1, jobs["submitted"]))
        util.append(s["utilization"])
        cost.append(s["cost_usd"])
        energy.append(s["energy_kwh"])
    w = Interval.of(waits, spec.confidence)
    c = Interval.of(done, spec.confidence)
    if spec.slo.queue_wait_p95 is not None:
        figure = w.ci_high if spec.decide_on is Decide.UPPER else w.mean
        meets = bool(figure <= spec.slo.queue_wait_p95)
    else:
        meets = bool(min(done) >= 1.0)
    return SizeResult(nodes, nodes * gpus_per_node, w, c, statistics.fmean(util),
                      statistics.fmean(cost), statistics.fmean(energy), meets), len(spec.seeds)


def search(name: str, data: dict[str, Any], spec: CapacitySpec, gpus_per_node: int,
           run: RunFleet | None = None,
           progress: Callable[[int, int], None] | None = None) -> CapacityResult:
    """The smallest size of the range that meets the service level (None if the largest
    does not), assuming more nodes never make it worse."""
    t0 = time.perf_counter()
    run = run or fleet_runner()
    data = scaled_demand(data, spec.demand.scale)
    sizes = spec.nodes.sizes()
    tried: dict[int, SizeResult] = {}
    runs = 0
    budget = 2 + math.ceil(math.log2(max(2, len(sizes))))

    def meets(i: int) -> bool:
        nonlocal runs
        n = sizes[i]
        if n not in tried:
            tried[n], k = evaluate(data, spec, n, gpus_per_node, run)
            runs += k
            if progress is not None:
                progress(len(tried), budget)
        return tried[n].meets_slo

    rec: SizeResult | None = None
    lo, hi = 0, len(sizes) - 1
    if meets(hi):
        if meets(lo):
            hi = lo
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if meets(mid):
                hi = mid
            else:
                lo = mid
        rec = tried[sizes[hi]]
    return CapacityResult(name, spec, spec.demand.scale, rec,
                          sorted(tried.values(), key=lambda r: r.nodes), runs,
                          time.perf_counter() - t0)
