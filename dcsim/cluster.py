"""Cluster: a networkx graph of typed nodes and links, plus the facts the engine asks often.

Graph contract (builders in `topologies/` produce it, nothing in the core builds it):
- node attribute `kind`: one of NODE_KINDS; gpu/nic/nvswitch nodes also carry `server` (int)
  and gpu/nic nodes `local` (index inside the server); gpu nodes carry `rank` (global GPU rank).
- edge attributes (an undirected edge is one full-duplex link): `bw_bytes_per_s` (per direction),
  `latency_s` (per hop), `link` (catalog name, e.g. 'ib-ndr-400'), `tier` (e.g. 'nvlink',
  'pcie', 'nic-leaf', 'leaf-spine', 'spine-core').
Hot loops never walk the graph: `dcsim.network` compiles it to arrays once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx

from dcsim.hardware import GPUSpec

if TYPE_CHECKING:
    from dcsim.network.compiled import CompiledNetwork

NODE_KINDS = ("gpu", "nvswitch", "nic", "leaf", "spine", "core", "storage")


@dataclass
class ClusterCaches:
    """What is derived from a cluster's graph once and reused: its compiled arrays and the
    closed-form plans of each collective call shape. Cleared when the graph changes."""

    network: CompiledNetwork | None = None
    collective_plans: dict[Any, Any] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget everything derived from the graph (call after editing it)."""
        self.network = None
        self.collective_plans.clear()


@dataclass
class Cluster:
    """A built cluster: the graph and the GPU ranks in server-major order."""

    name: str
    graph: nx.Graph
    gpu_spec: GPUSpec
    gpus_per_node: int
    gpu_nodes: list[Any]  # graph node id of each global GPU rank
    description: dict[str, Any] = field(default_factory=dict)  # resolved build parameters
    cache: ClusterCaches = field(default_factory=ClusterCaches, repr=False, compare=False)

    @property
    def n_gpus(self) -> int:
        return len(self.gpu_nodes)

    @property
    def n_nodes(self) -> int:
        return self.n_gpus // self.gpus_per_node

    def server_of(self, rank: int) -> int:
        """The server (node) index that holds a GPU rank."""
        return rank // self.gpus_per_node

    def same_server(self, ranks: tuple[int, ...] | list[int]) -> bool:
        """True when every rank of a group sits in one server (NVLink only)."""
        first = self.server_of(ranks[0])
        return all(self.server_of(r) == first for r in ranks)
