"""GPU-sharing placement (Weng et al., ATC'23): the fragmentation measure by hand, the six
policies on tiny clusters whose answer is known, the filters, and release."""

from __future__ import annotations

import numpy as np
import pytest

from dcsim.fleet.packing import (ClusterState, NodeSpec, PodRequest, TargetWorkload, make_policy,
                                 policy_names)

GIB = 1 << 30


def node(name: str, gpus: int = 4, cpu: int = 16000, mem_gib: int = 64,
         model: str = "G2") -> NodeSpec:
    return NodeSpec(name, cpu, mem_gib * GIB, gpus, model)


def pod(name: str, gpus: int = 1, milli: int = 1000, cpu: int = 1000, mem_gib: int = 1,
        models: frozenset[str] = frozenset()) -> PodRequest:
    return PodRequest(name, cpu, mem_gib * GIB, gpus, milli if gpus else 0, models)


def reference_fragmentation(cluster: ClusterState, n: int, pods: list[PodRequest]) -> float:
    """F_n(M) straight from the paper's definition, one task type at a time (milli-GPU)."""
    free = [int(f) for f, e in zip(cluster.gpu_free[n], cluster.gpu_exists[n], strict=True) if e]
    total = 0.0
    for m in pods:
        runs = (m.num_gpu > 0 and cluster.cpu_free[n] >= m.cpu_milli
                and cluster.memory_free[n] >= m.memory_bytes
                and (not m.gpu_models or cluster.nodes[n].gpu_model in m.gpu_models)
                and sum(f >= m.gpu_milli for f in free) >= m.num_gpu)
        total += (sum(f for f in free if f < m.gpu_milli) if runs else sum(free)) / len(pods)
    return total


def test_fragmentation_by_hand() -> None:
    """A node with GPUs free [1000, 500, 300, 0] against four equally popular task types."""
    workload_pods = [pod("cpu-only", gpus=0, cpu=1000),          # no GPU: all 1800 fragment
                     pod("share-400", milli=400, cpu=2000),        # runs; 300 + 0 fragment
                     pod("two-whole", gpus=2),                     # one idle GPU only: 1800
                     pod("share-200-big-cpu", milli=200, cpu=32000)]  # CPU too small: 1800
    cluster = ClusterState([node("n0")], TargetWorkload.from_pods(workload_pods, 4))
    for g, milli in ((1, 500), (2, 700), (3, 1000)):
        cluster.place(pod(f"p{g}", milli=milli), 0, (g,))
    assert list(cluster.gpu_free[0]) == [1000, 500, 300, 0]
    expected = (1800 + 300 + 1800 + 1800) / 4
    assert cluster.node_fragmentation[0] == pytest.approx(expected)
    assert reference_fragmentation(cluster, 0, workload_pods) == pytest.approx(expected)
    assert cluster.fragmentation_gpu_milli() == pytest.approx(expected)


def test_fragmentation_respects_gpu_model_constraints() -> None:
    """A task that accepts only T4 cannot use a G2 node: all its free GPU is fragment for it."""
    workload_pods = [pod("t4-only", milli=500, models=frozenset({"T4"})), pod("any", milli=500)]
    cluster = ClusterState([node("g2", gpus=2), node("t4", gpus=2, model="T4")],
                           TargetWorkload.from_pods(workload_pods, 2))
    assert list(cluster.node_fragmentation) == pytest.approx([1000.0, 0.0])


def two_gpu_clusters(workload_pods: list[PodRequest], nodes: list[NodeSpec]) -> ClusterState:
    return ClusterState(nodes, TargetWorkload.from_pods(workload_pods, max(n.gpu_count
                                                                            for n in nodes)))


def choose(name: str, cluster: ClusterState, p: PodRequest, seed: int = 0):
    return make_policy(name).choose(cluster, p, np.random.default_rng(seed))


def test_fgd_fills_the_half_used_gpu() -> None:
    """Half the workload wants whole GPUs: a half-GPU pod on the idle GPU would strand half of
    it, on the half-used GPU it strands nothing. FGD takes the half-used one every time."""
    workload_pods = [pod("whole"), pod("half", milli=500)]
    cluster = two_gpu_clusters(workload_pods, [node("used", gpus=1), node("idle", gpus=1)])
    cluster.place(pod("first", milli=500), 0, (0,))
    for seed in range(5):
        assert choose("fgd", cluster, pod("half", milli=500), seed) == (0, (0,))


def test_fgd_chooses_the_gpu_within_a_node() -> None:
    workload_pods = [pod("whole"), pod("half", milli=500)]
    cluster = two_gpu_clusters(workload_pods, [node("n", gpus=2)])
    cluster.place(pod("first", milli=500), 0, (1,))
    assert choose("fgd", cluster, pod("half", milli=500)) == (0, (1,))


def test_best_fit_takes_the_fullest_node() -> None:
    cluster = two_gpu_clusters([pod("w")], [node("a"), node("b"), node("c")])
    cluster.place(pod("x", gpus=2, cpu=4000), 1, (0, 1))
    assert choose("best-fit", cluster, pod("y"))[0] == 1


def test_dot_product_takes_the_smallest_alignment() -> None:
    """A CPU-heavy pod: the node with little CPU left aligns least with it."""
    cluster = two_gpu_clusters([pod("w")], [node("a"), node("b")])
    cluster.place(pod("cpu-hog", gpus=0, cpu=14000), 0, ())
    cluster.place(pod("gpu-hog", gpus=3), 1, (0, 1, 2))
    # a: cpu 2000, 4 GPUs free; b: cpu 15000, 1 GPU free. Demand weighs CPU most.
    assert choose("dot-product", cluster, pod("p", cpu=2000, milli=100))[0] == 0


def test_gpu_packing_tiers() -> None:
    """Shared GPU with room first, then an idle GPU on a used node, then an idle node."""
    cluster = two_gpu_clusters([pod("w")], [node("idle"), node("used"), node("shared")])
    cluster.place(pod("whole", gpus=1), 1, (0,))
    cluster.place(pod("part", milli=300), 2, (2,))
    assert choose("gpu-packing", cluster, pod("s", milli=500)) == (2, (2,))
    assert choose("gpu-packing", cluster, pod("w2", gpus=2))[0] in (1, 2)
    for seed in range(5):
        assert choose("gpu-packing", cluster, pod("w3", gpus=1), seed)[0] != 0


def test_gpu_clustering_keeps_equal_shares_together() -> None:
    cluster = two_gpu_clusters([pod("w")], [node("a", gpus=1), node("b", gpus=1),
                                            node("c", gpus=1)])
    cluster.place(pod("half", milli=500), 0, (0,))
    cluster.place(pod("quarter", milli=250), 1, (0,))
    assert choose("gpu-clustering", cluster, pod("half2", milli=500)) == (0, (0,))
    # a 300 share has no GPU of its kind: an idle GPU, not the 250 one
    assert choose("gpu-clustering", cluster, pod("odd", milli=300)) == (2, (0,))


def test_random_fit_is_seeded_and_uses_every_node() -> None:
    cluster = two_gpu_clusters([pod("w")], [node(f"n{i}") for i in range(4)])
    picks = [choose("random", cluster, pod("p"), seed)[0] for seed in range(40)]
    assert set(picks) == {0, 1, 2, 3}
    assert picks == [choose("random", cluster, pod("p"), seed)[0] for seed in range(40)]


@pytest.mark.parametrize("policy", policy_names())
def test_filters(policy: str) -> None:
    """CPU, memory, GPU count and share, GPU model: only a node meeting all of them is chosen."""
    nodes = [node("small-cpu", cpu=2000), node("small-mem", mem_gib=2),
             node("one-gpu", gpus=1), node("wrong-model", model="T4"), node("ok")]
    cluster = two_gpu_clusters([pod("w")], nodes)
    cluster.place(pod("third", milli=700), 4, (0,))
    want = pod("want", gpus=2, cpu=4000, mem_gib=8, models=frozenset({"G2"}))
    for seed in range(5):
        assert choose(policy, cluster, want, seed)[0] == 4
    assert choose(policy, cluster, pod("too-big", gpus=5)) is None


def test_place_refuses_over_allocation_and_release_restores() -> None:
    cluster = two_gpu_clusters([pod("w"), pod("h", milli=500)], [node("n", gpus=2)])
    before = cluster.node_fragmentation.copy()
    placed = make_policy("fgd").place(cluster, pod("a", milli=600), np.random.default_rng(0))
    assert placed is not None
    with pytest.raises(ValueError, match="does not fit"):
        cluster.place(pod("b", milli=500), 0, placed.gpu_indices)
    cluster.release(placed)
    assert cluster.allocated_gpu_milli == 0
    assert list(cluster.node_fragmentation) == pytest.approx(list(before))
    assert cluster.gpu_share_tag.sum() == 0
