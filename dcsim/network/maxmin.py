"""Max-min fair rates by progressive filling, vectorized over a sparse path-to-link incidence.

All unfrozen flows grow at the same pace until a link saturates; the flows crossing it freeze
(their rate is final) and filling continues for the rest (Bertsekas & Gallager, "Data
Networks", 2nd ed., section 6.5.2). One round costs two sparse mat-vecs; the number of rounds is
the number of distinct bottleneck levels, not the number of flows.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

REL_TOL = 1e-9  # a link is saturated when its residual is below this share of its capacity


def max_min_rates(incidence: sp.csr_matrix, capacity: np.ndarray,
                  rate_cap: np.ndarray | None = None) -> np.ndarray:
    """Max-min fair rate of every flow (row). incidence[f, l] is the share of flow f on link l
    (1 for a single path, fractions for split paths); capacity[l] in bytes/s; rate_cap[f] an
    optional per-flow ceiling (np.inf for none). A flow with no links gets its cap (or inf)."""
    a = sp.csr_matrix(incidence)
    n_f, n_l = a.shape
    rates = np.zeros(n_f)
    if n_f == 0:
        return rates
    caps = np.full(n_f, np.inf) if rate_cap is None else np.asarray(rate_cap, dtype=float).copy()
    at = a.T.tocsr()
    active = np.diff(a.indptr) > 0
    rates[~active] = caps[~active]
    cap = np.asarray(capacity, dtype=float)
    rem = cap.copy()
    tol = REL_TOL * cap
    while active.any():
        weight = at @ active.astype(float)
        used = weight > 0
        share = np.full(n_l, np.inf)
        share[used] = rem[used] / weight[used]
        inc = float(share.min()) if used.any() else np.inf
        headroom = caps[active] - rates[active]
        inc = min(inc, float(headroom.min()))
        if not np.isfinite(inc):
            rates[active] = np.inf
            break
        inc = max(inc, 0.0)
        rates[active] += inc
        rem -= inc * weight
        sat = used & (rem <= tol)
        rem[sat] = 0.0
        frozen = (a @ sat.astype(float)) > 0
        frozen |= rates >= caps * (1 - REL_TOL)
        newly = active & frozen
        if not newly.any():  # numerical corner: freeze the flows on the tightest link
            j = int(np.argmin(np.where(used, rem / np.maximum(weight, 1e-300), np.inf)))
            newly = active & (a[:, j].toarray().ravel() > 0)
            rem[j] = 0.0
        active &= ~newly
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
