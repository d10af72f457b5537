"""The closed-form back end: collectives priced over the routed, concurrently loaded network.

Every group of a call runs at once (folding: the traffic of every replica is on the network), so
the bandwidth term of an algorithm's phase is max(load / goodput) over all links for the traffic
of all groups under spread (expected-ECMP) routing (loads.py), and its latency term is NCCL's
per-step model (dcsim/collectives/nccl.py) bounded below by the wire latency of the paths. The
algorithms and the choice between them live in dcsim/collectives/; priced plans are memoized per
call shape, so a call of a known shape costs a few multiplications.
"""

from __future__ import annotations

import numpy as np

from dcsim.cluster import Cluster
from dcsim.collectives.base import Bottleneck, Channels, Pairs, Plan, SwitchTraffic, Traffic
from dcsim.collectives.call import CollectiveCall, CollectiveTime, bus_factor
from dcsim.collectives.choice import applicable, check_ranks, pick, price
from dcsim.network.compiled import CompiledNetwork, compile_network
from dcsim.network.loads import LoadModel, bottleneck_of


class SpreadMeter:
    """Bottlenecks of traffic under spread routing (the expected load of ECMP)."""

    def __init__(self, net: CompiledNetwork) -> None:
        self.net = net
        self.loads = LoadModel.of(net)

    def bottleneck(self, part: Traffic) -> Bottleneck:
        """The busiest link of the part under spread routing."""
        if isinstance(part, Pairs):
            return self.loads.bottleneck(part.src, part.dst, part.weight)
        if isinstance(part, Channels):
            return self.loads.bottleneck(part.src, part.dst, part.edge_weight)
        return switch_bottleneck(self.net, part)


def switch_bottleneck(net: CompiledNetwork, part: SwitchTraffic) -> Bottleneck:
    """The busiest GPU <-> NVSwitch link of NVLS traffic."""
    load = np.zeros(net.n_links)
    np.add.at(load, net.rank_nvl_up[part.ranks], part.up_weight)
    np.add.at(load, net.rank_nvl_down[part.ranks], part.down_weight)
    return bottleneck_of(net, load, 0.0)


def collective_plans(cluster: Cluster, op: str, groups: tuple[tuple[int, ...], ...]) -> tuple[Plan, ...]:
    """The candidate plans of a call shape, priced in closed form (memoized in cluster.cache)."""
    memo = cluster.cache.collective_plans
    key = (op, groups)
    hit = memo.get(key)
    if hit is None:
        check_ranks(cluster, groups)
        hit = memo[key] = price(cluster, op, groups, SpreadMeter(compile_network(cluster)))
    return hit


def select_plan(cluster: Cluster, call: CollectiveCall) -> Plan | None:
    """The plan `auto` (or the forced algorithm) uses for this call; None for 1-rank groups."""
    if max(len(g) for g in call.groups) <= 1:
        return None
    return pick(collective_plans(cluster, call.op, call.groups), call)


def analytical_time(cluster: Cluster, call: CollectiveCall) -> CollectiveTime:
    """Closed-form time of a call on a cluster: the cheapest applicable (algorithm, protocol)."""
    n = max(len(g) for g in call.groups)
    if n <= 1:
        return CollectiveTime(0.0, "none", 0.0, 0.0, "none", "none")
    best: tuple[float, str, str, str] | None = None
    for plan in applicable(collective_plans(cluster, call.op, call.groups), call):
        t, proto, bn = plan.time(call.size_bytes)
        if best is None or t < best[0]:
            best = (t, plan.algorithm, proto, bn)
    assert best is not None  # a group of two or more ranks has at least one algorithm
    t, algo, proto, bn = best
    algbw = call.size_bytes / t if t > 0 else 0.0
    return CollectiveTime(time_s=t, algorithm=algo, algbw_bytes_per_s=algbw,
                          busbw_bytes_per_s=algbw * bus_factor(call.op, n), bottleneck=bn,
                          protocol=proto)
