"""Properties of GPU-sharing placement under any policy: nothing is ever over-allocated, every
resource is accounted for, the vectorized fragmentation equals the paper's definition term by
term, and releasing every pod gives the empty cluster back."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.fleet.packing import (ClusterState, NodeSpec, PodRequest, TargetWorkload, make_policy,
                                 policy_names)
from tests.test_fleet_pack import reference_fragmentation

GIB = 1 << 30
MODELS = ("A", "B")

nodes_st = st.lists(st.builds(
    lambda i, g, c, m, mo: NodeSpec(f"n{i}", c, m * GIB, g, mo),
    st.integers(0, 10**6), st.integers(1, 4), st.integers(1000, 16000), st.integers(1, 32),
    st.sampled_from(MODELS)), min_size=1, max_size=5)


@st.composite
def pod_st(draw: st.DrawFn) -> PodRequest:
    gpus = draw(st.integers(0, 3))
    milli = 1000 if gpus > 1 else draw(st.sampled_from((100, 250, 500, 700, 1000)))
    models = draw(st.sampled_from((frozenset(), frozenset({"A"}), frozenset({"A", "B"}))))
    return PodRequest("p", draw(st.integers(0, 8000)), draw(st.integers(0, 8)) * GIB, gpus,
                      milli if gpus else 0, models if gpus else frozenset())


@settings(max_examples=60, deadline=None)
@given(nodes=nodes_st, pods=st.lists(pod_st(), min_size=1, max_size=25),
       policy=st.sampled_from(policy_names()), seed=st.integers(0, 2**16))
def test_never_over_allocated(nodes: list[NodeSpec], pods: list[PodRequest], policy: str,
                              seed: int) -> None:
    cluster = ClusterState(nodes, TargetWorkload.from_pods(pods, 4))
    empty_fragmentation = cluster.node_fragmentation.copy()
    rng = np.random.default_rng(seed)
    chooser = make_policy(policy)
    placed = []
    for p in pods:
        feasible = cluster.feasible(p)
        got = chooser.place(cluster, p, rng)
        assert (got is None) == (not feasible.any())
        if got is not None:
            assert feasible[got.node_index]
            placed.append(got)
        assert (cluster.gpu_free >= 0).all() and (cluster.cpu_free >= 0).all()
        assert (cluster.memory_free >= 0).all()
        assert (cluster.gpu_free[~cluster.gpu_exists] == 0).all()
        assert cluster.allocated_gpu_milli == sum(q.pod.gpu_request_milli for q in placed)
        for n in range(len(nodes)):
            here = [q.pod for q in placed if q.node_index == n]
            assert cluster.cpu_free[n] == nodes[n].cpu_milli - sum(q.cpu_milli for q in here)
            assert cluster.memory_free[n] == nodes[n].memory_bytes - sum(q.memory_bytes
                                                                         for q in here)
            assert np.isclose(cluster.node_fragmentation[n],
                              reference_fragmentation(cluster, n, pods))
    for i in rng.permutation(len(placed)):
        cluster.release(placed[i])
    assert cluster.allocated_gpu_milli == 0
    assert np.allclose(cluster.node_fragmentation, empty_fragmentation)


@settings(max_examples=40, deadline=None)
@given(nodes=nodes_st, pods=st.lists(pod_st(), min_size=2, max_size=20), seed=st.integers(0, 99))
def test_fgd_growth_is_the_growth_of_a_real_placement(nodes: list[NodeSpec],
                                                      pods: list[PodRequest], seed: int) -> None:
    """Every hypothesis FGD scores equals placing the pod there, measuring, and releasing it."""
    from dcsim.fleet.packing.fgd import FragmentationGradientDescent

    cluster = ClusterState(nodes, TargetWorkload.from_pods(pods, 4))
    rng = np.random.default_rng(seed)
    fgd = FragmentationGradientDescent()
    for p in pods:
        candidates = np.flatnonzero(cluster.feasible(p))
        if len(candidates):
            delta, hyp = fgd.growth(cluster, p, candidates)
            for i, n in enumerate(candidates):
                for j in np.flatnonzero(hyp.valid[i]):
                    before = cluster.fragmentation_gpu_milli()
                    trial = cluster.place(p, int(n), tuple(hyp.slots[i, j]))
                    assert np.isclose(cluster.fragmentation_gpu_milli() - before, delta[i, j])
                    cluster.release(trial)
        fgd.place(cluster, p, rng)
