"""FlowNetwork: timing of simple transfers, fair sharing, events per flow set, conservation."""

from __future__ import annotations

import numpy as np
import pytest
import simpy
from hypothesis import given, settings, strategies as st

from dcsim.network.efficiency import IB_GOODPUT, NVLINK_GOODPUT
from dcsim.network.flows import FlowNetwork
from topologies import build_cluster


@pytest.fixture(scope="module")
def h100x4():
    return build_cluster("dgx-h100", nodes=4)


def test_single_flow_time(h100x4):
    env = simpy.Environment()
    net = FlowNetwork(env, h100x4)
    ev = net.transfer([0], [8], 1e9)
    env.run(ev)
    assert env.now == pytest.approx(1e9 / (50e9 * IB_GOODPUT))


def test_two_flows_share_a_link_then_speed_up(h100x4):
    env = simpy.Environment()
    net = FlowNetwork(env, h100x4)
    bw = 450e9 * NVLINK_GOODPUT["nvlink4"]
    a = net.transfer([0], [1], 1e9)
    b = net.transfer([0], [2], 2e9)  # both leave GPU 0 over its NVLink
    env.run(a)
    assert env.now == pytest.approx(2e9 / bw)  # half rate until a is done
    env.run(b)
    assert env.now == pytest.approx(3e9 / bw)


def test_one_event_and_one_solve_per_symmetric_set(h100x4):
    env = simpy.Environment()
    net = FlowNetwork(env, h100x4)
    ranks = np.arange(8)
    ev = net.transfer(ranks, np.roll(ranks, -1), 1e8)
    env.run(ev)
    assert net.solves == 1 and net.active_flows == 0


def test_trivial_transfers_complete_now(h100x4):
    env = simpy.Environment()
    net = FlowNetwork(env, h100x4)
    ev = net.transfer([3], [3], 1e9)
    env.run(ev)
    assert env.now == 0.0


def test_later_flows_start_later(h100x4):
    env = simpy.Environment()
    net = FlowNetwork(env, h100x4)
    done = {}

    def proc():
        yield env.timeout(1.0)
        yield net.transfer([0], [8], 1e9)
        done["t"] = env.now

    env.process(proc())
    env.run()
    assert done["t"] == pytest.approx(1.0 + 1e9 / (50e9 * IB_GOODPUT))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 31), st.integers(0, 31), st.floats(1e3, 1e9),
                          st.floats(0, 1e-3)), min_size=1, max_size=25))
def test_bytes_conserved_and_capacity_respected(h100x4, flows):
    env = simpy.Environment()
    net = FlowNetwork(env, h100x4, seed=3)
    finished = []

    def start(a, b, size, delay):
        yield env.timeout(delay)
        yield net.transfer([a], [b], size)
        finished.append(env.now)

    for a, b, size, delay in flows:
        env.process(start(a, b, size, delay))
    env.run()
    assert len(finished) == len(flows)
    expected = np.zeros(net.net.n_links)
    for a, b, size, _ in flows:
        rows = net.rows_for([a], [b])
        expected += rows.T @ np.array([size])
    assert net.link_bytes == pytest.approx(expected, rel=1e-6, abs=1e-2)
    # no link carried more than its capacity over the whole run
    assert np.all(net.link_bytes <= net.capacity * env.now * (1 + 1e-9) + 1e-3)


def test_storage_writes_share_the_storage_link():
    c = build_cluster({"preset": "dgx-h100", "storage": {"servers": 1, "link": "ib-ndr-400", "nics": 1}},
                      nodes=2)
    env = simpy.Environment()
    net = FlowNetwork(env, c)
    ev = net.transfer_storage(list(range(16)), "storage0", 1e9, write=True)
    env.run(ev)
    assert env.now == pytest.approx(16e9 / (50e9 * IB_GOODPUT))
