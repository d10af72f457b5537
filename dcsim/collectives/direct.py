"""Direct transfers: all-to-all (every rank to every other) and point-to-point send/recv."""

from __future__ import annotations

import numpy as np

from dcsim.collectives import nccl
from dcsim.collectives.base import Algorithm, Bottleneck, Context, Option, Pairs, Phase
from dcsim.collectives.ring import topology_busbw


def p2p_options(ctx: Context, bn: Bottleneck, across_servers: bool, f: float) -> tuple[Option, ...]:
    """NCCL's protocols for one step of direct transfers (tuning.cc ring terms, one step)."""
    hw = "net" if across_servers else ctx.intra_hw
    opts = []
    busbw = topology_busbw(f, bn)
    for p in nccl.PROTOCOLS:
        step = max(nccl.HW_LAT_US[hw]["ring"][p] * 1e-6, bn.wire_latency_s)
        lat = nccl.BASE_LAT_US["ring"][p] * 1e-6 + step
        if p == "LL":
            bw = min(nccl.ll_max_bw(ctx.arch, 2 if across_servers else 1), busbw * nccl.RING_LL_FACTOR)
        elif p == "LL128":
            bw = busbw * nccl.RING_LL128_FACTOR
        else:
            bw = busbw
        opts.append(Option(p, lat, f / bw, efficiency=bw / busbw if np.isfinite(busbw) else 1.0))
    return tuple(opts)


class AllToAll(Algorithm):
    """Every rank sends 1/n of its buffer to every other rank of its group, all at once."""

    name = "direct"
    ops = frozenset({"all_to_all"})

    def phases(self) -> tuple[Phase, ...]:
        src: list[np.ndarray] = []
        dst: list[np.ndarray] = []
        w: list[np.ndarray] = []
        for grp in self.ctx.groups:
            a = np.asarray(grp, dtype=np.int64)
            s, d = np.repeat(a, len(a)), np.tile(a, len(a))
            keep = s != d
            src.append(s[keep])
            dst.append(d[keep])
            w.append(np.full(int(keep.sum()), 1.0 / len(a)))
        return (Phase((Pairs(np.concatenate(src), np.concatenate(dst), np.concatenate(w)),)),)

    def options(self, phase: int, bottlenecks: tuple[Bottleneck, ...]) -> tuple[tuple[Option, ...], str]:
        (bn,) = bottlenecks
        return p2p_options(self.ctx, bn, self.ctx.m > 1, 1.0), bn.tier


class P2P(Algorithm):
    """Send/recv: each rank of a group sends the message to the next one, all at once."""

    name = "direct"
    ops = frozenset({"send_recv"})

    def phases(self) -> tuple[Phase, ...]:
        src = [a for grp in self.ctx.groups for a in grp[:-1]]
        dst = [b for grp in self.ctx.groups for b in grp[1:]]
        return (Phase((Pairs(np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64),
                             np.ones(len(src))),)),)

    def options(self, phase: int, bottlenecks: tuple[Bottleneck, ...]) -> tuple[tuple[Option, ...], str]:
        (bn,) = bottlenecks
        return p2p_options(self.ctx, bn, self._across(), 1.0), bn.tier

    def _across(self) -> bool:
        """Whether any transfer crosses servers (NCCL then charges the network's latency)."""
        c = self.ctx.cluster
        return any(c.server_of(a) != c.server_of(b) for grp in self.ctx.groups
                   for a, b in zip(grp[:-1], grp[1:], strict=False))
