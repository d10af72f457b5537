"""The simpy simulation of one training iteration of one job (or of several jobs merged into
one Program).

Each simulated rank has streams (compute, comm, p2p, ...); ops of a stream run in program
order, each starting when its stream is free and its dependencies are done. Collectives that
several simulated ranks share rendezvous before they start. Durations come from the pricing
module (dcsim.pricing: compute by the CostModel, collectives in closed form) or, for
collectives that leave a server under `network="flow"`, from the flow network while the
simulation runs. The summary (critical rank, breakdown) is dcsim.attribution's; progress
goes to an observer (dcsim.observers).
"""

from __future__ import annotations

import gc
from typing import Any, Callable, Generator

import simpy

from dcsim.attribution import summarize
from dcsim.cluster import Cluster
from dcsim.costs import CostModel
from dcsim.observers import OpProgress, ProgressCallback
from dcsim.pricing import Pricing
from dcsim.program import Op, OpKind, Program, Stream
from dcsim.timing import IterationTiming, OpTiming

__all__ = ["NETWORKS", "Engine", "IterationTiming", "OpTiming"]

NETWORKS = ("analytical", "flow")
# Enum members as module constants for the per-op loops: a member looked up on its class
# (OpKind.COMPUTE) costs ~0.3 us in CPython 3.11, a module global ~0.02 us (timeit, here).
_COMPUTE = OpKind.COMPUTE
_COMPUTE_STREAM = Stream.COMPUTE


class _Meeting:
    """A rendezvous collective: how many participants have arrived, when it started, and the
    event the early ones wait on."""

    __slots__ = ("arrived", "start", "wait")

    def __init__(self, wait: simpy.Event) -> None:
        self.arrived, self.start, self.wait = 0, 0.0, wait


class _Replay:
    """The state of one run: an event per op, the durations priced ahead, the rendezvous met,
    and the timings recorded."""

    def __init__(self, env: simpy.Environment, backend: Any, durations: dict[int, float],
                 done: dict[int, simpy.Event], progress: OpProgress | None) -> None:
        self.env, self.backend, self.durations, self.done = env, backend, durations, done
        self.progress = progress
        self.meetings: dict[tuple[Any, ...], _Meeting] = {}
        self.times: dict[int, tuple[float, float]] = {}
        self.timings: list[OpTiming] = []
        self.finished = 0

    def run_collective(self, op: Op) -> Generator[simpy.Event, Any, None]:
        """A collective priced ahead (a timeout) or run `repeat` times on the flow network."""
        if op.id in self.durations:
            yield self.env.timeout(self.durations[op.id])
        else:
            for _ in range(op.repeat):
                yield self.backend.run(op.collective)

    def arrive(self, op: Op) -> simpy.Event:
        """A participant reaches a rendezvous collective: the event of its completion.
        The last one to arrive starts it (a timeout when priced in closed form)."""
        env, meet = self.env, op.rendezvous
        assert meet is not None
        st = self.meetings.get(meet.key)
        if st is None:
            st = self.meetings[meet.key] = _Meeting(env.event())
        st.arrived += 1
        if st.arrived < meet.participants:
            return st.wait
        st.start = env.now
        run = (env.timeout(self.durations[op.id]) if op.id in self.durations
               else env.process(self.run_collective(op)))
        wait = st.wait

        def release(_: simpy.Event) -> None:
            wait.succeed()

        run.callbacks.append(release)
        return run

    def stream(self, rank: int, ops: list[Op]) -> Generator[simpy.Event, Any, None]:
        """One stream of one rank: its ops in order, each after its dependencies."""
        env, done, durations = self.env, self.done, self.durations
        times, timings, progress = self.times, self.timings, self.progress
        every = progress.every if progress is not None else 0
        for op in ops:
            pending = [done[d] for d in op.deps if not done[d].triggered]
            if pending:
                yield env.all_of(pending) if len(pending) > 1 else pending[0]
            t0 = env.now
            if op.kind == _COMPUTE:
                yield env.timeout(durations[op.id])
            elif op.rendezvous is not None:
                yield self.arrive(op)
                t0 = self.meetings[op.rendezvous.key].start
            elif op.id in durations:
                yield env.timeout(durations[op.id])
            else:
                yield env.process(self.run_collective(op))
            times[op.id] = (t0, env.now)
            timings.append(OpTiming(op, rank, t0, env.now))
            done[op.id].succeed()
            self.finished += 1
            if progress is not None and self.finished % every == 0:
                progress.report(self.finished)


class Engine:
    """Replays a Program on a Cluster: prices its ops, simulates its streams, and returns
    the op timings with their summary."""

    def __init__(self, program: Program, cluster: Cluster, costs: CostModel,
                 network: str = "analytical",
                 flow_backend: Callable[..., Any] | None = None,
                 slow_ranks: dict[int, float] | None = None, routing: str = "auto",
                 seed: int = 0, progress: ProgressCallback | None = None) -> None:
        if network not in NETWORKS:
            raise ValueError(f"run.network: {network!r} is not one of {', '.join(NETWORKS)}")
        self.program, self.cluster, self.network = program, cluster, network
        self.pricing = Pricing(cluster, costs)
        self.flow_backend_factory = flow_backend  # called (env, cluster, seed=, routing=)
        self.routing, self.seed = routing, seed
        self.progress = progress  # called (ops done, ops in all) about 200 times per run
        self.slow_ranks = slow_ranks or {}  # GPU rank -> compute slowdown (a straggler)

    def run(self) -> IterationTiming:
        """Simulate the program once; its op timings, critical rank and breakdown."""
        env = simpy.Environment()
        backend = self._flow_network(env)
        done = {op.id: env.event() for rp in self.program.ranks for op in rp.ops}
        total = len(done)
        progress = OpProgress(self.progress, total) if self.progress is not None else None
        replay = _Replay(env, backend, self._price_ahead(backend is not None), done, progress)
        self._start_streams(replay)
        _run_quietly(env)
        if progress is not None:
            progress.report(replay.finished)
        self._check_all_ran(replay.times)
        return summarize(self.program, replay.times, replay.timings,
                         self.cluster.gpu_spec.comm_overlaps_compute,
                         self.pricing.provenance_s, self.pricing.extrapolated_s)

    def _flow_network(self, env: simpy.Environment) -> Any:
        """The flow network the non-local collectives run on, or None (closed form)."""
        if self.network != "flow":
            return None
        factory = self.flow_backend_factory
        if factory is None:
            from dcsim.network import FlowBackend  # the flow model, only when asked for
            factory = FlowBackend
        from dcsim.network.routing import resolve_routing
        return factory(env, self.cluster, seed=self.seed,
                       routing=resolve_routing(self.routing, self.cluster))

    def _price_ahead(self, flows: bool) -> dict[int, float]:
        """Seconds of every op priced before the run: compute (slowed on a straggler), and
        the collectives the flow network does not run."""
        pricing, slow = self.pricing, self.slow_ranks
        durations: dict[int, float] = {}
        for rp in self.program.ranks:
            for op in rp.ops:
                if op.kind == _COMPUTE:
                    durations[op.id] = (pricing.compute_time(op, rp.multiplicity)
                                        * slow.get(rp.rank, 1.0))
                else:
                    call = op.collective
                    assert call is not None, f"collective op {op.id} has no call"
                    if not flows or pricing.is_local(call):
                        durations[op.id] = pricing.collective_once(call) * op.repeat
        return durations

    def _start_streams(self, replay: _Replay) -> None:
        """A simpy process per stream of every rank (one stream where a device cannot overlap
        communication with compute)."""
        overlaps = self.cluster.gpu_spec.comm_overlaps_compute
        for rp in self.program.ranks:
            streams: dict[str, list[Op]] = {}
            for op in rp.ops:
                streams.setdefault(op.stream_name if overlaps else _COMPUTE_STREAM,
                                   []).append(op)
            for ops in streams.values():
                replay.env.process(replay.stream(rp.rank, ops))

    def _check_all_ran(self, times: dict[int, tuple[float, float]]) -> None:
        missing = [o.id for r in self.program.ranks for o in r.ops if o.id not in times]
        if missing:
            raise RuntimeError(f"deadlock: {len(missing)} ops never ran (first: op {missing[0]})")


def _run_quietly(env: simpy.Environment) -> None:
    """Run the simulation to its end with the cyclic GC held off: millions of live events and
    records would be rescanned again and again (DESIGN.md sec. 4: gc.freeze() after set-up
    made scheduling ~4x faster here)."""
    gc.freeze()
    try:
        env.run()
    finally:
        gc.unfreeze()
