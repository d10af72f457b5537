"""The ATC'23 fragmentation measure of a node against a target workload (Weng et al., section 3).

For a node n and a task m, the fragment F_n(m) is the node's unallocated GPU that m cannot use:
- m cannot run on n at all (too little CPU or memory, too few GPUs with room for its share, a
  GPU model it does not accept) or m asks for no GPU: every unallocated GPU of n is a fragment,
  F_n(m) = sum_g R_g;
- m can run on n: the GPUs whose free part is smaller than m's per-GPU share are fragments,
  F_n(m) = sum_g R_g * [R_g < min(D_m, 1)].
The node's fragmentation is the expectation over the target workload M (task types m with
popularity p_m): F_n(M) = sum_m p_m F_n(m); the cluster's is the sum over its nodes.

Rewritten so that it vectorizes over nodes: with U_n(r) = sum_g R_g [R_g >= r] (the GPU usable by
a share r) and C_n(r) = #{g : R_g >= r},
    F_n(M) = sum_g R_g - sum_r U_n(r) * W_n(r, C_n(r)),
where W_n(r, c) is the popularity of GPU task types with share r, at most c GPUs, CPU and memory
within the node's free CPU and memory, and a GPU model the node has. W is a lookup in a 2-D prefix
sum over the distinct CPU and memory demands of the workload (one table per GPU-model
constraint), so a node costs O(#shares) instead of O(#task types).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from dcsim.errors import InputError
from dcsim.fleet.packing.records import PodRequest


@dataclass(frozen=True)
class TargetWorkload:
    """The task-type distribution M that fragmentation is measured against (paper section 3.2)."""

    cpu_values: np.ndarray      # sorted distinct CPU demands (milli-cores)
    memory_values: np.ndarray   # sorted distinct memory demands (bytes)
    share_values: np.ndarray    # sorted distinct per-GPU shares of GPU tasks (milli-GPU)
    model_groups: tuple[frozenset[str], ...]  # GPU-model constraints; frozenset() = any model
    # table[s, i, j, r, c]: popularity of types in constraint group s with CPU rank < i, memory
    # rank < j, share share_values[r] and at most c GPUs.
    table: np.ndarray
    max_gpus: int

    @classmethod
    def from_pods(cls, pods: Sequence[PodRequest], max_gpus: int) -> TargetWorkload:
        """Each pod of the trace counts once: p_m = (pods of type m) / (all pods)."""
        if not pods:
            raise InputError("trace: no pods, so there is no target workload")
        counts = Counter(p.type_key for p in pods)
        cpu = np.unique([k[0] for k in counts])
        mem = np.unique([k[1] for k in counts])
        shares = np.unique([k[3] for k in counts if k[2] > 0 and k[3] > 0]).astype(np.int64)
        groups = tuple(sorted({k[4] for k in counts}, key=lambda s: sorted(s)))
        table = np.zeros((len(groups), len(cpu) + 1, len(mem) + 1, len(shares), max_gpus + 1))
        total = float(len(pods))
        for (c, m, k, r, models), n in counts.items():
            if k == 0 or r == 0 or k > max_gpus:
                continue  # uses no GPU, or needs more GPUs than any node has: all fragment
            table[groups.index(models), np.searchsorted(cpu, c) + 1, np.searchsorted(mem, m) + 1,
                  np.searchsorted(shares, r), k] += n / total
        table = table.cumsum(axis=1).cumsum(axis=2).cumsum(axis=4)
        return cls(cpu, mem, shares, groups, table, max_gpus)

    def group_mask(self, node_models: np.ndarray) -> np.ndarray:
        """[node, group]: does the node's GPU model satisfy each constraint group?"""
        return np.array([[not g or m in g for g in self.model_groups] for m in node_models],
                        dtype=bool).reshape(len(node_models), len(self.model_groups))

    def weights(self, cpu_free: np.ndarray, memory_free: np.ndarray, group_ok: np.ndarray,
                count: np.ndarray) -> np.ndarray:
        """W_n(r, C) for nodes with this free CPU and memory (group_ok: [node, group]) at their
        own GPU counts per share, count: [node, ..., r] -> [node, ..., r]."""
        shape = (-1,) + (1,) * (count.ndim - 1)
        i = np.searchsorted(self.cpu_values, cpu_free, side="right").reshape(shape)
        j = np.searchsorted(self.memory_values, memory_free, side="right").reshape(shape)
        r = np.arange(len(self.share_values))
        c = np.minimum(count, self.max_gpus)
        if len(self.model_groups) == 1 and not self.model_groups[0]:
            return self.table[0][i, j, r, c]
        return sum((group_ok[:, g].reshape(shape) * self.table[g][i, j, r, c]
                    for g in range(len(self.model_groups))), np.zeros(c.shape))

    def usable(self, gpu_free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """U[..., r] (free GPU usable by share r) and C[..., r] (GPUs with room for r)."""
        fits = gpu_free[..., None, :] >= self.share_values[:, None]
        return (gpu_free[..., None, :] * fits).sum(-1), fits.sum(-1)

    @staticmethod
    def fragmentation(free_total: np.ndarray, usable: np.ndarray,
                      weights: np.ndarray) -> np.ndarray:
        """F_n(M) in milli-GPU from a node's free total, U and W (see the module docstring)."""
        return free_total - (usable * weights).sum(-1)
