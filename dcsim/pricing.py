"""Pricing: how long a compute op or a collective takes in one run, with caches, and where
the compute time came from (measured / fitted / spec, extrapolated).

Compute ops are priced by the CostModel kernel by kernel (a recorded duration from a trace
is taken as it is); collectives by the cost model's measurements when it has them, else by
the closed-form network model. The engine asks before it simulates; the flow network prices
non-local collectives itself while the simulation runs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from dcsim.cluster import Cluster
from dcsim.collectives import CollectiveCall
from dcsim.costs import PROVENANCES, Cost, CostModel
from dcsim.network.analytical import analytical_time
from dcsim.program import Kernel, Op, OpKind, Program

_COMPUTE = OpKind.COMPUTE  # a module global: faster than the class lookup per op


class KernelsCost(NamedTuple):
    """The price of one tuple of kernels run back to back."""

    time_s: float
    by_provenance_s: dict[str, float]
    extrapolated_s: float
    kernels: tuple[Kernel, ...]  # held so the tuple's id stays unique while it is cached


class Pricing:
    """Prices the ops of one run on one cluster with one cost model, and tallies the compute
    seconds (times multiplicity: every GPU counts) by provenance."""

    def __init__(self, cluster: Cluster, costs: CostModel) -> None:
        self.cluster, self.costs = cluster, costs
        self.kernel_costs: dict[Kernel, Cost] = {}
        # Ops of one kind share their kernel tuple (the builders reuse it): priced once, keyed
        # by the tuple's identity (hashing a tuple of kernels per op would cost more than
        # pricing it); KernelsCost keeps the tuple alive so no other object takes its id.
        self.kernel_tuple_costs: dict[int, KernelsCost] = {}
        self.collective_costs_s: dict[tuple[Any, ...], float] = {}
        self.provenance_s: dict[str, float] = {p: 0.0 for p in PROVENANCES}
        self.extrapolated_s = 0.0

    def compute_time(self, op: Op, multiplicity: int) -> float:
        """Seconds of a compute op; adds its time to the provenance shares."""
        rec = op.recorded
        if rec is not None:  # a recorded kernel (trace replay): measured, not priced
            t = rec.duration_s * op.repeat
            self.provenance_s[rec.provenance] += t * multiplicity
            return t
        priced = self.kernel_tuple_costs.get(id(op.kernels))
        if priced is None:
            priced = self.kernel_tuple_costs[id(op.kernels)] = self._price_kernels(op.kernels)
        total, by_prov, extra, _ = priced
        weight = op.repeat * multiplicity
        for prov, t in by_prov.items():
            self.provenance_s[prov] += t * weight
        self.extrapolated_s += extra * weight
        return total * op.repeat

    def _price_kernels(self, kernels: tuple[Kernel, ...]) -> KernelsCost:
        total, extra = 0.0, 0.0
        by_prov: dict[str, float] = {}
        for k in kernels:
            c = self.kernel_costs.get(k)
            if c is None:
                c = self.kernel_costs[k] = self.costs.kernel_time(k, self.cluster.gpu_spec)
            total += c.time_s
            by_prov[c.provenance] = by_prov.get(c.provenance, 0.0) + c.time_s
            extra += c.time_s if c.extrapolated else 0.0
        return KernelsCost(total, by_prov, extra, kernels)

    def collective_once(self, call: CollectiveCall) -> float:
        """Closed-form time of one collective call (measured when the profile has it)."""
        key = (call.op, call.groups, call.size_bytes, call.algorithm)
        t = self.collective_costs_s.get(key)
        if t is None:
            measured = self.costs.collective_time(call.op, len(call.groups[0]), call.size_bytes,
                                                  self.cluster.gpu_spec)
            t = measured.time_s if measured else analytical_time(self.cluster, call).time_s
            self.collective_costs_s[key] = t
        return t

    def is_local(self, call: CollectiveCall) -> bool:
        """Every group of the call inside one server (NVLink only: never a flow)."""
        return all(self.cluster.same_server(g) for g in call.groups)

    def tally(self, program: Program) -> None:
        """Price every compute op of `program` once, for its provenance shares only (a job cut
        out of a shared run)."""
        for rp in program.ranks:
            for op in rp.ops:
                if op.kind == _COMPUTE:
                    self.compute_time(op, rp.multiplicity)
