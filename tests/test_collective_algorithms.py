"""Each collective algorithm is one class feeding both back ends (dcsim/collectives/)."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from dcsim.collectives import OPS, CollectiveCall
from dcsim.collectives.base import Channels, Context, Pairs
from dcsim.collectives.registry import ALGORITHM_CLASSES, ALGORITHM_NAMES, allowed_algorithms, candidates
from dcsim.network.analytical import analytical_time
from dcsim.network.compiled import compile_network
from dcsim.network.flow_backend import FlowBackend
from topologies import build_cluster


@pytest.fixture(scope="module")
def h100x2():
    return build_cluster("dgx-h100", nodes=2)


def test_the_registry_names_every_algorithm_and_op():
    assert {cls.name for cls in ALGORITHM_CLASSES} == set(ALGORITHM_NAMES)
    assert all(cls.ops <= set(OPS) for cls in ALGORITHM_CLASSES)
    assert {op: allowed_algorithms(op) for op in OPS} == {
        "all_reduce": ("ring", "tree", "hierarchical", "nvls"), "all_gather": ("ring", "nvls"),
        "reduce_scatter": ("ring", "nvls"), "broadcast": ("ring",), "all_to_all": ("direct",),
        "send_recv": ("direct",)}


def _ctx(cluster, op, groups):
    return Context.of(cluster, op, groups, compile_network(cluster))


def _sent_per_rank(part) -> dict[int, float]:
    w = part.weight if isinstance(part, Pairs) else part.edge_weight
    out: dict[int, float] = {}
    for s, x in zip(part.src.tolist(), w.tolist(), strict=True):
        out[s] = out.get(s, 0.0) + x
    return out


@pytest.mark.parametrize("op, per_rank", [("all_reduce", 2 * 15 / 16), ("all_gather", 15 / 16),
                                          ("broadcast", 1.0)])
def test_a_ring_sends_what_nccl_tests_counts_as_bus_bytes(h100x2, op, per_rank):
    """Every rank of a 16-rank ring sends busbw's bytes (2(n-1)/n per byte for all-reduce)."""
    ring = next(a for a in candidates(_ctx(h100x2, op, (tuple(range(16)),))) if a.name == "ring")
    (phase,) = ring.phases()
    (part,) = phase.parts
    assert isinstance(part, Channels) and len(part.edges_per_channel) == 8  # a channel per rail
    sent = _sent_per_rank(part)
    assert sorted(sent) == list(range(16))
    assert all(v == pytest.approx(per_rank) for v in sent.values())


def test_the_tree_halves_the_buffer_between_two_trees(h100x2):
    """Each tree moves half the buffer over every one of its edges, both ways."""
    tree = next(a for a in candidates(_ctx(h100x2, "all_reduce", (tuple(range(16)),))) if a.name == "tree")
    (phase,) = tree.phases()
    (part,) = phase.parts
    assert isinstance(part, Pairs) and np.allclose(part.weight, 1 / 16)
    assert len(phase.reference) == 1  # priced from the ring's bandwidth, as NCCL does


@pytest.mark.parametrize("op, algorithm, group", [
    ("all_reduce", "ring", tuple(range(16))),
    ("all_reduce", "hierarchical", tuple(range(16))), ("all_reduce", "nvls", tuple(range(16))),
    ("all_reduce", "nvls", tuple(range(8))), ("all_gather", "nvls", tuple(range(8))),
    ("reduce_scatter", "ring", tuple(range(16))), ("broadcast", "ring", tuple(range(16))),
    ("all_to_all", "direct", tuple(range(16))), ("send_recv", "direct", (0, 8)),
])
def test_every_algorithm_runs_on_both_back_ends(h100x2, op, algorithm, group):
    """The same phases priced in closed form and run as flows agree on a symmetric case (the
    tree is held to it on four servers in test_collective_flows.py: on two, NCCL's cap on the
    tree's bandwidth, which flows do not have, is 6% above its traffic's bound)."""
    call = CollectiveCall(op, (group,), 2.0 ** 28, algorithm)
    env = simpy.Environment()
    env.run(FlowBackend(env, h100x2).run(call))
    assert env.now == pytest.approx(analytical_time(h100x2, call).time_s, rel=0.05)


def test_flow_mode_prices_nothing_in_closed_form():
    """The flow back end measures its candidates on its own routes: no closed-form plan, no
    spread-routing load model is built for a call it runs."""
    c = build_cluster("dgx-h100", nodes=4)
    env = simpy.Environment()
    env.run(FlowBackend(env, c).run(CollectiveCall("all_reduce", (tuple(range(32)),), 2.0 ** 26)))
    assert env.now > 0
    assert not c.cache.collective_plans
    assert compile_network(c).load_model is None


def test_the_flows_of_a_shape_are_built_once(monkeypatch):
    """A second call of the same shape (any size) routes nothing: its flows are reused."""
    c = build_cluster("dgx-h100", nodes=4)
    env = simpy.Environment()
    fb = FlowBackend(env, c)
    groups = tuple(tuple(range(j, 32, 8)) for j in range(8))
    env.run(fb.run(CollectiveCall("all_reduce", groups, 2.0 ** 26)))
    first = env.now
    routed = []
    monkeypatch.setattr(fb.network, "paths", lambda *a, **k: routed.append(a))
    env.run(fb.run(CollectiveCall("all_reduce", groups, 2.0 ** 26)))
    env.run(fb.run(CollectiveCall("all_reduce", groups, 2.0 ** 27)))
    assert routed == []
    assert env.now > 2 * first
