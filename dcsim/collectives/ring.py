"""Ring: NCCL's channel rings (all-reduce, all-gather, reduce-scatter, broadcast)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from dcsim.cluster import Cluster
from dcsim.collectives import nccl
from dcsim.collectives.base import (Algorithm, Bottleneck, Channels, Context, Option, Phase,
                                    Traffic)
from dcsim.collectives.graphs import ring_edges


def ring_channels(cluster: Cluster, groups: Iterable[tuple[int, ...]], weight: float,
                  inter_only: bool = False) -> Channels:
    """The channel rings of every group, each edge carrying weight / channels bytes per byte;
    with inter_only, only the edges between servers (a channel left without edges is dropped)."""
    src: list[int] = []
    dst: list[int] = []
    n_edges: list[int] = []
    shares: list[float] = []
    for grp in groups:
        s, d, n_ch = ring_edges(cluster, grp)
        per_ch = len(s) // n_ch
        for c in range(n_ch):
            k = 0
            for a, b in zip(s[c * per_ch:(c + 1) * per_ch], d[c * per_ch:(c + 1) * per_ch], strict=False):
                if inter_only and cluster.server_of(a) == cluster.server_of(b):
                    continue
                src.append(a)
                dst.append(b)
                k += 1
            if k:
                n_edges.append(k)
                shares.append(weight / n_ch)
    return Channels(np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64),
                    np.asarray(n_edges, dtype=np.int64), np.asarray(shares, dtype=float))


def topology_busbw(weight: float, bn: Bottleneck) -> float:
    """Bus bandwidth of traffic of `weight` bytes per byte whose bottleneck is `bn`."""
    return weight / bn.s_per_unit if bn.s_per_unit > 0 else np.inf


def ring_options(ctx: Context, n: int, m: int, nsteps: int, inter_steps: int, busbw: float,
                 f: float, wire_inter: float) -> tuple[Option, ...]:
    """NCCL ring protocols (tuning.cc) for a ring of n ranks on m servers moving f bytes per
    byte over every edge, at topology bus bandwidth `busbw`: nsteps steps, inter_steps of them
    between servers."""
    opts = []
    ppn = n / m
    for p in nccl.PROTOCOLS:
        intra = max(nccl.HW_LAT_US[ctx.intra_hw]["ring"][p] * 1e-6, ctx.nvl_wire_s)
        if m > 1:
            over = nccl.NET_OVERHEAD_US * (nccl.NET_OVERHEAD_SIMPLE_FACTOR if p == "Simple" else 1.0)
            intra = max(intra, over * 1e-6)
        # with one rank per server, NCCL charges the tree's network latency per step
        net_algo = "tree" if ppn == 1 else "ring"
        inter = max(nccl.HW_LAT_US["net"][net_algo][p] * 1e-6, wire_inter)
        lat = nccl.BASE_LAT_US["ring"][p] * 1e-6 + (nsteps - inter_steps) * intra + inter_steps * inter
        if p == "LL":
            bw = min(nccl.ll_max_bw(ctx.arch, m), busbw * nccl.RING_LL_FACTOR)
        elif p == "LL128":
            bw = busbw * nccl.RING_LL128_FACTOR
        else:
            bw = busbw
        opts.append(Option(p, lat, f / bw if bw > 0 else 0.0,
                           efficiency=bw / busbw if busbw > 0 and np.isfinite(busbw) else 1.0))
    return tuple(opts)


# bytes over every ring edge per byte of the call, steps (of n ranks), steps between servers (m)
_RING_STEPS = {
    "all_reduce": lambda n, m: (2.0 * (n - 1) / n, 2 * (n - 1), 2 * (m - 1)),
    "all_gather": lambda n, m: ((n - 1) / n, n - 1, m - 1),
    "reduce_scatter": lambda n, m: ((n - 1) / n, n - 1, m - 1),
    "broadcast": lambda n, m: (1.0, n - 1, m - 1 if m > 1 else 0),
}


def whole_ring(ctx: Context) -> Traffic:
    """The channel rings over every whole group of the call (shared by ring and tree)."""
    f, _, _ = _RING_STEPS[ctx.op](ctx.n, ctx.m)
    return ctx.traffic(("ring", f), lambda: ring_channels(ctx.cluster, ctx.groups, f))


class Ring(Algorithm):
    """Pipelined channel rings over the whole group; one phase."""

    name = "ring"
    ops = frozenset(_RING_STEPS)

    def _steps(self) -> tuple[float, int, int]:
        """(bytes per edge per byte, steps, steps between servers) of this op."""
        return _RING_STEPS[self.ctx.op](self.ctx.n, self.ctx.m)

    def phases(self) -> tuple[Phase, ...]:
        return (Phase((whole_ring(self.ctx),)),)

    def options(self, phase: int, bottlenecks: tuple[Bottleneck, ...]) -> tuple[tuple[Option, ...], str]:
        (bn,) = bottlenecks
        ctx = self.ctx
        f, nsteps, inter_steps = self._steps()
        wire_inter = bn.wire_latency_s if ctx.m > 1 else 0.0
        opts = ring_options(ctx, ctx.n, ctx.m, nsteps, inter_steps, topology_busbw(f, bn), f, wire_inter)
        return opts, bn.tier
