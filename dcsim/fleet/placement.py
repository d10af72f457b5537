"""Placement policies: which nodes (and GPUs) a job gets, in a registry of small classes.

A job of at most one node's GPUs lands on one node (whole GPUs, or a milli-GPU share of one GPU
for GPU-sharing pods); a larger job takes whole free nodes (gang: all or nothing).
- packed (topology-aware): one node with the fewest GPUs left over; whole nodes under the fewest
  leaf switches, then pods (greedy by free nodes per leaf, which minimizes the leaves for a count);
- best-fit: the node whose CPU, memory and GPUs left over are smallest (normalized sum); whole
  nodes from the leaves with the fewest free nodes first (fills fragments);
- spread: the node with the most GPUs free; whole nodes one per leaf in turn;
- random: uniformly among the nodes that fit (seeded).
The ATC'23 GPU-sharing policies (dot-product, gpu-packing, gpu-clustering, fgd) come from the
`dcsim fleet pack` experiment (dcsim/fleet/packing/) and register here from dcsim/fleet/sharing.py.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from dcsim.errors import InputError
from dcsim.fleet.model import FleetJob, PlacementInfo
from dcsim.fleet.pool import Allocation, NodePool


class Placement:
    """Base: find the candidate nodes, let the policy rank them."""

    name: ClassVar[str] = ""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def bind(self, pool: NodePool, jobs: list[FleetJob]) -> None:
        """Set up before the run (policies that keep state of their own)."""

    def place(self, pool: NodePool, job: FleetJob) -> Allocation | None:
        """Nodes (and GPUs) for a job now, or None; nothing is taken."""
        lay = pool.layout
        ok = pool.schedulable & type_mask(pool, job)
        if job.gpus <= lay.max_gpus_per_node:
            ok &= (pool.cpu_free >= job.cpu_milli) & (pool.mem_free >= job.memory_mib)
            if job.gpus == 1 and job.gpu_milli < 1000:
                ok &= (pool.free_milli >= job.gpu_milli).any(axis=1)
            else:
                ok &= pool.whole_free >= job.gpus
            cand = np.flatnonzero(ok)
            if len(cand) == 0:
                return None
            node = int(self.pick_node(pool, job, cand))
            return _on_node(pool, job, node)
        gpn = lay.max_gpus_per_node
        k = math.ceil(job.gpus / gpn)
        ok &= (lay.gpus == gpn) & (pool.whole_free == gpn)
        ok &= (pool.cpu_free >= job.cpu_milli) & (pool.mem_free >= job.memory_mib)
        cand = np.flatnonzero(ok)
        if len(cand) < k:
            return None
        nodes = np.sort(self.pick_nodes(pool, cand, k))
        # node-major cells; the last node may hold fewer of the job's GPUs
        rows = np.repeat(nodes, gpn)[:job.gpus]
        cols = np.tile(np.arange(gpn), k)[:job.gpus]
        return Allocation(nodes, rows, cols, 1000, job.cpu_milli, job.memory_mib)

    def pick_node(self, pool: NodePool, job: FleetJob, cand: np.ndarray) -> int:
        raise NotImplementedError

    def pick_nodes(self, pool: NodePool, cand: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError


def type_mask(pool: NodePool, job: FleetJob) -> np.ndarray:
    """Nodes whose GPU type the job allows."""
    lay = pool.layout
    if not job.gpu_types:
        return np.ones(lay.n_nodes, dtype=bool)
    codes = [lay.type_names.index(t) for t in job.gpu_types if t in lay.type_names]
    return np.isin(lay.gpu_type, codes)


def _on_node(pool: NodePool, job: FleetJob, node: int) -> Allocation:
    row = pool.free_milli[node]
    if job.gpus == 1 and job.gpu_milli < 1000:
        fits = np.flatnonzero(row >= job.gpu_milli)
        gpu = fits[np.argmin(row[fits])]  # the fullest GPU that still fits: shares pack
        return Allocation(np.array([node]), np.array([node]), np.array([gpu]), job.gpu_milli,
                          job.cpu_milli, job.memory_mib)
    idx = np.flatnonzero(row == 1000)[:job.gpus]
    return Allocation(np.array([node]), np.full(len(idx), node), idx, 1000, job.cpu_milli,
                      job.memory_mib)


def _by_leaf(pool: NodePool, cand: np.ndarray) -> dict[int, np.ndarray]:
    leaf = pool.layout.leaf[cand]
    order = np.argsort(leaf, kind="stable")
    groups = np.split(cand[order], np.flatnonzero(np.diff(leaf[order])) + 1)
    return {int(pool.layout.leaf[g[0]]): g for g in groups}


class Packed(Placement):
    """Topology-aware packing."""
    name = "packed"

    def pick_node(self, pool: NodePool, job: FleetJob, cand: np.ndarray) -> int:
        left = pool.whole_free[cand] - job.gpus
        return int(cand[np.lexsort((cand, left))[0]])

    def pick_nodes(self, pool: NodePool, cand: np.ndarray, k: int) -> np.ndarray:
        lay = pool.layout
        leaf = lay.leaf[cand]
        counts = np.bincount(leaf, minlength=int(lay.leaf.max()) + 1)
        leaf_pod = np.zeros(len(counts), dtype=int)
        leaf_pod[lay.leaf] = lay.pod
        best: tuple[int, int, int] | None = None
        for pod in np.unique(lay.pod[cand]):
            c = np.sort(counts[leaf_pod == pod])[::-1]
            total = int(c.sum())
            if total >= k:
                key = (int(np.searchsorted(np.cumsum(c), k) + 1), total, int(pod))
                best = key if best is None or key < best else best
        allowed = leaf_pod == best[2] if best is not None else np.ones(len(counts), dtype=bool)
        order = np.lexsort((np.arange(len(counts)), -np.where(allowed, counts, -1)))
        rank = np.empty(len(counts), dtype=int)
        rank[order] = np.arange(len(counts))
        pick = cand[np.lexsort((cand, rank[leaf]))]
        return pick[:k]


class BestFit(Placement):
    """Least resources left over."""
    name = "best-fit"

    inv: tuple[np.ndarray, ...] | None = None

    def pick_node(self, pool: NodePool, job: FleetJob, cand: np.ndarray) -> int:
        if self.inv is None:  # 1 / capacity per node; 0 where a resource is not modelled
            lay = pool.layout
            self.inv = tuple(np.where(np.isfinite(x) & (x > 0), 1.0 / np.where(x > 0, x, 1), 0.0)
                             for x in (lay.gpus.astype(float), lay.cpu_milli, lay.memory_mib))
        assert self.inv is not None
        ig, ic, im = self.inv
        cpu = np.where(ic[cand] > 0, pool.cpu_free[cand] - job.cpu_milli, 0.0)
        mem = np.where(im[cand] > 0, pool.mem_free[cand] - job.memory_mib, 0.0)
        score = (pool.whole_free[cand] - job.gpus) * ig[cand] + cpu * ic[cand] + mem * im[cand]
        return int(cand[np.lexsort((cand, score))[0]])

    def pick_nodes(self, pool: NodePool, cand: np.ndarray, k: int) -> np.ndarray:
        groups = sorted(_by_leaf(pool, cand).values(), key=lambda g: (len(g), int(g[0])))
        return np.concatenate(groups)[:k]


class Spread(Placement):
    """Across leaves."""
    name = "spread"

    def pick_node(self, pool: NodePool, job: FleetJob, cand: np.ndarray) -> int:
        return int(cand[np.lexsort((cand, -pool.whole_free[cand]))[0]])

    def pick_nodes(self, pool: NodePool, cand: np.ndarray, k: int) -> np.ndarray:
        groups = list(_by_leaf(pool, cand).values())
        depth = max(len(g) for g in groups)
        order = [g[d] for d in range(depth) for g in groups if d < len(g)]
        return np.array(order[:k])


class Random(Placement):
    """Uniform among the fits (seeded)."""
    name = "random"

    def pick_node(self, pool: NodePool, job: FleetJob, cand: np.ndarray) -> int:
        return int(self.rng.choice(cand))

    def pick_nodes(self, pool: NodePool, cand: np.ndarray, k: int) -> np.ndarray:
        return self.rng.choice(cand, size=k, replace=False)


PLACEMENTS: dict[str, type[Placement]] = {p.name: p for p in (Packed, BestFit, Spread, Random)}


def get_placement(name: str, rng: np.random.Generator) -> Placement:
    """A placement policy by name; ValueError naming the field and choices."""
    import dcsim.fleet.sharing  # noqa: F401  (registers the GPU-sharing policies)

    if name not in PLACEMENTS:
        raise InputError(f"fleet.scheduler.placement: unknown policy {name!r}; "
                         f"allowed: {', '.join(PLACEMENTS)}")
    return PLACEMENTS[name](rng)


def placement_info(pool: NodePool, a: Allocation) -> PlacementInfo:
    """Nodes, leaf groups and pods a job spans, and the fewest leaves it could have spanned."""
    lay = pool.layout
    leaves = len(np.unique(lay.leaf[a.nodes]))
    pods = len(np.unique(lay.pod[a.nodes]))
    per_leaf = lay.nodes_per_leaf()
    return PlacementInfo(nodes=len(a.nodes), leaves=leaves, pods=pods,
                         min_leaves=math.ceil(len(a.nodes) / max(per_leaf, 1)))
