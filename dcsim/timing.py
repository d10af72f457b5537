"""What a replay measured: when each op ran, and the iteration's summary (critical rank,
breakdown, provenance of compute time). Plain records, shared by the engine, the attribution
walk, the trace export and the result builders."""

from __future__ import annotations

from dataclasses import dataclass

from dcsim.program import Category, Op, Program


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
    breakdown: dict[Category, float]
    timings: list[OpTiming]
    provenance_s: dict[str, float]
    extrapolated_s: float
    events: int
    program: Program | None = None  # what ran (for the timeline: stages, multiplicities)
