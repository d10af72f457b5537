"""Max-min solver: known answers and hypothesis properties (capacity, certificate)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

from dcsim.network.maxmin import check_max_min, max_min_rates


def _inc(paths, n_links, weights=None):
    rows, cols, vals = [], [], []
    for f, p in enumerate(paths):
        for j, l in enumerate(p):
            rows.append(f)
            cols.append(l)
            vals.append(1.0 if weights is None else weights[f][j])
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(paths), n_links))


def test_textbook_example():
    # link 0 (cap 1) shared by flows 0,1,2; link 1 (cap 2) by flows 2,3 -> 1/3,1/3,1/3,5/3
    a = _inc([[0], [0], [0, 1], [1]], 2)
    r = max_min_rates(a, np.array([1.0, 2.0]))
    assert r == pytest.approx([1 / 3, 1 / 3, 1 / 3, 5 / 3])


def test_caps_and_empty_rows():
    a = _inc([[0], [0], []], 1)
    r = max_min_rates(a, np.array([10.0]), rate_cap=np.array([2.0, np.inf, 7.0]))
    assert r == pytest.approx([2.0, 8.0, 7.0])


def test_fractional_paths():
    a = _inc([[0, 1]], 2, weights=[[0.5, 0.5]])
    assert max_min_rates(a, np.array([1.0, 1.0])) == pytest.approx([2.0])


@st.composite
def problems(draw):
    n_links = draw(st.integers(1, 12))
    n_flows = draw(st.integers(1, 40))
    paths = [draw(st.lists(st.integers(0, n_links - 1), min_size=1, max_size=5, unique=True))
             for _ in range(n_flows)]
    caps = np.array(draw(st.lists(st.floats(0.1, 100.0), min_size=n_links, max_size=n_links)))
    use_caps = draw(st.booleans())
    rate_cap = (np.array(draw(st.lists(st.floats(0.01, 50.0), min_size=n_flows, max_size=n_flows)))
                if use_caps else None)
    return _inc(paths, n_links), caps, rate_cap


@settings(max_examples=150, deadline=None)
@given(problems())
def test_max_min_properties(p):
    a, caps, rate_cap = p
    r = max_min_rates(a, caps, rate_cap)
    assert np.all(r > 0)
    assert check_max_min(a, caps, r, rate_cap) == []


@settings(max_examples=60, deadline=None)
@given(problems(), st.floats(1.01, 4.0))
def test_more_capacity_never_lowers_the_minimum(p, scale):
    a, caps, rate_cap = p
    r1 = max_min_rates(a, caps, rate_cap)
    r2 = max_min_rates(a, caps * scale, rate_cap)
    assert r2.min() >= r1.min() * (1 - 1e-9)
