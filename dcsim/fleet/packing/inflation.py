"""The ATC'23 "workload inflation" experiment (Weng et al., section 6.1).

Pods are drawn from the trace with replacement (a seeded generator) until their GPU requests
reach 130% of the cluster's GPUs, then submitted in the trace's submission order and placed one
after another by the policy, with no departures; a pod that no node can take is skipped. After
each pod we know the arrived GPU request; for every whole percent x = 0..130 of the cluster's
GPUs the result holds the state once every pod whose running total of requests is <= x% has
been handled: the GPU allocation ratio (allocated milli-GPU over total), the fragmentation amount
F(M) in GPUs and the fragmentation ratio F(M) over the unallocated GPU (the paper's figure 7).
The target workload M is the whole trace, each pod counted once. Same seed, same result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from dcsim.errors import InputError
from dcsim.fleet.packing.cluster import ClusterState
from dcsim.fleet.packing.fragmentation import TargetWorkload
from dcsim.fleet.packing.records import GPU_MILLI, NodeSpec, PodRequest, PolicyName
from dcsim.fleet.packing.registry import make_policy

#: The paper inflates the arrived GPU request to 130% of the cluster's GPUs (section 6.1).
INFLATION = 1.3
MAX_ARRIVED_PCT = 130


@dataclass(frozen=True)
class PackResult:
    """Allocation and fragmentation per whole percent of arrived GPU request (keys "0".."130")."""

    policy: PolicyName
    seed: int
    nodes: int
    gpus: int
    pods_arrived: int
    pods_placed: int
    allocation_pct_by_arrived_pct: dict[str, float] = field(default_factory=dict)
    fragmentation_pct_by_arrived_pct: dict[str, float] = field(default_factory=dict)
    fragmentation_gpus_by_arrived_pct: dict[str, float] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, object]:
        """The `--json` object (numbers simulated by the ATC'23 workload-inflation protocol)."""
        return {"policy": self.policy.value, "seed": self.seed, "nodes": self.nodes,
                "gpus": self.gpus, "pods_arrived": self.pods_arrived,
                "pods_placed": self.pods_placed,
                "allocation_pct_by_arrived_pct": self.allocation_pct_by_arrived_pct,
                "fragmentation_pct_by_arrived_pct": self.fragmentation_pct_by_arrived_pct,
                "fragmentation_gpus_by_arrived_pct": self.fragmentation_gpus_by_arrived_pct,
                "source": "simulated: Weng et al. ATC'23 workload inflation (section 6.1)"}


def inflated_order(pods: Sequence[PodRequest], capacity_gpu_milli: int,
                   rng: np.random.Generator, factor: float = INFLATION) -> np.ndarray:
    """Indices of pods drawn with replacement until their GPU requests reach factor x capacity,
    in submission order (pods come sorted by submission; equal draws keep their draw order)."""
    request = np.array([p.gpu_request_milli for p in pods], dtype=np.int64)
    if request.sum() == 0:
        raise InputError("trace: no pod asks for a GPU, so the load can never reach "
                         f"{int(factor * 100)}% of the cluster's GPUs")
    target = factor * capacity_gpu_milli
    drawn: list[np.ndarray] = []
    total = 0
    batch = max(64, int(2 * target / max(request.mean(), 1.0)))
    while total < target:
        idx = rng.integers(len(pods), size=batch)
        cum = total + np.cumsum(request[idx])
        stop = int(np.searchsorted(cum, target, side="left"))
        drawn.append(idx[: stop + 1])
        total = int(cum[min(stop, batch - 1)])
    return np.sort(np.concatenate(drawn), kind="stable")


def run_pack(nodes: Sequence[NodeSpec], pods: Sequence[PodRequest], policy: str | PolicyName,
             seed: int, progress: Callable[[int, int], None] | None = None) -> PackResult:
    """Run the workload-inflation experiment for one policy and seed."""
    chooser = make_policy(policy)
    workload = TargetWorkload.from_pods(pods, max(n.gpu_count for n in nodes) if nodes else 0)
    cluster = ClusterState(nodes, workload)
    capacity = cluster.capacity_gpu_milli
    if capacity == 0:
        raise InputError("nodes: the node list has no GPUs")
    sample_rng, policy_rng = (np.random.default_rng(s)
                              for s in np.random.SeedSequence(seed).spawn(2))
    order = inflated_order(pods, capacity, sample_rng)
    arrived = np.cumsum([pods[i].gpu_request_milli for i in order])
    # pods handled before each whole percent's snapshot: those with running total <= x%
    marks = np.searchsorted(arrived, np.arange(MAX_ARRIVED_PCT + 1) * capacity / 100,
                            side="right")
    alloc, frag_pct, frag_gpus = {}, {}, {}
    placed, x = 0, 0
    for handled in range(len(order) + 1):
        while x <= MAX_ARRIVED_PCT and marks[x] == handled:
            free = capacity - cluster.allocated_gpu_milli
            frag = cluster.fragmentation_gpu_milli()
            alloc[str(x)] = round(100.0 * cluster.allocated_gpu_milli / capacity, 6)
            frag_gpus[str(x)] = round(frag / GPU_MILLI, 6)
            frag_pct[str(x)] = round(100.0 * frag / free, 6) if free else 0.0
            x += 1
        if handled == len(order) or x > MAX_ARRIVED_PCT:
            break
        placed += chooser.place(cluster, pods[order[handled]], policy_rng) is not None
        if progress is not None and handled % 256 == 0:
            progress(handled, len(order))
    return PackResult(PolicyName(policy), seed, len(nodes), capacity // GPU_MILLI,
                      int(marks[-1]), placed, alloc, frag_pct, frag_gpus)
