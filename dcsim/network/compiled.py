"""The array form of a cluster graph, compiled once: directed links, capacities, attachment maps.

Every undirected graph edge (full duplex) becomes two directed links (u->v, v->u) with the
edge's per-direction bandwidth; a bundle of parallel cables between two switches (edge attribute
`links` > 1) becomes one pair per cable, each with its share, because a switch hashes (or
routes) a flow onto one port, not onto the bundle as a whole. Hot loops use these arrays, never
the graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_links(self) -> int:
        return len(self.link_src)

    def tier_of(self, link: int) -> str:
        return self.tier_names[int(self.link_tier[link])]


def compile_network(cluster: Cluster) -> CompiledNetwork:
    """Compile (once; cached in cluster.cache['network']) the graph into arrays."""
    cached = cluster.cache.get("network")
    if cached is not None:
        return cached
    g = cluster.graph
    node_ids = list(g.nodes)
    index = {n: i for i, n in enumerate(node_ids)}
    edges = list(g.edges(data=True))
    kinds = {i: g.nodes[n].get("kind") for i, n in enumerate(node_ids)}

    def cables(u, v, d) -> int:
        both_switches = kinds[index[u]] in SWITCH_LEVEL and kinds[index[v]] in SWITCH_LEVEL
        return max(1, int(d.get("links", 1))) if both_switches else 1

    per_edge = [cables(u, v, d) for u, v, d in edges]
    n_l = 2 * sum(per_edge)
    src = np.empty(n_l, dtype=np.int64)
    dst = np.empty(n_l, dtype=np.int64)
    cap = np.empty(n_l)
    good = np.empty(n_l)
    lat = np.empty(n_l)
    tiers: list[str] = []
    tier_code: dict[str, int] = {}
    ltier = np.empty(n_l, dtype=np.int64)
    link_of: dict = {}  # (u, v) -> the first (for a bundle) directed link id
    cable_links: dict = {}  # (u, v) -> every directed link id of the bundle
    factor_cache: dict[str, float] = {}
    lid = 0
    for (u, v, d), n_c in zip(edges, per_edge, strict=False):
        iu, iv = index[u], index[v]
        name = d.get("link", "")
        if name not in factor_cache:
            try:
                kind = hardware.link(name).kind
            except hardware.UnknownHardware:
                kind = ""
            factor_cache[name] = goodput_factor(name, kind)
        t = d.get("tier", "")
        if t not in tier_code:
            tier_code[t] = len(tiers)
            tiers.append(t)
        bw = d["bw_bytes_per_s"] / n_c
        for a, b in ((iu, iv), (iv, iu)):
            ids = []
            for _ in range(n_c):
                src[lid], dst[lid] = a, b
                cap[lid] = bw
                good[lid] = bw * factor_cache[name]
                lat[lid] = d.get("latency_s", 0.0)
                ltier[lid] = tier_code[t]
                ids.append(lid)
                lid += 1
            link_of[(a, b)] = ids[0]
            cable_links[(a, b)] = ids
    n_r = cluster.n_gpus
    rank_gpu = np.array([index[n] for n in cluster.gpu_nodes], dtype=np.int64)
    rank_server = np.array([g.nodes[n]["server"] for n in cluster.gpu_nodes], dtype=np.int64)
    nvl_up = np.full(n_r, -1, dtype=np.int64)
    nvl_down = np.full(n_r, -1, dtype=np.int64)
    nic = np.full(n_r, -1, dtype=np.int64)
    pcie_up = np.full(n_r, -1, dtype=np.int64)
    pcie_down = np.full(n_r, -1, dtype=np.int64)
    for r, gi in enumerate(rank_gpu):
        for nb in g.neighbors(node_ids[gi]):
            j = index[nb]
            if kinds[j] == "nvswitch":
                nvl_up[r], nvl_down[r] = link_of[(gi, j)], link_of[(j, gi)]
            elif kinds[j] == "nic":
                nic[r], pcie_up[r], pcie_down[r] = j, link_of[(gi, j)], link_of[(j, gi)]
    level = {i: SWITCH_LEVEL[k] for i, k in kinds.items() if k in SWITCH_LEVEL}
    leaves = sorted((i for i, lv in level.items() if lv == 1), key=lambda i: g.nodes[node_ids[i]].get("index", i))
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
    net = CompiledNetwork(
        node_ids=node_ids, node_index=index, link_src=src, link_dst=dst, capacity=cap, goodput=good,
        latency_s=lat, link_tier=ltier, tier_names=tiers, link_of=link_of, rank_gpu=rank_gpu,
        rank_server=rank_server, rank_nvl_up=nvl_up, rank_nvl_down=nvl_down, rank_nic=nic,
        rank_pcie_up=pcie_up, rank_pcie_down=pcie_down, nic_leaf=nic_leaf, leaf_number=leaf_number,
        up=up, down=down, cover=cover, level=level)
    cluster.cache["network"] = net
    return net
