"""Link loads of a traffic pattern under spread (expected-ECMP) routing, vectorized.

A pattern is arrays (src rank, dst rank, bytes). The load of every directed link is the sum of
the bytes of the pairs that cross it; the bandwidth term of a collective is then
max(load / goodput) over links. Fabric segments are aggregated per (source leaf, destination
leaf) so a pattern of thousands of pairs costs a few numpy calls.
"""

from __future__ import annotations

import numpy as np

from dcsim.collectives.base import Bottleneck
from dcsim.network.compiled import CompiledNetwork
from dcsim.network.routing import Router


def bottleneck_of(net: CompiledNetwork, load: np.ndarray, wire_latency_s: float) -> Bottleneck:
    """max(load / goodput) over links, with the tier of the worst link."""
    ratio = load / net.goodput
    i = int(np.argmax(ratio))
    if ratio[i] <= 0:
        return Bottleneck(0.0, "none", wire_latency_s)
    return Bottleneck(float(ratio[i]), net.tier_of(i), wire_latency_s)


class LoadModel:
    """Per-network helper (cached on the compiled network) for pattern loads."""

    def __init__(self, net: CompiledNetwork) -> None:
        self.net = net
        self.router = Router(net, seed=0, mode="spray")
        n_r = len(net.rank_gpu)
        self.rank_nic_up = np.full(n_r, -1, dtype=np.int64)
        self.rank_nic_down = np.full(n_r, -1, dtype=np.int64)
        self.rank_leaf = np.full(n_r, -1, dtype=np.int64)
        for r in range(n_r):
            nic = int(net.rank_nic[r])
            leaf = net.nic_leaf.get(nic)
            if leaf is not None:
                self.rank_leaf[r] = leaf
                self.rank_nic_up[r] = net.link_of[(nic, leaf)]
                self.rank_nic_down[r] = net.link_of[(leaf, nic)]
        self._spread: dict = {}

    @staticmethod
    def of(net: CompiledNetwork) -> "LoadModel":
        lm = net.load_model
        if lm is None:
            lm = net.load_model = LoadModel(net)
        return lm

    def _spread_arrays(self, ls: int, ld: int) -> tuple[np.ndarray, np.ndarray, float]:
        key = (ls, ld)
        hit = self._spread.get(key)
        if hit is None:
            d = self.router.switch_spread(ls, ld)
            links = np.fromiter(d.keys(), dtype=np.int64, count=len(d))
            w = np.fromiter(d.values(), dtype=float, count=len(d))
            hit = (links, w, float(np.dot(w, self.net.latency_s[links])))
            self._spread[key] = hit
        return hit

    def loads(self, src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
        """Bytes on every directed link, and the largest path latency, for pairs src->dst."""
        net = self.net
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        w = np.asarray(w, dtype=float)
        keep = src != dst
        src, dst, w = src[keep], dst[keep], w[keep]
        load = np.zeros(net.n_links)
        if len(src) == 0:
            return load, 0.0
        same = net.rank_server[src] == net.rank_server[dst]
        wire = 0.0
        nv = same & (net.rank_nvl_up[src] >= 0)
        if nv.any():
            np.add.at(load, net.rank_nvl_up[src[nv]], w[nv])
            np.add.at(load, net.rank_nvl_down[dst[nv]], w[nv])
            wire = float(np.max(net.latency_s[net.rank_nvl_up[src[nv]]]
                                + net.latency_s[net.rank_nvl_down[dst[nv]]]))
        pc = same & ~nv
        if pc.any():  # same server, no NVSwitch: through the shared NIC / PCIe switch
            np.add.at(load, net.rank_pcie_up[src[pc]], w[pc])
            np.add.at(load, net.rank_pcie_down[dst[pc]], w[pc])
            wire = max(wire, float(np.max(net.latency_s[net.rank_pcie_up[src[pc]]] * 2)))
        x = ~same
        if x.any():
            s, d, wx = src[x], dst[x], w[x]
            if (self.rank_leaf[s] < 0).any() or (self.rank_leaf[d] < 0).any():
                raise ValueError("ranks on different servers but the cluster has no fabric between them")
            for arr in (net.rank_pcie_up[s], self.rank_nic_up[s], self.rank_nic_down[d], net.rank_pcie_down[d]):
                np.add.at(load, arr, wx)
            base = (net.latency_s[net.rank_pcie_up[s]] + net.latency_s[self.rank_nic_up[s]]
                    + net.latency_s[self.rank_nic_down[d]] + net.latency_s[net.rank_pcie_down[d]])
            ls, ld = self.rank_leaf[s], self.rank_leaf[d]
            cross = ls != ld
            fab_lat = 0.0
            if cross.any():
                n_nodes = len(net.node_ids)
                code = ls[cross] * n_nodes + ld[cross]
                uniq, inv = np.unique(code, return_inverse=True)
                demand = np.bincount(inv, weights=wx[cross])
                parts_l, parts_w = [], []
                for k, c in enumerate(uniq):
                    links, sw, lat = self._spread_arrays(int(c // n_nodes), int(c % n_nodes))
                    parts_l.append(links)
                    parts_w.append(sw * demand[k])
                    fab_lat = max(fab_lat, lat)
                np.add.at(load, np.concatenate(parts_l), np.concatenate(parts_w))
            wire = max(wire, float(np.max(base)) + fab_lat)
        return load, wire

    def bottleneck(self, src, dst, w) -> Bottleneck:
        """max(load/goodput) over links, with the tier of the worst link."""
        load, wire = self.loads(src, dst, w)
        return bottleneck_of(self.net, load, wire)
