"""The network models: compiled arrays, ECMP routing, max-min flows, collectives as flows.

    compile_network(cluster) -> CompiledNetwork      arrays compiled once from the graph
    Router(net, seed, mode)                          ECMP paths / spread from the fabric structure
    max_min_rates(incidence, capacity)               progressive filling, vectorized
    FlowNetwork(env, cluster)                        simpy flows; transfer(...) -> event
    FlowBackend(env, cluster)                        run(CollectiveCall) -> simpy process

Names are imported lazily so `dcsim.collectives` and this package can import each other's
modules without a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CompiledNetwork": "dcsim.network.compiled",
    "compile_network": "dcsim.network.compiled",
    "Router": "dcsim.network.routing",
    "max_min_rates": "dcsim.network.maxmin",
    "check_max_min": "dcsim.network.maxmin",
    "FlowNetwork": "dcsim.network.flows",
    "FlowBackend": "dcsim.network.flow_backend",
    "LoadModel": "dcsim.network.loads",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dcsim.network' has no attribute {name!r}")
