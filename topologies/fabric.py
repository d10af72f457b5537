"""Scale-out fabrics: leaf-spine (2 tiers), pods + core (3 tiers), rail-optimized leaf assignment.

One folded-Clos family covers fat-tree, Clos, leaf-spine and rail-optimized fabrics:
- a leaf of radix R with oversubscription o has d = floor(R*o/(1+o)) ports down, u = R-d up;
  outside rail-optimized fabrics a leaf takes whole servers (floor(d / NICs per server) of
  them), so the down ports in use, and the oversubscription reported, can be a little lower;
- 2 tiers: every leaf links to every spine (parallel links bundled into one edge);
- 3 tiers: pods of P leaves and u spines (a k-ary fat-tree: P = u = k/2), spine i of every pod
  belongs to core plane i (Al-Fares et al., "A Scalable, Commodity Data Center Network
  Architecture", SIGCOMM 2008); a spine oversubscription tapers pods to the core
  (Llama 3 paper, section 3.3.1: pods of 3,072 GPUs, 1:7 above them);
- rail-optimized: NIC i of every server in a scalable unit goes to rail leaf i (NVIDIA DGX
  SuperPOD H100 reference architecture, "rail-optimized" compute fabric).
Parallel links between two switches are one edge: bw_bytes_per_s = links * link bw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from dcsim import hardware
from topologies.errors import TopologyError
from topologies.spec import FabricPlan, StorageServers


@dataclass
class Endpoint:
    """A NIC (or storage server) that plugs into a leaf."""

    node: str
    server: int
    rail: int
    link: str
    links: int = 1


@dataclass
class FabricSummary:
    """The resolved shape of a fabric, for `show` and for tests."""

    tiers: int
    leaves: int = 0
    spines: int = 0
    cores: int = 0
    pods: int = 0
    leaf_down: int = 0
    leaf_up: int = 0
    spine_down: int = 0
    spine_up: int = 0
    spines_per_pod: int = 0
    cores_per_plane: int = 0
    bisection_bytes_per_s: float = 0.0
    oversubscription: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _leaf_ports(radix: int, over: float) -> tuple[int, int]:
    down = int(math.floor(radix * over / (1.0 + over) + 1e-9))
    down = min(max(down, 1), radix - 1)
    return down, radix - down


def _smallest_divisor(n: int, ok) -> int | None:
    for c in range(1, n + 1):
        if n % c == 0 and ok(c):
            return c
    return None


def assign_leaves(endpoints: list[Endpoint], rails: int, spec: FabricPlan, down: int) -> list[int]:
    """Leaf index of each endpoint: packed in order, or by rail inside scalable units."""
    if spec.topology == "rail-optimized":
        return [(e.server // down) * rails + e.rail for e in endpoints]
    if rails > 1 and down >= rails:
        # whole servers under a leaf, as cabling plans do: a server's NICs never straddle two
        # leaves (which would also break destination-mod-k's balance), ports left over stay free
        per_leaf = down // rails
        return [e.server // per_leaf for e in endpoints]
    return [j // down for j in range(len(endpoints))]


def _leaf_ports_in_use(spec: FabricPlan, rails: int) -> tuple[int, int]:
    """(down, up) ports of a leaf: from its radix and taper, whole servers per leaf outside
    rail-optimized fabrics (see assign_leaves)."""
    down, up = _leaf_ports(spec.radix[0], spec.oversubscription[0])
    if spec.topology != "rail-optimized" and 1 < rails <= down:
        down = (down // rails) * rails
    return down, up


def _place_storage(endpoints: list[Endpoint], leaf_of: list[int], storage: StorageServers,
                   down: int) -> None:
    """Storage servers on leaves of their own after the compute leaves (appended in place)."""
    per_leaf = max(1, down // storage.nics)
    base = max(leaf_of) + 1 if leaf_of else 0
    for k in range(storage.servers):
        endpoints.append(Endpoint(node=f"storage{k}", server=-1, rail=0, link=storage.link,
                                  links=storage.nics))
        leaf_of.append(base + k // per_leaf)


def _choose_tiers(spec: FabricPlan, n_leaves: int, down: int, n_endpoints: int) -> int:
    """The tiers asked for (or as few as the spine radix allows), checked against the leaves."""
    r_spine = spec.radix[1]
    tiers = spec.tiers
    if tiers is None:
        tiers = 1 if n_leaves <= 1 else (2 if n_leaves <= r_spine else 3)
    if tiers == 1 and n_leaves > 1:
        raise TopologyError(
            f"fabric.tiers=1 holds at most {down} NICs on one leaf; this cluster has {n_endpoints} "
            f"(use tiers: 2, 3 or auto)")
    if tiers == 2 and n_leaves > r_spine:
        raise TopologyError(
            f"fabric.tiers=2 with radix {r_spine} holds at most {r_spine} leaves ({r_spine * down} NICs); "
            f"this cluster needs {n_leaves} leaves (use tiers: 3 or auto, or a larger fabric.radix)")
    return tiers


def _add_leaves(g: nx.Graph, endpoints: list[Endpoint], leaf_of: list[int], n_leaves: int,
                bw: float) -> tuple[list[str], float]:
    """Leaf switches and the endpoint links under them; (leaf ids, total endpoint bandwidth)."""
    leaves = [f"leaf{i}" for i in range(n_leaves)]
    for i, leaf_id in enumerate(leaves):
        g.add_node(leaf_id, kind="leaf", index=i, level=1)
    for e, leaf in zip(endpoints, leaf_of, strict=False):
        el = hardware.link(e.link)
        if e.server < 0:
            g.add_node(e.node, kind="storage", links=e.links, link=e.link)
            tier = "storage-leaf"
        else:
            tier = "nic-leaf"
        g.add_edge(e.node, leaves[leaf], bw_bytes_per_s=e.links * min(el.bw_bytes_per_s, bw),
                   latency_s=el.latency_s, link=e.link, tier=tier, links=e.links)
    nic_bw = sum(e.links * min(hardware.link(e.link).bw_bytes_per_s, bw) for e in endpoints)
    return leaves, nic_bw


def _add_spines(g: nx.Graph, leaves: list[str], up: int, spec: FabricPlan,
                summary: FabricSummary) -> float:
    """Two tiers: every leaf to every spine, parallel links bundled; returns the spine cut."""
    link = hardware.link(spec.link)
    n_leaves, r_spine = len(leaves), spec.radix[1]
    c = _smallest_divisor(up, lambda s: n_leaves * (up // s) <= r_spine)
    assert c is not None  # guaranteed by the n_leaves <= r_spine check
    m = up // c
    spines = [f"spine{i}" for i in range(c)]
    for i, spine_id in enumerate(spines):
        g.add_node(spine_id, kind="spine", index=i, level=2)
    for leaf in leaves:
        for sp in spines:
            g.add_edge(leaf, sp, bw_bytes_per_s=m * link.bw_bytes_per_s, latency_s=link.latency_s,
                       link=spec.link, tier="leaf-spine", links=m)
    summary.spines = c
    summary.spine_down = n_leaves * m
    return n_leaves * up * link.bw_bytes_per_s / 2.0


def _pod_shape(spec: FabricPlan) -> tuple[int, int]:
    """(leaves per pod, spine ports up to the core) of a three-tier fabric."""
    r_spine, o_spine = spec.radix[1], spec.oversubscription[1]
    if spec.pod_leaves is None:
        return _leaf_ports(r_spine, o_spine)
    pod = spec.pod_leaves
    s_up = max(1, int(math.ceil(pod / o_spine)))
    if pod + s_up > r_spine:
        raise TopologyError(
            f"fabric.pod_leaves={pod} with spine oversubscription {o_spine:g} needs spines of "
            f"radix >= {pod + s_up}; fabric.radix.spine is {r_spine}")
    return pod, s_up


def _add_pods_and_core(g: nx.Graph, leaves: list[str], up: int, down: int, spec: FabricPlan,
                       summary: FabricSummary) -> list[float]:
    """Three tiers: pods of leaves and spines, spine i of every pod in core plane i; returns
    the spine and core cuts."""
    link = hardware.link(spec.link)
    bw, lat, r_core = link.bw_bytes_per_s, link.latency_s, spec.radix[2]
    n_leaves = len(leaves)
    pod, s_up = _pod_shape(spec)
    n_pods = int(math.ceil(n_leaves / pod))
    if n_pods > r_core:
        raise TopologyError(
            f"this cluster needs {n_pods} pods but a core switch of radix {r_core} reaches at most "
            f"{r_core} (max {r_core * pod * down} NICs in 3 tiers): use a larger fabric.radix")
    c = _smallest_divisor(s_up, lambda s: n_pods * (s_up // s) <= r_core)
    assert c is not None
    m = s_up // c
    summary.pods, summary.spines_per_pod, summary.cores_per_plane = n_pods, up, c
    summary.spine_down, summary.spine_up = pod, s_up
    summary.oversubscription["spine"] = pod / s_up
    cores = [[f"core{p}.{j}" for j in range(c)] for p in range(up)]
    for p in range(up):
        for j, core_id in enumerate(cores[p]):
            g.add_node(core_id, kind="core", plane=p, index=p * c + j, level=3)
    for q in range(n_pods):
        pod_leaves = leaves[q * pod:(q + 1) * pod]
        for leaf in pod_leaves:
            g.nodes[leaf]["pod"] = q
        for p in range(up):
            sp = f"spine{q}.{p}"
            g.add_node(sp, kind="spine", pod=q, plane=p, index=q * up + p, level=2)
            for leaf in pod_leaves:
                g.add_edge(leaf, sp, bw_bytes_per_s=bw, latency_s=lat, link=spec.link,
                           tier="leaf-spine", links=1)
            for core in cores[p]:
                g.add_edge(sp, core, bw_bytes_per_s=m * bw, latency_s=lat, link=spec.link,
                           tier="spine-core", links=m)
    summary.spines, summary.cores = n_pods * up, up * c
    return [n_leaves * up * bw / 2.0,
            n_pods * up * s_up * bw / 2.0 if n_pods > 1 else math.inf]


def build_fabric(g: nx.Graph, endpoints: list[Endpoint], rails: int, spec: FabricPlan,
                 storage: StorageServers | None = None) -> FabricSummary:
    """Add leaves/spines/cores (and storage) for the endpoints to g; return the summary."""
    down, up = _leaf_ports_in_use(spec, rails)
    leaf_of = assign_leaves(endpoints, rails, spec, down)
    if storage:
        _place_storage(endpoints, leaf_of, storage, down)
    n_leaves = max(leaf_of) + 1 if leaf_of else 0
    tiers = _choose_tiers(spec, n_leaves, down, len(endpoints))
    summary = FabricSummary(tiers=tiers, leaves=n_leaves, leaf_down=down, leaf_up=up)
    leaves, nic_bw = _add_leaves(g, endpoints, leaf_of, n_leaves, hardware.link(spec.link).bw_bytes_per_s)
    cuts = [nic_bw / 2.0]
    summary.oversubscription["leaf"] = down / up if tiers > 1 else 1.0
    if tiers == 2:
        cuts.append(_add_spines(g, leaves, up, spec, summary))
    elif tiers == 3:
        cuts.extend(_add_pods_and_core(g, leaves, up, down, spec, summary))
    summary.bisection_bytes_per_s = min(cuts)
    return summary
