"""Tree: NCCL's double binary tree across servers, chains inside (all-reduce)."""

from __future__ import annotations

import math

import numpy as np

from dcsim.collectives import nccl
from dcsim.collectives.base import Algorithm, Bottleneck, Context, Option, Pairs, Phase
from dcsim.collectives.graphs import tree_edges
from dcsim.collectives.ring import topology_busbw, whole_ring


def tree_pairs(ctx: Context) -> Pairs:
    """Every tree edge of every group, both directions, with its share of the buffer."""
    src: list[int] = []
    dst: list[int] = []
    w: list[float] = []
    for grp in ctx.groups:
        s, d, ww = tree_edges(ctx.cluster, grp)
        src += s
        dst += d
        w += ww
    return Pairs(np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64),
                 np.asarray(w, dtype=float))


class Tree(Algorithm):
    """Reduce up and broadcast down two complementary trees, each with half of the buffer.

    NCCL prices the tree from the ring's bus bandwidth (a non-blocking network), so the ring
    is a reference part of its phase; where the tree's own traffic (it crosses leaves far more
    than a ring) is the tighter bound, e.g. on an oversubscribed spine, that bound wins, as it
    does for the same tree run as flows."""

    name = "tree"
    ops = frozenset({"all_reduce"})

    def phases(self) -> tuple[Phase, ...]:
        return (Phase((tree_pairs(self.ctx),), reference=(whole_ring(self.ctx),)),)

    def options(self, phase: int, bottlenecks: tuple[Bottleneck, ...]) -> tuple[tuple[Option, ...], str]:
        tree_bn, bn = bottlenecks
        ctx = self.ctx
        n, m = ctx.n, ctx.m
        busbw = topology_busbw(2.0 * (n - 1) / n, bn)
        wire_inter = bn.wire_latency_s if m > 1 else 0.0
        opts = []
        ppn = n / m
        eff, algbw = 1.0, math.inf
        for p in nccl.PROTOCOLS:
            intra = max(nccl.HW_LAT_US[ctx.intra_hw]["tree"][p] * 1e-6, ctx.nvl_wire_s)
            inter = max(nccl.HW_LAT_US["net"]["tree"][p] * 1e-6, wire_inter)
            lat = nccl.BASE_LAT_US["tree"][p] * 1e-6 + 2 * ((ppn - 1) * intra + math.floor(math.log2(m)) * inter)
            bus = busbw * nccl.TREE_FACTOR
            if p == "LL":
                bus = min(bus * nccl.TREE_LL_FACTOR, nccl.ll_max_bw(ctx.arch, m))
            elif p == "LL128":
                bus *= nccl.TREE_LL128_FACTOR_1NODE if m == 1 else nccl.TREE_LL128_FACTOR_MULTI
            algbw = bus * nccl.TREE_ALGBW_RATIO
            eff = bus / busbw
            spb = max(1.0 / algbw, tree_bn.s_per_unit / eff)
            opts.append(Option(p, lat, spb, tree=True, efficiency=eff))
        # the tier that bounds the Simple protocol (the last one priced) names the bottleneck
        tier = tree_bn.tier if tree_bn.s_per_unit / eff > 1.0 / algbw else bn.tier
        return tuple(opts), tier
