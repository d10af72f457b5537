"""The state of a GPU-sharing cluster as arrays over nodes: free CPU, memory and milli-GPU per GPU.

One object serves the fragmentation experiment (`dcsim fleet pack`) and the fleet scheduler:
`feasible` is the paper's filter stage (CPU, memory, GPU count/share, GPU model), `place` and
`release` keep every node's free resources and its fragmentation F_n(M) up to date, and never let
a resource go below zero.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dcsim.errors import InputError
from dcsim.fleet.packing.fragmentation import TargetWorkload
from dcsim.fleet.packing.records import GPU_MILLI, NodeSpec, Placement, PodRequest

#: gpu_share_tag value of a GPU whose residents ask for different shares.
MIXED = -1


class ClusterState:
    """Free resources of every node and GPU, their fragmentation, and who shares which GPU."""

    def __init__(self, nodes: Sequence[NodeSpec], workload: TargetWorkload) -> None:
        if not nodes:
            raise InputError("nodes: the node list is empty")
        gpus = max(n.gpu_count for n in nodes)
        if gpus > workload.max_gpus:
            raise InputError(f"nodes: a node has {gpus} GPUs, the workload table covers "
                             f"{workload.max_gpus}")
        self.nodes = tuple(nodes)
        self.workload = workload
        self.node_models = np.array([n.gpu_model for n in nodes])
        self._model_index = np.unique(self.node_models, return_inverse=True)[1]
        self.cpu_capacity = np.array([n.cpu_milli for n in nodes], dtype=np.int64)
        self.memory_capacity = np.array([n.memory_bytes for n in nodes], dtype=np.int64)
        self.gpu_count = np.array([n.gpu_count for n in nodes], dtype=np.int64)
        self.gpu_exists = np.arange(gpus)[None, :] < self.gpu_count[:, None]
        self.cpu_free = self.cpu_capacity.copy()
        self.memory_free = self.memory_capacity.copy()
        self.gpu_free = np.where(self.gpu_exists, GPU_MILLI, 0).astype(np.int64)
        # 0: idle GPU; r > 0: every resident asks for share r; MIXED: residents differ.
        self.gpu_share_tag = np.zeros_like(self.gpu_free)
        self._residents: list[list[list[int]]] = [[[] for _ in range(gpus)] for _ in nodes]
        self.pods_placed = np.zeros(len(nodes), dtype=np.int64)  # pods on each node now
        self.group_ok = workload.group_mask(self.node_models)
        self._model_masks: dict[frozenset[str], np.ndarray] = {}
        self.usable, self.count = workload.usable(self.gpu_free)
        # Nodes with equal state (GPU model, free CPU, memory and sorted free GPUs) share an id,
        # so a policy can score each distinct state once.
        self.state_id = np.zeros(len(nodes), dtype=np.int64)
        self._state_ids: dict[tuple[int, ...], int] = {}
        for n in range(len(nodes)):
            self._identify(n)
        self.node_fragmentation = workload.fragmentation(
            self.gpu_free.sum(1), self.usable,
            workload.weights(self.cpu_free, self.memory_free, self.group_ok, self.count))

    @property
    def capacity_gpu_milli(self) -> int:
        """All GPUs of the cluster, in milli-GPU."""
        return int(self.gpu_count.sum()) * GPU_MILLI

    @property
    def allocated_gpu_milli(self) -> int:
        """GPU held by placed pods, in milli-GPU."""
        return self.capacity_gpu_milli - int(self.gpu_free.sum())

    def fragmentation_gpu_milli(self) -> float:
        """The cluster's fragmentation F(M) = sum of the nodes' F_n(M), in milli-GPU."""
        return float(self.node_fragmentation.sum())

    def model_mask(self, models: frozenset[str]) -> np.ndarray:
        """Nodes whose GPU model a pod accepts (all nodes when it names none)."""
        if not models:
            return np.ones(len(self.nodes), dtype=bool)
        if models not in self._model_masks:
            self._model_masks[models] = np.isin(self.node_models, sorted(models))
        return self._model_masks[models]

    def feasible(self, pod: PodRequest) -> np.ndarray:
        """The filter stage: nodes with the CPU, memory, GPUs with room and GPU model pod needs."""
        ok = (self.cpu_free >= pod.cpu_milli) & (self.memory_free >= pod.memory_bytes)
        if pod.num_gpu > 0:
            ok &= (self.gpu_free >= pod.gpu_milli).sum(1) >= pod.num_gpu
            ok &= self.model_mask(pod.gpu_models)
        return ok

    def best_fit_gpus(self, pod: PodRequest, node: int) -> tuple[int, ...]:
        """The pod's GPUs on a node: those with the least free room that still fit its share."""
        if pod.num_gpu == 0:
            return ()
        free = self.gpu_free[node]
        key = np.where(free >= pod.gpu_milli, free, np.iinfo(np.int64).max)
        return tuple(int(g) for g in np.argsort(key, kind="stable")[:pod.num_gpu])

    def place(self, pod: PodRequest, node: int, gpus: Sequence[int]) -> Placement:
        """Give the pod its CPU, memory and GPU shares on a node; refuse any over-allocation."""
        gpus = tuple(int(g) for g in gpus)
        if len(gpus) != pod.num_gpu or len(set(gpus)) != len(gpus):
            raise ValueError(f"pod {pod.name}: needs {pod.num_gpu} distinct GPUs, got {gpus}")
        if (self.cpu_free[node] < pod.cpu_milli or self.memory_free[node] < pod.memory_bytes
                or any(not self.gpu_exists[node, g] or self.gpu_free[node, g] < pod.gpu_milli
                       for g in gpus)):
            raise ValueError(f"pod {pod.name}: does not fit on node {self.nodes[node].name}")
        if pod.num_gpu and not self.model_mask(pod.gpu_models)[node]:
            raise ValueError(f"pod {pod.name}: node {self.nodes[node].name} has GPU model "
                             f"{self.nodes[node].gpu_model}, not one of {sorted(pod.gpu_models)}")
        self._apply(pod, node, gpus, sign=-1)
        return Placement(node, gpus, pod)

    def release(self, placement: Placement) -> None:
        """Return a placed pod's resources (the fleet scheduler's departures)."""
        self._apply(placement.pod, placement.node_index, placement.gpu_indices, sign=+1)

    def _apply(self, pod: PodRequest, node: int, gpus: tuple[int, ...], sign: int) -> None:
        """Add (sign=+1) or take (sign=-1) a pod's resources on one node and refresh it."""
        self.cpu_free[node] += sign * pod.cpu_milli
        self.memory_free[node] += sign * pod.memory_bytes
        self.pods_placed[node] -= sign
        for g in gpus:
            self.gpu_free[node, g] += sign * pod.gpu_milli
            residents = self._residents[node][g]
            if sign < 0:
                residents.append(pod.gpu_milli)
            else:
                residents.remove(pod.gpu_milli)
            shares = set(residents)
            self.gpu_share_tag[node, g] = (0 if not shares else
                                           shares.pop() if len(shares) == 1 else MIXED)
        self._refresh(node)

    def _identify(self, node: int) -> None:
        """Give the node the id of its state (a new id for a state never seen before)."""
        key = (int(self._model_index[node]), int(self.cpu_free[node]),
               int(self.memory_free[node]),
               *sorted(int(f) for f in self.gpu_free[node, :self.gpu_count[node]]))
        self.state_id[node] = self._state_ids.setdefault(key, len(self._state_ids))

    def _refresh(self, node: int) -> None:
        """Recompute one node's U, C and fragmentation after its free resources changed."""
        self._identify(node)
        sl = slice(node, node + 1)
        u, c = self.workload.usable(self.gpu_free[sl])
        self.usable[sl], self.count[sl] = u, c
        w = self.workload.weights(self.cpu_free[sl], self.memory_free[sl], self.group_ok[sl], c)
        self.node_fragmentation[sl] = self.workload.fragmentation(self.gpu_free[sl].sum(1), u, w)
