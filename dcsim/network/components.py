"""Connected components of flows that share links, by hooking and pointer jumping in numpy.

The flow network relabels the components that may have changed at every flow start and end,
thousands of times per training iteration, on a few hundred flows each; scipy's
connected_components spent most of its time validating and converting its input there.
"""

from __future__ import annotations

import numpy as np


def flow_components(lens: np.ndarray, links: np.ndarray) -> np.ndarray:
    """Component label (0..k-1, in order of first appearance) of each flow, given its links as
    CSR rows (`lens[i]` entries of `links` for flow i, every lens[i] >= 1): two flows are in one
    component when a chain of flows, consecutive ones sharing a link, joins them."""
    lens = np.asarray(lens, dtype=np.int64)
    n = len(lens)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any(lens < 1):
        raise ValueError("every flow needs at least one link")
    _, local = np.unique(links, return_inverse=True)
    local = local.reshape(-1)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    parent = np.arange(int(local.max()) + 1)
    while True:
        # hook: every link of a flow points at the smallest root among the flow's links
        roots = parent[local]
        low = np.repeat(np.minimum.reduceat(roots, starts), lens)
        before = parent.copy()
        np.minimum.at(parent, roots, low)
        # pointer jumping until every link points at a root
        while True:
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up
        if np.array_equal(parent, before):
            break
    root_of_flow = parent[local[starts]]
    _, first, labels = np.unique(root_of_flow, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[labels.reshape(-1)]
