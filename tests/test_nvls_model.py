"""The NVLS pipeline: NCCL's size-dependent chunk and the kernel's pipeline fill.

The chunk thresholds below are worked out by hand from NVIDIA/nccl src/enqueue.cc
(calcCollChunking, NVLS branch) for 16 channels (NCCL_NVLS_NCHANNELS) and one head per GPU, so
they check dcsim/collectives/nccl.py against the source, not against itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from dcsim.collectives import CollectiveCall, nccl
from dcsim.network.analytical import analytical_time, collective_plans, select_plan
from dcsim.network.flow_backend import FlowBackend
from topologies import build_cluster

MiB = 2 ** 20
KiB = 2 ** 10
EIGHT = (tuple(range(8)),)


@pytest.fixture(scope="module")
def h100():
    return build_cluster("dgx-h100", nodes=1)


# concurrentOps = 16 channels * 8 heads = 128: chunk 128K from 64 * 128 * 128K = 1 GiB up,
# 64K from 8 * 128 * 64K = 64 MiB, 32K from 2 * 128 * 32K = 8 MiB, 16K below.
@pytest.mark.parametrize("size, chunk", [
    (8, 16 * KiB), (1 * MiB, 16 * KiB), (8 * MiB - 1, 16 * KiB), (8 * MiB, 32 * KiB),
    (16 * MiB, 32 * KiB), (64 * MiB - 1, 32 * KiB), (64 * MiB, 64 * KiB), (128 * MiB, 64 * KiB),
    (1024 * MiB - 1, 64 * KiB), (1024 * MiB, 128 * KiB), (16384 * MiB, 128 * KiB),
])
def test_chunk_follows_enqueue_thresholds_for_8_heads(size, chunk):
    assert nccl.nvls_chunk_bytes(size, 8) == chunk


def test_chunk_thresholds_scale_with_heads():
    # 4 heads: concurrentOps = 64, every threshold halves
    assert nccl.nvls_chunk_bytes(4 * MiB - 1, 4) == 16 * KiB
    assert nccl.nvls_chunk_bytes(4 * MiB, 4) == 32 * KiB
    assert nccl.nvls_chunk_bytes(32 * MiB, 4) == 64 * KiB
    assert nccl.nvls_chunk_bytes(512 * MiB, 4) == 128 * KiB


@pytest.mark.parametrize("heads", [2, 4, 8])
def test_chunk_classes_partition_sizes_as_the_rule_does(heads):
    classes = nccl.nvls_chunk_classes(heads)
    assert classes[0][0] == 0 and classes[-1][1] == float("inf")
    assert all(a[1] == b[0] for a, b in zip(classes, classes[1:], strict=False))
    assert [c for _, _, c in classes] == [16 * KiB, 32 * KiB, 64 * KiB, 128 * KiB]
    rng = np.random.default_rng(0)
    for size in np.exp(rng.uniform(0, np.log(2 ** 36), 500)):
        (c,) = [c for lo, hi, c in classes if lo <= size < hi]
        assert c == nccl.nvls_chunk_bytes(size, heads)


def _nvls_time(c, op, size, group=EIGHT):
    return analytical_time(c, CollectiveCall(op, group, size, "nvls")).time_s


@pytest.mark.parametrize("op, stages, s1, s2, chunk", [
    ("all_reduce", 3, 128 * MiB, 256 * MiB, 64 * KiB),
    ("all_reduce", 3, 2048 * MiB, 4096 * MiB, 128 * KiB),
    ("all_reduce", 3, 16 * MiB, 32 * MiB, 32 * KiB),
    ("all_gather", 2, 128 * MiB, 256 * MiB, 64 * KiB),
    ("reduce_scatter", 2, 128 * MiB, 256 * MiB, 64 * KiB),
])
def test_nvls_time_is_alpha_beta_plus_the_pipeline_fill(h100, op, stages, s1, s2, chunk):
    """Within one chunk class the time is a line: slope = the NVLS s/byte, intercept = NCCL's
    NVLS latency (tuning.cc hwLat 25 us) + (stages - 1) loops of 16 channels x 8 heads x chunk."""
    t1, t2 = _nvls_time(h100, op, s1), _nvls_time(h100, op, s2)
    spb = (t2 - t1) / (s2 - s1)
    loop = 16 * 8 * chunk
    assert t1 - s1 * spb == pytest.approx(25e-6 + (stages - 1) * loop * spb, rel=1e-9)


def test_the_fill_is_what_the_mid_sizes_lose(h100):
    """At 1 GiB the fill is ~3% of the time, at 16 MiB ~26%: NVLS bus bandwidth ramps."""
    def fill_share(size):
        plan = [p for p in collective_plans(h100, "all_reduce", EIGHT) if p.algorithm == "nvls"][0]
        (opt,) = plan.choose(size)
        return (opt.latency_s - 25e-6) / plan.time(size)[0]
    assert 0.2 < fill_share(16 * MiB) < 0.3
    assert 0.02 < fill_share(1024 * MiB) < 0.04


def test_nvls_time_never_drops_as_size_grows(h100):
    """Chunk classes double the fill at their lower edge; time still only grows with size."""
    sizes = np.unique(np.concatenate([np.geomspace(1e3, 2e10, 400),
                                      [b for lo, hi, _ in nccl.nvls_chunk_classes(8) for b in (lo, hi)
                                       if 0 < b < np.inf]]))
    times = [_nvls_time(h100, "all_reduce", float(s)) for s in sizes]
    assert all(b >= a for a, b in zip(times, times[1:], strict=False))


def test_auto_picks_nvls_from_a_few_mib_and_ring_ll_below(h100):
    assert analytical_time(h100, CollectiveCall("all_reduce", EIGHT, 1 * MiB)).algorithm == "ring"
    for size in (16 * MiB, 128 * MiB, 1024 * MiB):
        assert analytical_time(h100, CollectiveCall("all_reduce", EIGHT, size)).algorithm == "nvls"


def test_four_gpu_groups_use_four_heads(h100):
    """Two 4-GPU groups on one server: nHeads = 4, so the loop (and the fill) is half as long."""
    groups = ((0, 1, 2, 3), (4, 5, 6, 7))
    s1, s2 = 64 * MiB, 128 * MiB  # both 64K chunks with 4 heads (32 MiB .. 512 MiB)
    t1, t2 = _nvls_time(h100, "all_reduce", s1, groups), _nvls_time(h100, "all_reduce", s2, groups)
    spb = (t2 - t1) / (s2 - s1)
    assert t1 - s1 * spb == pytest.approx(25e-6 + 2 * 16 * 4 * 64 * KiB * spb, rel=1e-9)


@pytest.mark.parametrize("op, size", [("all_reduce", 16 * MiB), ("all_reduce", 128 * MiB),
                                      ("all_gather", 32 * MiB)])
def test_flow_backend_carries_the_fill(h100, op, size):
    call = CollectiveCall(op, EIGHT, size, "nvls")
    assert select_plan(h100, call).algorithm == "nvls"
    env = simpy.Environment()
    env.run(FlowBackend(env, h100).run(call))
    assert env.now == pytest.approx(analytical_time(h100, call).time_s, rel=0.05)
