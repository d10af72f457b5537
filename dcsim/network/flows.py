"""FlowNetwork: flows over routed paths in a simpy environment, sharing links max-min fairly.

Rates are recomputed only when flows start or end (one solve per batch of simultaneous events);
a single simpy process advances the flows and completes them. Flows are grouped in flow sets:
`transfer(...)` returns one simpy event that fires when every flow of its set is done, so a ring
step's n equal flows are one event, not n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import simpy

from dcsim.cluster import Cluster
from dcsim.network.compiled import compile_network
from dcsim.network.maxmin import max_min_rates
from dcsim.network.routing import Router

_DONE_BYTES = 1e-3  # a flow with less than this many bytes left is complete (float round-off)
_DONE_REL = 1e-9  # ... or less than this share of its size
_DONE_S = 1e-12  # ... or less than a picosecond of transfer left (merges simultaneous ends)


@dataclass
class _Pending:
    rows: sp.csr_matrix
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
        self._rows = sp.csr_matrix((0, n_l))
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
        self.link_bytes = np.zeros(n_l)  # bytes carried per directed link so far
        self.solves = 0
        env.process(self._run())

    # -- public ---------------------------------------------------------------------------------
    @property
    def active_flows(self) -> int:
        return len(self._rem)

    def rows_for(self, src, dst, tags=None) -> sp.csr_matrix:
        """Incidence rows (routed, cached) for rank pairs src[i] -> dst[i]."""
        n = len(src)
        tags = np.zeros(n, dtype=np.int64) if tags is None else np.asarray(tags)
        indptr = np.zeros(n + 1, dtype=np.int64)
        idx: list[int] = []
        val: list[float] = []
        cache = self._path_cache
        route = self.router.route
        for i in range(n):
            key = (int(src[i]), int(dst[i]), int(tags[i]))
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = route(*key)
            idx += hit[0]
            val += hit[1]
            indptr[i + 1] = len(idx)
        return sp.csr_matrix((np.asarray(val, dtype=float), np.asarray(idx, dtype=np.int64), indptr),
                             shape=(n, self.net.n_links))

    def transfer(self, src, dst, size_bytes, tags=None) -> simpy.Event:
        """Start flows src[i] -> dst[i] (GPU ranks) of size_bytes (scalar or per flow); the event
        fires when all of them have arrived."""
        src = np.atleast_1d(np.asarray(src, dtype=np.int64))
        dst = np.atleast_1d(np.asarray(dst, dtype=np.int64))
        return self.transfer_rows(self.rows_for(src, dst, tags), size_bytes)

    def transfer_storage(self, ranks, node, size_bytes, write: bool = True) -> simpy.Event:
        """Flows between GPU ranks and a fabric endpoint node (e.g. 'storage0'): writes go to the
        node, reads come from it; the event fires when all have arrived."""
        idx = self.net.node_index[node]
        ranks = np.atleast_1d(np.asarray(ranks, dtype=np.int64))
        n = len(ranks)
        indptr = np.zeros(n + 1, dtype=np.int64)
        links: list[int] = []
        vals: list[float] = []
        for i, r in enumerate(ranks):
            l, w = self.router.route_endpoint(int(r), idx, tag=i, to_node=write)
            links += l
            vals += w
            indptr[i + 1] = len(links)
        rows = sp.csr_matrix((np.asarray(vals), np.asarray(links, dtype=np.int64), indptr),
                             shape=(n, self.net.n_links))
        return self.transfer_rows(rows, size_bytes)

    def transfer_rows(self, rows: sp.csr_matrix, size_bytes) -> simpy.Event:
        """Start flows given directly as incidence rows (e.g. GPU->NVSwitch for NVLS)."""
        rows = sp.csr_matrix(rows)
        sizes = np.broadcast_to(np.asarray(size_bytes, dtype=float), (rows.shape[0],)).copy()
        if np.any(sizes < 0) or not np.all(np.isfinite(sizes)):
            raise ValueError("flow sizes must be finite and >= 0")
        event = self.env.event()
        trivial = (sizes <= _DONE_BYTES) | (np.diff(rows.indptr) == 0)
        keep = ~trivial
        if not keep.any():
            event.succeed()
            return event
        sid = self._next_set
        self._next_set += 1
        self._set_left[sid] = int(keep.sum())
        self._set_event[sid] = event
        self._pending.append(_Pending(rows[keep], sizes[keep], sid))
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
            moved = self._rate * dt
            self._rem -= moved
            self.link_bytes += self._rows.T @ moved

    def _complete(self) -> bool:
        if not len(self._rem):
            return False
        done = ((self._rem <= _DONE_BYTES) | (self._rem <= _DONE_REL * self._size)
                | (self._rem <= self._rate * _DONE_S))
        if not done.any():
            return False
        finished = self._set[done]
        # bytes left by round-off still count as carried
        self.link_bytes += self._rows[done].T @ np.maximum(self._rem[done], 0.0)
        keep = ~done
        self._rows = self._rows[keep]
        self._rem, self._size, self._set = self._rem[keep], self._size[keep], self._set[keep]
        ids, counts = np.unique(finished, return_counts=True)
        for sid, cnt in zip(ids.tolist(), counts.tolist()):
            self._set_left[sid] -= cnt
            if self._set_left[sid] == 0:
                del self._set_left[sid]
                self._set_event.pop(sid).succeed()
        return True

    def _admit(self) -> bool:
        if not self._pending:
            return False
        self._rows = sp.vstack([self._rows] + [p.rows for p in self._pending], format="csr")
        self._rem = np.concatenate([self._rem] + [p.sizes for p in self._pending])
        self._size = np.concatenate([self._size] + [p.sizes for p in self._pending])
        self._set = np.concatenate([self._set] + [np.full(len(p.sizes), p.set_id) for p in self._pending])
        self._pending.clear()
        return True

    def _run(self):
        env = self.env
        while True:
            self._advance()
            changed = self._complete()
            changed = self._admit() or changed
            if changed and len(self._rem):
                self._rate = max_min_rates(self._rows, self.capacity)
                self.solves += 1
            elif not len(self._rem):
                self._rate = np.zeros(0)
            self._wake = env.event()
            if len(self._rem):
                dt = float(np.min(self._rem / self._rate))
                yield env.timeout(max(dt, 0.0)) | self._wake
            else:
                yield self._wake
