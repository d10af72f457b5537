"""The workload IR: per-rank ops (compute, collective, point-to-point, storage I/O) and deps.

A `Program` is what `workloads/` produces and `engine.py` replays. Ops are plain records:
the engine decides *when* they run (streams + dependencies), the cost model and the network
decide *how long*. Op ids are global across ranks, so a dependency may cross ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dcsim.collectives import CollectiveCall

# Where time goes in the result breakdown. Compute ops say 'compute' or 'optimizer';
# communication ops name their parallel dimension.
CATEGORIES = ("compute", "optimizer", "tp", "pp", "dp", "cp", "ep", "io")
STREAMS = ("compute", "comm", "p2p", "io")


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

    kind: 'compute' (kernels run back to back, `repeat` times) or 'collective' (a
    CollectiveCall, `repeat` times in sequence; point-to-point is op 'send_recv').
    stream: the rank's stream it occupies; ops of one stream run in program order.
    category: which breakdown bucket its time (or the wait for it) belongs to.
    """

    id: int
    kind: str
    stream: str
    category: str
    label: str
    deps: tuple[int, ...] = ()
    kernels: tuple[Kernel, ...] = ()
    collective: CollectiveCall | None = None
    repeat: int = 1
    meta: dict[str, Any] = field(default_factory=dict)


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
