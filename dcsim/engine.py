"""The simpy simulation of one training iteration of one job.

Each simulated rank has streams (compute, comm, p2p); ops of a stream run in program order,
each starting when its stream is free and its dependencies are done. Collectives that several
simulated ranks share rendezvous before they start. Compute ops are priced by the CostModel,
collectives by the cost model's measurements when it has them, else by the network model
(closed form, or flows over routed paths).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import gc

import simpy

from dcsim.cluster import Cluster
from dcsim.collectives import CollectiveCall
from dcsim.network.analytical import analytical_time
from dcsim.costs import Cost, CostModel
from dcsim.program import Op, Program

NETWORKS = ("analytical", "flow")


@dataclass(slots=True)
class OpTiming:
    """When one op ran on one simulated rank."""

    op: Op
    rank: int
    start_s: float
    end_s: float


@dataclass
class IterationTiming:
    """What the engine measured: op timings, the critical rank and its breakdown."""

    iteration_s: float
    critical_rank: int
    breakdown: dict[str, float]
    timings: list[OpTiming]
    provenance_s: dict[str, float]
    extrapolated_s: float
    events: int
    meta: dict[str, Any] = field(default_factory=dict)


class Engine:
    """Replays a Program on a Cluster with a CostModel."""

    def __init__(self, program: Program, cluster: Cluster, costs: CostModel,
                 network: str = "analytical",
                 flow_backend: Callable[..., Any] | None = None,
                 slow_ranks: dict[int, float] | None = None, routing: str = "auto",
                 seed: int = 0, progress: Callable[[int, int], None] | None = None) -> None:
        if network not in NETWORKS:
            raise ValueError(f"run.network: {network!r} is not one of {', '.join(NETWORKS)}")
        self.program, self.cluster, self.costs, self.network = program, cluster, costs, network
        self.flow_backend_factory = flow_backend  # called (env, cluster, seed=, routing=)
        self.routing, self.seed = routing, seed
        self.progress = progress  # called (ops done, ops in all) about 200 times per run
        self.slow_ranks = slow_ranks or {}  # GPU rank -> compute slowdown (a straggler)
        self._kernel_cost: dict[Any, Cost] = {}
        # id(kernel tuple) -> (seconds, seconds by provenance, extrapolated seconds, the tuple
        # itself, kept so its id stays unique while cached)
        self._tuple_cost: dict[int, tuple[float, dict[str, float], float, Any]] = {}
        self._coll_cost: dict[tuple, float] = {}
        self.provenance_s: dict[str, float] = {"measured": 0.0, "fitted": 0.0, "spec": 0.0}
        self.extrapolated_s = 0.0

    # -- pricing ----------------------------------------------------------------------
    def compute_time(self, op: Op, multiplicity: int) -> float:
        """Seconds of a compute op; adds its time to the provenance shares."""
        if "duration_s" in op.meta:  # a recorded kernel (trace replay): measured, not priced
            t = op.meta["duration_s"] * op.repeat
            self.provenance_s[op.meta.get("provenance", "measured")] += t * multiplicity
            return t
        # Ops of one kind share their kernel tuple: price each tuple once.
        priced = self._tuple_cost.get(id(op.kernels))
        if priced is None:
            total, by_prov, extra = 0.0, {}, 0.0
            for k in op.kernels:
                c = self._kernel_cost.get(k)
                if c is None:
                    c = self._kernel_cost[k] = self.costs.kernel_time(k, self.cluster.gpu_spec)
                total += c.time_s
                by_prov[c.provenance] = by_prov.get(c.provenance, 0.0) + c.time_s
                extra += c.time_s if c.extrapolated else 0.0
            priced = self._tuple_cost[id(op.kernels)] = (total, by_prov, extra, op.kernels)
        total, by_prov, extra, _ = priced
        weight = op.repeat * multiplicity
        for prov, t in by_prov.items():
            self.provenance_s[prov] += t * weight
        self.extrapolated_s += extra * weight
        return total * op.repeat

    def collective_once(self, call: CollectiveCall) -> float:
        """Closed-form time of one collective call (measured when the profile has it)."""
        key = (call.op, call.groups, call.size_bytes, call.algorithm)
        t = self._coll_cost.get(key)
        if t is None:
            measured = self.costs.collective_time(call.op, len(call.groups[0]), call.size_bytes,
                                                  self.cluster.gpu_spec)
            t = measured.time_s if measured else analytical_time(self.cluster, call).time_s
            self._coll_cost[key] = t
        return t

    def _is_local(self, call: CollectiveCall) -> bool:
        return all(self.cluster.same_server(g) for g in call.groups)

    # -- simulation -------------------------------------------------------------------
    def run(self) -> IterationTiming:
        env = simpy.Environment()
        backend = None
        if self.network == "flow":
            factory = self.flow_backend_factory
            if factory is None:
                from dcsim.network import FlowBackend  # the flow model, only when asked for
                factory = FlowBackend
            from dcsim.network.routing import resolve_routing
            backend = factory(env, self.cluster, seed=self.seed,
                              routing=resolve_routing(self.routing, self.cluster))
        done: dict[int, simpy.Event] = {}
        times: dict[int, tuple[float, float]] = {}
        durations: dict[int, float] = {}
        rendezvous: dict[tuple, dict[str, Any]] = {}
        timings: list[OpTiming] = []
        for rp in self.program.ranks:
            for op in rp.ops:
                done[op.id] = env.event()
                if op.kind == "compute":
                    durations[op.id] = (self.compute_time(op, rp.multiplicity)
                                        * self.slow_ranks.get(rp.rank, 1.0))
                elif backend is None or self._is_local(op.collective):
                    durations[op.id] = self.collective_once(op.collective) * op.repeat

        def run_collective(op: Op) -> Iterator[simpy.Event]:
            if op.id in durations:
                yield env.timeout(durations[op.id])
            else:
                for _ in range(op.repeat):
                    yield backend.run(op.collective)

        def arrive(op: Op) -> simpy.Event:
            """A participant reaches a rendezvous collective: the event of its completion.
            The last one to arrive starts it (a timeout when priced in closed form)."""
            key = op.meta["rendezvous"]
            st = rendezvous.get(key)
            if st is None:
                st = rendezvous[key] = {"arrived": 0, "done": None, "start": 0.0, "wait": env.event()}
            st["arrived"] += 1
            if st["arrived"] < op.meta["participants"]:
                return st["wait"]
            st["start"] = env.now
            run = (env.timeout(durations[op.id]) if op.id in durations
                   else env.process(run_collective(op)))
            run.callbacks.append(lambda _e, w=st["wait"]: w.succeed())
            return run

        total = sum(len(rp.ops) for rp in self.program.ranks)
        every = max(1, total // 200)
        finished = [0]

        def stream_proc(rank: int, ops: list[Op]) -> Iterator[simpy.Event]:
            for op in ops:
                pending = [done[d] for d in op.deps if not done[d].triggered]
                if pending:
                    yield env.all_of(pending) if len(pending) > 1 else pending[0]
                t0 = env.now
                if op.kind == "compute":
                    yield env.timeout(durations[op.id])
                elif op.meta.get("rendezvous") is not None:
                    yield arrive(op)
                    t0 = rendezvous[op.meta["rendezvous"]]["start"]
                elif op.id in durations:
                    yield env.timeout(durations[op.id])
                else:
                    yield env.process(run_collective(op))
                times[op.id] = (t0, env.now)
                timings.append(OpTiming(op, rank, t0, env.now))
                done[op.id].succeed()
                finished[0] += 1
                if self.progress is not None and finished[0] % every == 0:
                    self.progress(finished[0], total)

        for rp in self.program.ranks:
            streams: dict[str, list[Op]] = {}
            for op in rp.ops:
                # A device that cannot overlap runs its communication on the compute stream.
                streams.setdefault(self._stream(op), []).append(op)
            for ops in streams.values():
                env.process(stream_proc(rp.rank, ops))
        # Millions of live events and records: keep the cyclic GC from rescanning them all
        # (DESIGN.md sec. 4: gc.freeze() after set-up made scheduling ~4x faster here).
        gc.freeze()
        try:
            env.run()
        finally:
            gc.unfreeze()
        if self.progress is not None:
            self.progress(finished[0], total)
        missing = [o.id for r in self.program.ranks for o in r.ops if o.id not in times]
        if missing:
            raise RuntimeError(f"deadlock: {len(missing)} ops never ran (first: op {missing[0]})")
        return self._summarize(times, timings)

    def _stream(self, op: Op) -> str:
        """The stream an op occupies: a device that cannot overlap communication with compute
        runs every op on its compute stream."""
        return op.stream if self.cluster.gpu_spec.comm_overlaps_compute else "compute"

    # -- breakdown --------------------------------------------------------------------
    def _summarize(self, times: dict[int, tuple[float, float]],
                   timings: list[OpTiming]) -> IterationTiming:
        by_id = {o.id: o for r in self.program.ranks for o in r.ops}
        iteration = max(end for _, end in times.values())
        critical = None
        for rp in self.program.ranks:
            comp = [o for o in rp.ops if self._stream(o) == "compute"]
            if comp and times[comp[-1].id][1] >= iteration * (1 - 1e-12):
                critical = rp
                break
        assert critical is not None
        bd: dict[str, float] = {}

        def add(cat: str, dt: float) -> None:
            if dt > 0:
                bd[cat] = bd.get(cat, 0.0) + dt

        prev = 0.0
        for op in (o for o in critical.ops if self._stream(o) == "compute"):
            start, end = times[op.id]
            if start > prev:
                self._attribute_gap(op, prev, start, times, by_id, add)
            add(op.category, end - start)
            prev = end
        return IterationTiming(
            iteration_s=iteration, critical_rank=critical.rank, breakdown=bd, timings=timings,
            provenance_s=dict(self.provenance_s), extrapolated_s=self.extrapolated_s,
            events=len(timings),
        )

    @staticmethod
    def _attribute_gap(op: Op, g0: float, g1: float, times: dict[int, tuple[float, float]],
                       by_id: dict[int, Op], add: Callable[[str, float], None]) -> None:
        """Split an idle gap on the compute stream by what it waited for.

        The last dependency to finish is the reason. For a pipeline transfer, the part of the
        gap before its sender had the data is the pipeline bubble and the rest is exposed
        pipeline communication; otherwise the gap is exposed time of the dependency's kind.
        """
        deps = [d for d in op.deps if times[d][1] > g0]
        if not deps:
            add(op.category, g1 - g0)  # waiting for peers at a rendezvous
            return
        d = max(deps, key=lambda i: times[i][1])
        dep = by_id[d]
        if dep.category == "pp":
            ready = max((times[x][1] for x in dep.deps), default=times[d][0])
            cut = min(max(ready, g0), g1)
            add("pipeline_bubble", cut - g0)
            add("pp", g1 - cut)
        else:
            add(dep.category, g1 - g0)
