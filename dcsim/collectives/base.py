"""What an algorithm is made of: phases of traffic, and the priced form the back ends return.

An algorithm (one subclass of `Algorithm` per algorithm, see registry.py) says two things:
- `phases()`: its traffic, phase after phase (who sends how many bytes to whom, per byte of the
  call); phases run one after the other, the parts of a phase at once;
- `options(i, bottlenecks)`: NCCL's protocol terms of phase i (latency, seconds per byte, the
  protocol's share of the topology bandwidth), given the bottleneck a back end measured for each
  part of that phase (and for its `reference` parts, measured only to price it).
The closed-form back end measures the bottleneck of the phases' routed paths under load and
prices them; the flow back end turns the same parts into flows. Neither knows any algorithm.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Union

import numpy as np

from dcsim.cluster import Cluster
from dcsim.collectives import nccl

if TYPE_CHECKING:
    from dcsim.network.compiled import CompiledNetwork


# --- traffic ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Pairs:
    """Independent transfers src[i] -> dst[i] (GPU ranks) of weight[i] bytes per byte."""

    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True, eq=False)
class Channels:
    """Pipelined ring channels: channel k is edges_per_channel[k] consecutive edges (src -> dst)
    moving in lockstep, each edge carrying channel_weight[k] bytes per byte. A back end running
    flows couples a channel's edges into one flow (it runs at its slowest edge's pace)."""

    src: np.ndarray
    dst: np.ndarray
    edges_per_channel: np.ndarray
    channel_weight: np.ndarray

    @property
    def edge_weight(self) -> np.ndarray:
        """Bytes per byte on every edge (its channel's weight)."""
        return np.repeat(self.channel_weight, self.edges_per_channel)


@dataclass(frozen=True, eq=False)
class SwitchTraffic:
    """Every rank sends up_weight bytes per byte to its NVSwitch and receives down_weight back
    (NVLink SHARP), already divided by the share of the NVLink bandwidth NVLS reaches."""

    ranks: np.ndarray
    up_weight: float
    down_weight: float


Traffic = Union[Pairs, Channels, SwitchTraffic]


@dataclass(frozen=True)
class Phase:
    """One phase: its parts move at once; `size_scale` bytes of the phase per byte of the call.
    `reference` parts are measured for the pricing only (they move no bytes)."""

    parts: tuple[Traffic, ...]
    size_scale: float = 1.0
    reference: tuple[Traffic, ...] = ()


@dataclass(frozen=True)
class Bottleneck:
    """The slowest link of a traffic part: seconds per unit of weight, and where it is."""

    s_per_unit: float
    tier: str
    wire_latency_s: float  # the largest path latency among the part's transfers


# --- priced form ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One protocol of one phase: time = latency_s + bytes * s_per_byte / correction."""

    protocol: str
    latency_s: float
    s_per_byte: float
    tree: bool = False  # apply NCCL's tree correction factor
    efficiency: float = 1.0  # protocol bandwidth / topology bandwidth (flows carry bytes / this)
    # the phase sizes (bytes) this option is for: [min_bytes, max_bytes). NVLS has one option per
    # chunk size NCCL picks by size (nccl.nvls_chunk_classes); others apply at every size.
    min_bytes: float = 0.0
    max_bytes: float = math.inf

    def applies(self, size: float) -> bool:
        """Whether this option is the one for a phase of `size` bytes."""
        return self.min_bytes <= size < self.max_bytes

    def time(self, size: float) -> float:
        """Seconds for a phase of `size` bytes with this protocol."""
        corr = nccl.tree_correction(self.protocol, size) if self.tree else 1.0
        return self.latency_s + size * self.s_per_byte / corr


@dataclass(frozen=True)
class PricedPhase:
    """A phase with its protocol options and the tier of its bottleneck."""

    options: tuple[Option, ...]
    bottleneck: str
    size_scale: float = 1.0
    traffic: Phase | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Plan:
    """An algorithm priced for one call shape: its phases with their protocol options."""

    algorithm: str
    phases: tuple[PricedPhase, ...]

    def choose(self, size: float) -> list[Option]:
        """The cheapest option of every phase for a call of `size` bytes."""
        out = []
        for ph in self.phases:
            b = size * ph.size_scale
            out.append(min((o for o in ph.options if o.applies(b)), key=lambda o: o.time(b)))
        return out

    def time(self, size: float) -> tuple[float, str, str]:
        """(seconds, protocol of the longest phase, bottleneck of the longest phase)."""
        total, worst, proto, bn = 0.0, -1.0, "Simple", "none"
        for ph in self.phases:
            b = size * ph.size_scale
            best, best_p = math.inf, "Simple"
            for o in ph.options:
                if not o.applies(b):
                    continue
                t = o.time(b)
                if t < best:
                    best, best_p = t, o.protocol
            total += best
            if best > worst:
                worst, proto, bn = best, best_p, ph.bottleneck
        return total, proto, bn


# --- the algorithm ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What every algorithm of one call shape needs to know about the call and the cluster."""

    cluster: Cluster
    op: str
    groups: tuple[tuple[int, ...], ...]
    n: int  # ranks per group (largest group)
    m: int  # servers per group
    g: int  # ranks per server (largest)
    nvswitch: bool
    arch: str  # NCCL's GPU generation class
    intra_hw: str  # NCCL's link class inside a server: 'nvlink' or 'pci'
    nvl_wire_s: float  # GPU -> NVSwitch -> GPU wire latency (0 without an NVSwitch)
    # traffic built once per shape and shared by the algorithms that use it (the tree is priced
    # from the ring's bandwidth): key -> traffic
    shared: dict[tuple, Traffic] = field(default_factory=dict, compare=False, repr=False)

    def traffic(self, key: tuple, build: Callable[[], Traffic]) -> Traffic:
        """The traffic `key` of this shape, built on first use."""
        hit = self.shared.get(key)
        if hit is None:
            hit = self.shared[key] = build()
        return hit

    @classmethod
    def of(cls, cluster: Cluster, op: str, groups: tuple[tuple[int, ...], ...],
           net: CompiledNetwork) -> "Context":
        """The context of a call shape on a cluster (net: its compiled arrays)."""
        g0 = max(groups, key=len)
        servers: dict[int, int] = {}
        for r in g0:
            s = cluster.server_of(r)
            servers[s] = servers.get(s, 0) + 1
        nvswitch = cluster.gpus_per_node > 1 and cluster.gpu_spec.nvlink.startswith("nvlink")
        wire = 0.0
        if nvswitch:
            up = net.rank_nvl_up[groups[0][0]]
            wire = 2.0 * float(net.latency_s[up]) if up >= 0 else 0.0
        return cls(cluster, op, groups, n=len(g0), m=len(servers), g=max(servers.values()),
                   nvswitch=nvswitch, arch=nccl.gpu_arch(cluster.gpu_spec.name),
                   intra_hw="nvlink" if nvswitch else "pci", nvl_wire_s=wire)


class Algorithm(ABC):
    """One collective algorithm: its traffic (`phases`) and NCCL's protocol terms (`options`)."""

    name: ClassVar[str]  # what CollectiveCall.algorithm calls it
    ops: ClassVar[frozenset[str]]  # the collective ops it implements

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @classmethod
    def applies(cls, ctx: Context) -> bool:
        """Whether the algorithm can run this call shape (ops are checked by the registry)."""
        return True

    @abstractmethod
    def phases(self) -> tuple[Phase, ...]:
        """The traffic, phase by phase."""

    @abstractmethod
    def options(self, phase: int, bottlenecks: tuple[Bottleneck, ...]) -> tuple[tuple[Option, ...], str]:
        """Protocol options of phase `phase` and the tier that bounds it, given the bottleneck of
        each of its parts, then of each of its reference parts, in order."""
