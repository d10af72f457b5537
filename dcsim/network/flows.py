"""FlowNetwork: flows over routed paths in a simpy environment, sharing links max-min fairly.

Rates are recomputed only when flows start or end (one solve per batch of simultaneous events);
a single simpy process advances the flows and completes them. Flows are grouped in flow sets:
`transfer(...)` returns one simpy event that fires when every flow of its set is done, so a ring
step's n equal flows are one event, not n. Live flows are kept as raw CSR arrays (entries per
flow, link ids, shares), not scipy matrices: a training iteration starts and ends thousands of
small flow sets, and scipy's per-call overhead dominated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import simpy

from dcsim.cluster import Cluster
from dcsim.network.compiled import compile_network
from dcsim.network.maxmin import max_min_csr
from dcsim.network.routing import Router

_DONE_BYTES = 1e-3  # a flow with less than this many bytes left is complete (float round-off)
_DONE_REL = 1e-9  # ... or less than this share of its size
_DONE_S = 1e-12  # ... or less than a picosecond of transfer left (merges simultaneous ends)


@dataclass(frozen=True)
class Paths:
    """Routed flows as CSR rows: `lens[i]` entries for flow i, their link ids and shares."""

    lens: np.ndarray
    links: np.ndarray
    shares: np.ndarray

    @classmethod
    def of_csr(cls, rows: sp.csr_matrix) -> "Paths":
        rows = sp.csr_matrix(rows)
        return cls(np.diff(rows.indptr).astype(np.int64), rows.indices.astype(np.int64),
                   np.asarray(rows.data, dtype=float))

    def csr(self, n_links: int) -> sp.csr_matrix:
        indptr = np.zeros(len(self.lens) + 1, dtype=np.int64)
        np.cumsum(self.lens, out=indptr[1:])
        return sp.csr_matrix((self.shares, self.links, indptr), shape=(len(self.lens), n_links))

    def __len__(self) -> int:
        return len(self.lens)


@dataclass
class _Pending:
    paths: Paths
    sizes: np.ndarray
    set_id: int


class FlowNetwork:
    """Max-min fair flows on one cluster's compiled network, driven by a simpy environment."""

    def __init__(self, env: simpy.Environment, cluster: Cluster, seed: int = 0,
                 routing: str = "ecmp") -> None:
        self.env = env
        self.cluster = cluster
        self.net = compile_network(cluster)
        self.router = Router(self.net, seed=seed, mode=routing)
        self.capacity = self.net.goodput
        n_l = self.net.n_links
        # live flows: CSR entries (lens per flow; links, shares per entry) and per-flow state
        self._lens = np.zeros(0, dtype=np.int64)
        self._links = np.zeros(0, dtype=np.int64)
        self._shares = np.zeros(0)
        self._rem = np.zeros(0)
        self._size = np.zeros(0)
        self._rate = np.zeros(0)
        self._set = np.zeros(0, dtype=np.int64)
        self._pending: list[_Pending] = []
        self._set_left: dict[int, int] = {}
        self._set_event: dict[int, simpy.Event] = {}
        self._next_set = 0
        self._last = env.now
        self._wake: simpy.Event | None = None
        self._path_cache: dict = {}
        self._done_bytes = np.zeros(n_l)  # bytes per directed link of the flows completed
        self._link_use = np.zeros(n_l, dtype=np.int64)  # live flow entries per directed link
        self.solves = 0
        env.process(self._run())

    # -- public ---------------------------------------------------------------------------------
    @property
    def active_flows(self) -> int:
        return len(self._rem)

    @property
    def flow_sets(self) -> int:
        """Flow sets started so far (one per transfer that had bytes to move)."""
        return self._next_set

    @property
    def link_bytes(self) -> np.ndarray:
        """Bytes carried per directed link so far (completed flows plus live flows' progress)."""
        out = self._done_bytes.copy()
        if len(self._rem):
            moved = np.repeat(self._size - self._rem, self._lens)
            out += np.bincount(self._links, weights=self._shares * moved, minlength=len(out))
        return out

    def paths(self, src, dst, tags=None) -> Paths:
        """Routed paths (cached per pair) for rank pairs src[i] -> dst[i]."""
        n = len(src)
        lens = np.zeros(n, dtype=np.int64)
        idx: list[int] = []
        val: list[float] = []
        cache = self._path_cache
        route = self.router.route
        if tags is None:
            tags = [0] * n
        for i in range(n):
            key = (int(src[i]), int(dst[i]), int(tags[i]))
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = route(*key)
            idx += hit[0]
            val += hit[1]
            lens[i] = len(hit[0])
        return Paths(lens, np.asarray(idx, dtype=np.int64), np.asarray(val, dtype=float))

    def rows_for(self, src, dst, tags=None) -> sp.csr_matrix:
        """Incidence rows (routed, cached) for rank pairs src[i] -> dst[i]."""
        return self.paths(src, dst, tags).csr(self.net.n_links)

    def transfer(self, src, dst, size_bytes, tags=None) -> simpy.Event:
        """Start flows src[i] -> dst[i] (GPU ranks) of size_bytes (scalar or per flow); the event
        fires when all of them have arrived."""
        src = np.atleast_1d(np.asarray(src, dtype=np.int64))
        dst = np.atleast_1d(np.asarray(dst, dtype=np.int64))
        return self.transfer_paths(self.paths(src, dst, tags), size_bytes)

    def transfer_storage(self, ranks, node, size_bytes, write: bool = True) -> simpy.Event:
        """Flows between GPU ranks and a fabric endpoint node (e.g. 'storage0'): writes go to the
        node, reads come from it; the event fires when all have arrived."""
        idx = self.net.node_index[node]
        ranks = np.atleast_1d(np.asarray(ranks, dtype=np.int64))
        n = len(ranks)
        lens = np.zeros(n, dtype=np.int64)
        links: list[int] = []
        vals: list[float] = []
        for i, r in enumerate(ranks):
            l, w = self.router.route_endpoint(int(r), idx, tag=i, to_node=write)
            links += l
            vals += w
            lens[i] = len(l)
        paths = Paths(lens, np.asarray(links, dtype=np.int64), np.asarray(vals, dtype=float))
        return self.transfer_paths(paths, size_bytes)

    def transfer_rows(self, rows: sp.csr_matrix, size_bytes) -> simpy.Event:
        """Start flows given directly as incidence rows (e.g. GPU->NVSwitch for NVLS)."""
        return self.transfer_paths(Paths.of_csr(rows), size_bytes)

    def transfer_paths(self, paths: Paths, size_bytes) -> simpy.Event:
        """Start flows given as routed Paths; the event fires when all of them have arrived."""
        n = len(paths)
        sizes = np.broadcast_to(np.asarray(size_bytes, dtype=float), (n,)).copy()
        if np.any(sizes < 0) or not np.all(np.isfinite(sizes)):
            raise ValueError("flow sizes must be finite and >= 0")
        event = self.env.event()
        keep = (sizes > _DONE_BYTES) & (paths.lens > 0)
        if not keep.any():
            event.succeed()
            return event
        if not keep.all():
            entry = np.repeat(keep, paths.lens)
            paths = Paths(paths.lens[keep], paths.links[entry], paths.shares[entry])
            sizes = sizes[keep]
        sid = self._next_set
        self._next_set += 1
        self._set_left[sid] = len(sizes)
        self._set_event[sid] = event
        self._pending.append(_Pending(paths, sizes, sid))
        self._kick()
        return event

    # -- the process ----------------------------------------------------------------------------
    def _kick(self) -> None:
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _advance(self) -> None:
        dt = self.env.now - self._last
        self._last = self.env.now
        if dt > 0 and len(self._rem):
            self._rem -= self._rate * dt

    def _complete(self) -> bool:
        """Retire the finished flows; True when a remaining flow shared a link with one of
        them (its max-min rate may rise), False when the rest keep their rates."""
        if not len(self._rem):
            return False
        done = ((self._rem <= _DONE_BYTES) | (self._rem <= _DONE_REL * self._size)
                | (self._rem <= self._rate * _DONE_S))
        if not done.any():
            return False
        finished = self._set[done]
        entry = np.repeat(done, self._lens)
        gone = self._links[entry]
        # a finished flow carried its whole size (bytes left by round-off included)
        carried = self._shares[entry] * np.repeat(self._size[done], self._lens[done])
        self._done_bytes += np.bincount(gone, weights=carried, minlength=len(self._done_bytes))
        np.subtract.at(self._link_use, gone, 1)
        keep = ~done
        self._links, self._shares = self._links[~entry], self._shares[~entry]
        self._lens, self._rem = self._lens[keep], self._rem[keep]
        self._size, self._set, self._rate = self._size[keep], self._set[keep], self._rate[keep]
        ids, counts = np.unique(finished, return_counts=True)
        for sid, cnt in zip(ids.tolist(), counts.tolist()):
            self._set_left[sid] -= cnt
            if self._set_left[sid] == 0:
                del self._set_left[sid]
                self._set_event.pop(sid).succeed()
        return bool(len(self._rem)) and bool(self._link_use[gone].any())

    def _admit(self) -> tuple[int, bool]:
        """Add the pending flows; (how many, whether they share no link with the live ones)."""
        if not self._pending:
            return 0, True
        new = self._pending
        links = np.concatenate([p.paths.links for p in new])
        apart = not self._link_use[links].any()
        np.add.at(self._link_use, links, 1)
        self._lens = np.concatenate([self._lens] + [p.paths.lens for p in new])
        self._links = np.concatenate([self._links, links])
        self._shares = np.concatenate([self._shares] + [p.paths.shares for p in new])
        self._rem = np.concatenate([self._rem] + [p.sizes for p in new])
        self._size = np.concatenate([self._size] + [p.sizes for p in new])
        self._set = np.concatenate([self._set] + [np.full(len(p.sizes), p.set_id) for p in new])
        self._pending = []
        return sum(len(p.sizes) for p in new), apart

    def _solve(self, first: int = 0) -> None:
        """Max-min rates of the live flows from index `first` on (the earlier ones keep theirs:
        a solve from `first` is only asked for flows that share no link with earlier ones)."""
        lens = self._lens[first:]
        indptr = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        e0 = len(self._links) - int(indptr[-1])
        rates = max_min_csr(indptr, self._links[e0:], self._shares[e0:], self.capacity)
        self._rate = np.concatenate([self._rate[:first], rates]) if first else rates
        self.solves += 1

    def _run(self):
        """Advance, retire, admit, re-solve. Max-min rates are per connected component of the
        flow-link graph, so flows that share no link with the ones that came or went keep their
        rates: a solve covers only the new flows when they start apart from the live ones, and
        none is needed when the finished flows shared no link with the rest."""
        env = self.env
        while True:
            self._advance()
            touched = self._complete()
            n_old = len(self._rem)
            added, apart = self._admit()
            if touched or (added and not apart):
                self._solve()
            elif added:
                self._solve(first=n_old)
            self._wake = env.event()
            if len(self._rem):
                dt = float(np.min(self._rem / self._rate))
                yield env.timeout(max(dt, 0.0)) | self._wake
            else:
                yield self._wake
