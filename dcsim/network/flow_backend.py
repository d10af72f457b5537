"""The flow back end: a collective's phases of traffic run as flows on a FlowNetwork.

Every applicable algorithm of a call shape is priced once on the routes its flows take (the
bottleneck of its routed paths under the load of all its groups, flow_traffic.PathMeter) and the
NCCL-like choice (dcsim/collectives/choice.py) picks the (algorithm, protocol) of each call; the
bandwidth term then comes from max-min shared flows instead of a closed form. A phase waits its
protocol's latency, then starts its parts' flows at once; a protocol moves bytes / efficiency
(e.g. LL128 carries 120 payload bytes per 128). The flows of a shape are built once and reused:
only their sizes change from call to call.
"""

from __future__ import annotations

from typing import Any, Generator

import simpy

from dcsim.cluster import Cluster
from dcsim.collectives.base import Option, Plan
from dcsim.collectives.call import CollectiveCall
from dcsim.collectives.choice import check_ranks, pick, price
from dcsim.network.flow_traffic import PathMeter
from dcsim.network.flows import FlowNetwork


# Calls whose (plan, options) are kept: a training iteration issues a few hundred distinct calls,
# a long multi-job run may issue more (cleared when full).
CHOSEN_ENTRIES = 65536


class FlowBackend:
    """Runs CollectiveCalls as flows on a FlowNetwork (created here unless one is given)."""

    def __init__(self, env: simpy.Environment, cluster: Cluster, network: FlowNetwork | None = None,
                 seed: int = 0, routing: str = "auto") -> None:
        self.env = env
        self.cluster = cluster
        self.network = network or FlowNetwork(env, cluster, seed=seed, routing=routing)
        self.meter = PathMeter(self.network)
        self._plans: dict[tuple, tuple[Plan, ...]] = {}  # (op, groups, algorithm) -> priced plans
        self._chosen: dict[CollectiveCall, tuple[Plan, list[Option]]] = {}  # call -> plan, options

    def run(self, call: CollectiveCall) -> simpy.Process:
        """A process that ends when every group of the call is done."""
        return self.env.process(self._run(call))

    def plan(self, call: CollectiveCall) -> Plan | None:
        """The plan this call runs (None for groups of one rank)."""
        if max(len(g) for g in call.groups) <= 1:
            return None
        key = (call.op, call.groups, call.algorithm)
        plans = self._plans.get(key)
        if plans is None:  # a forced algorithm is the only one priced (and routed)
            check_ranks(self.cluster, call.groups)
            plans = self._plans[key] = price(self.cluster, call.op, call.groups, self.meter,
                                             keep_traffic=True, algorithm=call.algorithm)
        return pick(plans, call)

    def _run(self, call: CollectiveCall) -> Generator[simpy.Event, Any, None]:
        """The phases of the call's plan one after the other, each its latency then its flows."""
        hit = self._chosen.get(call)
        if hit is None:
            plan = self.plan(call)
            if plan is None or call.size_bytes <= 0 and call.op != "send_recv":
                if plan is not None:
                    yield self.env.timeout(min(o.latency_s for o in plan.phases[0].options))
                return
            if len(self._chosen) >= CHOSEN_ENTRIES:
                self._chosen.clear()
            hit = self._chosen[call] = (plan, plan.choose(call.size_bytes))
        plan, options = hit
        for phase, opt in zip(plan.phases, options, strict=True):
            if opt.latency_s > 0:
                yield self.env.timeout(opt.latency_s)
            assert phase.traffic is not None  # priced with keep_traffic
            scale = call.size_bytes * phase.size_scale / (opt.efficiency if opt.efficiency > 0 else 1.0)
            events = []
            for part in phase.traffic.parts:
                routed = self.meter.routed(part)
                if len(routed.paths):
                    events.append(self.network.transfer_paths(routed.paths, routed.weight * scale))
            if events:
                yield self.env.all_of(events)
