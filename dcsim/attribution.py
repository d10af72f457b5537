"""Attribution: where the iteration went, from the op timings of a replay.

The critical rank is the first simulated rank whose compute stream ends last. Its compute
stream is walked in program order: busy time goes to each op's category, and every idle gap
before an op is charged to what that op waited for (`attribute_gap`): the pipeline bubble,
exposed communication of one parallel dimension, or waiting for peers at a rendezvous. The
parts add up to the iteration. The trace export charges every rank's gaps by the same rule.
"""

from __future__ import annotations

from typing import Callable

from dcsim.program import Category, Op, Program, RankProgram, Stream
from dcsim.timing import IterationTiming, OpTiming

Times = dict[int, tuple[float, float]]  # op id -> (start_s, end_s)
AddTime = Callable[[Category, float], None]
# Enum members as module globals: faster than a lookup on the class, per op (see engine.py).
_COMPUTE_STREAM, _PP, _BUBBLE = Stream.COMPUTE, Category.PP, Category.PIPELINE_BUBBLE


def on_compute_stream(op: Op, overlaps_compute: bool) -> bool:
    """Whether an op occupied its rank's compute stream (a device that cannot overlap
    communication with compute runs every op there)."""
    return not overlaps_compute or (op.stream == _COMPUTE_STREAM and not op.lane)


def attribute_gap(op: Op, g0: float, g1: float, times: Times, by_id: dict[int, Op],
                  add: AddTime) -> None:
    """Split an idle gap [g0, g1] of the compute stream before `op` by what it waited for.

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
    if dep.category == _PP:
        ready = max((times[x][1] for x in dep.deps), default=times[d][0])
        cut = min(max(ready, g0), g1)
        add(_BUBBLE, cut - g0)
        add(_PP, g1 - cut)
    else:
        add(dep.category, g1 - g0)


def critical_rank(program: Program, times: Times, iteration_s: float,
                  overlaps_compute: bool) -> RankProgram:
    """The first simulated rank whose compute stream ends with the iteration."""
    for rp in program.ranks:
        comp = [o for o in rp.ops if on_compute_stream(o, overlaps_compute)]
        if comp and times[comp[-1].id][1] >= iteration_s * (1 - 1e-12):
            return rp
    raise RuntimeError("no simulated rank's compute stream ends the iteration")


def breakdown(rp: RankProgram, times: Times, by_id: dict[int, Op],
              overlaps_compute: bool) -> dict[Category, float]:
    """Busy and idle time of one rank's compute stream by category (adds up to its end)."""
    bd: dict[Category, float] = {}

    def add(cat: Category, dt: float) -> None:
        if dt > 0:
            bd[cat] = bd.get(cat, 0.0) + dt

    prev = 0.0
    for op in (o for o in rp.ops if on_compute_stream(o, overlaps_compute)):
        start, end = times[op.id]
        if start > prev:
            attribute_gap(op, prev, start, times, by_id, add)
        add(op.category, end - start)
        prev = end
    return bd


def summarize(program: Program, times: Times, timings: list[OpTiming], overlaps_compute: bool,
              provenance_s: dict[str, float], extrapolated_s: float) -> IterationTiming:
    """The iteration of a replay: its length, critical rank and that rank's breakdown."""
    by_id = {o.id: o for r in program.ranks for o in r.ops}
    iteration = max(end for _, end in times.values())
    critical = critical_rank(program, times, iteration, overlaps_compute)
    return IterationTiming(
        iteration_s=iteration, critical_rank=critical.rank,
        breakdown=breakdown(critical, times, by_id, overlaps_compute), timings=timings,
        provenance_s=dict(provenance_s), extrapolated_s=extrapolated_s, events=len(timings),
    )
