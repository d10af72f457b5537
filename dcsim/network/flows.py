"""FlowNetwork: flows over routed paths in a simpy environment, sharing links max-min fairly.

Rates are recomputed only when flows start or end, and only for the connected components of
the flow-link graph that changed (max-min rates are separable by component); a component's
rates are a pure function of its flows' paths, so repeated ones come from a cache. A single
simpy process advances the flows and completes them. Flows are grouped in flow sets:
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
from dcsim.network.components import flow_components
from dcsim.network.maxmin import csr_gather, max_min_csr
from dcsim.network.routing import Router, resolve_routing

_DONE_BYTES = 1e-3  # a flow with less than this many bytes left is complete (float round-off)
_DONE_REL = 1e-9  # ... or less than this share of its size
_DONE_S = 1e-12  # ... or less than a picosecond of transfer left (merges simultaneous ends)
# Component rate problems kept (cleared when full): Llama 3 405B on 16,384 GPUs meets ~6,000
# distinct ones in an iteration, a few KiB each; 0 turns the cache off.
RATE_CACHE_ENTRIES = 100_000
_NONE = np.zeros(0, dtype=np.int64)
_PAIRS_CACHE_ENTRIES = 4096  # routed lists of pairs kept (cleared when full)


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
                 routing: str = "auto", cache_entries: int = RATE_CACHE_ENTRIES) -> None:
        self.env = env
        self.cluster = cluster
        self.net = compile_network(cluster)
        self.routing = resolve_routing(routing, cluster)  # auto: what the fabric runs
        fabric = cluster.description.get("fabric") or {}
        self.router = Router(self.net, seed=seed, mode=self.routing,
                             flows_per_connection=int(fabric.get("flows_per_connection", 1)))
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
        self._pairs_cache: dict[bytes, Paths] = {}
        self._done_bytes = np.zeros(n_l)  # bytes per directed link of the flows completed
        self._comp = np.zeros(0, dtype=np.int64)  # component per live flow at the last solve
        self._next_comp = 0  # component labels are never reused
        # rates per component problem (its flows' lens, links, shares as bytes): the phases of a
        # training iteration repeat the same concurrent transfers many times over
        self._rate_cache: dict[bytes, np.ndarray] = {}
        self._cache_max = cache_entries
        self.solves = 0  # max-min computations (one per re-solve with a component not cached)
        self.cache_hits = 0  # components whose rates came from the cache
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
        """Routed paths (cached per pair, and per whole list of pairs: the same transfers recur
        every micro-batch) for rank pairs src[i] -> dst[i]."""
        key_all = None
        if tags is None and isinstance(src, np.ndarray) and isinstance(dst, np.ndarray):
            key_all = src.astype(np.int64).tobytes() + b"|" + dst.astype(np.int64).tobytes()
            hit_all = self._pairs_cache.get(key_all)
            if hit_all is not None:
                return hit_all
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
        out = Paths(lens, np.asarray(idx, dtype=np.int64), np.asarray(val, dtype=float))
        if key_all is not None:
            if len(self._pairs_cache) >= _PAIRS_CACHE_ENTRIES:
                self._pairs_cache.clear()
            self._pairs_cache[key_all] = out
        return out

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
        sizes = np.asarray(size_bytes, dtype=float)
        if sizes.shape != (n,):  # (an array of the right shape is only read, never changed)
            sizes = np.broadcast_to(sizes, (n,)).copy()
        if n and (sizes.min() < 0 or not np.isfinite(sizes).all()):
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

    def _complete(self) -> np.ndarray:
        """Retire the finished flows; the components they were part of (the rates of the flows
        left in those components may rise; every other flow keeps its rate)."""
        if not len(self._rem):
            return _NONE
        done = ((self._rem <= _DONE_BYTES) | (self._rem <= _DONE_REL * self._size)
                | (self._rem <= self._rate * _DONE_S))
        if not done.any():
            return _NONE
        finished = self._set[done]
        gone_comps = np.unique(self._comp[done])
        entry = np.repeat(done, self._lens)
        gone = self._links[entry]
        # a finished flow carried its whole size (bytes left by round-off included)
        carried = self._shares[entry] * np.repeat(self._size[done], self._lens[done])
        np.add.at(self._done_bytes, gone, carried)  # (a bincount over every link cost more)
        keep = ~done
        self._links, self._shares = self._links[~entry], self._shares[~entry]
        self._lens, self._rem = self._lens[keep], self._rem[keep]
        self._size, self._set, self._rate = self._size[keep], self._set[keep], self._rate[keep]
        self._comp = self._comp[keep]
        ids, counts = np.unique(finished, return_counts=True)
        for sid, cnt in zip(ids.tolist(), counts.tolist(), strict=False):
            self._set_left[sid] -= cnt
            if self._set_left[sid] == 0:
                del self._set_left[sid]
                self._set_event.pop(sid).succeed()
        return gone_comps

    def _admit(self) -> int:
        """Add the pending flows (component -1: not solved yet); how many."""
        if not self._pending:
            return 0
        new = self._pending
        n_new = sum(len(p.sizes) for p in new)
        self._lens = np.concatenate([self._lens] + [p.paths.lens for p in new])
        self._links = np.concatenate([self._links] + [p.paths.links for p in new])
        self._shares = np.concatenate([self._shares] + [p.paths.shares for p in new])
        self._rem = np.concatenate([self._rem] + [p.sizes for p in new])
        self._size = np.concatenate([self._size] + [p.sizes for p in new])
        self._set = np.concatenate([self._set] + [np.full(len(p.sizes), p.set_id) for p in new])
        self._rate = np.concatenate([self._rate, np.zeros(n_new)])
        self._comp = np.concatenate([self._comp, np.full(n_new, -1, dtype=np.int64)])
        self._pending = []
        return n_new

    def _affected(self, gone_comps: np.ndarray) -> np.ndarray:
        """Live flows whose rate may have changed: new ones, and those left in a component that
        lost flows."""
        aff = self._comp < 0
        if len(gone_comps):
            aff |= np.isin(self._comp, gone_comps)
        return aff

    def _resolve(self, affected: np.ndarray) -> None:
        """Max-min rates of the components holding an affected flow; the others keep theirs.
        Max-min rates are separable by component, and a component's rates depend only on its
        flows' paths and shares, so a component seen before takes its rates from the cache.
        Components are relabeled only where they may have changed: those that lost flows, and
        those that new flows joined (flows sharing a link with a new one, and their components)."""
        if not affected.any():
            return
        indptr = np.zeros(len(self._lens) + 1, dtype=np.int64)
        np.cumsum(self._lens, out=indptr[1:])
        new = self._comp < 0
        if new.any() and not affected.all():
            entry_new = np.repeat(new, self._lens)
            shared = np.isin(self._links, self._links[entry_new])
            flow_of = np.repeat(np.arange(len(self._lens)), self._lens)
            joined = np.unique(self._comp[flow_of[shared & ~entry_new]])
            if len(joined):
                affected = affected | np.isin(self._comp, joined)
        sub = np.flatnonzero(affected)
        labels = flow_components(self._lens[sub], self._links[csr_gather(indptr, sub)])
        self._comp[sub] = labels + self._next_comp
        self._next_comp += int(labels.max()) + 1
        order = np.argsort(labels, kind="stable")
        bounds = np.zeros(int(labels.max()) + 2, dtype=np.int64)
        np.cumsum(np.bincount(labels), out=bounds[1:])
        flows_sorted = sub[order]
        lens_sorted = self._lens[flows_sorted]
        pos = csr_gather(indptr, flows_sorted)  # entries of each component, contiguous
        links_sorted, shares_sorted = self._links[pos], self._shares[pos]
        e_bounds = np.zeros(len(flows_sorted) + 1, dtype=np.int64)
        np.cumsum(lens_sorted, out=e_bounds[1:])
        e_bounds = e_bounds[bounds]
        misses = []
        cache = self._rate_cache if self._cache_max else None
        for a, b, ea, eb in zip(bounds[:-1].tolist(), bounds[1:].tolist(),
                                e_bounds[:-1].tolist(), e_bounds[1:].tolist(), strict=False):
            flows, lens = flows_sorted[a:b], lens_sorted[a:b]
            links, shares = links_sorted[ea:eb], shares_sorted[ea:eb]
            key = lens.tobytes() + links.tobytes() + shares.tobytes() if cache is not None else None
            hit = cache.get(key) if cache is not None and key is not None else None
            if hit is not None:
                self._rate[flows] = hit
                self.cache_hits += 1
            else:
                misses.append((key, flows, lens, links, shares))
        if not misses:
            return
        lens = np.concatenate([m[2] for m in misses])
        m_indptr = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=m_indptr[1:])
        rates = max_min_csr(m_indptr, np.concatenate([m[3] for m in misses]),
                            np.concatenate([m[4] for m in misses]), self.capacity)
        self.solves += 1
        if len(self._rate_cache) + len(misses) > self._cache_max:
            self._rate_cache.clear()
        at = 0
        for key, flows, *_ in misses:
            r = rates[at:at + len(flows)]
            at += len(flows)
            self._rate[flows] = r
            if key is not None:
                self._rate_cache[key] = r

    def _run(self):
        """Advance, retire, admit, re-solve the components that changed (see `_resolve`)."""
        env = self.env
        while True:
            self._advance()
            gone_comps = self._complete()
            added = self._admit()
            if added or len(gone_comps):
                self._resolve(self._affected(gone_comps))
            self._wake = env.event()
            if len(self._rem):
                dt = float(np.min(self._rem / self._rate))
                yield env.timeout(max(dt, 0.0)) | self._wake
            else:
                yield self._wake
