"""Hierarchical all-reduce: reduce-scatter in servers, all-reduce across, all-gather in servers."""

from __future__ import annotations

from dcsim.collectives.base import Algorithm, Bottleneck, Context, Option, Phase
from dcsim.collectives.graphs import per_server_groups, rail_groups
from dcsim.collectives.ring import ring_channels, ring_options, topology_busbw


class Hierarchical(Algorithm):
    """Three ring phases: in every server over its g ranks, across servers between the ranks of
    each local position (on 1/g of the buffer), in every server again."""

    name = "hierarchical"
    ops = frozenset({"all_reduce"})

    @classmethod
    def applies(cls, ctx: Context) -> bool:
        return ctx.m > 1 and ctx.g > 1

    def phases(self) -> tuple[Phase, ...]:
        ctx = self.ctx
        g, m = ctx.g, ctx.m
        inside = Phase((ring_channels(ctx.cluster, per_server_groups(ctx.cluster, ctx.groups), (g - 1) / g),))
        across = Phase((ring_channels(ctx.cluster, rail_groups(ctx.cluster, ctx.groups), 2.0 * (m - 1) / m),),
                       size_scale=1.0 / g)
        return (inside, across, inside)

    def options(self, phase: int, bottlenecks: tuple[Bottleneck, ...]) -> tuple[tuple[Option, ...], str]:
        (bn,) = bottlenecks
        ctx = self.ctx
        g, m = ctx.g, ctx.m
        if phase == 1:
            f = 2.0 * (m - 1) / m
            return ring_options(ctx, m, m, 2 * (m - 1), 2 * (m - 1), topology_busbw(f, bn), f,
                                bn.wire_latency_s), bn.tier
        f = (g - 1) / g
        return ring_options(ctx, g, 1, g - 1, 0, topology_busbw(f, bn), f, 0.0), bn.tier
