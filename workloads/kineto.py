"""Trace in: a PyTorch profiler (Kineto) trace of one training step -> a replayable Program.

CPU traces: the outermost CPU ops of the main thread (the one that ran ProfilerStep#N), in
order, each replayed at its recorded duration plus the host time before it that was not spent
waiting. GPU traces: the kernels of each CUDA stream. Collectives (gloo or NCCL, from
`c10d::allreduce_`, `record_param_comms`, `nccl:*` / `gloo:*` spans or NCCL kernels) become
CollectiveCalls (op, nccl-tests size, group) that the target cluster's cost model or network
prices. Dependencies: stream order, the launching op before its collective, and the consumer
after it (an explicit wait, the first op that touches the collective's buffer, the op after
the idle gap the collective ended in, or cudaStreamWaitEvent on GPUs).

    step = import_trace(Path("step.json"))            # a TraceStep: plain records
    program = to_program(step, dp=8, compute_scale=0.5)
"""

from __future__ import annotations

import bisect
import gzip
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from dcsim.collectives import CollectiveCall
from dcsim.program import Program, ProgramBuilder, RankProgram
from dcsim.errors import InputError
from dcsim.vocabulary import ELEMENT_BYTES

__all__ = ["KinetoError", "TraceEvent", "StepItem", "TraceStep", "load_trace", "parse_step",
           "import_trace", "to_program", "collective_op", "DTYPE_BYTES"]

# Bytes per element by the dtype names traces use: c10 ScalarType names (record_param_comms
# "dtype", c10/core/ScalarType.h) and the C++ type names record_shapes prints ("Input type").
DTYPE_BYTES: dict[str, int] = {
    "Byte": 1, "Char": 1, "Bool": 1, "Short": 2, "Int": 4, "Long": 8, "Half": 2, "Float": 4,
    "Double": 8, "BFloat16": 2, "Float8_e4m3fn": 1, "Float8_e5m2": 1, "UInt16": 2,
    "UInt32": 4, "UInt64": 8, "ComplexFloat": 8, "ComplexDouble": 16,
    "float": 4, "double": 8, "c10::Half": 2, "c10::BFloat16": 2, "long int": 8, "int": 4,
    "short int": 2, "signed char": 1, "unsigned char": 1, "bool": 1,
    "c10::Float8_e4m3fn": 1, "c10::Float8_e5m2": 1,
}
PRECISION_OF_DTYPE = {"float": "fp32", "Float": "fp32", "c10::BFloat16": "bf16",
                      "BFloat16": "bf16", "c10::Half": "fp16", "Half": "fp16",
                      "c10::Float8_e4m3fn": "fp8", "Float8_e4m3fn": "fp8"}
PRECISION_BYTES = ELEMENT_BYTES
# Collective names as c10d ops, record_param_comms "Collective name", gloo:/nccl: spans and
# NCCL kernel names spell them (normalized: lower case, no prefixes, '_' and 'base' dropped).
# Rooted ops are priced as their all-to-all cousins (reduce as all-reduce, gather and scatter
# as all-gather): an upper bound, as dcsim.collectives has no rooted algorithms.
_COLLECTIVES = {
    "allreduce": "all_reduce", "allreducecoalesced": "all_reduce", "reduce": "all_reduce",
    "allgather": "all_gather", "allgatherintotensor": "all_gather",
    "allgatherintotensorcoalesced": "all_gather", "allgathercoalesced": "all_gather",
    "gather": "all_gather", "scatter": "all_gather",
    "reducescatter": "reduce_scatter", "reducescattertensor": "reduce_scatter",
    "reducescattertensorcoalesced": "reduce_scatter",
    "alltoall": "all_to_all", "alltoallv": "all_to_all", "alltoallsingle": "all_to_all",
    "broadcast": "broadcast", "send": "send_recv", "recv": "send_recv",
    "recvanysource": "send_recv", "sendrecv": "send_recv", "barrier": "barrier",
}
_WAITS = ("wait", "waittensor")
_PREFIXES = ("_c10d_functional::", "c10d_functional::", "c10d::", "gloo:", "nccl:",
             "torch.distributed.", "aten::")
_NCCL_KERNEL = re.compile(r"^nccl(?:Dev)?Kernel_([A-Za-z]+)")
# A main-thread gap counts as a wait for a collective if the thread resumed when the collective
# ended, give or take this much: gloo's span ends up to ~0.35 ms after the waiting thread
# resumed (measured in tests/fixtures/kineto_tinygpt_ddp2.json); at least 5 % of the call.
WAKE_TOLERANCE_US = 500.0
WAKE_TOLERANCE_FRACTION = 0.05
# On a GPU a stream waiting on an event resumes within microseconds of it (our estimate: no
# trace here had a GPU); the same 5 % of the call applies.
GPU_WAKE_TOLERANCE_US = 20.0
GPU_MIN_WAIT_US = 5.0  # back-to-back kernel launches leave gaps of a few us (estimate)
# A gap shorter than this is host overhead between ops, never a wait (Python dispatch of one
# op on a CPU is ~5-50 us in the fixture).
MIN_WAIT_US = 50.0
STEP_ANNOTATION = "ProfilerStep#"
STEP_END = "step end"  # the zero-length op that waits for collectives nothing else waited for
_FORWARD = ("DistributedDataParallel.forward", "FullyShardedDataParallel.forward", "## forward ##")
_OPTIMIZER = ("Optimizer.step", "Optimizer.zero_grad", "optimizer")


class KinetoError(InputError):
    """The file is not a usable Kineto trace; the message is one line that says why."""


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One complete ('X') event of the trace; times in microseconds as the trace has them."""

    name: str
    cat: str
    ts: float
    dur: float
    pid: Any
    tid: Any
    args: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def end(self) -> float:
        return self.ts + self.dur


@dataclass(slots=True)
class StepItem:
    """One op of the imported step: a compute op (recorded busy time plus the host time before
    it that was not a wait) or a collective (op, size, group; priced on the target)."""

    index: int
    kind: str  # compute | collective
    name: str
    label: str
    stream: str
    category: str
    start_us: float
    busy_us: float
    host_us: float = 0.0  # host time before it (dispatch, Python, launch gaps) it is charged
    wait_us: float = 0.0  # recorded idle time before it spent waiting (not replayed)
    kernels: int = 1
    deps: list[int] = field(default_factory=list)
    op: str | None = None  # collective: a dcsim.collectives op
    size_bytes: float = 0.0
    group_size: int = 1
    recorded_exec_us: float | None = None  # collective: its recorded execution time
    consumer_rule: str = ""  # collective: how its consumer was found


@dataclass(slots=True)
class TraceStep:
    """One training step read from a trace: items in program order and what the trace says
    about where it ran."""

    kind: str  # cpu | gpu
    device_name: str
    device: str | None  # dcsim catalog name of that device, when known
    precision: str
    world_size: int
    step_name: str
    start_us: float
    end_us: float
    items: list[StepItem]
    source: str = ""

    @property
    def recorded_step_s(self) -> float:
        return (self.end_us - self.start_us) * 1e-6

    @property
    def collectives(self) -> list[StepItem]:
        return [i for i in self.items if i.kind == "collective"]

    @property
    def dp_group(self) -> int:
        """The data-parallel group: the largest group any collective ran over."""
        return max((c.group_size for c in self.collectives), default=self.world_size)


# --- reading -------------------------------------------------------------------------------

def load_trace(path: Path) -> dict[str, Any]:
    """The JSON of a Kineto trace file (.json or gzip); KinetoError when it is not one."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise KinetoError(f"trace {p}: no such file") from None
    except IsADirectoryError:
        raise KinetoError(f"trace {p}: is a directory, not a trace file") from None
    except OSError as e:
        raise KinetoError(f"trace {p}: cannot read ({e.strerror or e})") from None
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        data = json.loads(raw.decode("utf-8"))
    except (OSError, EOFError) as e:
        raise KinetoError(f"trace {p}: corrupt gzip ({e})") from None
    except UnicodeDecodeError:
        raise KinetoError(f"trace {p}: not a text JSON file") from None
    except json.JSONDecodeError as e:
        raise KinetoError(f"trace {p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    check_kineto(data, str(p))
    return data


def check_kineto(data: Any, where: str = "trace") -> None:
    """Raise KinetoError unless `data` looks like a PyTorch profiler trace."""
    if not isinstance(data, dict) or not isinstance(data.get("traceEvents"), list):
        raise KinetoError(f"{where}: not a Kineto trace (no traceEvents list)")
    cats = {e.get("cat") for e in data["traceEvents"] if isinstance(e, dict)}
    if not cats & {"cpu_op", "kernel"}:
        raise KinetoError(f"{where}: not a Kineto trace (no cpu_op or kernel events; "
                          f"record it with torch.profiler)")


def events_of(data: dict[str, Any]) -> list[TraceEvent]:
    """The complete events with a numeric time and duration."""
    out = []
    for e in data["traceEvents"]:
        if not isinstance(e, dict) or e.get("ph") != "X":
            continue
        ts, dur = e.get("ts"), e.get("dur")
        if not isinstance(ts, (int, float)) or not isinstance(dur, (int, float)) or dur < 0:
            continue
        args = e.get("args") if isinstance(e.get("args"), dict) else {}
        out.append(TraceEvent(str(e.get("name", "")), str(e.get("cat", "")), float(ts),
                              float(dur), e.get("pid"), e.get("tid"), args))
    return out


# --- names, sizes, groups ------------------------------------------------------------------

def _norm(name: str) -> str:
    n = name.strip()
    for p in _PREFIXES:
        if n.startswith(p):
            n = n[len(p):]
    return n.lower().replace("_", "").replace("base", "").replace(" ", "")


def collective_op(ev: TraceEvent) -> str | None:
    """The dcsim op ('all_reduce', ..., 'barrier') an event stands for, or None."""
    m = _NCCL_KERNEL.match(ev.name)
    if m:
        if "Collective name" in ev.args:
            return _COLLECTIVES.get(_norm(str(ev.args["Collective name"])))
        return _COLLECTIVES.get(m.group(1).lower(), "send_recv" if "send" in m.group(1).lower()
                                else None)
    if ev.name == "record_param_comms":
        return _COLLECTIVES.get(_norm(str(ev.args.get("Collective name", ""))))
    if ev.name.startswith(("c10d::", "gloo:", "nccl:", "_c10d_functional::",
                           "c10d_functional::")):
        return _COLLECTIVES.get(_norm(ev.name))
    return None


def is_wait(ev: TraceEvent) -> bool:
    """An explicit wait for a collective (c10d::wait, wait_tensor)."""
    return ev.name.startswith(("c10d::", "_c10d_functional::", "c10d_functional::",
                               "aten::")) and _norm(ev.name) in _WAITS


def _tensor_entries(dims: Any) -> list[list[list[int]]]:
    """Input Dims -> per argument a list of tensor shapes (a TensorList has several)."""
    out: list[list[list[int]]] = []
    if not isinstance(dims, list):
        return out
    for d in dims:
        if isinstance(d, list) and d and all(isinstance(x, list) for x in d):
            out.append([x for x in d if all(isinstance(v, int) for v in x)])
        elif isinstance(d, list) and d and all(isinstance(v, int) for v in d):
            out.append([d])
        else:
            out.append([])
    return out


def _numel(shape: list[int]) -> int:
    return math.prod(shape) if shape else 1


def _dtype_bytes(ev: TraceEvent, default: int) -> int:
    for t in ev.args.get("Input type", []) or []:
        if isinstance(t, str) and t in DTYPE_BYTES:
            return DTYPE_BYTES[t]
    return default


def collective_size(evs: Iterable[TraceEvent], default_elem_bytes: int) -> float:
    """Bytes by the nccl-tests convention from the events of one call (0 if unknown): the
    record_param_comms message sizes when there are some, else the largest tensor (list)
    argument: the buffer of an all-reduce, the output of an all-gather, the input of a
    reduce-scatter."""
    evs = list(evs)
    for e in evs:
        a = e.args
        if "In msg nelems" in a or "Out msg nelems" in a:
            n = max(float(a.get("In msg nelems") or 0), float(a.get("Out msg nelems") or 0))
            return n * DTYPE_BYTES.get(str(a.get("dtype")), default_elem_bytes)
    elem = next((b for b in (_dtype_bytes(e, 0) for e in evs) if b), default_elem_bytes)
    best = 0
    for e in evs:
        for entry in _tensor_entries(e.args.get("Input Dims")):
            best = max(best, sum(_numel(s) for s in entry))
    return float(best * elem)


def _shapes(ev: TraceEvent) -> list[list[int]]:
    """Non-scalar tensor shapes an event's inputs have."""
    return [s for entry in _tensor_entries(ev.args.get("Input Dims")) for s in entry if s]


def _group_size(evs: Iterable[TraceEvent], default: int) -> int:
    for e in evs:
        g = e.args.get("Group size")
        if isinstance(g, (int, float)) and g >= 1:
            return int(g)
    return default


def world_size_of(data: dict[str, Any]) -> int:
    """The default process group's size from distributedInfo (1 when the trace has none)."""
    info = data.get("distributedInfo") or {}
    pgs = info.get("pg_config") or []
    default = [pg for pg in pgs if isinstance(pg, dict) and pg.get("pg_desc") == "default_pg"]
    if default and isinstance(default[0].get("pg_size"), int):
        return default[0]["pg_size"]
    ws = info.get("world_size")
    return int(ws) if isinstance(ws, int) and ws >= 1 else 1


def _precision(evs: list[TraceEvent], default: str) -> str:
    """The dtype most matrix multiplies ran in."""
    votes: dict[str, float] = {}
    for e in evs:
        if e.cat == "cpu_op" and e.name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul",
                                            "aten::linear", "aten::baddbmm"):
            for t in e.args.get("Input type", []) or []:
                if t in PRECISION_OF_DTYPE:
                    votes[PRECISION_OF_DTYPE[t]] = votes.get(PRECISION_OF_DTYPE[t], 0.0) + e.dur
                    break
    return max(votes, key=lambda k: votes[k]) if votes else default


def _device(data: dict[str, Any], kind: str) -> tuple[str, str | None]:
    """(device name as the trace says it, dcsim catalog name when we know it)."""
    if kind == "cpu":
        return "cpu", "cpu-host"
    props = data.get("deviceProperties") or []
    name = str(props[0].get("name", "gpu")) if props and isinstance(props[0], dict) else "gpu"
    from dcsim.calibrated import DEVICE_MARKERS

    for gpu, markers in DEVICE_MARKERS.items():
        if gpu != "cpu-host" and any(m.lower() in name.lower() for m in markers):
            return name, gpu
    return name, None


# --- the step window and the nesting of the main thread ---------------------------------------

def _steps(evs: list[TraceEvent]) -> list[TraceEvent]:
    return sorted((e for e in evs if e.name.startswith(STEP_ANNOTATION)
                   and e.cat in ("user_annotation", "cpu_op")), key=lambda e: e.ts)


def _pick_step(evs: list[TraceEvent], step: int | None, where: str) -> TraceEvent | None:
    steps = _steps(evs)
    if step is None:
        return steps[-1] if steps else None
    for s in steps:
        if s.name == f"{STEP_ANNOTATION}{step}":
            return s
    have = ", ".join(s.name[len(STEP_ANNOTATION):] for s in steps) or "none"
    raise KinetoError(f"{where}: no {STEP_ANNOTATION}{step} in the trace (steps: {have})")


@dataclass(slots=True)
class _Node:
    ev: TraceEvent
    parent: "_Node | None"
    children: list["_Node"] = field(default_factory=list)

    def ancestors(self) -> Iterable["_Node"]:
        p = self.parent
        while p is not None:
            yield p
            p = p.parent

    def descendants(self) -> Iterable["_Node"]:
        for c in self.children:
            yield c
            yield from c.descendants()


def _forest(evs: list[TraceEvent]) -> list[_Node]:
    """Nest one thread's events by time (a child lies inside its parent, rounding allowed)."""
    roots: list[_Node] = []
    stack: list[_Node] = []
    for e in sorted(evs, key=lambda e: (e.ts, -e.dur)):
        while stack and e.ts >= stack[-1].ev.end - 1e-3:
            stack.pop()
        while stack and e.end > stack[-1].ev.end + 1e-3:
            stack.pop()  # overlaps without nesting: treat as a sibling of the parent
        node = _Node(e, stack[-1] if stack else None)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)
    return roots


def _phase(node: _Node) -> str:
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


# --- CPU traces ----------------------------------------------------------------------------

@dataclass(slots=True)
class _Call:
    """One collective call found on the main thread."""

    op: str
    enqueue: _Node
    parts: list[TraceEvent]
    top: int  # index of the outermost op that issued it
    exec_ev: TraceEvent | None = None
    item: int = -1  # its StepItem index

    @property
    def shapes(self) -> set[tuple[int, ...]]:
        return {tuple(s) for p in self.parts for s in _shapes(p)}


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


def _top_ops(evs: list[TraceEvent]) -> list[_Node]:
    """The outermost CPU ops of one thread; annotations around them only give the phase."""
    tops: list[_Node] = []

    def walk(nodes: list[_Node]) -> None:
        for n in nodes:
            if n.ev.cat == "cpu_op":
                tops.append(n)
            else:
                walk(n.children)

    walk(_forest(evs))
    return sorted(tops, key=lambda n: n.ev.ts)


def _calls(tops: list[_Node]) -> tuple[list[_Call], list[int]]:
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


def _cpu_items(evs: list[TraceEvent], data: dict[str, Any], step: TraceEvent | None,
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
        item_of_top.append(_step_end(items, w1))
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


def _issue(items: list[StepItem], t: _Node, calls: list[_Call], world: int, elem: int) -> int:
    """Append the items of one top op and the collectives it issued; its first item's index.

    An op that issues collectives is cut where each is issued: the collective may start there
    (gloo's thread takes it at once), the rest of the op runs beside it.
    """
    phase = _phase(t)
    label = f"{phase}/{_short(t.ev.name)}"
    category = "optimizer" if phase == "optimizer" else "compute"
    inner = [d.ev for d in t.descendants() if d.ev.cat == "cpu_op"]
    bounds = ([t.ev.ts] + [min(max(c.enqueue.ev.ts, t.ev.ts), t.ev.end) for c in calls]
              + [t.ev.end])
    first: int | None = None
    for k in range(len(calls) + 1):
        a, b = bounds[k], bounds[k + 1]
        if b > a or (k == len(calls) and first is None):
            items.append(StepItem(len(items), "compute", t.ev.name,
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
        group = _group_size(parts, world)
        issuer = next((it.index for it in reversed(items) if it.kind == "compute"), None)
        c.item = len(items)
        items.append(StepItem(
            len(items), "collective", c.enqueue.ev.name,
            f"{phase}/{'barrier' if c.op == 'barrier' else op}",
            "p2p" if op == "send_recv" else "comm", _comm_category(op, group, world),
            c.exec_ev.ts if c.exec_ev else c.enqueue.ev.ts,
            c.exec_ev.dur if c.exec_ev else 0.0, kernels=0, op=op,
            size_bytes=collective_size(parts, elem), group_size=group,
            recorded_exec_us=c.exec_ev.dur if c.exec_ev else None,
            deps=[] if issuer is None else [issuer]))
    assert first is not None
    return first


def _step_end(items: list[StepItem], t: float) -> int:
    """A zero-length op at the end of the step that waits for what nothing else waited for."""
    items.append(StepItem(len(items), "compute", STEP_END, "step/end (waits for comm)",
                          "compute", "compute", t, 0.0, kernels=0))
    return len(items) - 1


def _comm_category(op: str, group: int, world: int) -> str:
    if op == "send_recv":
        return "pp"
    if op == "all_to_all":
        return "ep"
    return "dp" if group >= world else "tp"


def _match_exec(calls: list[_Call], others: list[TraceEvent]) -> None:
    """Pair each call with its execution span on a communication thread (gloo:all_reduce on
    pt_gloo_runloop), first come first served by op and, when both say, element count."""
    pool = sorted((e for e in others if collective_op(e) is not None), key=lambda e: e.ts)
    used: set[int] = set()
    for c in calls:
        want = {_numel(list(s)) for s in c.shapes}
        for k, e in enumerate(pool):
            if k in used or collective_op(e) != c.op or e.ts < c.enqueue.ev.ts - 1.0:
                continue
            have = {_numel(s) for s in _shapes(e)}
            if want and have and not want & have:
                continue
            used.add(k)
            c.exec_ev = e
            break


def _cpu_consumers(tops: list[_Node], calls: list[_Call],
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
                  and shapes & {tuple(s) for s in _shapes(tops[j].ev)}), None) if shapes else None
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


def _cpu_gaps(items: list[StepItem], tops: list[_Node], item_of_top: list[int],
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


# --- GPU traces ----------------------------------------------------------------------------

def _gpu_items(evs: list[TraceEvent], data: dict[str, Any], step: TraceEvent | None,
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
    is_nccl = [bool(_NCCL_KERNEL.match(e.name)) for e in kern]
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
            group = _group_size(parts, world)
            items.append(StepItem(len(items), "collective", e.name, f"nccl/{op}", names[e.tid],
                                  _comm_category(op, group, world), e.ts, e.dur, kernels=1,
                                  op=op, size_bytes=size, group_size=group,
                                  recorded_exec_us=e.dur))
        else:
            items.append(StepItem(len(items), "compute", e.name, _short_kernel(e.name),
                                  names[e.tid], "compute", e.ts, e.dur))
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
        elif items[waiter].kind == "collective":
            prod = last_before(w.ts, lambda i: items[i].stream == "compute")
        else:
            prod = last_before(w.ts, lambda i: items[i].kind == "collective")
        if prod is not None and prod not in items[waiter].deps and prod < waiter:
            items[waiter].deps.append(prod)
            if items[prod].kind == "collective":
                items[prod].consumer_rule = "cudaStreamWaitEvent"
    for c in (i for i in items if i.kind == "collective"):
        if not any(items[d].kind == "compute" for d in c.deps):
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
    step_end: int | None = None
    for c in [i for i in items if i.kind == "collective" and not i.consumer_rule]:
        e = c.start_us + c.busy_us
        tol = max(GPU_WAKE_TOLERANCE_US, WAKE_TOLERANCE_FRACTION * c.busy_us)
        cons = next((i for i in compute if i.index > c.index
                     and i.start_us - prev_end[i.index] >= GPU_MIN_WAIT_US
                     and prev_end[i.index] <= e + tol and abs(i.start_us - e) <= tol), None)
        if cons is None:
            if step_end is None:
                step_end = _step_end(items, end)
            cons = items[step_end]
        cons.deps.append(c.index)
        c.consumer_rule = "idle gap" if cons.index != step_end else "step end"


def _gpu_gaps(items: list[StepItem]) -> None:
    """Per stream: a gap before a kernel is waiting up to the end of what it depends on,
    host (launch) time after that."""
    last_end: dict[str, float] = {}
    for it in items:
        g0 = last_end.get(it.stream, it.start_us)
        last_end[it.stream] = max(g0, it.start_us + it.busy_us)
        if it.kind == "collective" or it.name == STEP_END:
            continue
        gap = max(0.0, it.start_us - g0)
        dep_end = max((items[d].start_us + items[d].busy_us for d in it.deps), default=-math.inf)
        it.wait_us = min(gap, max(0.0, dep_end - g0))
        it.host_us = gap - it.wait_us


# --- the step and the program -------------------------------------------------------------

def parse_step(data: dict[str, Any], step: int | None = None, source: str = "trace") -> TraceStep:
    """One step of a loaded trace as items in program order (ProfilerStep#`step`, by default
    the last one; the whole trace when it has no ProfilerStep)."""
    check_kineto(data, source)
    evs = events_of(data)
    kind = "gpu" if any(e.cat == "kernel" for e in evs) else "cpu"
    st = _pick_step(evs, step, source)
    precision = _precision(evs, "fp32" if kind == "cpu" else "bf16")
    if kind == "cpu":
        items, w0, w1 = _cpu_items(evs, data, st, precision)
    else:
        items, w0, w1 = _gpu_items(evs, data, st, precision)
    name, device = _device(data, kind)
    return TraceStep(kind=kind, device_name=name, device=device, precision=precision,
                     world_size=world_size_of(data), step_name=st.name if st else "whole trace",
                     start_us=w0, end_us=w1, items=items, source=source)


def import_trace(path: Path, step: int | None = None) -> TraceStep:
    """Read a Kineto trace file and parse one step of it."""
    return parse_step(load_trace(path), step, str(path))


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
        if it.kind == "compute":
            if step.kind == "gpu":
                dur_us = it.busy_us * compute_scale + it.host_us
            else:
                dur_us = (it.busy_us + it.host_us) * compute_scale
            meta.update(duration_s=dur_us * 1e-6, provenance=prov, kernels=it.kernels,
                        recorded_busy_s=it.busy_us * 1e-6, host_s=it.host_us * 1e-6,
                        recorded_wait_s=it.wait_us * 1e-6)
            op = b.add(rp, kind="compute", stream=it.stream, category=it.category,
                       label=it.label, deps=deps, meta=meta)
        else:
            group = dp if it.group_size == dp_old else min(it.group_size, dp)
            if group < 2:  # one replica: nothing to exchange
                continue
            n_groups = max(1, dp // group) if group != dp else 1
            groups = tuple(tuple(range(k * group, (k + 1) * group)) for k in range(n_groups))
            meta.update(recorded_exec_s=(it.recorded_exec_us or 0.0) * 1e-6,
                        recorded_group_size=it.group_size, consumer_rule=it.consumer_rule)
            op = b.add(rp, kind="collective", stream=it.stream, category=it.category,
                       label=it.label, deps=deps, meta=meta,
                       collective=CollectiveCall(it.op or "all_reduce", groups, it.size_bytes))
        ids[it.index] = op.id
    return Program(ranks=[rp], folded=dp > 1,
                   meta={"source": step.source, "dp": dp, "trace_dp": dp_old,
                         "compute_scale": compute_scale, "kind": step.kind,
                         "recorded_step_s": step.recorded_step_s})

