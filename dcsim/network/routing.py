"""ECMP routing from the fabric's structure (up to the lowest common level, then down).

Paths never come from networkx: a packet climbs from its leaf to the first level whose switch
covers the destination leaf (the nearest common ancestors of a folded Clos), choosing among equal
uplinks by a seeded deterministic hash of (source, destination, tag, level); it then descends
through the switches that cover the destination. `dmodk` mode chooses by the destination
instead: at the i-th choice up, option (D // (k_1 * ... * k_{i-1})) mod k_i of k_i for
destination endpoint D (and among m parallel cables down, D mod m), the static routing InfiniBand subnet managers install on fat-trees (Zahavi et al.,
"D-Mod-K Routing Providing Non-Blocking Traffic for Shift Permutations on Real Life Fat Trees",
2010; OpenSM's ftree engine): shifts such as ring hops never share an uplink. `spray` mode splits
a flow evenly over all equal-cost choices (the expected load under ECMP, or per-packet spraying
/ adaptive routing), giving fractional path weights.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import scipy.sparse as sp

from dcsim.network.compiled import CompiledNetwork

_MASK = (1 << 64) - 1
ROUTING_MODES = ("ecmp", "dmodk", "spray")


def resolve_routing(routing: str, cluster) -> str:
    """`auto` resolved for this cluster (see default_routing); other modes as given."""
    if routing == "auto":
        return default_routing(cluster)
    if routing not in ROUTING_MODES:
        raise ValueError(f"run.routing: {routing!r} is not one of auto, {', '.join(ROUTING_MODES)}")
    return routing


def default_routing(cluster) -> str:
    """The routing a fabric runs by default: destination-mod-k on InfiniBand (its subnet
    manager's static fat-tree routing), hashed ECMP on Ethernet/RoCE."""
    g = cluster.graph
    for _a, _b, d in g.edges(data=True):
        if d.get("tier") == "nic-leaf":
            return "dmodk" if str(d.get("link", "")).startswith("ib-") else "ecmp"
    return "ecmp"


def mix64(x: int) -> int:
    """splitmix64 finalizer (Steele, Lea, Flood, "Fast splittable pseudorandom number generators",
    OOPSLA 2014): a cheap, well-mixed, deterministic 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class Router:
    """Routes between GPU ranks (and endpoints) of one compiled network."""

    def __init__(self, net: CompiledNetwork, seed: int = 0, mode: str = "ecmp",
                 flows_per_connection: int = 1) -> None:
        if mode not in ROUTING_MODES:
            raise ValueError(f"routing mode must be one of {', '.join(ROUTING_MODES)}, got {mode!r}")
        self.net, self.seed, self.mode = net, int(seed), mode
        if flows_per_connection < 1:
            raise ValueError(f"flows_per_connection must be >= 1, got {flows_per_connection}")
        self.flows_per_connection = int(flows_per_connection)  # ECMP: sub-flows hashed apart
        # destination-mod-k numbers endpoints leaf by leaf (the order a subnet manager walks
        # the tree in), so consecutive numbers sit side by side under one leaf
        eps = sorted(net.nic_leaf, key=lambda ep: (net.leaf_number[net.nic_leaf[ep]], ep))
        self._ep_number = {ep: i for i, ep in enumerate(eps)}
        self._up: dict = {}
        self._down: dict = {}
        self._spread: dict = {}

    # -- switch segment ---------------------------------------------------------------------
    def _down_table(self, s: int) -> dict[int, list]:
        """Switch s's down links (in their order) listed under every leaf number their far end
        covers: one pass per switch instead of one filter per (switch, leaf) pair."""
        tab = self._down.get(s)
        if tab is None:
            tab = defaultdict(list)
            cover = self.net.cover
            for x in self.net.down[s]:
                c = cover[x[1]]
                while c:
                    low = c & -c
                    tab[low.bit_length() - 1].append(x)
                    c ^= low
            self._down[s] = tab
        return tab

    def _up_cands(self, s: int, d: int) -> list:
        key = (s, d)
        c = self._up.get(key)
        if c is None:
            cover = self.net.cover
            allc = self.net.up[s]
            c = [x for x in allc if (cover[x[1]] >> d) & 1] or allc
            self._up[key] = c
        return c

    def _down_cands(self, s: int, d: int) -> list:
        c = self._down_table(s).get(d)
        if not c:
            raise RuntimeError(f"no route down from switch {self.net.node_ids[s]}")
        return c

    def switch_path(self, src_leaf: int, dst_leaf: int, key: int, dst: int | None = None) -> list[int]:
        """Links from src_leaf to dst_leaf (node indices) on one path: hashed by `key` (ECMP),
        or, given the destination endpoint `dst`, chosen by destination-mod-k."""
        net = self.net
        d = net.leaf_number[dst_leaf]
        s, out, level, div = src_leaf, [], 0, 1
        cover = net.cover
        while s != dst_leaf:
            up = not (cover[s] >> d) & 1
            c = self._up_cands(s, d) if up else self._down_cands(s, d)
            if len(c) == 1:
                link, s = c[0]
            elif dst is None:
                link, s = c[mix64(key + level) % len(c)]
            elif up:
                link, s = c[(dst // div) % len(c)]
                div *= len(c)
            else:  # parallel cables down: the same cable index the way up took (D mod m)
                link, s = c[dst % len(c)]
            out.append(link)
            level += 1
        return out

    def switch_spread(self, src_leaf: int, dst_leaf: int) -> dict[int, float]:
        """Links from src_leaf to dst_leaf with the share of a flow each carries (all ECMP paths)."""
        key = (src_leaf, dst_leaf)
        hit = self._spread.get(key)
        if hit is not None:
            return hit
        net = self.net
        d = net.leaf_number[dst_leaf]
        out: dict[int, float] = defaultdict(float)
        mass = {src_leaf: 1.0}
        while any(not (net.cover[s] >> d) & 1 for s in mass):
            nxt: dict[int, float] = defaultdict(float)
            for s, w in mass.items():
                if (net.cover[s] >> d) & 1:
                    nxt[s] += w
                    continue
                c = self._up_cands(s, d)
                share = w / len(c)
                for link, t in c:
                    out[link] += share
                    nxt[t] += share
            mass = nxt
        while any(s != dst_leaf for s in mass):
            nxt = defaultdict(float)
            for s, w in mass.items():
                if s == dst_leaf:
                    nxt[s] += w
                    continue
                c = self._down_cands(s, d)
                share = w / len(c)
                for link, t in c:
                    out[link] += share
                    nxt[t] += share
            mass = nxt
        res = dict(out)
        self._spread[key] = res
        return res

    # -- endpoints --------------------------------------------------------------------------
    def _fabric(self, src_ep: int, dst_ep: int, key: int) -> tuple[list[int], list[float]]:
        net = self.net
        ls, ld = net.nic_leaf[src_ep], net.nic_leaf[dst_ep]
        links = [net.link_of[(src_ep, ls)]]
        weights = [1.0]
        if ls != ld:
            q = self.flows_per_connection if self.mode == "ecmp" else 1
            if self.mode != "spray" and q == 1:
                seg = self.switch_path(ls, ld, key,
                                       self._ep_number[dst_ep] if self.mode == "dmodk" else None)
                links += seg
                weights += [1.0] * len(seg)
            elif self.mode != "spray":
                # q sub-flows of 1/q each, every one hashed onto its own path (they move in
                # step as one flow: the slowest path's share sets the pace of all)
                share: dict[int, float] = defaultdict(float)
                for i in range(q):
                    for link in self.switch_path(ls, ld, mix64(key ^ (i + 1) * 0x9E3779B9)):
                        share[link] += 1.0 / q
                links += list(share)
                weights += list(share.values())
            else:
                for link, w in self.switch_spread(ls, ld).items():
                    links.append(link)
                    weights.append(w)
        links.append(net.link_of[(ld, dst_ep)])
        weights.append(1.0)
        return links, weights

    def route(self, a: int, b: int, tag: int = 0) -> tuple[list[int], list[float]]:
        """Links (and the share of the flow on each) from GPU rank a to GPU rank b."""
        net = self.net
        if a == b:
            return [], []
        if net.rank_server[a] == net.rank_server[b]:
            if net.rank_nvl_up[a] >= 0:
                return [int(net.rank_nvl_up[a]), int(net.rank_nvl_down[b])], [1.0, 1.0]
            if net.rank_nic[a] == net.rank_nic[b]:
                return [int(net.rank_pcie_up[a]), int(net.rank_pcie_down[b])], [1.0, 1.0]
        na, nb = int(net.rank_nic[a]), int(net.rank_nic[b])
        key = mix64(self.seed ^ mix64((na << 32) ^ nb) ^ mix64(tag + 0x5BD1E995))
        links, weights = self._fabric(na, nb, key)
        return ([int(net.rank_pcie_up[a])] + links + [int(net.rank_pcie_down[b])],
                [1.0] + weights + [1.0])

    def route_endpoint(self, a: int, node: int, tag: int = 0, to_node: bool = True
                       ) -> tuple[list[int], list[float]]:
        """Links between GPU rank a and a fabric endpoint node (e.g. storage), either direction."""
        net = self.net
        na = int(net.rank_nic[a])
        if to_node:
            key = mix64(self.seed ^ mix64((na << 32) ^ node) ^ mix64(tag))
            links, w = self._fabric(na, node, key)
            return [int(net.rank_pcie_up[a])] + links, [1.0] + w
        key = mix64(self.seed ^ mix64((node << 32) ^ na) ^ mix64(tag))
        links, w = self._fabric(node, na, key)
        return links + [int(net.rank_pcie_down[a])], w + [1.0]

    def incidence(self, src: np.ndarray | list[int], dst: np.ndarray | list[int],
                  tags: np.ndarray | list[int] | None = None) -> sp.csr_matrix:
        """Path-to-link incidence (rows: the pairs, columns: links, values: flow share)."""
        n = len(src)
        tags = np.zeros(n, dtype=np.int64) if tags is None else tags
        indptr = np.zeros(n + 1, dtype=np.int64)
        idx: list[int] = []
        val: list[float] = []
        for i in range(n):
            links, w = self.route(int(src[i]), int(dst[i]), int(tags[i]))
            idx += links
            val += w
            indptr[i + 1] = len(idx)
        return sp.csr_matrix((np.asarray(val, dtype=float), np.asarray(idx, dtype=np.int64), indptr),
                             shape=(n, self.net.n_links))
