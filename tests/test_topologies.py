"""Topology builders: graph contract, counts and degrees, bisection vs closed form, errors."""

from __future__ import annotations

import math

import networkx as nx
import pytest

from dcsim import hardware
from dcsim.cluster import NODE_KINDS
from topologies import TopologyError, build_cluster, list_presets


def _kind_count(c, kind):
    return sum(1 for _, d in c.graph.nodes(data=True) if d["kind"] == kind)


def _fat_tree(k: int):
    preset = {"gpu": "h100-sxm", "gpus_per_node": 1, "nics_per_node": 1, "nic": "ib-ndr-400",
              "fabric": {"topology": "fat-tree", "k": k, "tiers": 3}}
    return build_cluster(preset, nodes=k ** 3 // 4)


def test_presets_listed():
    assert {"dgx-a100", "dgx-h100"} <= set(list_presets())


@pytest.mark.parametrize("preset", ["dgx-a100", "dgx-h100"])
def test_graph_contract(preset):
    c = build_cluster(preset, nodes=8)
    g = c.graph
    for node, d in g.nodes(data=True):
        assert d["kind"] in NODE_KINDS
        if d["kind"] in ("gpu", "nic", "nvswitch"):
            assert isinstance(d["server"], int)
        if d["kind"] in ("gpu", "nic"):
            assert isinstance(d["local"], int)
    for _, _, d in g.edges(data=True):
        assert d["bw_bytes_per_s"] > 0 and d["latency_s"] > 0
        hardware.link(d["link"])
        assert d["tier"] in ("nvlink", "pcie", "nic-leaf", "leaf-spine", "spine-core")
    assert c.n_gpus == 64 and c.n_nodes == 8 and c.gpus_per_node == 8
    for rank, node in enumerate(c.gpu_nodes):
        assert g.nodes[node]["rank"] == rank and g.nodes[node]["server"] == rank // 8


def test_dgx_h100_counts_and_degrees():
    c = build_cluster("dgx-h100", nodes=32)  # 256 NICs, radix 64 -> 32 down / 32 up per leaf
    g = c.graph
    assert _kind_count(c, "gpu") == 256 and _kind_count(c, "nic") == 256
    assert _kind_count(c, "nvswitch") == 32 and _kind_count(c, "leaf") == 8
    spines = [n for n, d in g.nodes(data=True) if d["kind"] == "spine"]
    for n, d in g.nodes(data=True):
        if d["kind"] == "leaf":
            down = sum(1 for nb in g[n] if g.nodes[nb]["kind"] == "nic")
            up = sum(g[n][nb]["links"] for nb in g[n] if g.nodes[nb]["kind"] == "spine")
            assert (down, up) == (32, 32)
    for s in spines:
        assert sum(g[s][nb]["links"] for nb in g[s]) <= 64  # radix respected
    assert c.description["fabric_summary"]["tiers"] == 2


def test_dgx_a100_uses_hdr_and_pcie4():
    c = build_cluster("dgx-a100", nodes=2)
    tiers = {d["tier"]: d["link"] for _, _, d in c.graph.edges(data=True)}
    assert tiers["nvlink"] == "nvlink3" and tiers["pcie"] == "pcie4" and tiers["nic-leaf"] == "ib-hdr-200"
    assert c.gpu_spec.name == "a100-sxm-80gb"


@pytest.mark.parametrize("k", [4, 8])
def test_k_ary_fat_tree_closed_forms(k):
    c = _fat_tree(k)
    assert _kind_count(c, "nic") == k ** 3 // 4
    assert _kind_count(c, "leaf") == k * k // 2
    assert _kind_count(c, "spine") == k * k // 2
    assert _kind_count(c, "core") == (k // 2) ** 2
    g = c.graph
    for n, d in g.nodes(data=True):
        if d["kind"] in ("leaf", "spine", "core"):
            assert sum(g[n][nb]["links"] for nb in g[n]) == k
    bw = hardware.link("ib-ndr-400").bw_bytes_per_s
    # Al-Fares et al. 2008: full bisection, k^3/8 links across the cut.
    assert c.description["fabric_summary"]["bisection_bytes_per_s"] == pytest.approx(k ** 3 / 8 * bw)


def test_bisection_matches_min_cut():
    k = 4
    c = _fat_tree(k)
    g = c.graph
    nics = sorted((n for n, d in g.nodes(data=True) if d["kind"] == "nic"),
                  key=lambda n: int(n.split("/")[0][1:]))
    half = len(nics) // 2
    flow = nx.DiGraph()
    for u, v, d in g.edges(data=True):
        flow.add_edge(u, v, capacity=d["bw_bytes_per_s"])
        flow.add_edge(v, u, capacity=d["bw_bytes_per_s"])
    for n in nics[:half]:
        flow.add_edge("SRC", n, capacity=math.inf)
    for n in nics[half:]:
        flow.add_edge(n, "DST", capacity=math.inf)
    cut, _ = nx.minimum_cut(flow, "SRC", "DST")
    # the NIC->GPU->NIC loops of 1-GPU servers are excluded: PCIe edges only lead back to the NIC
    assert cut == pytest.approx(c.description["fabric_summary"]["bisection_bytes_per_s"])


@pytest.mark.parametrize("over", [1, 2, 3, "4:1"])
def test_oversubscription_reduces_uplinks(over):
    c = build_cluster("dgx-h100", nodes=32, fabric={"oversubscription": over})
    g = c.graph
    o = 4.0 if over == "4:1" else float(over)
    leaf = next(n for n, d in g.nodes(data=True) if d["kind"] == "leaf")
    down = sum(g[leaf][nb]["bw_bytes_per_s"] for nb in g[leaf] if g.nodes[nb]["kind"] == "nic")
    up = sum(g[leaf][nb]["bw_bytes_per_s"] for nb in g[leaf] if g.nodes[nb]["kind"] == "spine")
    d_ports = math.floor(64 * o / (1 + o) + 1e-9)
    assert up == pytest.approx((64 - d_ports) * hardware.link("ib-ndr-400").bw_bytes_per_s)
    used = (d_ports // 8) * 8  # whole DGX servers (8 NICs) under a leaf
    assert down / up == pytest.approx(used / (64 - d_ports))
    assert c.description["fabric_summary"]["oversubscription"]["leaf"] == pytest.approx(
        used / (64 - d_ports))
    servers = {g.nodes[nb]["server"] for nb in g[leaf] if g.nodes[nb]["kind"] == "nic"}
    assert all(sum(1 for nb in g[leaf] if g.nodes[nb].get("server") == s) == 8 for s in servers)


def test_tiers_grow_with_nodes():
    assert build_cluster("dgx-h100", nodes=4).description["fabric_summary"]["tiers"] == 1
    assert build_cluster("dgx-h100", nodes=128).description["fabric_summary"]["tiers"] == 2
    assert build_cluster("dgx-h100", nodes=512).description["fabric_summary"]["tiers"] == 3


def test_rail_optimized_puts_each_rail_on_its_leaf():
    c = build_cluster("dgx-h100", nodes=64, fabric={"topology": "rail-optimized"})
    g = c.graph
    for n, d in g.nodes(data=True):
        if d["kind"] == "leaf":
            rails = {g.nodes[nb]["local"] for nb in g[n] if g.nodes[nb]["kind"] == "nic"}
            assert len(rails) == 1


def test_preset_dict_extends_named_preset():
    c = build_cluster({"preset": "dgx-h100", "nodes": 2, "fabric": {"oversubscription": 2}})
    assert c.n_gpus == 16 and c.description["fabric"]["oversubscription"][0] == 2.0


@pytest.mark.parametrize("kwargs, words", [
    (dict(preset="dgx-z9000"), ["unknown preset", "dgx-h100"]),
    (dict(preset="dgx-h100", fabric={"k": 7}), ["fabric.k", "even"]),
    (dict(preset="dgx-h100", fabric={"radix": 63}), ["fabric.radix", "even"]),
    (dict(preset="dgx-h100", fabric={"oversubscription": 0.5}), ["fabric.oversubscription", ">= 1"]),
    (dict(preset="dgx-h100", fabric={"oversubscription": "lots"}), ["fabric.oversubscription"]),
    (dict(preset="dgx-h100", fabric={"topology": "torus"}), ["fabric.topology", "fat-tree"]),
    (dict(preset="dgx-h100", fabric={"link": "ethernet-9000"}), ["fabric.link", "ib-ndr-400"]),
    (dict(preset="dgx-h100", fabric={"colour": "red"}), ["colour", "allowed"]),
    (dict(preset="dgx-h100", nodes=0), ["nodes", ">= 1"]),
    (dict(preset="dgx-h100", nodes=300, fabric={"tiers": 2}), ["tiers=2", "leaves"]),
])
def test_errors_are_one_clear_line(kwargs, words):
    with pytest.raises(TopologyError) as e:
        build_cluster(**kwargs)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg
    assert isinstance(e.value, ValueError)


def test_storage_servers_attach_to_their_own_leaves():
    c = build_cluster({"preset": "dgx-h100", "storage": {"servers": 4, "link": "ib-ndr-400", "nics": 2}},
                      nodes=8)
    g = c.graph
    stor = [n for n, d in g.nodes(data=True) if d["kind"] == "storage"]
    assert len(stor) == 4
    for s in stor:
        (leaf,) = list(g[s])
        assert g.nodes[leaf]["kind"] == "leaf"
        assert g[s][leaf]["bw_bytes_per_s"] == pytest.approx(2 * 50e9)
        assert not any(g.nodes[nb]["kind"] == "nic" for nb in g[leaf])


@pytest.mark.parametrize("preset, nodes, gpus, tiers", [
    ("dgx-h100-superpod", 2048, 16384, 3),
    ("dgx-a100-superpod", None, 1120, 3),
    ("roce-24k-clos", None, 24576, 3),
    ("gb200-nvl72", 2, 144, 2),
])
def test_large_presets_scale(preset, nodes, gpus, tiers):
    c = build_cluster(preset, nodes=nodes)
    assert c.n_gpus == gpus
    assert c.description["fabric_summary"]["tiers"] == tiers


def test_tapered_pods_bisection():
    c = build_cluster("roce-24k-clos", nodes=3072)
    s = c.description["fabric_summary"]
    bw = hardware.link("roce-400").bw_bytes_per_s
    assert s["pods"] == 8 and s["spine_down"] == 192 and s["spine_up"] == 28
    # the aggregation layer (1:7 taper) is the narrowest cut
    assert s["bisection_bytes_per_s"] == pytest.approx(8 * 16 * 28 * bw / 2)
