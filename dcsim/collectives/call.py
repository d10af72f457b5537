"""The collective call the program issues and the time the back ends answer with."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dcsim.collectives.registry import ALGORITHM_NAMES, allowed_algorithms
from dcsim.vocabulary import COLLECTIVE_OPS

OPS = COLLECTIVE_OPS
ALGORITHMS = ("auto",) + ALGORITHM_NAMES


@dataclass(frozen=True)
class CollectiveCall:
    """One collective over one or more concurrent groups of global GPU ranks.

    size_bytes is the per-rank buffer as nccl-tests defines it (all_reduce: the buffer;
    all_gather: the output; reduce_scatter: the input; all_to_all: the per-rank total;
    broadcast: the buffer; send_recv: the message, sent along each group's consecutive ranks).
    """

    op: str
    groups: tuple[tuple[int, ...], ...]
    size_bytes: float
    algorithm: str = "auto"

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}, got {self.op!r}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        allowed = allowed_algorithms(self.op)
        if self.algorithm != "auto" and self.algorithm not in allowed:
            raise ValueError(f"algorithm {self.algorithm!r} does not apply to {self.op}; "
                             f"allowed: auto, {', '.join(allowed)}")
        if not (isinstance(self.size_bytes, (int, float)) and math.isfinite(self.size_bytes)
                and self.size_bytes >= 0):
            raise ValueError(f"size_bytes must be a finite number >= 0, got {self.size_bytes!r}")
        if not self.groups or not all(len(g) >= 1 for g in self.groups):
            raise ValueError("groups must be a non-empty tuple of non-empty rank tuples")
        for g in self.groups:
            if len(set(g)) != len(g):
                raise ValueError(f"a group repeats a rank: {g}")


@dataclass(frozen=True)
class CollectiveTime:
    """The predicted time of a call, its bandwidths (nccl-tests definitions) and what limited it."""

    time_s: float
    algorithm: str
    algbw_bytes_per_s: float
    busbw_bytes_per_s: float
    bottleneck: str  # the tier of the slowest link ('nvlink', 'nic-leaf', 'leaf-spine', ...) or 'latency'
    protocol: str = "Simple"


def bus_factor(op: str, n: int) -> float:
    """busbw / algbw as nccl-tests defines it (nccl-tests doc/PERFORMANCE.md)."""
    if n <= 1:
        return 0.0
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    return 1.0
