"""Collective algorithms, each written once as phases of traffic, and the NCCL-like choice.

    call.py          CollectiveCall (what a program issues), CollectiveTime, bus_factor
    base.py          the records: traffic parts, phases, Algorithm, priced Option / Plan
    graphs.py        NCCL's channel rings and double binary trees over a group
    ring.py, tree.py, nvls.py, hierarchical.py, direct.py   one Algorithm each (direct: two)
    registry.py      the algorithms in the order they are tried: add a new one there
    choice.py        price the candidates on a back end's meter, take the cheapest
    nccl.py          NCCL's published cost-model constants, with their sources

The back ends live in dcsim/network/: analytical.py prices the phases in closed form
(`analytical_time`), flow_backend.py runs them as max-min shared flows (`FlowBackend`).
"""

from __future__ import annotations

from dcsim.collectives.base import Algorithm, Option, Phase, Plan
from dcsim.collectives.call import ALGORITHMS, OPS, CollectiveCall, CollectiveTime, bus_factor

__all__ = ["ALGORITHMS", "OPS", "Algorithm", "CollectiveCall", "CollectiveTime", "Option", "Phase",
           "Plan", "bus_factor"]
