"""The ATC'23 GPU-sharing placement policies (dot-product, GPU packing, GPU clustering, FGD;
dcsim.fleet.packing) as fleet placements, for pods that share GPUs arriving and leaving.

The packing state (free CPU, memory and milli-GPU per node, and each node's fragmentation
against the target workload: the fleet's own job list) is kept beside the node pool: it hears
every allocation and release. Jobs larger than a node take whole nodes as `packed` places them.
Nodes down or held as spares are not known to the packing state: a choice that lands on one
counts as no fit at this pass.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from dcsim.fleet.model import FleetJob
from dcsim.fleet.packing import ClusterState, NodeSpec, PodRequest, TargetWorkload, make_policy
from dcsim.fleet.placement import PLACEMENTS, Packed, Placement
from dcsim.fleet.pool import Allocation, NodePool

# CPU (milli-cores) and memory (bytes) of a node whose layout does not model them.
UNMODELLED = 2 ** 50
MIB = 2 ** 20


def _int(x: float, scale: float = 1.0) -> int:
    return int(x * scale) if np.isfinite(x) else UNMODELLED


class SharingPlacement(Placement):
    """One packing policy over the fleet's nodes."""

    policy_name: ClassVar[str] = ""

    def __init__(self, rng: np.random.Generator):
        super().__init__(rng)
        self.policy = make_policy(self.policy_name)
        self.cluster: ClusterState | None = None
        self.whole = Packed(rng)

    def bind(self, pool: NodePool, jobs: list[FleetJob]) -> None:
        """Build the packing state over the pool's nodes and the fleet's pods."""
        lay = pool.layout
        nodes = [NodeSpec(f"node{i}", _int(lay.cpu_milli[i]), _int(lay.memory_mib[i], MIB),
                          int(lay.gpus[i]), lay.type_names[int(lay.gpu_type[i])])
                 for i in range(lay.n_nodes)]
        pods = [self._pod(j, j.gpus, j.gpu_milli if j.gpus == 1 else 1000) for j in jobs
                if j.gpus <= lay.max_gpus_per_node]
        pool.listeners.append(self)
        if not pods:  # every job takes whole nodes: nothing for a packing policy to place
            return
        self.cluster = ClusterState(nodes, TargetWorkload.from_pods(
            pods, max(lay.max_gpus_per_node, 1)))

    @staticmethod
    def _pod(job: FleetJob, gpus: int, milli: int, cpu: float | None = None,
             mem: float | None = None) -> PodRequest:
        return PodRequest(job.name, int(job.cpu_milli if cpu is None else cpu),
                          int((job.memory_mib if mem is None else mem) * MIB), gpus,
                          milli if gpus else 0, frozenset(job.gpu_types))

    def place(self, pool: NodePool, job: FleetJob) -> Allocation | None:
        """The policy's node and GPUs for a pod (whole nodes for larger jobs)."""
        if job.gpus > pool.layout.max_gpus_per_node:
            return self.whole.place(pool, job)
        assert self.cluster is not None, "bind() the placement to the pool first"
        milli = job.gpu_milli if job.gpus == 1 else 1000
        choice = self.policy.choose(self.cluster, self._pod(job, job.gpus, milli), self.rng)
        if choice is None or not pool.schedulable[choice[0]]:
            return None
        node, gpus = choice
        return Allocation(np.array([node]), np.full(len(gpus), node), np.array(gpus, dtype=int),
                          milli, job.cpu_milli, job.memory_mib)

    def on_take(self, a: Allocation) -> None:
        """Mirror an allocation into the packing state."""
        if self.cluster is None:
            return
        a.tags = [self.cluster.place(
            PodRequest("job", int(a.cpu_milli), int(a.memory_mib * MIB), int((a.rows == n).sum()),
                       a.milli if (a.rows == n).any() else 0), int(n),
            [int(g) for g in a.cols[a.rows == n]]) for n in a.nodes]

    def on_give_back(self, a: Allocation) -> None:
        """Mirror a release into the packing state."""
        if self.cluster is None:
            return
        for pl in a.tags:
            self.cluster.release(pl)


def _sharing(name: str) -> type[SharingPlacement]:
    return type(f"Sharing_{name}", (SharingPlacement,), {"name": name, "policy_name": name})


for _n in ("dot-product", "gpu-packing", "gpu-clustering", "fgd"):
    PLACEMENTS[_n] = _sharing(_n)
