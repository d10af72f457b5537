"""Max-min fair rates by progressive filling, vectorized over a sparse path-to-link incidence.

All unfrozen flows grow at the same pace until a link saturates; the flows crossing it freeze
(their rate is final) and filling continues for the rest (Bertsekas & Gallager, "Data
Networks", 2nd ed., section 6.5.2). The number of rounds is the number of distinct bottleneck
levels, not the number of flows. The solver works on raw CSR arrays over the links the flows
touch (not scipy matrices): the flow network solves thousands of small problems per
iteration, where scipy's per-call overhead, not arithmetic, was the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

REL_TOL = 1e-9  # levels within this relative distance are one level
_W_EPS = 1e-9  # an active weight below this on a link is round-off (no unfrozen flow left)


def csr_gather(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions (into indices/data) of the entries of the given CSR rows, concatenated."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    if len(rows) == 1:
        return np.arange(starts[0], starts[0] + lens[0])
    ends = np.cumsum(lens)
    return np.repeat(starts - ends + lens, lens) + np.arange(int(ends[-1]) if len(ends) else 0)


def max_min_rates(incidence: sp.csr_matrix, capacity: np.ndarray,
                  rate_cap: np.ndarray | None = None) -> np.ndarray:
    """Max-min fair rate of every flow (row). incidence[f, l] is the share of flow f on link l
    (1 for a single path, fractions for split paths); capacity[l] in bytes/s; rate_cap[f] an
    optional per-flow ceiling (np.inf for none). A flow with no links gets its cap (or inf)."""
    a = incidence if sp.isspmatrix_csr(incidence) else sp.csr_matrix(incidence, dtype=float)
    return max_min_csr(a.indptr, a.indices, np.asarray(a.data, dtype=float), capacity, rate_cap)


# Problems with more entries than this run the incremental rounds (work per round ~ the links
# a round touches); smaller ones run whole-array rounds (fewer numpy calls per round, which is
# what a small problem's round costs). Measured on the 2-core machine: GPT-3 175B / Llama 3 405B
# flow iterations (median 770 / 5,600 entries) and the k=48 permutation (190,000 entries).
DENSE_ROUNDS_MAX_ENTRIES = 32768


def max_min_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, capacity: np.ndarray,
                rate_cap: np.ndarray | None = None, rounds: str = "auto") -> np.ndarray:
    """max_min_rates on raw CSR arrays (rows: flows; indices: global link ids).

    All unfrozen flows share one rising level t, so a link saturates at
    t_l = (capacity_l - frozen load_l) / (active weight_l); the flows crossing the links that
    saturate first (or reaching their own cap) freeze at that level. rounds: 'dense',
    'incremental' or 'auto' (by size, see DENSE_ROUNDS_MAX_ENTRIES); all give the same rates.
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    n_f = len(indptr) - 1
    if n_f <= 0:
        return np.zeros(0)
    rates = np.zeros(n_f)
    caps = np.full(n_f, np.inf) if rate_cap is None else np.asarray(rate_cap, dtype=float).copy()
    lens = np.diff(indptr)
    active = lens > 0
    rates[~active] = caps[~active]
    if not active.any():
        return rates
    # Compact to the links the flows touch.
    used, local = np.unique(indices, return_inverse=True)
    local = local.reshape(-1)
    p = _Problem(indptr, lens, local, np.asarray(data, dtype=float),
                 np.asarray(capacity, dtype=float)[used], caps, active, rates)
    if rounds == "dense" or rounds == "auto" and len(local) <= DENSE_ROUNDS_MAX_ENTRIES:
        _dense_rounds(p)
    else:
        _incremental_rounds(p)
    return p.rates


@dataclass
class _Problem:
    """One max-min problem over compacted links (local ids 0..n_l-1), solved in place."""

    indptr: np.ndarray
    lens: np.ndarray
    local: np.ndarray  # local link id per entry
    data: np.ndarray  # share per entry
    cap: np.ndarray  # per local link
    caps: np.ndarray  # per-flow ceiling
    active: np.ndarray  # flows not frozen yet
    rates: np.ndarray

    @property
    def n_links(self) -> int:
        return len(self.cap)


def _dense_rounds(p: _Problem) -> None:
    """Progressive filling with whole-array rounds: every round recomputes the saturation level
    of every link from the active weight and the frozen load."""
    n_f, n_l = len(p.lens), p.n_links
    local, data, caps, active, rates = p.local, p.data, p.caps, p.active, p.rates
    flow_of = np.repeat(np.arange(n_f), p.lens)
    weight = np.bincount(local, weights=data, minlength=n_l)
    frozen_load = np.zeros(n_l)
    entry_active = active[flow_of]
    capped = active & np.isfinite(caps)
    n_active = int(active.sum())
    level = 0.0
    while n_active > 0:
        live = weight > _W_EPS
        t_sat = np.full(n_l, np.inf)
        t_sat[live] = (p.cap[live] - frozen_load[live]) / weight[live]
        t_link = float(t_sat.min())
        t_cap = float(caps[capped].min()) if capped.any() else np.inf
        t = min(t_link, t_cap)
        if not np.isfinite(t):
            rates[active] = np.inf
            return
        level = max(level, t)
        newly = np.zeros(n_f, dtype=bool)
        if t_link <= t * (1 + REL_TOL):
            sat = t_sat <= t_link * (1 + REL_TOL)
            newly[flow_of[entry_active & sat[local]]] = True
        if capped.any():
            newly |= capped & (caps <= level * (1 + REL_TOL))
        newly &= active
        if not newly.any():  # numerical corner: nothing to freeze at this level
            weight[t_sat <= t_link * (1 + REL_TOL)] = 0.0
            continue
        rates[newly] = np.minimum(level, caps[newly])
        active &= ~newly
        capped &= ~newly
        n_active -= int(newly.sum())
        ent = newly[flow_of]
        entry_active &= ~ent
        li, d = local[ent], data[ent]
        weight -= np.bincount(li, weights=d, minlength=n_l)
        frozen_load += np.bincount(li, weights=d * rates[flow_of[ent]], minlength=n_l)


def _incremental_rounds(p: _Problem) -> None:
    """Progressive filling touching only what changes: the transposed CSR maps a saturated link
    to its flows, only links touched by newly frozen flows are updated, and the scan shrinks to
    the links that still carry unfrozen flows."""
    n_f, n_l = len(p.lens), p.n_links
    indptr, lens, local, data, cap = p.indptr, p.lens, p.local, p.data, p.cap
    caps, active, rates = p.caps, p.active, p.rates
    flow_of = np.repeat(np.arange(n_f), lens)
    order = np.argsort(local, kind="stable")
    t_indptr = np.zeros(n_l + 1, dtype=np.int64)
    np.cumsum(np.bincount(local, minlength=n_l), out=t_indptr[1:])
    t_flows = flow_of[order]
    weight = np.bincount(local, weights=data, minlength=n_l)
    frozen_load = np.zeros(n_l)
    live = np.flatnonzero(weight > _W_EPS)
    t_sat = np.full(n_l, np.inf)
    t_sat[live] = cap[live] / weight[live]
    act_idx = np.flatnonzero(active)
    capped = act_idx[np.isfinite(caps[act_idx])]
    cap_order = capped[np.argsort(caps[capped], kind="stable")]
    mark = np.zeros(n_f, dtype=bool)  # scratch sets (cheaper than np.unique on small arrays)
    link_mark = np.zeros(n_l, dtype=bool)
    cp = 0
    n_active = len(act_idx)
    level = 0.0
    while n_active > 0:
        if live.size:
            ts = t_sat[live]
            t_link = float(ts.min())
        else:
            t_link = np.inf
        while cp < len(cap_order) and not active[cap_order[cp]]:
            cp += 1
        t_cap = caps[cap_order[cp]] if cp < len(cap_order) else np.inf
        t = min(t_link, t_cap)
        if not np.isfinite(t):
            rates[active] = np.inf
            return
        level = max(level, t)
        parts = []
        if t_link <= t * (1 + REL_TOL):
            sat = live[ts <= t_link * (1 + REL_TOL)]
            flows = t_flows[csr_gather(t_indptr, sat)]
            parts.append(flows[active[flows]])
        while cp < len(cap_order) and caps[cap_order[cp]] <= level * (1 + REL_TOL):
            if active[cap_order[cp]]:
                parts.append(cap_order[cp:cp + 1])
            cp += 1
        if len(parts) == 1:
            newly = parts[0]
            if len(newly) > 1:  # the flows of a saturated link, each once, in order
                mark[newly] = True
                newly = np.flatnonzero(mark)
                mark[newly] = False
        else:
            newly = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        if newly.size == 0:  # numerical corner: nothing to freeze at this level
            live = live[t_sat[live] > t_link * (1 + REL_TOL)]
            continue
        r_new = np.minimum(level, caps[newly])
        rates[newly] = r_new
        active[newly] = False
        n_active -= len(newly)
        pos = csr_gather(indptr, newly)
        li = local[pos]
        d = data[pos]
        np.subtract.at(weight, li, d)
        np.add.at(frozen_load, li, d * np.repeat(r_new, lens[newly]))
        link_mark[li] = True
        touched = np.flatnonzero(link_mark)
        link_mark[touched] = False
        w = weight[touched]
        ok = w > _W_EPS
        t_sat[touched] = np.inf
        t_sat[touched[ok]] = np.maximum(cap[touched[ok]] - frozen_load[touched[ok]], 0.0) / w[ok]
        live = live[np.isfinite(t_sat[live])]


def check_max_min(incidence: sp.csr_matrix, capacity: np.ndarray, rates: np.ndarray,
                  rate_cap: np.ndarray | None = None, rtol: float = 1e-6) -> list[str]:
    """Problems with a claimed max-min allocation (empty when it is one): feasibility, and the
    bottleneck certificate: every flow is at its cap or crosses a saturated link on which no flow
    has a higher rate."""
    a = sp.csr_matrix(incidence)
    problems: list[str] = []
    load = a.T @ rates
    cap = np.asarray(capacity, dtype=float)
    over = load > cap * (1 + rtol) + 1e-9
    if over.any():
        problems.append(f"{int(over.sum())} links over capacity")
    sat = load >= cap * (1 - rtol)
    caps = np.full(len(rates), np.inf) if rate_cap is None else np.asarray(rate_cap, dtype=float)
    coo = a.tocoo()
    max_rate = np.zeros(a.shape[1])
    np.maximum.at(max_rate, coo.col, rates[coo.row])
    for f in range(a.shape[0]):
        if rates[f] >= caps[f] * (1 - rtol):
            continue
        links = a.indices[a.indptr[f]:a.indptr[f + 1]]
        if len(links) == 0:
            continue
        ok = sat[links] & (rates[f] >= max_rate[links] * (1 - rtol))
        if not ok.any():
            problems.append(f"flow {f} has no bottleneck link")
            break
    return problems
