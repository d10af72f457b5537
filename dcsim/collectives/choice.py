"""NCCL-like choice, in one place: price every applicable algorithm, take the cheapest.

A back end supplies a `Meter` (the bottleneck of a traffic part on its network); `price` turns
the candidates' phases into priced Plans with it; `pick` applies the call's forced algorithm or
takes the plan with the least time at the call's size (NCCL's tuner: the cheapest (algorithm,
protocol) by latency + size / bandwidth).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from dcsim.cluster import Cluster
from dcsim.collectives.base import Bottleneck, Context, Plan, PricedPhase, Traffic
from dcsim.collectives.call import CollectiveCall
from dcsim.collectives.registry import candidates

if TYPE_CHECKING:
    from dcsim.network.compiled import CompiledNetwork


class Meter(Protocol):
    """A back end's measure of traffic: the bottleneck of a part on its network."""

    net: CompiledNetwork

    def bottleneck(self, part: Traffic) -> Bottleneck: ...


def check_ranks(cluster: Cluster, groups: tuple[tuple[int, ...], ...]) -> None:
    """Every rank of the groups is a GPU of this cluster."""
    n = cluster.n_gpus
    for grp in groups:
        for r in grp:
            if not 0 <= r < n:
                raise ValueError(f"rank {r} is outside this cluster (0..{n - 1})")


def price(cluster: Cluster, op: str, groups: tuple[tuple[int, ...], ...], meter: Meter,
          keep_traffic: bool = False, algorithm: str = "auto") -> tuple[Plan, ...]:
    """Every applicable algorithm of a call shape (or only `algorithm` when it is forced),
    priced on `meter` (a traffic part shared by several phases or algorithms is measured once);
    with keep_traffic the phases keep their traffic for a back end that runs it."""
    ctx = Context.of(cluster, op, groups, meter.net)
    algos = candidates(ctx)
    if algorithm != "auto":
        forced = tuple(a for a in algos if a.name == algorithm)
        if not forced:
            _not_applicable(op, ctx.n, algorithm, [a.name for a in algos])
        algos = forced
    measured: dict[int, tuple[Traffic, Bottleneck]] = {}  # id -> (the part, kept alive; its bottleneck)

    def measure(part: Traffic) -> Bottleneck:
        hit = measured.get(id(part))
        if hit is None:
            hit = measured[id(part)] = (part, meter.bottleneck(part))
        return hit[1]

    plans = []
    for algo in algos:
        phases = []
        for i, ph in enumerate(algo.phases()):
            bns = tuple(measure(part) for part in ph.parts + ph.reference)
            opts, tier = algo.options(i, bns)
            phases.append(PricedPhase(opts, tier, ph.size_scale, ph if keep_traffic else None))
        plans.append(Plan(algo.name, tuple(phases)))
    return tuple(plans)


def applicable(plans: tuple[Plan, ...], call: CollectiveCall) -> tuple[Plan, ...]:
    """The plans a call may use: all of them under `auto`, else the forced algorithm's."""
    if call.algorithm == "auto":
        return plans
    chosen = tuple(p for p in plans if p.algorithm == call.algorithm)
    if not chosen:
        _not_applicable(call.op, max(len(g) for g in call.groups), call.algorithm,
                        [p.algorithm for p in plans])
    return chosen


def _not_applicable(op: str, n: int, algorithm: str, names: list[str]) -> None:
    """Refuse a forced algorithm this call shape cannot run."""
    raise ValueError(f"algorithm {algorithm!r} does not apply to this {op} ({n} ranks); "
                     f"applicable: {', '.join(names)}")


def pick(plans: tuple[Plan, ...], call: CollectiveCall) -> Plan:
    """The plan the call runs: the cheapest applicable one at its size."""
    return min(applicable(plans, call), key=lambda p: p.time(call.size_bytes)[0])
