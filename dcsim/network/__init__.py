"""The network: compiled arrays, routing, and the two back ends that price collectives' phases.

    compile_network(cluster) -> CompiledNetwork      arrays compiled once from the graph
    Router(net, seed, mode)                          ECMP / D-mod-K paths, spread from the structure
    LoadModel.of(net)                                link loads of traffic under spread routing
    analytical_time(cluster, call)                   closed form: phases priced by their bottleneck
    max_min_rates(incidence, capacity)               progressive filling, vectorized
    FlowNetwork(env, cluster)                        simpy flows; transfer(...) -> event
    FlowBackend(env, cluster)                        flows: run(CollectiveCall) -> simpy process

The algorithms whose phases both back ends run are in dcsim/collectives/.
"""

from __future__ import annotations

from dcsim.network.analytical import analytical_time, collective_plans, select_plan
from dcsim.network.compiled import CompiledNetwork, compile_network
from dcsim.network.flow_backend import FlowBackend
from dcsim.network.flows import FlowNetwork
from dcsim.network.loads import LoadModel
from dcsim.network.maxmin import check_max_min, max_min_rates
from dcsim.network.routing import Router

__all__ = ["CompiledNetwork", "FlowBackend", "FlowNetwork", "LoadModel", "Router", "analytical_time",
           "check_max_min", "collective_plans", "compile_network", "max_min_rates", "select_plan"]
