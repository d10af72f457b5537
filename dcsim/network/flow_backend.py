"""Collectives as flows: each algorithm becomes flow sets on a FlowNetwork.

The algorithm and protocol are those the analytical model picks for the call (or the forced
one), so both paths price the same algorithm; here its bandwidth term comes from max-min shared
flows instead of a closed form. Pipelined algorithms are one flow set per phase: a ring is one
coupled flow per channel over all its edges, moving 2(n-1)/n * S / channels over each (all
steps of a pipelined ring move that much over every edge, in lockstep, so the channel runs at
its slowest edge's rate), a double binary tree its edges in both directions, NVLS the GPU<->NVSwitch
links. A protocol moves bytes / efficiency (e.g. LL128 carries 120 payload bytes per 128).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import simpy

from dcsim.cluster import Cluster
from dcsim.collectives import (CollectiveCall, Option, Plan, _by_server, binary_tree,  # noqa: F401
                               double_binary_tree, ring_edges, select_plan, tree_edges)
from dcsim.network import nccl
from dcsim.network.flows import FlowNetwork, Paths


class FlowBackend:
    """Runs CollectiveCalls as flows on a FlowNetwork (created here unless one is given)."""

    def __init__(self, env: simpy.Environment, cluster: Cluster, network: FlowNetwork | None = None,
                 seed: int = 0, routing: str = "auto") -> None:
        self.env = env
        self.cluster = cluster
        self.network = network or FlowNetwork(env, cluster, seed=seed, routing=routing)

    def run(self, call: CollectiveCall) -> simpy.Process:
        """A process that ends when every group of the call is done."""
        return self.env.process(self._run(call))

    # -- driver ---------------------------------------------------------------------------------
    def _run(self, call: CollectiveCall):
        plan = select_plan(self.cluster, call)
        if plan is None or call.size_bytes <= 0 and call.op != "send_recv":
            if plan is not None:
                yield self.env.timeout(min(o.latency_s for o in plan.phases[0].options))
            return
        options = plan.choose(call.size_bytes)
        for i, (phase, opt) in enumerate(zip(plan.phases, options, strict=False)):
            b = call.size_bytes * phase.size_scale
            if opt.latency_s > 0:
                yield self.env.timeout(opt.latency_s)
            events = self._flows(call, plan, i, b, opt)
            if events:
                yield self.env.all_of(events)

    # -- flow patterns --------------------------------------------------------------------------
    def _ring(self, groups, weight: float, inter_only: bool = False) -> tuple[Paths, np.ndarray]:
        """One coupled flow per ring channel: its path is every edge of the channel, so it moves
        at the pace of its slowest edge, as a pipelined ring does (each step waits for the data
        of the step before); (paths, per-edge share of the buffer per channel)."""
        src, dst, n_rows = [], [], []
        shares = []
        for grp in groups:
            s, d, n_ch = ring_edges(self.cluster, grp)
            per_ch = len(s) // n_ch
            for c in range(n_ch):
                k = 0
                for a, b in zip(s[c * per_ch:(c + 1) * per_ch], d[c * per_ch:(c + 1) * per_ch], strict=False):
                    if inter_only and self.cluster.server_of(a) == self.cluster.server_of(b):
                        continue
                    src.append(a)
                    dst.append(b)
                    k += 1
                if k:
                    n_rows.append(k)
                    shares.append(weight / n_ch)
        edges = self.network.paths(np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64))
        bounds = np.concatenate([[0], np.cumsum(n_rows)]).astype(np.int64)
        per_edge = np.concatenate([[0], np.cumsum(edges.lens)])
        lens = per_edge[bounds[1:]] - per_edge[bounds[:-1]]
        return Paths(lens.astype(np.int64), edges.links, edges.shares), np.asarray(shares)

    def _tree(self, groups) -> tuple[list, list, list]:
        """Double binary tree across servers (one channel per local GPU/NIC), chains inside."""
        s_all, d_all, w_all = [], [], []
        for grp in groups:
            s, d, w = tree_edges(self.cluster, grp)
            s_all += s
            d_all += d
            w_all += w
        return s_all, d_all, w_all

    def _nvls_rows(self, groups, up_w: float, down_w: float, eff: float) -> tuple[sp.csr_matrix, np.ndarray]:
        net = self.network.net
        ranks = np.fromiter((r for g in groups for r in g), dtype=np.int64)
        links = np.concatenate([net.rank_nvl_up[ranks], net.rank_nvl_down[ranks]])
        sizes = np.concatenate([np.full(len(ranks), up_w), np.full(len(ranks), down_w)]) / eff
        n = len(links)
        rows = sp.csr_matrix((np.ones(n), links, np.arange(n + 1)), shape=(n, net.n_links))
        return rows, sizes

    def _flows(self, call: CollectiveCall, plan: Plan, phase: int, b: float, opt: Option) -> list:
        net = self.network
        c = self.cluster
        groups = call.groups
        n = max(len(g) for g in groups)
        eff = opt.efficiency if opt.efficiency > 0 else 1.0
        algo = plan.algorithm
        events = []

        def pairs(s, d, w):
            if s:
                events.append(net.transfer(s, d, np.asarray(w) * b / eff))

        def ring(paths_and_shares):
            paths, shares = paths_and_shares
            if len(paths):
                events.append(net.transfer_paths(paths, shares * b / eff))

        if algo == "ring":
            f = {"all_reduce": 2.0 * (n - 1) / n, "all_gather": (n - 1) / n,
                 "reduce_scatter": (n - 1) / n, "broadcast": 1.0}[call.op]
            ring(self._ring(groups, f))
        elif algo == "tree":
            pairs(*self._tree(groups))
        elif algo == "nvls":
            per_groups = [tuple(loc) for grp in groups for loc in _by_server(c, grp)]
            g = max(len(p) for p in per_groups)
            nvls_eff = nccl.NVLS_EFFICIENCY[nccl.gpu_arch(c.gpu_spec.name)]
            if call.op == "all_reduce":
                up = down = 1.0 + 1.0 / g
            elif call.op == "all_gather":
                up, down = 1.0 / n, 1.0
            else:
                up, down = 1.0, 1.0 / n
            rows, sizes = self._nvls_rows(per_groups, up, down, nvls_eff)
            events.append(net.transfer_rows(rows, sizes * b))
            if len({c.server_of(r) for r in groups[0]}) > 1:
                ring(self._ring(groups, 2.0 * (n - 1) / n, inter_only=True))
        elif algo == "hierarchical":
            if phase == 1:
                inter = []
                for grp in groups:
                    per = _by_server(c, grp)
                    for j in range(min(len(p) for p in per)):
                        inter.append(tuple(p[j] for p in per))
                m = len(inter[0])
                ring(self._ring(inter, 2.0 * (m - 1) / m))
            else:
                intra = [tuple(loc) for grp in groups for loc in _by_server(c, grp)]
                g = max(len(p) for p in intra)
                ring(self._ring(intra, (g - 1) / g))
        elif call.op == "all_to_all":
            s, d, w = [], [], []
            for grp in groups:
                for a in grp:
                    for bb in grp:
                        if a != bb:
                            s.append(a)
                            d.append(bb)
                            w.append(1.0 / len(grp))
            pairs(s, d, w)
        else:  # send_recv
            s = [a for grp in groups for a in grp[:-1]]
            d = [bb for grp in groups for bb in grp[1:]]
            pairs(s, d, [1.0] * len(s))
        return events
