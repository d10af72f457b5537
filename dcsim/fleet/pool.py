"""The free resources of every node (GPUs whole and in milli-GPU shares, CPU, memory), which
nodes are up, and which are held back as spares. Allocation and release keep the books exact:
a test checks nothing is ever given twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dcsim.errors import InputError
from dcsim.fleet.model import FleetLayout


@dataclass
class Allocation:
    """What one job holds: the (node, GPU) cells and the milli-GPU taken on each."""

    nodes: np.ndarray                 # node ids (distinct)
    rows: np.ndarray                  # node of each GPU held
    cols: np.ndarray                  # GPU index inside its node
    milli: int                        # milli-GPU taken on each of those GPUs (1000 = whole)
    cpu_milli: float                  # per node
    memory_mib: float                 # per node
    tags: list[Any] = field(default_factory=list)  # what a listener recorded when it was taken

    @property
    def gpu_amount(self) -> float:
        """GPUs held (milli shares as fractions)."""
        return len(self.rows) * self.milli / 1000.0

    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        """(node, GPU) index pairs of every GPU held."""
        return self.rows, self.cols


class PoolListener(Protocol):
    """Keeps its own state in step with the pool (GPU-sharing placement's packing state)."""

    def on_take(self, a: Allocation) -> None: ...

    def on_give_back(self, a: Allocation) -> None: ...


class NodePool:
    """Free resources per node; `up` false while a node is being repaired."""

    def __init__(self, layout: FleetLayout, spare_nodes: int = 0):
        n, g = layout.n_nodes, max(layout.max_gpus_per_node, 1)
        self.layout = layout
        exists = np.arange(g)[None, :] < layout.gpus[:, None]
        self.free_milli = np.where(exists, 1000, -1).astype(np.int64)  # -1: no such GPU
        self.whole_free = layout.gpus.astype(np.int64).copy()
        self.cpu_free = layout.cpu_milli.astype(float).copy()
        self.mem_free = layout.memory_mib.astype(float).copy()
        self.up = np.ones(n, dtype=bool)
        self.spare = np.zeros(n, dtype=bool)
        if spare_nodes:
            if spare_nodes >= n:
                raise InputError(f"fleet.failures.spare_nodes: {spare_nodes} leaves no node of "
                                 f"the cluster's {n} to schedule on")
            self.spare[n - spare_nodes:] = True  # the last nodes are the hot spares
        self.spare_target = spare_nodes
        self.allocated_gpus = 0.0            # GPUs held by jobs (milli shares as fractions)
        self.version = 0                     # bumped on every change (caches key on it)
        self._down: tuple[int, float, int] | None = None
        self.listeners: list[PoolListener] = []

    # --- what the scheduler may use --------------------------------------------------------
    @property
    def schedulable(self) -> np.ndarray:
        """Nodes the scheduler may use: up and not held back as spares."""
        return self.up & ~self.spare

    def schedulable_gpus(self) -> int:
        """GPUs on schedulable nodes."""
        return int(self.layout.gpus[self.schedulable].sum())

    def free_whole_gpus(self) -> int:
        """Whole free GPUs on schedulable nodes."""
        return int(self.whole_free[self.schedulable].sum())

    def down_gpus(self) -> int:
        """GPUs on nodes being repaired."""
        return int(self.layout.gpus[~self.up].sum())

    def down_books(self) -> tuple[float, int]:
        """(GPUs on down nodes not held by a job, GPUs on nodes that are up), cached."""
        if self._down is None or self._down[0] != self.version:
            if self.up.all():
                self._down = (self.version, 0.0, self.layout.n_gpus)
                return 0.0, self.layout.n_gpus
            free = float(self.free_milli[~self.up].clip(min=0).sum()) / 1000.0
            self._down = (self.version, free, self.layout.n_gpus - self.down_gpus())
        return self._down[1], self._down[2]

    # --- books -------------------------------------------------------------------------------
    def take(self, a: Allocation) -> None:
        """Allocate; raises on anything already taken (a bug, never input)."""
        rows, cols = a.cells()
        cells = self.free_milli[rows, cols]
        if (cells < a.milli).any() or not self.up[a.nodes].all():
            raise AssertionError(f"nodes {a.nodes[:4]}...: GPUs are not free")  # a bug, not input
        whole = cells == 1000
        self.free_milli[rows, cols] = cells - a.milli
        np.subtract.at(self.whole_free, rows[whole], 1)
        self.cpu_free[a.nodes] -= a.cpu_milli
        self.mem_free[a.nodes] -= a.memory_mib
        self.allocated_gpus += a.gpu_amount
        self.version += 1
        for listener in self.listeners:
            listener.on_take(a)

    def give_back(self, a: Allocation) -> None:
        """Release; raises on anything released twice."""
        rows, cols = a.cells()
        cells = self.free_milli[rows, cols] + a.milli
        if (cells > 1000).any():
            raise AssertionError(f"nodes {a.nodes[:4]}...: GPUs released twice")
        self.free_milli[rows, cols] = cells
        np.add.at(self.whole_free, rows[cells == 1000], 1)
        self.cpu_free[a.nodes] += a.cpu_milli
        self.mem_free[a.nodes] += a.memory_mib
        self.allocated_gpus -= a.gpu_amount
        self.version += 1
        for listener in self.listeners:
            listener.on_give_back(a)

    def fail(self, node: int) -> None:
        """Take a node out of service; a spare (if any) joins the schedulable pool for it."""
        if not self.up[node]:
            return
        self.version += 1
        self.up[node] = False
        if self.spare[node]:
            self.spare[node] = False
            return
        spares = np.flatnonzero(self.spare & self.up)
        if len(spares):
            self.spare[spares[0]] = False

    def repair(self, node: int) -> None:
        """Back in service; it refills the spare pool if that is short."""
        self.up[node] = True
        self.version += 1
        if int((self.spare & self.up).sum()) < self.spare_target and self.whole_free[node] == \
                self.layout.gpus[node]:
            self.spare[node] = True
