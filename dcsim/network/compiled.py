"""The array form of a cluster graph, compiled once: directed links, capacities, attachment maps.

Every undirected graph edge (full duplex) becomes two directed links (u->v, v->u) with the
edge's per-direction bandwidth; a bundle of parallel cables between two switches (edge attribute
`links` > 1) becomes one pair per cable, each with its share, because a switch hashes (or
routes) a flow onto one port, not onto the bundle as a whole. Hot loops use these arrays, never
the graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from dcsim import hardware
from dcsim.cluster import Cluster
from dcsim.network.efficiency import goodput_factor

SWITCH_LEVEL = {"leaf": 1, "spine": 2, "core": 3}


@dataclass
class CompiledNetwork:
    """Directed links as arrays plus what routing needs (all indices are ints)."""

    node_ids: list
    node_index: dict
    link_src: np.ndarray
    link_dst: np.ndarray
    capacity: np.ndarray  # raw bytes/s per direction
    goodput: np.ndarray  # payload bytes/s per direction (see efficiency.py)
    latency_s: np.ndarray
    link_tier: np.ndarray  # index into tier_names
    tier_names: list[str]
    link_of: dict  # (u_idx, v_idx) -> link id
    rank_gpu: np.ndarray
    rank_server: np.ndarray
    rank_nvl_up: np.ndarray  # gpu -> nvswitch link, -1 if none
    rank_nvl_down: np.ndarray
    rank_nic: np.ndarray  # NIC node index of a rank's GPU (-1 if none)
    rank_pcie_up: np.ndarray  # gpu -> nic
    rank_pcie_down: np.ndarray
    nic_leaf: dict  # endpoint node idx -> leaf node idx
    leaf_number: dict  # leaf node idx -> 0..L-1
    up: dict  # switch idx -> list[(link, neighbor)] toward higher levels
    down: dict  # switch idx -> list[(link, neighbor)] toward lower levels (switches only)
    cover: dict  # switch idx -> bitset (int) of leaf numbers reachable going down
    level: dict  # switch idx -> 1 leaf, 2 spine, 3 core
    load_model: Any = field(default=None, repr=False)  # dcsim.network.loads.LoadModel, built once

    @property
    def n_links(self) -> int:
        return len(self.link_src)

    def tier_of(self, link: int) -> str:
        return self.tier_names[int(self.link_tier[link])]


def compile_network(cluster: Cluster) -> CompiledNetwork:
    """Compile (once; cached in cluster.cache.network) the graph into arrays."""
    cached = cluster.cache.network
    if cached is not None:
        return cached
    g = cluster.graph
    node_ids = list(g.nodes)
    index = {n: i for i, n in enumerate(node_ids)}
    kinds = {i: g.nodes[n].get("kind") for i, n in enumerate(node_ids)}
    links = _directed_links(g, index, kinds)
    ranks = _rank_attachments(cluster, index, kinds, links.link_of)
    sw = _switch_structure(g, node_ids, index, kinds, links.cable_links)
    net = CompiledNetwork(
        node_ids=node_ids, node_index=index, link_src=links.src, link_dst=links.dst,
        capacity=links.capacity, goodput=links.goodput, latency_s=links.latency_s,
        link_tier=links.tier, tier_names=links.tier_names, link_of=links.link_of,
        rank_gpu=ranks.gpu, rank_server=ranks.server, rank_nvl_up=ranks.nvl_up,
        rank_nvl_down=ranks.nvl_down, rank_nic=ranks.nic, rank_pcie_up=ranks.pcie_up,
        rank_pcie_down=ranks.pcie_down, nic_leaf=sw.nic_leaf, leaf_number=sw.leaf_number,
        up=sw.up, down=sw.down, cover=sw.cover, level=sw.level)
    cluster.cache.network = net
    return net


@dataclass
class _Links:
    """The directed links of a graph and the maps from node pairs to them."""

    src: np.ndarray
    dst: np.ndarray
    capacity: np.ndarray
    goodput: np.ndarray
    latency_s: np.ndarray
    tier: np.ndarray
    tier_names: list[str]
    link_of: dict  # (u, v) -> the first (for a bundle) directed link id
    cable_links: dict  # (u, v) -> every directed link id of the bundle


def _directed_links(g: nx.Graph, index: dict, kinds: dict) -> _Links:
    """Two directed links per cable of every edge (one cable unless switches are bundled)."""

    def cables(iu: int, iv: int, d: dict) -> int:
        both_switches = kinds[iu] in SWITCH_LEVEL and kinds[iv] in SWITCH_LEVEL
        return max(1, int(d.get("links", 1))) if both_switches else 1

    src: list[int] = []
    dst: list[int] = []
    cap: list[float] = []
    good: list[float] = []
    lat: list[float] = []
    tier: list[int] = []
    tier_names: list[str] = []
    tier_code: dict[str, int] = {}
    factor_cache: dict[str, float] = {}
    link_of: dict = {}
    cable_links: dict = {}
    for u, v, d in g.edges(data=True):
        iu, iv = index[u], index[v]
        n_c = cables(iu, iv, d)
        name = d.get("link", "")
        if name not in factor_cache:
            factor_cache[name] = goodput_factor(name, _link_kind(name))
        t = d.get("tier", "")
        if t not in tier_code:
            tier_code[t] = len(tier_names)
            tier_names.append(t)
        bw = d["bw_bytes_per_s"] / n_c
        gp, la, tc = bw * factor_cache[name], d.get("latency_s", 0.0), tier_code[t]
        for a, b in ((iu, iv), (iv, iu)):
            first = len(src)
            for _ in range(n_c):
                src.append(a)
                dst.append(b)
                cap.append(bw)
                good.append(gp)
                lat.append(la)
                tier.append(tc)
            link_of[(a, b)] = first
            cable_links[(a, b)] = list(range(first, first + n_c))
    return _Links(np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64),
                  np.asarray(cap, dtype=float), np.asarray(good, dtype=float),
                  np.asarray(lat, dtype=float), np.asarray(tier, dtype=np.int64), tier_names,
                  link_of, cable_links)


def _link_kind(name: str) -> str:
    """The catalog kind of a link name ('' when the catalog does not know it)."""
    try:
        return hardware.link(name).kind
    except hardware.UnknownHardware:
        return ""


@dataclass
class _Ranks:
    """Per GPU rank: its node, server and the links that attach it."""

    gpu: np.ndarray
    server: np.ndarray
    nvl_up: np.ndarray
    nvl_down: np.ndarray
    nic: np.ndarray
    pcie_up: np.ndarray
    pcie_down: np.ndarray


def _rank_attachments(cluster: Cluster, index: dict, kinds: dict, link_of: dict) -> _Ranks:
    """Every rank's GPU node, server, NVSwitch links and NIC (with its PCIe links)."""
    g = cluster.graph
    n_r = cluster.n_gpus

    def none() -> np.ndarray:
        return np.full(n_r, -1, dtype=np.int64)

    out = _Ranks(np.array([index[n] for n in cluster.gpu_nodes], dtype=np.int64),
                 np.array([g.nodes[n]["server"] for n in cluster.gpu_nodes], dtype=np.int64),
                 none(), none(), none(), none(), none())
    for r, node in enumerate(cluster.gpu_nodes):
        gi = index[node]
        for nb in g.neighbors(node):
            j = index[nb]
            if kinds[j] == "nvswitch":
                out.nvl_up[r], out.nvl_down[r] = link_of[(gi, j)], link_of[(j, gi)]
            elif kinds[j] == "nic":
                out.nic[r], out.pcie_up[r], out.pcie_down[r] = j, link_of[(gi, j)], link_of[(j, gi)]
    return out


@dataclass
class _Switches:
    """What routing needs of the switch hierarchy (see CompiledNetwork)."""

    level: dict
    leaf_number: dict
    nic_leaf: dict
    up: dict
    down: dict
    cover: dict


def _switch_structure(g: nx.Graph, node_ids: list, index: dict, kinds: dict,
                      cable_links: dict) -> _Switches:
    """Switch levels, leaf numbers, endpoint leaves, up/down links and the leaves below each."""
    level = {i: SWITCH_LEVEL[k] for i, k in kinds.items() if k in SWITCH_LEVEL}
    leaves = sorted((i for i, lv in level.items() if lv == 1),
                    key=lambda i: g.nodes[node_ids[i]].get("index", i))
    leaf_number = {i: k for k, i in enumerate(leaves)}
    nic_leaf: dict = {}
    up: dict = {i: [] for i in level}
    down: dict = {i: [] for i in level}
    for i, lv in level.items():
        for nb in g.neighbors(node_ids[i]):
            j = index[nb]
            if j in level:
                if level[j] > lv:
                    up[i].extend((c, j) for c in cable_links[(i, j)])
                elif level[j] < lv:
                    down[i].extend((c, j) for c in cable_links[(i, j)])
            elif kinds[j] in ("nic", "storage") and lv == 1:
                nic_leaf[j] = i
    for i in level:
        up[i].sort()
        down[i].sort()
    cover: dict = {i: 1 << leaf_number[i] for i in leaves}
    for lv in (2, 3):
        for i, l2 in level.items():
            if l2 == lv:
                bits = 0
                for _, j in down[i]:
                    bits |= cover.get(j, 0)
                cover[i] = bits
    return _Switches(level, leaf_number, nic_leaf, up, down, cover)
