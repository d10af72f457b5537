"""flow_components: the same partition as scipy's connected components of the flow-link graph."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st
from scipy.sparse.csgraph import connected_components

from dcsim.network.components import flow_components


@st.composite
def flow_links(draw):
    n = draw(st.integers(1, 40))
    n_links = draw(st.integers(1, 60))
    lens = np.asarray(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)))
    links = np.asarray(draw(st.lists(st.integers(0, n_links - 1), min_size=int(lens.sum()),
                                     max_size=int(lens.sum()))))
    return lens, links


@settings(max_examples=200, deadline=None)
@given(flow_links())
def test_same_partition_as_scipy(case) -> None:
    lens, links = case
    n = len(lens)
    mine = flow_components(lens, links)
    flow_of = np.repeat(np.arange(n), lens)
    used, local = np.unique(links, return_inverse=True)
    m = n + len(used)
    g = sp.csr_matrix((np.ones(len(flow_of)), (flow_of, n + local.reshape(-1))), shape=(m, m))
    _, ref = connected_components(g, directed=False)
    ref = ref[:n]
    assert np.array_equal(mine[:, None] == mine[None, :], ref[:, None] == ref[None, :])
    # labels are 0..k-1 in order of first appearance
    firsts = [int(np.flatnonzero(mine == k)[0]) for k in range(int(mine.max()) + 1)]
    assert firsts == sorted(firsts)


def test_a_chain_is_one_component_and_apart_flows_are_not() -> None:
    # flows 0-1-2-3 chained by shared links; flow 4 alone
    lens = np.array([2, 2, 2, 2, 1])
    links = np.array([0, 1, 1, 2, 2, 3, 3, 4, 9])
    assert flow_components(lens, links).tolist() == [0, 0, 0, 0, 1]


def test_a_flow_without_links_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one link"):
        flow_components(np.array([1, 0]), np.array([3]))
