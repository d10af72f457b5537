"""Traffic parts as routed flows on a FlowNetwork, and their bottleneck on those routes.

Pairs become one flow per pair; ring Channels one coupled flow per channel over all its edges
(a pipelined ring moves in lockstep, so a channel runs at its slowest edge's pace and leaves the
rest of its links' bandwidth to others); NVLS traffic one flow per GPU <-> NVSwitch link. A
part is routed once and kept: the same collective shapes recur every micro-batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcsim.collectives.base import Bottleneck, Channels, Pairs, SwitchTraffic, Traffic
from dcsim.network.flows import FlowNetwork, Paths
from dcsim.network.loads import bottleneck_of


@dataclass(frozen=True)
class RoutedPart:
    """A traffic part as flows: their routed paths, bytes per byte of the phase per flow, the
    load per link per byte and the largest path latency of its transfers."""

    paths: Paths
    weight: np.ndarray
    load: np.ndarray
    wire_latency_s: float


class PathMeter:
    """Routes traffic parts on a FlowNetwork (once per part) and measures them on those routes."""

    def __init__(self, network: FlowNetwork) -> None:
        self.network = network
        self.net = network.net
        self._routed: dict[int, tuple[Traffic, RoutedPart]] = {}  # id -> (part kept alive, routed)

    def routed(self, part: Traffic) -> RoutedPart:
        """The part as flows, routed on first use."""
        hit = self._routed.get(id(part))
        if hit is None:
            hit = self._routed[id(part)] = (part, self._route(part))
        return hit[1]

    def bottleneck(self, part: Traffic) -> Bottleneck:
        """The busiest link of the part on its routes."""
        r = self.routed(part)
        return bottleneck_of(self.net, r.load, r.wire_latency_s)

    # -- routing ------------------------------------------------------------------------------
    def _route(self, part: Traffic) -> RoutedPart:
        """Route every transfer of a part; couple ring channels into one flow each."""
        if isinstance(part, SwitchTraffic):
            return self._switch(part)
        edges = self.network.paths(part.src, part.dst)
        w_edge = part.weight if isinstance(part, Pairs) else part.edge_weight
        load, wire = self._load(edges, w_edge)
        if isinstance(part, Pairs):
            return RoutedPart(edges, np.asarray(w_edge, dtype=float), load, wire)
        return RoutedPart(_coupled(edges, part), part.channel_weight, load, wire)

    def _load(self, edges: Paths, weight: np.ndarray) -> tuple[np.ndarray, float]:
        """Bytes per link per byte, and the largest path latency, of routed transfers."""
        net = self.net
        row = np.repeat(np.arange(len(edges.lens)), edges.lens)
        load = np.bincount(edges.links, weights=edges.shares * weight[row], minlength=net.n_links)
        lat = np.bincount(row, weights=edges.shares * net.latency_s[edges.links], minlength=len(edges.lens))
        return load, float(lat.max()) if len(lat) else 0.0

    def _switch(self, part: SwitchTraffic) -> RoutedPart:
        """One single-link flow per GPU -> NVSwitch and NVSwitch -> GPU link."""
        net = self.net
        links = np.concatenate([net.rank_nvl_up[part.ranks], net.rank_nvl_down[part.ranks]])
        n_r = len(part.ranks)
        weight = np.concatenate([np.full(n_r, part.up_weight), np.full(n_r, part.down_weight)])
        paths = Paths(np.ones(len(links), dtype=np.int64), links.astype(np.int64), np.ones(len(links)))
        return RoutedPart(paths, weight, np.bincount(links, weights=weight, minlength=net.n_links), 0.0)


def _coupled(edges: Paths, part: Channels) -> Paths:
    """One flow per channel whose path is every routed edge of the channel."""
    bounds = np.concatenate([[0], np.cumsum(part.edges_per_channel)]).astype(np.int64)
    per_edge = np.concatenate([[0], np.cumsum(edges.lens)])
    lens = per_edge[bounds[1:]] - per_edge[bounds[:-1]]
    return Paths(lens.astype(np.int64), edges.links, edges.shares)
