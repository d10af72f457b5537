"""The workload IR: per-rank ops (compute, collective, point-to-point, storage I/O) and deps.

A `Program` is what `workloads/` produces and `engine.py` replays. Ops are plain records:
the engine decides *when* they run (streams + dependencies), the cost model and the network
decide *how long*. Op ids are global across ranks, so a dependency may cross ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dcsim.collectives import CollectiveCall


# The kinds below are StrEnums (str and Enum): they compare equal to, hash like, print and
# serialize as their values, so 'dp' in a JSON file or a dict key and Category.DP are one thing.
class OpKind(StrEnum):
    """What an op does: run kernels, or take part in a collective (point-to-point included)."""

    COMPUTE = "compute"
    COLLECTIVE = "collective"


class Stream(StrEnum):
    """The kind of stream an op occupies on its rank; ops of one stream run in program order."""

    COMPUTE = "compute"
    COMM = "comm"
    P2P = "p2p"
    IO = "io"
    SIDE = "stream"  # a further compute stream of a recorded GPU trace (named by its lane)


class Category(StrEnum):
    """Where time goes in the result breakdown. Compute ops say compute or optimizer;
    communication ops name their parallel dimension; the pipeline bubble is charged by the
    attribution walk (dcsim.attribution), never by an op."""

    COMPUTE = "compute"
    OPTIMIZER = "optimizer"
    TP = "tp"
    PP = "pp"
    DP = "dp"
    CP = "cp"
    EP = "ep"
    IO = "io"
    PIPELINE_BUBBLE = "pipeline_bubble"


# Member by value: builders of millions of ops look kinds up here (Enum's own call, Stream(x),
# costs about 1 us; a dict lookup 30 ns).
STREAM_OF: dict[str, Stream] = {s.value: s for s in Stream}
CATEGORY_OF: dict[str, Category] = {c.value: c for c in Category}
CATEGORIES = tuple(c.value for c in Category if c is not Category.PIPELINE_BUBBLE)
STREAMS = tuple(s.value for s in Stream if s is not Stream.SIDE)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A duration measured in a trace (replay): the engine runs it as is, without pricing."""

    duration_s: float  # of one execution (the op runs `repeat` times)
    provenance: str = "measured"  # of duration_s: measured, or spec when scaled to a device
    kernels: int = 0  # kernels the recorded span launched (for the timeline)


@dataclass(frozen=True, slots=True)
class Rendezvous:
    """A collective that several simulated ranks share: it starts when all have arrived."""

    key: tuple[Any, ...]  # the same on every participant's op, unique in the simulation
    participants: int  # simulated ranks that reach it


@dataclass(frozen=True, slots=True)
class Kernel:
    """One GPU kernel class instance: what the cost model prices.

    op_class: gemm | attention | norm | elementwise | softmax | embedding | cross_entropy |
    optimizer. flops and bytes_moved are for one execution; `shape` keeps the dims that made
    them (for calibrated lookups and traces).
    """

    op_class: str
    flops: float
    bytes_moved: float
    precision: str
    name: str = ""
    shape: tuple[tuple[str, int], ...] = ()


@dataclass(slots=True)
class Op:
    """One step of one rank's program.

    kind: compute (kernels run back to back, `repeat` times) or collective (a
    CollectiveCall, `repeat` times in sequence; point-to-point is op 'send_recv').
    stream (and lane, when a rank has several streams of one kind): the rank's stream it
    occupies; ops of one stream run in program order.
    category: which breakdown bucket its time (or the wait for it) belongs to.
    recorded: a measured duration that replaces pricing (trace replay).
    rendezvous: set when several simulated ranks share the collective.
    meta: free-form notes for people and exports (source, recorded figures); the engine
    never reads it.
    """

    id: int
    kind: OpKind
    stream: Stream
    category: Category
    label: str
    deps: tuple[int, ...] = ()
    kernels: tuple[Kernel, ...] = ()
    collective: CollectiveCall | None = None
    repeat: int = 1
    recorded: Recorded | None = None
    rendezvous: Rendezvous | None = None
    lane: str = ""
    meta: dict[str, Any] | None = None

    @property
    def stream_name(self) -> str:
        """The stream as people read it: 'compute', 'comm', or 'comm:7' for a second one."""
        return f"{self.stream.value}:{self.lane}" if self.lane else self.stream


@dataclass(slots=True)
class RankProgram:
    """The ops of one simulated rank; `multiplicity` ranks behave exactly like it (folding)."""

    rank: int
    multiplicity: int
    ops: list[Op] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Program:
    """All simulated ranks of one training iteration."""

    ranks: list[RankProgram]
    folded: bool
    meta: dict[str, Any] = field(default_factory=dict)

    def op_count(self) -> int:
        return sum(len(r.ops) for r in self.ranks)


class ProgramBuilder:
    """Hands out global op ids and appends ops to rank programs."""

    def __init__(self, first_id: int = 0) -> None:
        self._next = first_id

    @property
    def next_id(self) -> int:
        return self._next

    def add(self, rp: RankProgram, **kwargs: Any) -> Op:
        op = Op(id=self._next, **kwargs)
        self._next += 1
        rp.ops.append(op)
        return op
