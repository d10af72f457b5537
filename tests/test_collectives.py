"""Analytical collectives: closed forms, nccl-tests bandwidth definitions, monotonicity, errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from dcsim import hardware
from dcsim.collectives import CollectiveCall, bus_factor
from dcsim.network.analytical import analytical_time
from dcsim.network.efficiency import IB_GOODPUT, NVLINK_GOODPUT
from topologies import build_cluster


@pytest.fixture(scope="module")
def a100x4():
    return build_cluster("dgx-a100", nodes=4)


@pytest.fixture(scope="module")
def h100x1():
    return build_cluster("dgx-h100", nodes=1)


def _slope(cluster, call_for, s1=2 ** 30, s2=2 ** 31):
    t1 = analytical_time(cluster, call_for(s1)).time_s
    t2 = analytical_time(cluster, call_for(s2)).time_s
    return (t2 - t1) / (s2 - s1)


def test_ring_closed_form_across_servers(a100x4):
    """One GPU per server: ring all-reduce = 2(n-1)/n * S / B_nic + latency."""
    group = (0, 8, 16, 24)
    n = len(group)
    b = hardware.link("ib-hdr-200").bw_bytes_per_s * IB_GOODPUT
    slope = _slope(a100x4, lambda s: CollectiveCall("all_reduce", (group,), s, "ring"))
    assert slope == pytest.approx(2 * (n - 1) / n / b, rel=1e-9)
    r = analytical_time(a100x4, CollectiveCall("all_reduce", (group,), 2 ** 30, "ring"))
    assert r.bottleneck == "nic-leaf" and r.protocol == "Simple"
    latency = r.time_s - 2 * (n - 1) / n * 2 ** 30 / b
    assert 0 < latency < 200e-6


def test_ring_closed_form_in_server(h100x1):
    n = 8
    b = 450e9 * NVLINK_GOODPUT["nvlink4"]
    slope = _slope(h100x1, lambda s: CollectiveCall("all_reduce", (tuple(range(8)),), s, "ring"))
    assert slope == pytest.approx(2 * (n - 1) / n / b, rel=1e-9)


def test_multi_server_ring_uses_every_rail(a100x4):
    """8 GPUs per server: the ring's channels use all 8 NICs (busbw = 8 NICs)."""
    r = analytical_time(a100x4, CollectiveCall("all_reduce", (tuple(range(32)),), 2 ** 32, "ring"))
    per_nic = r.busbw_bytes_per_s / 8
    assert per_nic == pytest.approx(25e9 * IB_GOODPUT, rel=0.03)


def test_busbw_definitions(h100x1):
    for op, f in [("all_reduce", 2 * 7 / 8), ("all_gather", 7 / 8), ("reduce_scatter", 7 / 8),
                  ("all_to_all", 7 / 8), ("broadcast", 1.0)]:
        r = analytical_time(h100x1, CollectiveCall(op, (tuple(range(8)),), 2 ** 28))
        assert r.busbw_bytes_per_s == pytest.approx(r.algbw_bytes_per_s * f)
        assert r.algbw_bytes_per_s == pytest.approx(2 ** 28 / r.time_s)
    assert bus_factor("send_recv", 2) == 1.0


def test_nvls_only_where_the_gpu_has_it(a100x4, h100x1):
    big = 2 ** 30
    assert analytical_time(h100x1, CollectiveCall("all_reduce", (tuple(range(8)),), big)).algorithm == "nvls"
    a100 = build_cluster("dgx-a100", nodes=1)
    assert analytical_time(a100, CollectiveCall("all_reduce", (tuple(range(8)),), big)).algorithm != "nvls"
    with pytest.raises(ValueError, match="nvls"):
        analytical_time(a100, CollectiveCall("all_reduce", (tuple(range(8)),), big, "nvls"))


def test_small_messages_are_latency_bound(h100x1):
    r = analytical_time(h100x1, CollectiveCall("all_reduce", (tuple(range(8)),), 8))
    assert r.protocol == "LL" and 5e-6 < r.time_s < 30e-6


def test_algorithm_by_scale():
    c = build_cluster("dgx-h100", nodes=32)
    g = (tuple(range(256)),)
    small = analytical_time(c, CollectiveCall("all_reduce", g, 4096))
    assert small.algorithm == "tree"  # log-depth latency wins for small messages at scale
    big = analytical_time(c, CollectiveCall("all_reduce", g, 2 ** 32, "ring"))
    assert big.protocol == "Simple"


def _dp_groups(nodes: int, per_server: int = 8):
    """DP groups: local GPU j of every server, for each j (8 groups sharing NICs and fabric)."""
    return tuple(tuple(s * 8 + j for s in range(nodes)) for j in range(per_server))


@pytest.mark.parametrize("topology", ["fat-tree", "rail-optimized"])
def test_oversubscription_never_faster(topology):
    times = []
    for over in (1, 2, 4, 8):
        c = build_cluster("dgx-h100", nodes=16, fabric={"oversubscription": over, "radix": 16,
                                                         "topology": topology})
        call = CollectiveCall("all_reduce", _dp_groups(16), 2 ** 30, "ring")
        times.append(analytical_time(c, call).time_s)
    assert all(b >= a * (1 - 1e-12) for a, b in zip(times, times[1:], strict=False))
    if topology == "fat-tree":
        assert times[-1] > 2 * times[0]


def test_more_bandwidth_never_slower():
    base = {"gpu": "h100-sxm", "gpus_per_node": 8, "nvlink": "nvlink4", "host_link": "pcie5",
            "fabric": {"radix": 16}}
    slow = build_cluster({**base, "nic": "ib-hdr-200", "fabric": {"radix": 16, "link": "ib-hdr-200"}}, nodes=8)
    fast = build_cluster({**base, "nic": "ib-ndr-400", "fabric": {"radix": 16, "link": "ib-ndr-400"}}, nodes=8)
    for op in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast"):
        for size in (2 ** 10, 2 ** 20, 2 ** 30):
            call = CollectiveCall(op, _dp_groups(8), size)
            assert analytical_time(fast, call).time_s <= analytical_time(slow, call).time_s


def test_concurrent_groups_share_the_fabric():
    c = build_cluster("dgx-h100", nodes=16, fabric={"oversubscription": 4, "radix": 16})
    one = analytical_time(c, CollectiveCall("all_reduce", _dp_groups(16, 1), 2 ** 30, "ring"))
    eight = analytical_time(c, CollectiveCall("all_reduce", _dp_groups(16, 8), 2 ** 30, "ring"))
    assert eight.time_s > 1.5 * one.time_s  # 12:4 leaves; ring neighbours often share a leaf
    assert eight.bottleneck == "leaf-spine"


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0, 2 ** 34), b=st.floats(0, 2 ** 34),
       op=st.sampled_from(["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast"]))
def test_time_grows_with_size(a100x4, a, b, op):
    lo, hi = sorted((a, b))
    g = (tuple(range(0, 32, 2)),)
    t_lo = analytical_time(a100x4, CollectiveCall(op, g, lo)).time_s
    t_hi = analytical_time(a100x4, CollectiveCall(op, g, hi)).time_s
    assert t_hi >= t_lo


def test_hierarchical_and_send_recv(a100x4):
    g = (tuple(range(32)),)
    h = analytical_time(a100x4, CollectiveCall("all_reduce", g, 2 ** 30, "hierarchical"))
    assert h.algorithm == "hierarchical" and h.time_s > 0
    p = analytical_time(a100x4, CollectiveCall("send_recv", ((0, 8),), 2 ** 30))
    assert p.bottleneck == "nic-leaf"
    assert p.algbw_bytes_per_s == pytest.approx(25e9 * IB_GOODPUT, rel=0.01)


def test_single_rank_is_free(a100x4):
    r = analytical_time(a100x4, CollectiveCall("all_reduce", ((3,),), 2 ** 20))
    assert r.time_s == 0.0


@pytest.mark.parametrize("kwargs, word", [
    (dict(op="allreduce", groups=((0, 1),), size_bytes=1), "op"),
    (dict(op="all_reduce", groups=((0, 1),), size_bytes=-1), "size_bytes"),
    (dict(op="all_reduce", groups=((0, 1),), size_bytes=1, algorithm="magic"), "algorithm"),
    (dict(op="all_gather", groups=((0, 1),), size_bytes=1, algorithm="tree"), "tree"),
    (dict(op="all_reduce", groups=((0, 0),), size_bytes=1), "repeats"),
])
def test_bad_calls(kwargs, word):
    with pytest.raises(ValueError, match=word):
        CollectiveCall(**kwargs)


def test_rank_outside_cluster(a100x4):
    with pytest.raises(ValueError, match="outside"):
        analytical_time(a100x4, CollectiveCall("all_reduce", ((0, 999),), 1.0))


def test_memoized_by_shape(a100x4):
    call = CollectiveCall("all_reduce", _dp_groups(4), 2 ** 20)
    analytical_time(a100x4, call)
    n = len(a100x4.cache.collective_plans)
    analytical_time(a100x4, CollectiveCall("all_reduce", _dp_groups(4), 2 ** 25))
    assert len(a100x4.cache.collective_plans) == n
