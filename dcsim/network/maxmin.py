"""Max-min fair rates by progressive filling, vectorized over a sparse path-to-link incidence.

All unfrozen flows grow at the same pace until a link saturates; the flows crossing it freeze
(their rate is final) and filling continues for the rest (Bertsekas & Gallager, "Data
Networks", 2nd ed., section 6.5.2). One round costs two sparse mat-vecs; the number of rounds is
the number of distinct bottleneck levels, not the number of flows.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

REL_TOL = 1e-9  # levels within this relative distance are one level
_W_EPS = 1e-9  # an active weight below this on a link is round-off (no unfrozen flow left)


def max_min_rates(incidence: sp.csr_matrix, capacity: np.ndarray,
                  rate_cap: np.ndarray | None = None) -> np.ndarray:
    """Max-min fair rate of every flow (row). incidence[f, l] is the share of flow f on link l
    (1 for a single path, fractions for split paths); capacity[l] in bytes/s; rate_cap[f] an
    optional per-flow ceiling (np.inf for none). A flow with no links gets its cap (or inf).

    All unfrozen flows share one rising level t, so a link saturates at
    t_l = (capacity_l - frozen load_l) / (active weight_l); only links touched by newly frozen
    flows are updated, and the scan shrinks to the links that still carry unfrozen flows.
    """
    a = sp.csr_matrix(incidence, dtype=float)
    n_f, n_l = a.shape
    rates = np.zeros(n_f)
    if n_f == 0:
        return rates
    caps = np.full(n_f, np.inf) if rate_cap is None else np.asarray(rate_cap, dtype=float).copy()
    active = np.diff(a.indptr) > 0
    rates[~active] = caps[~active]
    if not active.any():
        return rates
    at = a.T.tocsr()
    cap = np.asarray(capacity, dtype=float)
    weight = at @ active.astype(float)
    frozen_load = np.zeros(n_l)
    live = np.flatnonzero(weight > _W_EPS)
    t_sat = np.full(n_l, np.inf)
    t_sat[live] = cap[live] / weight[live]
    act_idx = np.flatnonzero(active)
    cap_order = act_idx[np.argsort(caps[act_idx], kind="stable")]
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
            break
        level = max(level, t)
        parts = []
        if t_link <= t * (1 + REL_TOL):
            sat = live[ts <= t_link * (1 + REL_TOL)]
            flows = at[sat].indices
            parts.append(flows[active[flows]])
        while cp < len(cap_order) and caps[cap_order[cp]] <= level * (1 + REL_TOL):
            if active[cap_order[cp]]:
                parts.append(cap_order[cp:cp + 1])
            cp += 1
        newly = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        if newly.size == 0:  # numerical corner: nothing to freeze at this level
            live = live[t_sat[live] > t_link * (1 + REL_TOL)]
            continue
        rates[newly] = np.minimum(level, caps[newly])
        active[newly] = False
        n_active -= len(newly)
        sub = a[newly]
        rows = np.repeat(np.arange(len(newly)), np.diff(sub.indptr))
        np.add.at(weight, sub.indices, -sub.data)
        np.add.at(frozen_load, sub.indices, sub.data * rates[newly][rows])
        touched = np.unique(sub.indices)
        w = weight[touched]
        ok = w > _W_EPS
        t_sat[touched] = np.inf
        t_sat[touched[ok]] = np.maximum(cap[touched[ok]] - frozen_load[touched[ok]], 0.0) / w[ok]
        live = live[np.isfinite(t_sat[live])]
    return rates


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
