"""The shortcuts of the flow solver are exact: whole-array and incremental progressive filling
agree, and re-solving only the components that changed (flows that share no link, directly or
through others, with the ones that came or went keep their rates), with cached rates for
components seen before, gives the same finish times as re-solving everything at every event."""

from __future__ import annotations

import numpy as np
import pytest
import simpy
from hypothesis import given, settings, strategies as st

from dcsim.network import maxmin
from dcsim.network.flows import FlowNetwork
from topologies import build_cluster

from tests.test_flow_solver import problems


@settings(max_examples=100, deadline=None)
@given(problems())
def test_dense_and_incremental_rounds_agree(p) -> None:
    a, caps, rate_cap = p
    dense, incremental = (maxmin.max_min_csr(a.indptr, a.indices, a.data, caps, rate_cap, rounds=r)
                          for r in ("dense", "incremental"))
    assert incremental == pytest.approx(dense, rel=1e-9)
    assert maxmin.check_max_min(a, caps, dense, rate_cap) == []


class _AlwaysResolve(FlowNetwork):
    """The reference: every change re-solves every live flow, with no cache."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, cache_entries=0, **kwargs)

    def _affected(self, gone_comps: np.ndarray) -> np.ndarray:
        return np.ones(len(self._rem), dtype=bool)


@pytest.fixture(scope="module")
def cluster():
    return build_cluster("dgx-h100", nodes=8, fabric={"oversubscription": 4})


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.lists(st.tuples(st.integers(0, 63), st.integers(0, 63)),
                                   min_size=1, max_size=6),
                          st.floats(1e4, 1e9), st.floats(0, 2e-3)), min_size=1, max_size=12))
def test_partial_re_solves_match_full_re_solves(cluster, sets) -> None:
    ends = []
    for cls in (FlowNetwork, _AlwaysResolve):
        env = simpy.Environment()
        net = cls(env, cluster, seed=1)
        done: list[float] = [0.0] * len(sets)

        def start(i, pairs, size, delay, net=net, env=env, done=done):
            yield env.timeout(delay)
            yield net.transfer([a for a, _ in pairs], [b for _, b in pairs], size)
            done[i] = env.now

        for i, (pairs, size, delay) in enumerate(sets):
            env.process(start(i, pairs, size, delay))
        env.run()
        ends.append(done)
    assert ends[0] == pytest.approx(ends[1], rel=1e-9, abs=1e-15)


def test_disjoint_sets_are_solved_alone(cluster) -> None:
    env = simpy.Environment()
    net = FlowNetwork(env, cluster)
    a = net.transfer([0], [8], 1e9)   # server 0 -> 1
    env.run(until=1e-4)
    b = net.transfer([16], [24], 1e9)  # server 2 -> 3: no link in common with a
    env.run(a)
    env.run(b)
    assert net.solves == 2  # one per start; neither finish touched the other
    assert np.all(net.link_bytes >= 0)


def test_a_repeated_pattern_takes_its_rates_from_the_cache(cluster) -> None:
    """The same concurrent transfers, twice in a row: the second round solves nothing new and
    takes exactly as long as the first."""
    env = simpy.Environment()
    net = FlowNetwork(env, cluster, seed=3)
    src, dst = np.arange(0, 32), np.roll(np.arange(32, 64), 5)  # crosses the 4:1 spine
    times = []
    for _ in range(2):
        t0 = env.now
        env.run(net.transfer(src, dst, 1e8))
        times.append(env.now - t0)
    solves_first = net.solves
    assert net.cache_hits >= 1
    env.run(net.transfer(src, dst, 1e8))
    assert net.solves == solves_first  # nothing new to solve
    assert times[1] == pytest.approx(times[0], rel=1e-12)
    cold = FlowNetwork(simpy.Environment(), cluster, seed=3, cache_entries=0)
    cold_env = cold.env
    cold_env.run(cold.transfer(src, dst, 1e8))
    assert cold_env.now == pytest.approx(times[0], rel=1e-12)
