"""Kineto CPU traces classified: the outermost CPU ops of the main thread (the one that ran
ProfilerStep#N), in order, each replayed at its recorded duration plus the host time before it
that was not spent waiting; the collectives they issued (gloo runs them on its own thread) and
the op that waited for each (an explicit wait, the first op that touches the buffer, the op
after the idle gap the collective ended in, in order, or the step's end)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dcsim.program import Category, OpKind
from workloads.kineto.parse import (PRECISION_BYTES, KinetoError, Node, TraceEvent,
                                    collective_op, collective_size, forest, group_size_of,
                                    is_wait, numel, tensor_shapes, world_size_of)
from workloads.kineto.step import (WAKE_TOLERANCE_FRACTION, StepItem, comm_category,
                                   step_end)

# A main-thread gap counts as a wait for a collective if the thread resumed when the collective
# ended, give or take this much: gloo's span ends up to ~0.35 ms after the waiting thread
# resumed (measured in tests/fixtures/kineto_tinygpt_ddp2.json); at least 5 % of the call.
WAKE_TOLERANCE_US = 500.0
# A gap shorter than this is host overhead between ops, never a wait (Python dispatch of one
# op on a CPU is ~5-50 us in the fixture).
MIN_WAIT_US = 50.0
_FORWARD = ("DistributedDataParallel.forward", "FullyShardedDataParallel.forward", "## forward ##")
_OPTIMIZER = ("Optimizer.step", "Optimizer.zero_grad", "optimizer")


def _phase(node: Node) -> str:
    names = [a.ev.name for a in node.ancestors()] + [node.ev.name]
    if any(n.startswith(_OPTIMIZER) for n in names):
        return "optimizer"
    if node.ev.name.startswith("autograd::engine::evaluate_function"):
        return "backward"
    if any(n.startswith(_FORWARD) for n in names):
        return "forward"
    return "step"


def _short(name: str) -> str:
    for p in ("autograd::engine::evaluate_function: ", "torch::autograd::"):
        name = name.replace(p, "")
    return name


@dataclass(slots=True)
class _Call:
    """One collective call found on the main thread."""

    op: str
    enqueue: Node
    parts: list[TraceEvent]
    top: int  # index of the outermost op that issued it
    exec_ev: TraceEvent | None = None
    item: int = -1  # its StepItem index

    @property
    def shapes(self) -> set[tuple[int, ...]]:
        return {tuple(s) for p in self.parts for s in tensor_shapes(p)}


def _main_thread(evs: list[TraceEvent], step: TraceEvent | None) -> tuple[tuple, float, float]:
    """(pid, tid) of the thread that ran the step, and the step window (us)."""
    if step is not None:
        return (step.pid, step.tid), step.ts, step.end
    busy: dict[tuple, float] = {}
    for e in evs:
        if e.cat == "cpu_op":
            busy[(e.pid, e.tid)] = busy.get((e.pid, e.tid), 0.0) + e.dur
    if not busy:
        raise KinetoError("trace: no CPU ops")
    main = max(busy, key=lambda k: busy[k])
    ops = [e for e in evs if (e.pid, e.tid) == main and e.cat == "cpu_op"]
    return main, min(e.ts for e in ops), max(e.end for e in ops)


def _top_ops(evs: list[TraceEvent]) -> list[Node]:
    """The outermost CPU ops of one thread; annotations around them only give the phase."""
    tops: list[Node] = []

    def walk(nodes: list[Node]) -> None:
        for n in nodes:
            if n.ev.cat == "cpu_op":
                tops.append(n)
            else:
                walk(n.children)

    walk(forest(evs))
    return sorted(tops, key=lambda n: n.ev.ts)


def _calls(tops: list[Node]) -> tuple[list[_Call], list[int]]:
    """The collective calls under the top ops (the outermost collective event of each; nested
    ones add their args), in issue order, and the indices of explicit wait ops."""
    calls: list[_Call] = []
    waits: list[int] = []
    for i, t in enumerate(tops):
        if is_wait(t.ev):
            waits.append(i)
        for n in [t, *t.descendants()]:
            op = collective_op(n.ev)
            if op is None or any(collective_op(a.ev) for a in n.ancestors()):
                continue
            calls.append(_Call(op, n, [n.ev] + [d.ev for d in n.descendants()], top=i))
    return sorted(calls, key=lambda c: c.enqueue.ev.ts), waits


def cpu_items(evs: list[TraceEvent], data: dict[str, Any], step: TraceEvent | None,
               precision: str) -> tuple[list[StepItem], float, float]:
    """Items of a CPU trace's main thread in the step window, and the window."""
    main, w0, w1 = _main_thread(evs, step)
    tops = _top_ops([e for e in evs if (e.pid, e.tid) == main and e is not step
                     and e.cat in ("cpu_op", "user_annotation")
                     and e.ts >= w0 - 1e-3 and e.end <= w1 + 1e-3])
    if not tops:
        raise KinetoError("trace: the step has no CPU ops on its main thread")
    calls, waits = _calls(tops)
    _match_exec(calls, [e for e in evs if e.pid == main[0] and e.tid != main[1]])
    world, elem = world_size_of(data), PRECISION_BYTES.get(precision, 4)
    items: list[StepItem] = []
    item_of_top = [_issue(items, t, [c for c in calls if c.top == i], world, elem)
                   for i, t in enumerate(tops)]
    consumers = _cpu_consumers(tops, calls, waits)
    if any(j == len(tops) for j, _ in consumers):  # waited for at the end of the step
        item_of_top.append(step_end(items, w1))
    waited_until: dict[int, float] = {}
    for c, (j, rule) in zip(calls, consumers, strict=False):
        items[c.item].consumer_rule = rule
        cons = items[item_of_top[j]]
        if c.item not in cons.deps:
            cons.deps.append(c.item)
        unknown = math.inf if rule not in ("in order", "step end") else -math.inf
        end = c.exec_ev.end if c.exec_ev else unknown
        waited_until[j] = max(waited_until.get(j, -math.inf), end)
    _cpu_gaps(items, tops, item_of_top, waited_until, w0, w1)
    return items, w0, w1


def _issue(items: list[StepItem], t: Node, calls: list[_Call], world: int, elem: int) -> int:
    """Append the items of one top op and the collectives it issued; its first item's index.

    An op that issues collectives is cut where each is issued: the collective may start there
    (gloo's thread takes it at once), the rest of the op runs beside it.
    """
    phase = _phase(t)
    label = f"{phase}/{_short(t.ev.name)}"
    category = Category.OPTIMIZER if phase == "optimizer" else Category.COMPUTE
    inner = [d.ev for d in t.descendants() if d.ev.cat == "cpu_op"]
    bounds = ([t.ev.ts] + [min(max(c.enqueue.ev.ts, t.ev.ts), t.ev.end) for c in calls]
              + [t.ev.end])
    first: int | None = None
    for k in range(len(calls) + 1):
        a, b = bounds[k], bounds[k + 1]
        if b > a or (k == len(calls) and first is None):
            items.append(StepItem(len(items), OpKind.COMPUTE, t.ev.name,
                                  label if first is None else f"{label} (after issue)",
                                  "compute", category, a, b - a,
                                  kernels=(1 if first is None else 0)
                                  + sum(1 for d in inner if a <= d.ts < b)))
            first = items[-1].index if first is None else first
        if k == len(calls):
            break
        c = calls[k]
        parts = c.parts + ([c.exec_ev] if c.exec_ev else [])
        op = "all_reduce" if c.op == "barrier" else c.op
        group = group_size_of(parts, world)
        issuer = next((it.index for it in reversed(items) if it.kind == OpKind.COMPUTE), None)
        c.item = len(items)
        items.append(StepItem(
            len(items), OpKind.COLLECTIVE, c.enqueue.ev.name,
            f"{phase}/{'barrier' if c.op == 'barrier' else op}",
            "p2p" if op == "send_recv" else "comm", comm_category(op, group, world),
            c.exec_ev.ts if c.exec_ev else c.enqueue.ev.ts,
            c.exec_ev.dur if c.exec_ev else 0.0, kernels=0, op=op,
            size_bytes=collective_size(parts, elem), group_size=group,
            recorded_exec_us=c.exec_ev.dur if c.exec_ev else None,
            deps=[] if issuer is None else [issuer]))
    assert first is not None
    return first


def _match_exec(calls: list[_Call], others: list[TraceEvent]) -> None:
    """Pair each call with its execution span on a communication thread (gloo:all_reduce on
    pt_gloo_runloop), first come first served by op and, when both say, element count."""
    pool = sorted((e for e in others if collective_op(e) is not None), key=lambda e: e.ts)
    used: set[int] = set()
    for c in calls:
        want = {numel(list(s)) for s in c.shapes}
        for k, e in enumerate(pool):
            if k in used or collective_op(e) != c.op or e.ts < c.enqueue.ev.ts - 1.0:
                continue
            have = {numel(s) for s in tensor_shapes(e)}
            if want and have and not want & have:
                continue
            used.add(k)
            c.exec_ev = e
            break


def _cpu_consumers(tops: list[Node], calls: list[_Call],
                   waits: list[int]) -> list[tuple[int, str]]:
    """(top op index, rule) of the op that waits for each call; len(tops) = the step's end.

    Rules, in order: a blocking call (barrier) -> the next op; an explicit wait (first come,
    first served); the first later op whose inputs have the call's buffer shape (DDP's
    bucket views after backward); the op after an idle gap of the main thread that the call
    ended in; as the next call that has a consumer (one process group completes in order);
    else the end of the step.
    """
    starts = [t.ev.ts for t in tops]
    ends = [t.ev.end for t in tops]
    pending = list(waits)
    found: list[tuple[int, str] | None] = []
    for c in calls:
        i0 = c.top
        if c.op == "barrier":
            found.append((i0 + 1, "blocking"))
            continue
        w = next((w for w in pending if w > i0), None)
        if w is not None:
            pending.remove(w)
            found.append((w, "explicit wait"))
            continue
        shapes = c.shapes
        j = next((j for j in range(i0 + 1, len(tops)) if starts[j] >= c.enqueue.ev.end
                  and shapes & {tuple(s) for s in tensor_shapes(tops[j].ev)}), None) if shapes else None
        if j is not None:
            found.append((j, "buffer"))
            continue
        if c.exec_ev is not None:
            e = c.exec_ev.end
            tol = max(WAKE_TOLERANCE_US, WAKE_TOLERANCE_FRACTION * c.exec_ev.dur)
            j = next((j for j in range(i0 + 1, len(tops))
                      if starts[j] - ends[j - 1] >= MIN_WAIT_US and ends[j - 1] <= e + tol
                      and abs(starts[j] - e) <= tol), None)
            if j is not None:
                found.append((j, "idle gap"))
                continue
        found.append(None)
    out: list[tuple[int, str]] = []
    for k in range(len(calls) - 1, -1, -1):
        f = found[k]
        if f is None:
            later = next((x for x in out if x[0] > calls[k].top), None) if out else None
            f = (later[0], "in order") if later else (len(tops), "step end")
        f = (min(f[0], len(tops)), f[1])
        out.insert(0, f)
    return out


def _cpu_gaps(items: list[StepItem], tops: list[Node], item_of_top: list[int],
              waited_until: dict[int, float], w0: float, w1: float) -> None:
    """Split each gap of the main thread into waiting (until the awaited collective ended;
    not replayed) and host time (Python, dispatch; charged to the op after it)."""
    prev = w0
    for i, t in enumerate(tops):
        it = items[item_of_top[i]]
        gap = max(0.0, t.ev.ts - prev)
        wait = 0.0
        if i in waited_until and gap >= MIN_WAIT_US:
            wait = min(gap, max(0.0, waited_until[i] - prev))
        if is_wait(t.ev):  # an explicit wait blocks inside itself
            until = waited_until.get(i, math.inf)
            blocked = min(t.ev.dur, max(0.0, until - t.ev.ts))
            it.busy_us -= blocked
            wait += blocked
        it.wait_us = wait
        it.host_us = gap - min(gap, wait)
        prev = max(prev, t.ev.end)
    items[item_of_top[len(tops) - 1]].host_us += max(0.0, w1 - prev)
