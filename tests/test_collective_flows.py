"""FlowBackend against the analytical model on symmetric cases (within 5%)."""

from __future__ import annotations

import pytest
import simpy

from dcsim.collectives import CollectiveCall
from dcsim.collectives.graphs import double_binary_tree
from dcsim.network.analytical import analytical_time, select_plan
from dcsim.network.flow_backend import FlowBackend
from topologies import build_cluster


def _flow_time(cluster, call, routing="auto"):
    env = simpy.Environment()
    fb = FlowBackend(env, cluster, routing=routing)
    env.run(fb.run(call))
    return env.now


def _dp(nodes, per=8):
    return tuple(tuple(s * 8 + j for s in range(nodes)) for j in range(per))


CASES = [
    ("dgx-h100", 1, None, CollectiveCall("all_reduce", (tuple(range(8)),), 2 ** 30)),
    ("dgx-h100", 1, None, CollectiveCall("all_reduce", (tuple(range(8)),), 2 ** 24, "ring")),
    ("dgx-h100", 2, None, CollectiveCall("all_reduce", ((0, 1, 2, 3), (8, 9, 10, 11)), 2 ** 26)),
    ("dgx-h100", 1, None, CollectiveCall("all_gather", (tuple(range(8)),), 2 ** 28)),
    ("dgx-h100", 1, None, CollectiveCall("reduce_scatter", (tuple(range(8)),), 2 ** 28, "ring")),
    ("dgx-a100", 4, None, CollectiveCall("all_reduce", (tuple(range(32)),), 2 ** 30)),
    ("dgx-a100", 4, None, CollectiveCall("all_reduce", (tuple(range(32)),), 2 ** 30, "tree")),
    ("dgx-a100", 4, None, CollectiveCall("all_reduce", (tuple(range(32)),), 2 ** 30, "hierarchical")),
    ("dgx-a100", 4, None, CollectiveCall("all_to_all", (tuple(range(32)),), 2 ** 28)),
    ("dgx-a100", 4, None, CollectiveCall("broadcast", (tuple(range(32)),), 2 ** 28)),
    ("dgx-a100", 4, None, CollectiveCall("send_recv", ((0, 8), (1, 9)), 2 ** 28)),
    ("dgx-h100", 4, None, CollectiveCall("all_reduce", tuple(tuple(range(s * 8, s * 8 + 8)) for s in range(4)), 2 ** 28)),
    ("dgx-h100", 16, {"radix": 16, "topology": "rail-optimized"}, CollectiveCall("all_reduce", _dp(16), 2 ** 30, "ring")),
]


@pytest.mark.parametrize("preset, nodes, fabric, call", CASES)
def test_flow_matches_analytical_on_symmetric_cases(preset, nodes, fabric, call):
    c = build_cluster(preset, nodes=nodes, fabric=fabric)
    a = analytical_time(c, call).time_s
    f = _flow_time(c, call)
    assert f == pytest.approx(a, rel=0.05)


def test_spray_routing_matches_analytical_on_a_fat_tree():
    c = build_cluster("dgx-h100", nodes=16, fabric={"radix": 16, "oversubscription": 3})
    call = CollectiveCall("all_reduce", _dp(16), 2 ** 30, "ring")
    assert _flow_time(c, call, "spray") == pytest.approx(analytical_time(c, call).time_s, rel=0.05)


def test_hashed_ecmp_is_never_faster_than_spread():
    c = build_cluster("dgx-h100", nodes=16, fabric={"radix": 16})
    call = CollectiveCall("all_reduce", _dp(16), 2 ** 30, "ring")
    assert _flow_time(c, call, "ecmp") >= _flow_time(c, call, "spray") * (1 - 1e-9)


def test_flow_run_is_deterministic():
    c = build_cluster("dgx-h100", nodes=16, fabric={"radix": 16})
    call = CollectiveCall("all_reduce", _dp(16), 2 ** 30, "ring")
    assert _flow_time(c, call) == _flow_time(c, call)


@pytest.mark.parametrize("m", [2, 3, 4, 7, 8, 16])
def test_double_binary_tree_is_two_trees(m):
    for parent in double_binary_tree(m):
        assert parent.count(-1) == 1
        for i in range(m):  # every node reaches the root
            seen, j = 0, i
            while parent[j] >= 0 and seen <= m:
                j, seen = parent[j], seen + 1
            assert parent[j] == -1


def test_a_ring_channel_moves_at_its_slowest_edge_and_frees_the_rest():
    """A pipelined ring is lockstep: with GPU 0's network link at a quarter, the whole channel
    runs at a quarter, so a flow beside it on an undegraded edge (8 -> 16) gets the other three
    quarters of the shared links, not a fair half."""
    from types import SimpleNamespace

    import numpy as np

    from dcsim.network.efficiency import IB_GOODPUT
    from dcsim.app.simulate import apply_degraded_links

    c = build_cluster("dgx-h100", nodes=3)
    apply_degraded_links(c, [SimpleNamespace(gpu=0, factor=0.25)])
    env = simpy.Environment()
    fb = FlowBackend(env, c)
    call = CollectiveCall("all_reduce", ((0, 8, 16),), 4e9, "ring")
    ring = fb.run(call)
    side = fb.network.transfer(np.array([8]), np.array([16]), 1e9)
    env.run(side)
    bw = 50e9 * IB_GOODPUT  # NDR 400 Gb/s per NIC
    lat = select_plan(c, call).choose(4e9)[0].latency_s  # the side flow runs alone until then
    assert env.now == pytest.approx(lat + (1e9 - lat * bw) / (0.75 * bw), rel=1e-9)
    env.run(ring)
    assert env.now == pytest.approx(lat + 4e9 * 4 / 3 / (0.25 * bw), rel=1e-9)


def test_more_flows_per_connection_spread_a_ring_over_ecmp_paths():
    """RoCE with hashed ECMP: one flow per GPU pair collides on the spine; 16 flows per pair
    (Llama 3's collective library with E-ECMP) come close to the even spread."""
    base = {"gpu": "h100-sxm", "gpus_per_node": 8, "nics_per_node": 8, "nic": "roce-400",
            "fabric": {"topology": "fat-tree", "radix": 16, "link": "roce-400"}}
    call = CollectiveCall("all_reduce", _dp(16), 2 ** 30, "ring")
    times = {}
    for q in (1, 16):
        c = build_cluster({**base, "fabric": {**base["fabric"], "flows_per_connection": q}},
                          nodes=16)
        times[q] = _flow_time(c, call, "ecmp")
    spread = _flow_time(build_cluster(base, nodes=16), call, "spray")
    assert times[1] > times[16] >= spread * (1 - 1e-9)
    assert times[16] - spread < 0.5 * (times[1] - spread)


def test_flows_per_connection_must_be_a_positive_integer():
    from topologies import TopologyError

    with pytest.raises(TopologyError, match="fabric.flows_per_connection: must be an integer >= 1"):
        build_cluster("roce-24k-clos", nodes=2, fabric={"flows_per_connection": 0})
