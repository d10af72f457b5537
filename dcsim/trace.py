"""Timeline out: one simulated iteration as a Chrome trace (opens in Perfetto and chrome://tracing).

A process per simulated rank (named with its rank, pipeline stage and multiplicity; the critical
rank says so), a thread per stream the rank ran (compute, comm, p2p, ...), every op a complete
('X') slice with its label, category, kernel count, repeat and collective. Under each compute
track an "idle" track holds the gaps of the compute stream as the engine's breakdown attributes
them (waiting for dp, tp, pp, the pipeline bubble, ...), so busy + idle = the iteration.
Format: the Trace Event Format (JSON object form, timestamps in microseconds), see
https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcsim.attribution import attribute_gap, on_compute_stream
from dcsim.program import Category, Op, Program, Stream
from dcsim.timing import IterationTiming, OpTiming

US_PER_S = 1e6  # Chrome trace timestamps and durations are microseconds
STREAM_ORDER = ("compute", "idle", "comm", "p2p", "io")  # track order inside a rank
IDLE_TRACK = "idle"  # the attributed gaps of the compute stream


@dataclass(frozen=True, slots=True)
class RankInfo:
    """What a rank's process is named with: its stage and how many ranks it stands for."""

    rank: int
    stage: int | None = None
    multiplicity: int | None = None
    job: str | None = None

    def title(self, critical: bool) -> str:
        parts = [f"rank {self.rank}"]
        if self.stage is not None:
            parts.append(f"stage {self.stage}")
        if self.multiplicity is not None:
            parts.append(f"x{self.multiplicity}")
        head = f"{parts[0]} ({', '.join(parts[1:])})" if len(parts) > 1 else parts[0]
        if self.job:
            head = f"{self.job}: {head}"
        return head + (" [critical]" if critical else "")


@dataclass(frozen=True, slots=True)
class Gap:
    """An idle stretch of a compute stream and the breakdown category it is charged to."""

    rank: int
    start_s: float
    end_s: float
    category: Category


def rank_infos(program: Program | None, timing: IterationTiming) -> dict[int, RankInfo]:
    """Rank -> RankInfo, from the program when we have it, else just the rank numbers."""
    if program is not None:
        return {rp.rank: RankInfo(rp.rank, rp.meta.get("stage"), rp.multiplicity,
                                  rp.meta.get("job")) for rp in program.ranks}
    return {t.rank: RankInfo(t.rank) for t in timing.timings}


def effective_stream(op: Op, overlaps_compute: bool) -> str:
    """The stream an op occupied (the engine runs everything on compute where comm cannot
    overlap compute)."""
    return op.stream_name if overlaps_compute else Stream.COMPUTE


def compute_gaps(timing: IterationTiming, overlaps_compute: bool = True) -> list[Gap]:
    """The idle gaps of every rank's compute stream, split by what they waited for, with the
    engine's own attribution rule (dcsim.attribution.attribute_gap), so the critical rank's
    gaps and busy time make up its breakdown."""
    times = {t.op.id: (t.start_s, t.end_s) for t in timing.timings}
    by_id = {t.op.id: t.op for t in timing.timings}
    per_rank: dict[int, list[OpTiming]] = {}
    for t in timing.timings:
        if on_compute_stream(t.op, overlaps_compute):
            per_rank.setdefault(t.rank, []).append(t)
    gaps: list[Gap] = []
    for rank, ts in per_rank.items():
        ts.sort(key=lambda t: (t.start_s, t.end_s))
        prev = 0.0
        for t in ts:
            if t.start_s > prev:
                cursor = [prev]

                def add(cat: Category, dt: float, _c: list[float] = cursor,
                        _r: int = rank) -> None:
                    if dt > 0:
                        gaps.append(Gap(_r, _c[0], _c[0] + dt, cat))
                        _c[0] += dt

                attribute_gap(t.op, prev, t.start_s, times, by_id, add)
            prev = max(prev, t.end_s)
    return gaps


def _op_args(op: Op) -> dict[str, Any]:
    rec = op.recorded
    args: dict[str, Any] = {"label": op.label, "category": op.category, "kind": op.kind,
                            "op_id": op.id, "repeat": op.repeat, "stream": op.stream_name,
                            "kernels": len(op.kernels) or (rec.kernels if rec else 0)}
    c = op.collective
    if c is not None:
        args.update(collective=c.op, size_bytes=c.size_bytes,
                    group_size=max(len(g) for g in c.groups), groups=len(c.groups),
                    algorithm=c.algorithm)
    if rec is not None:
        args["recorded_duration_s"] = rec.duration_s
        args["provenance"] = rec.provenance
    if op.meta and "source" in op.meta:
        args["source"] = op.meta["source"]
    return args


def chrome_trace(timing: IterationTiming, program: Program | None = None, *,
                 overlaps_compute: bool = True, name: str = "dcsim",
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Chrome trace (JSON object form) of one simulated iteration."""
    infos = rank_infos(program, timing)
    for t in timing.timings:
        infos.setdefault(t.rank, RankInfo(t.rank))
    streams: dict[int, list[str]] = {}
    for t in timing.timings:
        s = effective_stream(t.op, overlaps_compute)
        if s not in streams.setdefault(t.rank, []):
            streams[t.rank].append(s)
    gaps = compute_gaps(timing, overlaps_compute)
    for g in gaps:
        if IDLE_TRACK not in streams.setdefault(g.rank, []):
            streams[g.rank].append(IDLE_TRACK)

    def order(s: str) -> tuple[int, str]:
        return (STREAM_ORDER.index(s) if s in STREAM_ORDER else len(STREAM_ORDER), s)

    tids: dict[tuple[int, str], int] = {}
    events: list[dict[str, Any]] = []
    crit = timing.critical_rank
    for rank in sorted(streams):
        info = infos[rank]
        events.append({"ph": "M", "name": "process_name", "pid": rank, "tid": 0,
                       "args": {"name": info.title(rank == crit)}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": rank, "tid": 0,
                       "args": {"sort_index": rank}})
        if rank == crit:
            events.append({"ph": "M", "name": "process_labels", "pid": rank, "tid": 0,
                           "args": {"labels": "critical rank"}})
        for i, s in enumerate(sorted(streams[rank], key=order)):
            tid = tids[(rank, s)] = i + 1
            label = "compute idle (attributed)" if s == IDLE_TRACK else s
            events.append({"ph": "M", "name": "thread_name", "pid": rank, "tid": tid,
                           "args": {"name": label}})
            events.append({"ph": "M", "name": "thread_sort_index", "pid": rank, "tid": tid,
                           "args": {"sort_index": i}})
    for t in sorted(timing.timings, key=lambda t: (t.rank, t.start_s, t.op.id)):
        s = effective_stream(t.op, overlaps_compute)
        events.append({"ph": "X", "name": t.op.label, "cat": t.op.category,
                       "ts": t.start_s * US_PER_S, "dur": (t.end_s - t.start_s) * US_PER_S,
                       "pid": t.rank, "tid": tids[(t.rank, s)], "args": _op_args(t.op)})
    for g in gaps:
        events.append({"ph": "X", "name": f"wait: {g.category}", "cat": f"idle,{g.category}",
                       "ts": g.start_s * US_PER_S, "dur": (g.end_s - g.start_s) * US_PER_S,
                       "pid": g.rank, "tid": tids[(g.rank, IDLE_TRACK)],
                       "args": {"category": g.category, "waiting": True}})
    if (crit, "compute") in tids:
        events.append({"ph": "i", "s": "p", "name": "iteration end (critical rank)",
                       "ts": timing.iteration_s * US_PER_S, "pid": crit,
                       "tid": tids[(crit, "compute")]})
    other = {"name": name, "iteration_s": timing.iteration_s, "critical_rank": crit,
             "breakdown_s": dict(timing.breakdown), "provenance_s": dict(timing.provenance_s),
             "time_unit": "us", **(extra or {})}
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": other}


def overlaps_from_cluster(description: dict[str, Any]) -> bool:
    """Whether the result's device overlaps communication with compute (catalog flag)."""
    from dcsim.hardware import UnknownHardware, gpu

    name = (description or {}).get("server", {}).get("gpu")
    if not name:
        return True
    try:
        return gpu(name).comm_overlaps_compute
    except UnknownHardware:
        return True


def write_chrome_trace(result: Any, path: Path, program: Program | None = None) -> None:
    """Write a SimulationResult's timeline to `path` as Chrome trace JSON.

    The program (for stage and multiplicity in process names) is taken from the argument, or
    from result.timing.program when the simulation kept it.
    """
    timing: IterationTiming | None = getattr(result, "timing", None)
    if timing is None:
        raise ValueError("--trace: this result has no op timings to write")
    program = program or timing.program or getattr(result, "program", None)
    extra = {"gpus": getattr(result, "gpus", None), "scenario": getattr(result, "name", None)}
    doc = chrome_trace(timing, program, overlaps_compute=overlaps_from_cluster(result.cluster),
                       name=str(getattr(result, "name", "dcsim")), extra=extra)
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, separators=(",", ":")))
