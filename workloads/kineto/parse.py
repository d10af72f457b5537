"""Kineto traces, read: the file into complete events, their names as collectives and waits,
message sizes and group sizes, the device and precision, the step window, and the nesting of
one thread's events. No decision about what an event means for the step is taken here (that
is workloads.kineto.classify)."""

from __future__ import annotations

import gzip
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from dcsim.vocabulary import ELEMENT_BYTES
from dcsim.errors import InputError

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
NCCL_KERNEL = re.compile(r"^nccl(?:Dev)?Kernel_([A-Za-z]+)")
STEP_ANNOTATION = "ProfilerStep#"


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
        raw = e.get("args")
        args: dict[str, Any] = raw if isinstance(raw, dict) else {}
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
    m = NCCL_KERNEL.match(ev.name)
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


def numel(shape: list[int]) -> int:
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
            best = max(best, sum(numel(s) for s in entry))
    return float(best * elem)


def tensor_shapes(ev: TraceEvent) -> list[list[int]]:
    """Non-scalar tensor shapes an event's inputs have."""
    return [s for entry in _tensor_entries(ev.args.get("Input Dims")) for s in entry if s]


def group_size_of(evs: Iterable[TraceEvent], default: int) -> int:
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


def precision_of(evs: list[TraceEvent], default: str) -> str:
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


def device_of(data: dict[str, Any], kind: str) -> tuple[str, str | None]:
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


def pick_step(evs: list[TraceEvent], step: int | None, where: str) -> TraceEvent | None:
    steps = _steps(evs)
    if step is None:
        return steps[-1] if steps else None
    for s in steps:
        if s.name == f"{STEP_ANNOTATION}{step}":
            return s
    have = ", ".join(s.name[len(STEP_ANNOTATION):] for s in steps) or "none"
    raise KinetoError(f"{where}: no {STEP_ANNOTATION}{step} in the trace (steps: {have})")


@dataclass(slots=True)
class Node:
    ev: TraceEvent
    parent: "Node | None"
    children: list["Node"] = field(default_factory=list)

    def ancestors(self) -> Iterable["Node"]:
        p = self.parent
        while p is not None:
            yield p
            p = p.parent

    def descendants(self) -> Iterable["Node"]:
        for c in self.children:
            yield c
            yield from c.descendants()


def forest(evs: list[TraceEvent]) -> list[Node]:
    """Nest one thread's events by time (a child lies inside its parent, rounding allowed)."""
    roots: list[Node] = []
    stack: list[Node] = []
    for e in sorted(evs, key=lambda e: (e.ts, -e.dur)):
        while stack and e.ts >= stack[-1].ev.end - 1e-3:
            stack.pop()
        while stack and e.end > stack[-1].ev.end + 1e-3:
            stack.pop()  # overlaps without nesting: treat as a sibling of the parent
        node = Node(e, stack[-1] if stack else None)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)
    return roots

