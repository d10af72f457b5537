"""Validated build parameters: a preset/fabric dict becomes ServerSpec + FabricSpec (or a TopologyError).

Every field is checked here so the builders can trust their inputs; messages name the field
and the allowed values in one line.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from dcsim import hardware
from topologies.errors import TopologyError

TOPOLOGIES = ("fat-tree", "clos", "leaf-spine", "rail-optimized", "none")
SERVER_KEYS = {"name", "description", "gpu", "gpus_per_node", "nvlink", "nics_per_node", "nic",
               "host_link", "nodes", "fabric", "storage", "source"}
FABRIC_KEYS = {"topology", "tiers", "oversubscription", "link", "radix", "pod_leaves", "k", "rails",
               "flows_per_connection"}
STORAGE_KEYS = {"servers", "link", "nics", "name"}


@dataclass(frozen=True)
class ServerSpec:
    """One server (an NVLink domain): GPUs on an NVSwitch, NICs on a host link."""

    gpu: str
    gpus: int
    nvlink: str
    nics: int
    nic: str
    host_link: str


@dataclass(frozen=True)
class FabricSpec:
    """The scale-out network: a Clos/fat-tree family described by per-tier radix and taper.

    oversubscription[t] is down:up at tier t (0 = leaf, 1 = spine); radix[t] is the port count
    of a tier-t switch (0 leaf, 1 spine, 2 core). tiers None means: as few as the radix allows.
    """

    topology: str
    tiers: int | None
    oversubscription: tuple[float, float]
    link: str
    radix: tuple[int, int, int]
    pod_leaves: int | None = None
    # Network flows (queue pairs) a collective library opens per GPU pair, each hashed onto its
    # own ECMP path (Llama 3 paper sec. 3.3.1: 16 flows per GPU pair with E-ECMP on RoCE).
    flows_per_connection: int = 1


@dataclass(frozen=True)
class StorageSpec:
    """Storage servers attached to their own leaves of the fabric."""

    servers: int
    link: str
    nics: int = 1


@dataclass(frozen=True)
class BuildSpec:
    """Everything needed to build one cluster."""

    name: str
    nodes: int
    server: ServerSpec
    fabric: FabricSpec
    storage: StorageSpec | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "nodes": self.nodes, "server": asdict(self.server),
                "fabric": asdict(self.fabric),
                "storage": asdict(self.storage) if self.storage else None}


def _int(value: Any, fieldname: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise TopologyError(f"{fieldname} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise TopologyError(f"{fieldname} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _ratio(value: Any, fieldname: str) -> float:
    """'3:1', 3, 3.0 -> 3.0 (down:up); must be >= 1 (a fabric is never *under*-subscribed here)."""
    try:
        if isinstance(value, str) and ":" in value:
            a, b = value.split(":")
            out = float(a) / float(b)
        elif isinstance(value, bool):
            raise ValueError
        else:
            out = float(value)
    except (ValueError, ZeroDivisionError):
        raise TopologyError(
            f"{fieldname} must be a ratio >= 1 such as 1, 3 or '3:1', got {value!r}") from None
    if not math.isfinite(out) or out < 1.0:
        raise TopologyError(f"{fieldname} must be a ratio >= 1 such as 1, 3 or '3:1', got {value!r}")
    return out


def _link(name: Any, fieldname: str, kinds: tuple[str, ...] | None = None) -> str:
    try:
        spec = hardware.link(str(name))
    except hardware.UnknownHardware:
        known = ", ".join(sorted(hardware.catalog().links))
        raise TopologyError(f"{fieldname}: unknown link {name!r}; known: {known}") from None
    if kinds and spec.kind not in kinds:
        ok = ", ".join(n for n, s in sorted(hardware.catalog().links.items()) if s.kind in kinds)
        raise TopologyError(f"{fieldname}: {name!r} is a {spec.kind} link; allowed: {ok}")
    return spec.name


def _unknown(d: Mapping[str, Any], allowed: set[str], where: str) -> None:
    bad = sorted(set(d) - allowed)
    if bad:
        raise TopologyError(f"{where}: unknown field {bad[0]!r}; allowed: {', '.join(sorted(allowed))}")


def parse_fabric(d: Mapping[str, Any] | None, default_link: str) -> FabricSpec:
    """A fabric dict (scenario/preset) -> FabricSpec, with one-line errors."""
    d = dict(d or {})
    _unknown(d, FABRIC_KEYS, "fabric")
    topology = str(d.get("topology", "fat-tree"))
    if topology not in TOPOLOGIES:
        raise TopologyError(f"fabric.topology must be one of {', '.join(TOPOLOGIES)}, got {topology!r}")
    link = _link(d.get("link", default_link), "fabric.link", ("infiniband", "roce"))
    k = d.get("k")
    radix_in = k if k is not None else d.get("radix", 64)  # k (fat-tree arity) wins over radix
    if isinstance(radix_in, Mapping):
        _unknown(radix_in, {"leaf", "spine", "core"}, "fabric.radix")
        leaf = _int(radix_in.get("leaf", 64), "fabric.radix.leaf", 2)
        spine = _int(radix_in.get("spine", leaf), "fabric.radix.spine", 2)
        core = _int(radix_in.get("core", spine), "fabric.radix.core", 2)
    else:
        leaf = spine = core = _int(radix_in, "fabric.radix" if k is None else "fabric.k", 2)
    over = d.get("oversubscription", 1.0)
    if isinstance(over, Mapping):
        _unknown(over, {"leaf", "spine"}, "fabric.oversubscription")
        o_leaf = _ratio(over.get("leaf", 1.0), "fabric.oversubscription.leaf")
        o_spine = _ratio(over.get("spine", 1.0), "fabric.oversubscription.spine")
    else:
        o_leaf, o_spine = _ratio(over, "fabric.oversubscription"), 1.0
    if k is not None or topology == "fat-tree":
        for name, r in (("leaf", leaf), ("spine", spine), ("core", core)):
            if r % 2:
                what = "fabric.k" if k is not None else f"fabric.radix{'' if leaf == spine == core else '.' + name}"
                raise TopologyError(f"{what} must be even for a fat-tree (k/2 ports down, k/2 up), got {r}")
    tiers_in = d.get("tiers", "auto")
    tiers = None if tiers_in in (None, "auto") else _int(tiers_in, "fabric.tiers", 1)
    if tiers is not None and tiers > 3:
        raise TopologyError(f"fabric.tiers must be 1, 2, 3 or 'auto', got {tiers_in!r}")
    pod = d.get("pod_leaves")
    pod_leaves = None if pod is None else _int(pod, "fabric.pod_leaves", 1)
    flows = _int(d.get("flows_per_connection", 1), "fabric.flows_per_connection", 1)
    return FabricSpec(topology=topology, tiers=tiers, oversubscription=(o_leaf, o_spine), link=link,
                      radix=(leaf, spine, core), pod_leaves=pod_leaves, flows_per_connection=flows)


def parse_spec(d: Mapping[str, Any], nodes: int | None, fabric: Mapping[str, Any] | None) -> BuildSpec:
    """A preset dict plus overrides -> BuildSpec; fabric overrides merge key by key."""
    _unknown(d, SERVER_KEYS, "preset")
    gpu_name = str(d.get("gpu", ""))
    try:
        gpu = hardware.gpu(gpu_name)
    except hardware.UnknownHardware:
        raise TopologyError(
            f"gpu: unknown GPU {gpu_name!r}; known: {', '.join(sorted(hardware.catalog().gpus))}") from None
    gpus = _int(d.get("gpus_per_node", 8), "gpus_per_node")
    nvlink = _link(d.get("nvlink", gpu.nvlink), "nvlink", ("nvlink", "pcie"))
    nics = _int(d.get("nics_per_node", gpus), "nics_per_node")
    rails = (fabric or {}).get("rails") if isinstance(fabric, Mapping) else None
    if rails is None:
        rails = (d.get("fabric") or {}).get("rails")
    if rails is not None:  # a rail per NIC: rails sets the NICs (compute ports) per server
        nics = _int(rails, "fabric.rails")
    if gpus % nics or nics > gpus:
        raise TopologyError(f"nics_per_node (fabric.rails) must divide gpus_per_node ({gpus}), got {nics}")
    nic = _link(d.get("nic", "ib-ndr-400"), "nic", ("infiniband", "roce"))
    host = _link(d.get("host_link", "pcie5"), "host_link", ("pcie",))
    n = _int(nodes if nodes is not None else d.get("nodes", 1), "nodes")
    merged = dict(d.get("fabric") or {})
    if fabric:
        if not isinstance(fabric, Mapping):
            raise TopologyError(f"fabric must be a mapping of {', '.join(sorted(FABRIC_KEYS))}, got {fabric!r}")
        merged.update(fabric)
    merged.pop("rails", None)
    fab = parse_fabric(merged, default_link=nic)
    storage = None
    if d.get("storage"):
        s = d["storage"]
        if not isinstance(s, Mapping):
            raise TopologyError(f"storage must be a mapping of {', '.join(sorted(STORAGE_KEYS))}, got {s!r}")
        _unknown(s, STORAGE_KEYS, "storage")
        storage = StorageSpec(servers=_int(s.get("servers", 1), "storage.servers"),
                              link=_link(s.get("link", nic), "storage.link", ("infiniband", "roce")),
                              nics=_int(s.get("nics", 1), "storage.nics"))
    server = ServerSpec(gpu=gpu.name, gpus=gpus, nvlink=nvlink, nics=nics, nic=nic, host_link=host)
    return BuildSpec(name=str(d.get("name", "custom")), nodes=n, server=server, fabric=fab,
                     storage=storage)
