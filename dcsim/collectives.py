"""Collectives priced in closed form (alpha-beta) over the routed, concurrently loaded network.

`analytical_time(cluster, call)` prices one CollectiveCall: every group of the call runs at once
(folding: the traffic of every replica is on the network), so the bandwidth term of each
algorithm is max(load / goodput) over all links for the traffic of all groups (see
dcsim/network/loads.py), and the latency term is NCCL's per-step model (dcsim/network/nccl.py)
bounded below by the wire latency of the paths. Algorithms: ring (NCCL channel rings,
rail-aligned across servers), tree (NCCL double binary tree), nvls (NVLink SHARP in a server,
NVLS-tree across servers), hierarchical (reduce-scatter in servers, all-reduce across, all-gather
in servers), direct (all-to-all, send/recv). `auto` takes the cheapest (algorithm, protocol) the
way NCCL's tuner does. The size-independent part of the work is memoized per call shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from dcsim.cluster import Cluster
from dcsim.network import nccl
from dcsim.network.compiled import compile_network
from dcsim.network.loads import LoadModel
from dcsim.vocabulary import COLLECTIVE_OPS

OPS = COLLECTIVE_OPS
ALGORITHMS = ("auto", "ring", "tree", "hierarchical", "direct", "nvls")
_ALLOWED = {
    "all_reduce": ("ring", "tree", "hierarchical", "nvls"),
    "all_gather": ("ring", "nvls"),
    "reduce_scatter": ("ring", "nvls"),
    "broadcast": ("ring",),
    "all_to_all": ("direct",),
    "send_recv": ("direct",),
}


@dataclass(frozen=True)
class CollectiveCall:
    """One collective over one or more concurrent groups of global GPU ranks.

    size_bytes is the per-rank buffer as nccl-tests defines it (all_reduce: the buffer;
    all_gather: the output; reduce_scatter: the input; all_to_all: the per-rank total;
    broadcast: the buffer; send_recv: the message, sent along each group's consecutive ranks).
    """

    op: str
    groups: tuple[tuple[int, ...], ...]
    size_bytes: float
    algorithm: str = "auto"

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}, got {self.op!r}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.algorithm != "auto" and self.algorithm not in _ALLOWED[self.op]:
            raise ValueError(f"algorithm {self.algorithm!r} does not apply to {self.op}; "
                             f"allowed: auto, {', '.join(_ALLOWED[self.op])}")
        if not (isinstance(self.size_bytes, (int, float)) and math.isfinite(self.size_bytes)
                and self.size_bytes >= 0):
            raise ValueError(f"size_bytes must be a finite number >= 0, got {self.size_bytes!r}")
        if not self.groups or not all(len(g) >= 1 for g in self.groups):
            raise ValueError("groups must be a non-empty tuple of non-empty rank tuples")
        for g in self.groups:
            if len(set(g)) != len(g):
                raise ValueError(f"a group repeats a rank: {g}")


@dataclass(frozen=True)
class CollectiveTime:
    """The predicted time of a call, its bandwidths (nccl-tests definitions) and what limited it."""

    time_s: float
    algorithm: str
    algbw_bytes_per_s: float
    busbw_bytes_per_s: float
    bottleneck: str  # the tier of the slowest link ('nvlink', 'nic-leaf', 'leaf-spine', ...) or 'latency'
    protocol: str = "Simple"


def bus_factor(op: str, n: int) -> float:
    """busbw / algbw as nccl-tests defines it (nccl-tests doc/PERFORMANCE.md)."""
    if n <= 1:
        return 0.0
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    return 1.0


# --- plans: the size-independent part ---------------------------------------------------------


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
        return self.min_bytes <= size < self.max_bytes


@dataclass(frozen=True)
class Phase:
    options: tuple[Option, ...]
    bottleneck: str
    size_scale: float = 1.0  # bytes of this phase per byte of the call


@dataclass(frozen=True)
class Plan:
    algorithm: str
    phases: tuple[Phase, ...]

    def choose(self, size: float) -> list[Option]:
        """The cheapest option of every phase for a call of `size` bytes."""
        out = []
        for ph in self.phases:
            b = size * ph.size_scale
            out.append(min((o for o in ph.options if o.applies(b)),
                           key=lambda o: o.latency_s + b * o.s_per_byte / (
                               nccl.tree_correction(o.protocol, b) if o.tree else 1.0)))
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
                corr = nccl.tree_correction(o.protocol, b) if o.tree else 1.0
                t = o.latency_s + b * o.s_per_byte / corr
                if t < best:
                    best, best_p = t, o.protocol
            total += best
            if best > worst:
                worst, proto, bn = best, best_p, ph.bottleneck
        return total, proto, bn


@dataclass(frozen=True)
class _Shape:
    n: int  # ranks per group (largest group)
    m: int  # servers per group
    g: int  # ranks per server (largest)
    nvswitch: bool


def _shape(cluster: Cluster, groups: tuple[tuple[int, ...], ...]) -> _Shape:
    g0 = max(groups, key=len)
    servers: dict[int, int] = {}
    for r in g0:
        s = cluster.server_of(r)
        servers[s] = servers.get(s, 0) + 1
    return _Shape(n=len(g0), m=len(servers), g=max(servers.values()),
                  nvswitch=cluster.gpus_per_node > 1 and cluster.gpu_spec.nvlink.startswith("nvlink"))


def _by_server(cluster: Cluster, group: Iterable[int]) -> list[list[int]]:
    """The group's ranks per server, servers in the order the group first reaches them.

    NCCL numbers a communicator's nodes by their first rank and connects rings and trees across
    nodes in that order (init.cc rankToNode; graph/connect.cc), so a job whose consecutive ranks
    sit under different leaves crosses the spine on every hop. Inside a server the order does not
    matter on an NVSwitch; ranks are sorted there.
    """
    out: dict[int, list[int]] = {}
    for r in group:
        out.setdefault(cluster.server_of(r), []).append(r)
    return [sorted(v) for v in out.values()]


def ring_edges(cluster: Cluster, group: tuple[int, ...]) -> tuple[list[int], list[int], int]:
    """NCCL-style channel rings over a group: (src, dst, n_channels); one edge per hop per channel.

    Across servers there is one channel per local GPU; channel c enters server i at local
    position (c - i) mod g and leaves it from the position before, so consecutive servers hand
    over on the same rail (NIC index) as rail-optimized fabrics require.
    """
    per = _by_server(cluster, group)
    if len(per) <= 1:
        ranks = per[0] if per else []
        return ranks, ranks[1:] + ranks[:1], 1
    n_ch = min(len(p) for p in per)
    src: list[int] = []
    dst: list[int] = []
    for c in range(n_ch):
        seq: list[int] = []
        for i, loc in enumerate(per):
            g = len(loc)
            e = (c - i) % g
            seq += loc[e:] + loc[:e]
        src += seq
        dst += seq[1:] + seq[:1]
    return src, dst, n_ch


def binary_tree(m: int) -> list[int]:
    """Parent of each of m ranks in NCCL's binary tree (-1 for the root, rank 0): a rank's
    parent flips its lowest set bit up one place, or clears it when that is out of range; odd
    ranks are leaves (NVIDIA/nccl src/graph/trees.cc, ncclGetBtree)."""
    parent = [-1] * m
    for r in range(1, m):
        bit = r & -r
        up = (r ^ bit) | (bit << 1)
        parent[r] = up if up < m else r ^ bit
    return parent


def double_binary_tree(m: int) -> tuple[list[int], list[int]]:
    """NCCL's two complementary trees over m ranks: the binary tree, and the same tree mirrored
    (m even) or shifted by one (m odd), so a rank is interior in at most one of them and the two
    halves of the buffer load every rank's links evenly (NVIDIA/nccl src/graph/trees.cc,
    ncclGetDtree; Sanders, Speck, Traeff, "Two-tree algorithms for full bandwidth broadcast,
    reduction and scan", Parallel Computing 2009)."""
    t1 = binary_tree(m)
    t2 = [-1] * m
    for r in range(m):
        if m % 2:
            p = t1[(r - 1) % m]
            t2[r] = -1 if p < 0 else (p + 1) % m
        else:
            p = t1[m - 1 - r]
            t2[r] = -1 if p < 0 else m - 1 - p
    return t1, t2


def tree_edges(cluster: Cluster, group: tuple[int, ...]) -> tuple[list[int], list[int], list[float]]:
    """NCCL's tree all-reduce as traffic: a double binary tree across servers (one channel per
    local GPU/NIC), chains inside; every edge in both directions (reduce up, broadcast down),
    each carrying 1 / (2 trees x channels) of the buffer. Returns (src, dst, bytes per byte)."""
    per = _by_server(cluster, group)
    m, g = len(per), min(len(p) for p in per)
    share = 1.0 / (2 * g)
    trees = double_binary_tree(m) if m > 1 else ([-1], [-1])
    src: list[int] = []
    dst: list[int] = []
    for c in range(g):
        for parent in trees:
            for i, p in enumerate(parent):
                if p >= 0:
                    a, b = per[i][c], per[p][c]
                    src += [a, b]
                    dst += [b, a]
            for loc in per:
                chain = loc[c:] + loc[:c]
                for a, b in zip(chain[:-1], chain[1:], strict=False):
                    src += [a, b]
                    dst += [b, a]
    return src, dst, [share] * len(src)


def _pattern(cluster: Cluster, groups, builder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s_all: list[np.ndarray] = []
    d_all: list[np.ndarray] = []
    w_all: list[np.ndarray] = []
    for grp in groups:
        s, d, w = builder(grp)
        s_all.append(np.asarray(s, dtype=np.int64))
        d_all.append(np.asarray(d, dtype=np.int64))
        w_all.append(np.broadcast_to(np.asarray(w, dtype=float), (len(s),)))
    return np.concatenate(s_all), np.concatenate(d_all), np.concatenate(w_all)


class _Planner:
    """Builds the plans of one call shape on one cluster."""

    def __init__(self, cluster: Cluster, op: str, groups: tuple[tuple[int, ...], ...]) -> None:
        self.c = cluster
        self.op = op
        self.groups = groups
        self.net = compile_network(cluster)
        self.lm = LoadModel.of(self.net)
        self.shape = _shape(cluster, groups)
        self.arch = nccl.gpu_arch(cluster.gpu_spec.name)
        self.nvl_wire = 0.0
        if self.shape.nvswitch:
            up = self.net.rank_nvl_up[groups[0][0]]
            self.nvl_wire = 2.0 * float(self.net.latency_s[up]) if up >= 0 else 0.0
        self.intra_hw = "nvlink" if self.shape.nvswitch else "pci"

    # -- helpers --
    def _ring_load(self, groups, weight: float, inter_only: bool = False):
        def build(grp):
            s, d, n_ch = ring_edges(self.c, grp)
            if inter_only:
                keep = [i for i in range(len(s)) if self.c.server_of(s[i]) != self.c.server_of(d[i])]
                s = [s[i] for i in keep]
                d = [d[i] for i in keep]
            return s, d, weight / n_ch
        s, d, w = _pattern(self.c, groups, build)
        return self.lm.bottleneck(s, d, w)

    def _ring_options(self, n: int, m: int, nsteps: int, inter_steps: int, busbw: float,
                      f: float, wire_inter: float, allreduce_like: bool) -> tuple[Option, ...]:
        """NCCL ring protocols for a ring of n ranks on m servers with topology bus bw `busbw`."""
        opts = []
        ppn = n / m
        for p in nccl.PROTOCOLS:
            intra = max(nccl.HW_LAT_US[self.intra_hw]["ring"][p] * 1e-6, self.nvl_wire)
            if m > 1:
                over = nccl.NET_OVERHEAD_US * (nccl.NET_OVERHEAD_SIMPLE_FACTOR if p == "Simple" else 1.0)
                intra = max(intra, over * 1e-6)
            # with one rank per server, NCCL charges the tree's network latency per step
            net_algo = "tree" if ppn == 1 else "ring"
            inter = max(nccl.HW_LAT_US["net"][net_algo][p] * 1e-6, wire_inter)
            lat = nccl.BASE_LAT_US["ring"][p] * 1e-6 + (nsteps - inter_steps) * intra + inter_steps * inter
            if p == "LL":
                bw = min(nccl.ll_max_bw(self.arch, m), busbw * nccl.RING_LL_FACTOR)
            elif p == "LL128":
                bw = busbw * nccl.RING_LL128_FACTOR
            else:
                bw = busbw
            opts.append(Option(p, lat, f / bw if bw > 0 else 0.0,
                               efficiency=bw / busbw if busbw > 0 and np.isfinite(busbw) else 1.0))
        return tuple(opts)

    def _nvls_intra(self, groups, up_w: float, down_w: float):
        """Bottleneck of NVLS traffic: per GPU up_w bytes to the NVSwitch, down_w back, per byte."""
        net = self.net
        load = np.zeros(net.n_links)
        ranks = np.fromiter((r for g in groups for r in g), dtype=np.int64)
        np.add.at(load, net.rank_nvl_up[ranks], up_w)
        np.add.at(load, net.rank_nvl_down[ranks], down_w)
        eff = nccl.NVLS_EFFICIENCY.get(self.arch, 0.0)
        ratio = load / (net.goodput * eff)
        i = int(np.argmax(ratio))
        return float(ratio[i]), net.tier_of(i)

    def _nvls_options(self, lat: float, spb: float, n_heads: int) -> tuple[Option, ...]:
        """NVLS/Simple on one server, one option per chunk size NCCL picks by size.

        tuning.cc prices NVLS as latency + size / bandwidth. The kernel is a pipeline of
        nccl.NVLS_STAGES[op] stages handing on loops of loopSize = nChannels * nHeads * chunk
        bytes (src/device/all_reduce.h: `loopSize = nChannels*nvls->nHeads*chunkSize`), with the
        chunk halved for mid sizes (enqueue.cc, nccl.nvls_chunk_bytes). The first loop's scatter
        and the last loop's gather run while the NVLink stage has nothing to do, so a k-stage
        pipeline adds (k - 1) loop times to the alpha-beta time: the usual fill and drain. Each
        stage is taken to move a loop at the collective's own rate (s_per_byte): they are coupled
        by the NCCL_STEPS FIFO and the copy stages have no measurement of their own here.
        """
        stages = nccl.NVLS_STAGES[self.op]
        opts = []
        for lo, hi, chunk in nccl.nvls_chunk_classes(n_heads):
            loop = nccl.NVLS_NCHANNELS * n_heads * chunk
            opts.append(Option("Simple", lat + (stages - 1) * loop * spb, spb,
                               min_bytes=lo, max_bytes=hi))
        return tuple(opts)

    # -- plans --
    def plans(self) -> tuple[Plan, ...]:
        sh = self.shape
        if sh.n <= 1:
            return ()
        return {
            "all_reduce": self._all_reduce,
            "all_gather": self._gather_scatter,
            "reduce_scatter": self._gather_scatter,
            "broadcast": self._broadcast,
            "all_to_all": self._all_to_all,
            "send_recv": self._send_recv,
        }[self.op]()

    def _ring_plan(self, f: float, nsteps: int, inter_steps: int, allreduce_like: bool) -> tuple[Plan, float, object]:
        sh = self.shape
        bn = self._ring_load(self.groups, f)
        busbw = f / bn.s_per_unit if bn.s_per_unit > 0 else math.inf
        wire_inter = bn.wire_latency_s if sh.m > 1 else 0.0
        opts = self._ring_options(sh.n, sh.m, nsteps, inter_steps, busbw, f, wire_inter, allreduce_like)
        return Plan("ring", (Phase(opts, bn.tier),)), busbw, bn

    def _all_reduce(self) -> tuple[Plan, ...]:
        sh = self.shape
        n, m = sh.n, sh.m
        f = 2.0 * (n - 1) / n
        ring, busbw, bn = self._ring_plan(f, 2 * (n - 1), 2 * (m - 1), True)
        plans = [ring]
        # tree (NCCL double binary tree across servers, chains inside). NCCL prices it from the
        # ring's bus bandwidth (a non-blocking network); where the tree's own traffic (it
        # crosses leaves far more than a ring) is the tighter bound, e.g. on an oversubscribed
        # spine, that bound wins, as it does for the same tree run as flows.
        tree_bn = self.lm.bottleneck(*_pattern(self.c, self.groups, lambda g: tree_edges(self.c, g)))
        wire_inter = bn.wire_latency_s if m > 1 else 0.0
        topts = []
        ppn = n / m
        for p in nccl.PROTOCOLS:
            intra = max(nccl.HW_LAT_US[self.intra_hw]["tree"][p] * 1e-6, self.nvl_wire)
            inter = max(nccl.HW_LAT_US["net"]["tree"][p] * 1e-6, wire_inter)
            lat = nccl.BASE_LAT_US["tree"][p] * 1e-6 + 2 * ((ppn - 1) * intra + math.floor(math.log2(m)) * inter)
            bus = busbw * nccl.TREE_FACTOR
            if p == "LL":
                bus = min(bus * nccl.TREE_LL_FACTOR, nccl.ll_max_bw(self.arch, m))
            elif p == "LL128":
                bus *= nccl.TREE_LL128_FACTOR_1NODE if m == 1 else nccl.TREE_LL128_FACTOR_MULTI
            algbw = bus * nccl.TREE_ALGBW_RATIO
            eff = bus / busbw
            spb = max(1.0 / algbw, tree_bn.s_per_unit / eff)
            topts.append(Option(p, lat, spb, tree=True, efficiency=eff))
        # the tier that bounds the Simple protocol (the last one priced) names the bottleneck
        tree_tier = tree_bn.tier if tree_bn.s_per_unit / eff > 1.0 / algbw else bn.tier
        plans.append(Plan("tree", (Phase(tuple(topts), tree_tier),)))
        # NVLS (one server) or NVLS-tree (across servers)
        if self.c.gpu_spec.nvls and sh.nvswitch and sh.g > 1 and nccl.NVLS_EFFICIENCY.get(self.arch):
            per_groups = [tuple(loc) for grp in self.groups for loc in _by_server(self.c, grp)]
            g = sh.g
            spb, tier = self._nvls_intra(per_groups, 1.0 + 1.0 / g, 1.0 + 1.0 / g)
            lat = nccl.HW_LAT_US["nvlink"]["nvls"]["Simple"] * 1e-6
            if m > 1:
                inter = self._ring_load(self.groups, f, inter_only=True)
                if inter.s_per_unit * 1.0 > spb:
                    spb, tier = inter.s_per_unit, inter.tier
                net_lat = max(nccl.HW_LAT_US["net"]["nvls_tree"]["Simple"] * 1e-6, inter.wire_latency_s)
                lat += 2 * math.floor(math.log2(m)) * net_lat
                # NVLS-tree keeps the alpha-beta form: its chunking and the depth of its pipeline
                # through the network tree are not modelled (see _nvls_options for one server)
                opts = (Option("Simple", lat, spb),)
            else:
                opts = self._nvls_options(lat, spb, g)
            plans.append(Plan("nvls", (Phase(opts, tier),)))
        # hierarchical: reduce-scatter in servers, all-reduce across, all-gather in servers
        if m > 1 and sh.g > 1:
            plans.append(self._hierarchical())
        return tuple(plans)

    def _hierarchical(self) -> Plan:
        sh = self.shape
        intra_groups = [tuple(loc) for grp in self.groups for loc in _by_server(self.c, grp)]
        g = sh.g
        bn_in = self._ring_load(intra_groups, (g - 1) / g)
        bus_in = ((g - 1) / g) / bn_in.s_per_unit if bn_in.s_per_unit > 0 else math.inf
        rs = self._ring_options(g, 1, g - 1, 0, bus_in, (g - 1) / g, 0.0, False)
        inter_groups = []
        for grp in self.groups:
            per = _by_server(self.c, grp)
            for j in range(min(len(p) for p in per)):
                inter_groups.append(tuple(p[j] for p in per))
        m = sh.m
        f = 2.0 * (m - 1) / m
        bn_x = self._ring_load(inter_groups, f)
        bus_x = f / bn_x.s_per_unit if bn_x.s_per_unit > 0 else math.inf
        ar = self._ring_options(m, m, 2 * (m - 1), 2 * (m - 1), bus_x, f, bn_x.wire_latency_s, True)
        return Plan("hierarchical", (Phase(rs, bn_in.tier), Phase(ar, bn_x.tier, 1.0 / g),
                                     Phase(rs, bn_in.tier)))

    def _gather_scatter(self) -> tuple[Plan, ...]:
        sh = self.shape
        n, m = sh.n, sh.m
        f = (n - 1) / n
        ring, _, _ = self._ring_plan(f, n - 1, m - 1, False)
        plans = [ring]
        if (self.c.gpu_spec.nvls and sh.nvswitch and m == 1 and sh.g > 1
                and nccl.NVLS_EFFICIENCY.get(self.arch)):
            if self.op == "all_gather":
                spb, tier = self._nvls_intra(self.groups, 1.0 / n, 1.0)
            else:
                spb, tier = self._nvls_intra(self.groups, 1.0, 1.0 / n)
            lat = nccl.HW_LAT_US["nvlink"]["nvls"]["Simple"] * 1e-6
            plans.append(Plan("nvls", (Phase(self._nvls_options(lat, spb, sh.g), tier),)))
        return tuple(plans)

    def _broadcast(self) -> tuple[Plan, ...]:
        sh = self.shape
        ring, _, _ = self._ring_plan(1.0, sh.n - 1, sh.m - 1 if sh.m > 1 else 0, False)
        return (ring,)

    def _p2p_options(self, bn, m_any: bool, f: float) -> tuple[Option, ...]:
        hw = "net" if m_any else self.intra_hw
        opts = []
        busbw = f / bn.s_per_unit if bn.s_per_unit > 0 else math.inf
        for p in nccl.PROTOCOLS:
            step = max(nccl.HW_LAT_US[hw]["ring"][p] * 1e-6, bn.wire_latency_s)
            lat = nccl.BASE_LAT_US["ring"][p] * 1e-6 + step
            if p == "LL":
                bw = min(nccl.ll_max_bw(self.arch, 2 if m_any else 1), busbw * nccl.RING_LL_FACTOR)
            elif p == "LL128":
                bw = busbw * nccl.RING_LL128_FACTOR
            else:
                bw = busbw
            opts.append(Option(p, lat, f / bw, efficiency=bw / busbw if np.isfinite(busbw) else 1.0))
        return tuple(opts)

    def _all_to_all(self) -> tuple[Plan, ...]:

        def build(grp):
            a = np.asarray(grp, dtype=np.int64)
            s = np.repeat(a, len(a))
            d = np.tile(a, len(a))
            return s, d, 1.0 / len(a)
        s, d, w = _pattern(self.c, self.groups, build)
        bn = self.lm.bottleneck(s, d, w)
        return (Plan("direct", (Phase(self._p2p_options(bn, self.shape.m > 1, 1.0), bn.tier),)),)

    def _send_recv(self) -> tuple[Plan, ...]:
        def build(grp):
            return list(grp[:-1]), list(grp[1:]), 1.0
        s, d, w = _pattern(self.c, self.groups, build)
        bn = self.lm.bottleneck(s, d, w)
        cross = any(self.c.server_of(a) != self.c.server_of(b) for a, b in zip(s, d, strict=False))
        return (Plan("direct", (Phase(self._p2p_options(bn, cross, 1.0), bn.tier),)),)


def collective_plans(cluster: Cluster, op: str, groups: tuple[tuple[int, ...], ...]) -> tuple[Plan, ...]:
    """The candidate plans of a call shape (memoized in cluster.cache)."""
    memo = cluster.cache.setdefault("collective_plans", {})
    key = (op, groups)
    hit = memo.get(key)
    if hit is None:
        n = cluster.n_gpus
        for grp in groups:
            for r in grp:
                if not 0 <= r < n:
                    raise ValueError(f"rank {r} is outside this cluster (0..{n - 1})")
        hit = _Planner(cluster, op, groups).plans()
        memo[key] = hit
    return hit


def select_plan(cluster: Cluster, call: CollectiveCall) -> Plan | None:
    """The plan `auto` (or the forced algorithm) uses for this call; None for 1-rank groups."""
    if max(len(g) for g in call.groups) <= 1:
        return None
    plans = _applicable(cluster, call)
    return min(plans, key=lambda p: p.time(call.size_bytes)[0])


def _applicable(cluster: Cluster, call: CollectiveCall) -> tuple[Plan, ...]:
    n = max(len(g) for g in call.groups)
    plans = cluster.cache.get("collective_plans", {}).get((call.op, call.groups))
    if plans is None:
        plans = collective_plans(cluster, call.op, tuple(tuple(int(r) for r in g) for g in call.groups))
        cluster.cache["collective_plans"][(call.op, call.groups)] = plans
    if call.algorithm != "auto":
        chosen = [p for p in plans if p.algorithm == call.algorithm]
        if not chosen:
            allowed = ", ".join(p.algorithm for p in plans)
            raise ValueError(f"algorithm {call.algorithm!r} does not apply to this {call.op} "
                             f"({n} ranks); applicable: {allowed}")
        plans = tuple(chosen)
    return plans


def analytical_time(cluster: Cluster, call: CollectiveCall) -> CollectiveTime:
    """Closed-form time of a call on a cluster: the cheapest applicable (algorithm, protocol)."""
    n = max(len(g) for g in call.groups)
    if n <= 1:
        return CollectiveTime(0.0, "none", 0.0, 0.0, "none", "none")
    plans = _applicable(cluster, call)
    best = None
    for plan in plans:
        t, proto, bn = plan.time(call.size_bytes)
        if best is None or t < best[0]:
            best = (t, plan.algorithm, proto, bn)
    t, algo, proto, bn = best
    algbw = call.size_bytes / t if t > 0 else 0.0
    return CollectiveTime(time_s=t, algorithm=algo, algbw_bytes_per_s=algbw,
                          busbw_bytes_per_s=algbw * bus_factor(call.op, n), bottleneck=bn,
                          protocol=proto)
