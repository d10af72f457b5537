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
    """Each candidate node's state after the pod lands on each of its distinct GPU choices:
    slots [candidate, choice, GPU] and, per share r, U and C after [candidate, choice, r]."""

    def __init__(self, cluster: ClusterState, pod: PodRequest, candidates: np.ndarray) -> None:
        free = cluster.gpu_free[candidates]
        self.free_total = (free.sum(1) - pod.gpu_request_milli)[:, None]
        self.valid = np.ones((len(candidates), 1), dtype=bool)
        if pod.num_gpu == 1 and pod.gpu_milli < GPU_MILLI:
            self.slots = self._distinct_choices(free, pod.gpu_milli)
        else:  # whole GPUs (or none): every choice of the best-fit GPUs is the same
            key = np.where(free >= pod.gpu_milli, free, np.iinfo(np.int64).max)
            self.slots = np.argsort(key, axis=1, kind="stable")[:, None, :pod.num_gpu]
        n, s, k = self.slots.shape
        before = np.take_along_axis(free, self.slots.reshape(n, s * k), 1).reshape(n, s, k, 1)
        after = before - pod.gpu_milli
        r = cluster.workload.share_values
        fit_before, fit_after = before >= r, after >= r
        self.usable = (cluster.usable[candidates][:, None, :]
                       + (after * fit_after - before * fit_before).sum(2))
        self.count = (cluster.count[candidates][:, None, :]
                      + (fit_after.astype(np.int64) - fit_before).sum(2))

    def _distinct_choices(self, free: np.ndarray, share: int) -> np.ndarray:
        """[candidate, choice, 1]: one GPU per distinct free amount with room for the share."""
        gpus = free.shape[1]
        earlier_same = (free[:, :, None] == free[:, None, :]) & np.tri(gpus, k=-1, dtype=bool)
        valid = (free >= share) & ~earlier_same.any(2)
        width = int(valid.sum(1).max())
        order = np.argsort(~valid, axis=1, kind="stable")[:, :width]
        self.valid = np.take_along_axis(valid, order, 1)
        return order[:, :, None]

    def fragmentation(self, cluster: ClusterState, pod: PodRequest,
                      candidates: np.ndarray) -> np.ndarray:
        """F_n(M) after each hypothesis, [candidate, GPU choice], in milli-GPU."""
        w = cluster.workload
        weights = w.weights(cluster.cpu_free[candidates] - pod.cpu_milli,
                            cluster.memory_free[candidates] - pod.memory_bytes,
                            cluster.group_ok[candidates], self.count)
        return w.fragmentation(self.free_total, self.usable, weights)


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
        # score each distinct node state once; ties still range over every candidate node
        _, first, of_state = np.unique(cluster.state_id[candidates], return_index=True,
                                       return_inverse=True)
        delta, hyp = self.growth(cluster, pod, candidates[first])
        delta = delta[of_state]
        ties = np.flatnonzero(delta.ravel() <= delta.min() + _TIE_MILLI)
        k = int(ties[rng.integers(len(ties))]) if len(ties) > 1 else int(ties[0])
        i, j = divmod(k, delta.shape[1])
        node = int(candidates[i])
        if pod.num_gpu != 1 or pod.gpu_milli >= GPU_MILLI:
            return node, cluster.best_fit_gpus(pod, node)
        # the same free amount on this node as on the node whose state was scored
        amount = cluster.gpu_free[candidates[first][of_state[i]], hyp.slots[of_state[i], j, 0]]
        return node, (int(np.flatnonzero(cluster.gpu_free[node] == amount)[0]),)
