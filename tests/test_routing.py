"""ECMP routing from the fabric structure: valid, shortest, deterministic, balanced."""

from __future__ import annotations

import numpy as np
import pytest

from dcsim.network.compiled import compile_network
from dcsim.network.routing import Router
from topologies import build_cluster


@pytest.fixture(scope="module")
def ft():
    preset = {"gpu": "h100-sxm", "gpus_per_node": 1, "nics_per_node": 1, "nic": "ib-ndr-400",
              "fabric": {"topology": "fat-tree", "k": 8, "tiers": 3}}
    return build_cluster(preset, nodes=128)


def _walk(net, links, a_node, b_node):
    cur = a_node
    for l in links:
        assert net.link_src[l] == cur
        cur = net.link_dst[l]
    assert cur == b_node


def test_paths_are_connected_and_shortest(ft):
    net = compile_network(ft)
    r = Router(net, seed=1)
    # k=8: 4 hosts per leaf, 16 per pod
    # links: GPU->NIC, NIC->leaf, (up to the lowest common level and down), leaf->NIC, NIC->GPU
    for a, b, hops in [(0, 1, 4), (0, 5, 6), (0, 17, 8), (0, 127, 8)]:
        links, w = r.route(a, b)
        _walk(net, links, net.rank_gpu[a], net.rank_gpu[b])
        assert len(links) == hops
        assert w == [1.0] * len(links)


def test_same_seed_same_paths_other_seed_other_paths(ft):
    net = compile_network(ft)
    src = np.arange(64)
    dst = (src + 64) % 128
    a = Router(net, seed=7).incidence(src, dst)
    b = Router(net, seed=7).incidence(src, dst)
    c = Router(net, seed=8).incidence(src, dst)
    assert (a != b).nnz == 0
    assert (a != c).nnz > 0


def test_ecmp_spreads_over_the_core(ft):
    net = compile_network(ft)
    r = Router(net, seed=0)
    used = set()
    for t in range(64):
        links, _ = r.route(0, 127, tag=t)
        used |= {l for l in links if net.tier_of(l) == "spine-core"}
    assert len(used) >= 12  # 16 core paths up from pod 0 (plus down links); most get used


def test_spray_weights_conserve_the_flow(ft):
    net = compile_network(ft)
    r = Router(net, mode="spray")
    links, w = r.route(0, 127)
    w = np.asarray(w)
    tiers = np.array([net.tier_of(l) for l in links])
    for tier, total in [("pcie", 2.0), ("nic-leaf", 2.0), ("leaf-spine", 2.0), ("spine-core", 2.0)]:
        assert w[tiers == tier].sum() == pytest.approx(total)


def test_rail_optimized_rails_stay_on_their_leaf():
    c = build_cluster("dgx-h100-superpod", nodes=32)
    net = compile_network(c)
    r = Router(net)
    links, _ = r.route(3, 8 * 17 + 3)  # same rail, same scalable unit
    assert [net.tier_of(l) for l in links] == ["pcie", "nic-leaf", "nic-leaf", "pcie"]
    links, _ = r.route(3, 8 * 17 + 4)  # other rail: through a spine
    assert "leaf-spine" in [net.tier_of(l) for l in links]


def _max_link_load(r: Router, src, dst) -> int:
    a = r.incidence(src, dst)
    return int(np.asarray((a > 0).sum(axis=0)).max())


def test_dmodk_makes_every_shift_permutation_non_blocking(ft):
    """Zahavi et al. 2010: on a full fat-tree, destination-mod-k routing carries any shift
    (i -> i + s, as ring hops are) with at most one flow per directed link; hashed ECMP does not."""
    net = compile_network(ft)
    dmodk, ecmp = Router(net, mode="dmodk"), Router(net, seed=0)
    src = np.arange(128)
    ecmp_worst = 0
    for shift in range(1, 128):
        dst = (src + shift) % 128
        links, _ = dmodk.route(int(src[5]), int(dst[5]))
        _walk(net, links, net.rank_gpu[5], net.rank_gpu[int(dst[5])])
        assert _max_link_load(dmodk, src, dst) == 1, shift
        ecmp_worst = max(ecmp_worst, _max_link_load(ecmp, src, dst))
    assert ecmp_worst >= 2


def test_routing_auto_is_dmodk_on_infiniband_and_ecmp_on_ethernet():
    from dcsim.network.routing import default_routing, resolve_routing

    assert default_routing(build_cluster("dgx-h100", nodes=2)) == "dmodk"
    roce = {"gpu": "h100-sxm", "gpus_per_node": 8, "nics_per_node": 8, "nic": "roce-400",
            "fabric": {"topology": "fat-tree", "tiers": 2}}
    assert default_routing(build_cluster(roce, nodes=2)) == "ecmp"
    assert resolve_routing("spray", build_cluster("dgx-h100", nodes=2)) == "spray"
    with pytest.raises(ValueError, match="run.routing"):
        resolve_routing("adaptive", build_cluster("dgx-h100", nodes=2))


def test_a_bundle_of_cables_compiles_to_one_link_per_cable():
    """dgx-a100 on 4 nodes: 2 leaves, each with 20 cables to one spine (one graph edge each)."""
    c = build_cluster("dgx-a100", nodes=4)
    net = compile_network(c)
    g = c.graph
    bundles = [(u, v, d) for u, v, d in g.edges(data=True) if d.get("tier") == "leaf-spine"]
    assert len(bundles) == 2 and all(d["links"] == 20 for *_, d in bundles)
    ls = np.array([net.tier_of(l) == "leaf-spine" for l in range(net.n_links)])
    assert ls.sum() == 2 * 2 * 20  # two bundles, both directions, a link per cable
    per_cable = bundles[0][2]["bw_bytes_per_s"] / 20
    assert np.allclose(net.capacity[ls], per_cable)
    for leaf in (net.node_index["leaf0"], net.node_index["leaf1"]):
        assert len(net.up[leaf]) == 20  # every cable is a choice of its own
    # destination-mod-k takes a different cable for each destination on the other leaf
    r = Router(net, mode="dmodk")
    home = net.nic_leaf[int(net.rank_nic[0])]
    far = [d for d in range(32) if net.nic_leaf[int(net.rank_nic[d])] != home]
    assert len(far) >= 12
    paths = [r.route(0, d)[0] for d in far]
    assert [net.tier_of(p[2]) for p in paths] == ["leaf-spine"] * len(far)
    assert len({p[2] for p in paths}) == len(far)  # up cables
    assert len({p[3] for p in paths}) == len(far)  # down cables
