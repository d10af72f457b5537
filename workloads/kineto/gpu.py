"""Kineto GPU traces classified: the kernels of the busiest device in start order, per CUDA
stream ('compute' is the busiest non-NCCL stream, NCCL streams are 'comm'); dependencies from
cudaStreamWaitEvent, and for a collective nobody waited for, the kernel after the idle gap it
ended in (else the step's end)."""

from __future__ import annotations

import bisect
import math
from typing import Any

from dcsim.program import Category, OpKind
from workloads.kineto.parse import (NCCL_KERNEL, PRECISION_BYTES, KinetoError, TraceEvent,
                                    collective_op, collective_size, group_size_of,
                                    world_size_of)
from workloads.kineto.step import (STEP_END, WAKE_TOLERANCE_FRACTION, StepItem, comm_category,
                                   step_end)

# On a GPU a stream waiting on an event resumes within microseconds of it (our estimate: no
# trace here had a GPU); the same 5 % of the call applies.
GPU_WAKE_TOLERANCE_US = 20.0
GPU_MIN_WAIT_US = 5.0  # back-to-back kernel launches leave gaps of a few us (estimate)


def gpu_items(evs: list[TraceEvent], data: dict[str, Any], step: TraceEvent | None,
               precision: str) -> tuple[list[StepItem], float, float]:
    """Items of a GPU trace: the kernels of the busiest device in start order, per CUDA
    stream ('compute' is the busiest non-NCCL stream, NCCL streams are 'comm')."""
    runtime = {e.args.get("correlation"): e for e in evs
               if e.cat in ("cuda_runtime", "cuda_driver") and "correlation" in e.args}
    kern = [e for e in evs if e.cat in ("kernel", "gpu_memcpy", "gpu_memset")]

    def launched(e: TraceEvent) -> float:
        r = runtime.get(e.args.get("correlation"))
        return r.ts if r is not None else e.ts

    if step is not None:
        kern = [e for e in kern if step.ts <= launched(e) <= step.end]
    if not kern:
        raise KinetoError("trace: no GPU kernels in the step")
    by_dev: dict[Any, float] = {}
    for e in kern:
        by_dev[e.pid] = by_dev.get(e.pid, 0.0) + e.dur
    dev = max(by_dev, key=lambda d: by_dev[d])
    kern = sorted((e for e in kern if e.pid == dev), key=lambda e: (e.ts, launched(e)))
    cpu_by_ext: dict[Any, list[TraceEvent]] = {}
    for e in evs:
        if e.cat == "cpu_op" and collective_op(e) is not None and "External id" in e.args:
            cpu_by_ext.setdefault(e.args["External id"], []).append(e)
    is_nccl = [bool(NCCL_KERNEL.match(e.name)) for e in kern]
    names = _stream_names(kern, is_nccl)
    world = world_size_of(data)
    elem = PRECISION_BYTES.get(precision, 2)
    items: list[StepItem] = []
    for e, nccl in zip(kern, is_nccl, strict=False):
        if nccl:
            parts = [e] + cpu_by_ext.get(e.args.get("External id"), [])
            op = next((o for o in map(collective_op, parts) if o), None) or "all_reduce"
            op = "all_reduce" if op == "barrier" else op
            size = collective_size(parts, elem)
            group = group_size_of(parts, world)
            items.append(StepItem(len(items), OpKind.COLLECTIVE, e.name, f"nccl/{op}", names[e.tid],
                                  comm_category(op, group, world), e.ts, e.dur, kernels=1,
                                  op=op, size_bytes=size, group_size=group,
                                  recorded_exec_us=e.dur))
        else:
            items.append(StepItem(len(items), OpKind.COMPUTE, e.name, _short_kernel(e.name),
                                  names[e.tid], Category.COMPUTE, e.ts, e.dur))
    launch = [launched(e) for e in kern]
    waits = sorted((e for e in evs if e.name == "cudaStreamWaitEvent"), key=lambda e: e.ts)
    _gpu_waits(items, kern, launch, waits)
    end = max(e.end for e in kern)
    _gpu_consumers(items, end)
    _gpu_gaps(items)
    return items, kern[0].ts, end


def _stream_names(kern: list[TraceEvent], is_nccl: list[bool]) -> dict[Any, str]:
    busy: dict[Any, float] = {}
    only_nccl: dict[Any, bool] = {}
    for e, n in zip(kern, is_nccl, strict=False):
        busy[e.tid] = busy.get(e.tid, 0.0) + e.dur
        only_nccl[e.tid] = only_nccl.get(e.tid, True) and n
    names: dict[Any, str] = {}
    comm = 0
    for s in sorted(busy, key=lambda s: -busy[s]):
        if only_nccl[s]:
            names[s] = "comm" if comm == 0 else f"comm:{s}"
            comm += 1
        elif "compute" not in names.values():
            names[s] = "compute"
        else:
            names[s] = f"stream:{s}"
    return names


def _short_kernel(name: str) -> str:
    return name.split("(")[0].split("<")[0][:80]


def _gpu_waits(items: list[StepItem], kern: list[TraceEvent], launch: list[float],
               waits: list[TraceEvent]) -> None:
    """Cross-stream dependencies from cudaStreamWaitEvent: the next kernel launched after the
    call waits for the last kernel launched before it on the stream waited on (Kineto's
    wait_on_stream arg; without it: a collective waits for compute, compute for a
    collective). A collective without such a wait waits for the compute launched before it
    (ProcessGroupNCCL syncs its stream with the current one at enqueue)."""
    order = sorted(range(len(items)), key=lambda i: launch[i])
    lts = [launch[i] for i in order]

    def last_before(t: float, pred) -> int | None:
        for k in range(bisect.bisect_right(lts, t) - 1, -1, -1):
            if pred(order[k]):
                return order[k]
        return None

    for w in waits:
        stream = w.args.get("stream")  # the waiting stream, when the trace says
        waiter = next((order[k] for k in range(bisect.bisect_left(lts, w.ts), len(order))
                       if stream is None or kern[order[k]].tid == stream), None)
        if waiter is None:
            continue
        src = w.args.get("wait_on_stream")
        if src is not None:
            prod = last_before(w.ts, lambda i, src=src, waiter=waiter: kern[i].tid == src
                               and kern[i].tid != kern[waiter].tid)
        elif items[waiter].kind == OpKind.COLLECTIVE:
            prod = last_before(w.ts, lambda i: items[i].stream == "compute")
        else:
            prod = last_before(w.ts, lambda i: items[i].kind == OpKind.COLLECTIVE)
        if prod is not None and prod not in items[waiter].deps and prod < waiter:
            items[waiter].deps.append(prod)
            if items[prod].kind == OpKind.COLLECTIVE:
                items[prod].consumer_rule = "cudaStreamWaitEvent"
    for c in (i for i in items if i.kind == OpKind.COLLECTIVE):
        if not any(items[d].kind == OpKind.COMPUTE for d in c.deps):
            prod = last_before(launch[c.index], lambda i: items[i].stream == "compute")
            if prod is not None and prod < c.index:
                c.deps.append(prod)


def _gpu_consumers(items: list[StepItem], end: float) -> None:
    """A collective nobody waited for explicitly: the first compute kernel after an idle gap
    of the compute stream it ended in, else the end of the step."""
    prev_end: dict[int, float] = {}
    last: dict[str, float] = {}
    for it in items:
        prev_end[it.index] = last.get(it.stream, it.start_us)
        last[it.stream] = max(prev_end[it.index], it.start_us + it.busy_us)
    compute = [i for i in items if i.stream == "compute"]
    end_item: int | None = None
    for c in [i for i in items if i.kind == OpKind.COLLECTIVE and not i.consumer_rule]:
        e = c.start_us + c.busy_us
        tol = max(GPU_WAKE_TOLERANCE_US, WAKE_TOLERANCE_FRACTION * c.busy_us)
        cons = next((i for i in compute if i.index > c.index
                     and i.start_us - prev_end[i.index] >= GPU_MIN_WAIT_US
                     and prev_end[i.index] <= e + tol and abs(i.start_us - e) <= tol), None)
        if cons is None:
            if end_item is None:
                end_item = step_end(items, end)
            cons = items[end_item]
        cons.deps.append(c.index)
        c.consumer_rule = "idle gap" if cons.index != end_item else "step end"


def _gpu_gaps(items: list[StepItem]) -> None:
    """Per stream: a gap before a kernel is waiting up to the end of what it depends on,
    host (launch) time after that."""
    last_end: dict[str, float] = {}
    for it in items:
        g0 = last_end.get(it.stream, it.start_us)
        last_end[it.stream] = max(g0, it.start_us + it.busy_us)
        if it.kind == OpKind.COLLECTIVE or it.name == STEP_END:
            continue
        gap = max(0.0, it.start_us - g0)
        dep_end = max((items[d].start_us + items[d].busy_us for d in it.deps), default=-math.inf)
        it.wait_us = min(gap, max(0.0, dep_end - g0))
        it.host_us = gap - it.wait_us
