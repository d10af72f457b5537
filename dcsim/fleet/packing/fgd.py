"""Fragmentation Gradient Descent (Weng et al., ATC'23, section 4, Algorithm 1).

For every node that passes the filters, hypothetically place the pod and take the growth of the
node's fragmentation against the target workload, Delta_n = F_{n+m}(M) - F_n(M); place the pod
where the growth is smallest (the steepest descent of fragmentation). A GPU-sharing pod could go
on any GPU of a node with room for it, so each distinct GPU choice is a hypothesis of its own and
node and GPU are chosen together. All nodes and GPU choices are evaluated at once with numpy.
"""

from __future__ import annotations

import numpy as np

from dcsim.fleet.packing.cluster import ClusterState
from dcsim.fleet.packing.policies import PlacementPolicy
from dcsim.fleet.packing.records import GPU_MILLI, PodRequest, PolicyName

# Growths closer than this (milli-GPU) are ties: the sums behind them differ only by rounding.
_TIE_MILLI = 1e-6


class Hypotheses:
    """Each candidate node's state after the pod lands on each of its distinct GPU choices."""

    def __init__(self, cluster: ClusterState, pod: PodRequest, candidates: np.ndarray) -> None:
        w = cluster.workload
        self.slots = np.zeros((len(candidates), 1, pod.num_gpu), dtype=np.int64)
        self.valid = np.ones((len(candidates), 1), dtype=bool)
        free = cluster.gpu_free[candidates]
        self.free_total = (free.sum(1) - pod.gpu_request_milli)[:, None]
        if pod.num_gpu == 0:
            self.usable = cluster.usable[candidates][:, None, :]
            self.count = cluster.count[candidates][:, None, :]
        elif pod.num_gpu == 1 and pod.gpu_milli < GPU_MILLI:
            self._shared(cluster, pod, candidates, free)
        else:
            key = np.where(free >= pod.gpu_milli, free, np.iinfo(np.int64).max)
            chosen = np.argsort(key, axis=1, kind="stable")[:, :pod.num_gpu]
            after = free.copy()
            np.put_along_axis(after, chosen, np.take_along_axis(free, chosen, 1) - pod.gpu_milli,
                              axis=1)
            u, c = w.usable(after)
            self.usable, self.count = u[:, None, :], c[:, None, :]
            self.slots = chosen[:, None, :]

    def _shared(self, cluster: ClusterState, pod: PodRequest, candidates: np.ndarray,
                free: np.ndarray) -> None:
        """One hypothesis per distinct free amount among a node's GPUs with room for the share."""
        gpus = free.shape[1]
        earlier_same = (free[:, :, None] == free[:, None, :]) & np.tri(gpus, k=-1, dtype=bool)
        valid = (free >= pod.gpu_milli) & ~earlier_same.any(2)
        width = int(valid.sum(1).max())
        order = np.argsort(~valid, axis=1, kind="stable")[:, :width]
        self.valid = np.take_along_axis(valid, order, 1)
        self.slots = order[:, :, None]
        before = np.take_along_axis(free, order, 1)[..., None]
        after = before - pod.gpu_milli
        r = cluster.workload.share_values
        fit_before, fit_after = before >= r, after >= r
        self.usable = (cluster.usable[candidates][:, None, :] - before * fit_before
                       + after * fit_after)
        self.count = (cluster.count[candidates][:, None, :] - fit_before.astype(np.int64)
                      + fit_after)

    def fragmentation(self, cluster: ClusterState, pod: PodRequest,
                      candidates: np.ndarray) -> np.ndarray:
        """F_n(M) after each hypothesis, [candidate, GPU choice], in milli-GPU."""
        w = cluster.workload
        weights = w.weights(cluster.cpu_free[candidates] - pod.cpu_milli,
                            cluster.memory_free[candidates] - pod.memory_bytes,
                            cluster.group_ok[candidates])
        n, s, r = self.count.shape
        picked = weights[np.arange(n)[:, None, None], np.arange(r)[None, None, :],
                         np.minimum(self.count, w.max_gpus)]
        return self.free_total - (self.usable * picked).sum(-1)


class FragmentationGradientDescent(PlacementPolicy):
    """FGD: the node and GPU where the pod grows the cluster's fragmentation the least."""

    name = PolicyName.FGD

    def growth(self, cluster: ClusterState, pod: PodRequest,
               candidates: np.ndarray) -> tuple[np.ndarray, Hypotheses]:
        """Delta F [candidate, GPU choice] (inf where the choice does not exist)."""
        hyp = Hypotheses(cluster, pod, candidates)
        after = hyp.fragmentation(cluster, pod, candidates)
        delta = after - cluster.node_fragmentation[candidates][:, None]
        return np.where(hyp.valid, delta, np.inf), hyp

    def scores(self, cluster: ClusterState, pod: PodRequest,
               candidates: np.ndarray) -> np.ndarray:
        return self.growth(cluster, pod, candidates)[0].min(1)

    def choose(self, cluster: ClusterState, pod: PodRequest,
               rng: np.random.Generator) -> tuple[int, tuple[int, ...]] | None:
        candidates = np.flatnonzero(cluster.feasible(pod))
        if len(candidates) == 0:
            return None
        delta, hyp = self.growth(cluster, pod, candidates)
        ties = np.flatnonzero(delta.ravel() <= delta.min() + _TIE_MILLI)
        k = int(ties[rng.integers(len(ties))]) if len(ties) > 1 else int(ties[0])
        i, j = divmod(k, delta.shape[1])
        return int(candidates[i]), tuple(int(g) for g in hyp.slots[i, j])
