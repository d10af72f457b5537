"""Kineto traces, built: a classified step (TraceStep) as a replayable, folded Program."""

from __future__ import annotations

import math
from typing import Any

from dcsim.collectives import CollectiveCall
from dcsim.program import OpKind, Program, ProgramBuilder, RankProgram, Recorded, Stream
from workloads.kineto.step import TraceStep


def stream_of(name: str) -> tuple[Stream, str]:
    """A trace's stream name as (stream, lane): 'comm' -> (comm, ''), 'comm:7' -> (comm, '7'),
    'stream:3' (a further compute stream of a GPU trace) -> (side, '3')."""
    kind, _, lane = name.partition(":")
    return Stream(kind), lane


def to_program(step: TraceStep, dp: int | None = None, compute_scale: float = 1.0,
               first_id: int = 0, provenance: str | None = None) -> Program:
    """The step as a folded Program: one simulated rank standing for `dp` data-parallel
    replicas (default: the trace's), compute ops at their recorded durations x compute_scale
    (host gaps of GPU traces unscaled), collectives over GPU ranks 0..group-1 (the
    data-parallel group grows to dp; smaller groups keep their size).

    provenance: of the compute durations; 'measured' unscaled, 'spec' when scaled.
    """
    if compute_scale <= 0 or not math.isfinite(compute_scale):
        raise ValueError(f"compute_scale must be a positive number, got {compute_scale!r}")
    dp_old = step.dp_group
    dp = dp_old if dp is None else dp
    if dp < 1:
        raise ValueError(f"dp must be at least 1, got {dp}")
    prov = provenance or ("measured" if compute_scale == 1.0 else "spec")
    b = ProgramBuilder(first_id)
    rp = RankProgram(rank=0, multiplicity=dp, meta={"stage": 0, "source": step.source})
    ids: dict[int, int] = {}
    for it in step.items:
        deps = tuple(ids[d] for d in it.deps if d in ids)  # a dropped collective: no wait
        meta: dict[str, Any] = {"source": f"{it.name} @ {it.start_us:.1f} us"}
        stream, lane = stream_of(it.stream)
        if it.kind == OpKind.COMPUTE:
            if step.kind == "gpu":
                dur_us = it.busy_us * compute_scale + it.host_us
            else:
                dur_us = (it.busy_us + it.host_us) * compute_scale
            meta.update(recorded_busy_s=it.busy_us * 1e-6, host_s=it.host_us * 1e-6,
                        recorded_wait_s=it.wait_us * 1e-6)
            op = b.add(rp, kind=OpKind.COMPUTE, stream=stream, lane=lane, category=it.category,
                       label=it.label, deps=deps, meta=meta,
                       recorded=Recorded(dur_us * 1e-6, prov, it.kernels))
        else:
            group = dp if it.group_size == dp_old else min(it.group_size, dp)
            if group < 2:  # one replica: nothing to exchange
                continue
            n_groups = max(1, dp // group) if group != dp else 1
            groups = tuple(tuple(range(k * group, (k + 1) * group)) for k in range(n_groups))
            meta.update(recorded_exec_s=(it.recorded_exec_us or 0.0) * 1e-6,
                        recorded_group_size=it.group_size, consumer_rule=it.consumer_rule)
            op = b.add(rp, kind=OpKind.COLLECTIVE, stream=stream, lane=lane,
                       category=it.category, label=it.label, deps=deps, meta=meta,
                       collective=CollectiveCall(it.op or "all_reduce", groups, it.size_bytes))
        ids[it.index] = op.id
    return Program(ranks=[rp], folded=dp > 1,
                   meta={"source": step.source, "dp": dp, "trace_dp": dp_old,
                         "compute_scale": compute_scale, "kind": step.kind,
                         "recorded_step_s": step.recorded_step_s})

