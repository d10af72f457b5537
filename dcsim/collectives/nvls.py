"""NVLS: NVLink SHARP reductions in the NVSwitch; NVLS-tree across servers (all-reduce)."""

from __future__ import annotations

import math

import numpy as np

from dcsim.collectives import nccl
from dcsim.collectives.base import (Algorithm, Bottleneck, Context, Option, Phase, SwitchTraffic,
                                    Traffic)
from dcsim.collectives.graphs import per_server_groups
from dcsim.collectives.ring import ring_channels


def nvls_options(op: str, lat: float, spb: float, n_heads: int) -> tuple[Option, ...]:
    """NVLS/Simple on one server, one option per chunk size NCCL picks by size.

    tuning.cc prices NVLS as latency + size / bandwidth. The kernel is a pipeline of
    nccl.NVLS_STAGES[op] stages handing on loops of loopSize = nChannels * nHeads * chunk
    bytes (src/device/all_reduce.h: `loopSize = nChannels*nvls->nHeads*chunkSize`), with the
    chunk halved for mid sizes (enqueue.cc, nccl.nvls_chunk_bytes). The first loop's scatter
    and the last loop's gather run while the NVLink stage has nothing to do, so a k-stage
    pipeline adds (k - 1) loop times to the alpha-beta time: the usual fill and drain. Each
    stage is taken to move a loop at the collective's own rate (s_per_byte): they are coupled
    by the NCCL_STEPS FIFO and the copy stages have no measurement of their own here.
    """
    stages = nccl.NVLS_STAGES[op]
    opts = []
    for lo, hi, chunk in nccl.nvls_chunk_classes(n_heads):
        loop = nccl.NVLS_NCHANNELS * n_heads * chunk
        opts.append(Option("Simple", lat + (stages - 1) * loop * spb, spb, min_bytes=lo, max_bytes=hi))
    return tuple(opts)


class Nvls(Algorithm):
    """Every GPU sends its data up to the NVSwitch, which reduces (or multicasts) and sends the
    result down; across servers (all-reduce only) the servers' NVLS results meet in a network
    tree, here the inter-server edges of the channel rings, at once with the NVLink traffic."""

    name = "nvls"
    ops = frozenset({"all_reduce", "all_gather", "reduce_scatter"})

    @classmethod
    def applies(cls, ctx: Context) -> bool:
        return bool(ctx.cluster.gpu_spec.nvls and ctx.nvswitch and ctx.g > 1
                and bool(nccl.NVLS_EFFICIENCY.get(ctx.arch))
                and (ctx.op == "all_reduce" or ctx.m == 1))

    def _switch(self) -> SwitchTraffic:
        """Bytes per byte each GPU sends to and receives from its NVSwitch."""
        ctx = self.ctx
        eff = nccl.NVLS_EFFICIENCY[ctx.arch]
        if ctx.op == "all_reduce":
            groups = per_server_groups(ctx.cluster, ctx.groups)
            up = down = 1.0 + 1.0 / ctx.g
        elif ctx.op == "all_gather":
            groups, up, down = list(ctx.groups), 1.0 / ctx.n, 1.0
        else:
            groups, up, down = list(ctx.groups), 1.0, 1.0 / ctx.n
        ranks = np.fromiter((r for g in groups for r in g), dtype=np.int64)
        return SwitchTraffic(ranks, up / eff, down / eff)

    def phases(self) -> tuple[Phase, ...]:
        ctx = self.ctx
        parts: tuple[Traffic, ...] = (self._switch(),)
        if ctx.m > 1:
            parts += (ring_channels(ctx.cluster, ctx.groups, 2.0 * (ctx.n - 1) / ctx.n, inter_only=True),)
        return (Phase(parts),)

    def options(self, phase: int, bottlenecks: tuple[Bottleneck, ...]) -> tuple[tuple[Option, ...], str]:
        ctx = self.ctx
        spb, tier = bottlenecks[0].s_per_unit, bottlenecks[0].tier
        lat = nccl.HW_LAT_US["nvlink"]["nvls"]["Simple"] * 1e-6
        if ctx.m == 1:
            return nvls_options(ctx.op, lat, spb, ctx.g), tier
        inter = bottlenecks[1]
        if inter.s_per_unit * 1.0 > spb:
            spb, tier = inter.s_per_unit, inter.tier
        net_lat = max(nccl.HW_LAT_US["net"]["nvls_tree"]["Simple"] * 1e-6, inter.wire_latency_s)
        lat += 2 * math.floor(math.log2(ctx.m)) * net_lat
        # NVLS-tree keeps the alpha-beta form: its chunking and the depth of its pipeline through
        # the network tree are not modelled (see nvls_options for one server)
        return (Option("Simple", lat, spb),), tier
