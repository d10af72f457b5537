"""Validated build parameters: a cluster description (topologies/schema.py) becomes ServerSpec +
FabricPlan + StorageServers (or a TopologyError).

The schema checks each field alone; here run the checks that need several fields at once, so
the builders can trust their inputs. Messages name the field and the allowed values in one line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dcsim import hardware
from topologies.errors import TopologyError
from topologies.schema import (ClusterSpec, FabricSpec, OversubscriptionSpec, RadixSpec,
                               StorageSpec, Topology)


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
class FabricPlan:
    """The scale-out network resolved: a Clos/fat-tree family by per-tier radix and taper.

    oversubscription[t] is down:up at tier t (0 = leaf, 1 = spine); radix[t] is the port count
    of a tier-t switch (0 leaf, 1 spine, 2 core). tiers None means: as few as the radix allows.
    """

    topology: str
    tiers: int | None
    oversubscription: tuple[float, float]
    link: str
    radix: tuple[int, int, int]
    pod_leaves: int | None = None
    # Flows (queue pairs) per GPU pair, each on its own ECMP path (see schema.FabricSpec).
    flows_per_connection: int = 1


@dataclass(frozen=True)
class StorageServers:
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
    fabric: FabricPlan
    storage: StorageServers | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gpus(self) -> int:
        """GPUs in the whole cluster."""
        return self.nodes * self.server.gpus

    def describe(self) -> dict[str, Any]:
        """The resolved parameters as plain data (every result carries them)."""
        return {"name": self.name, "nodes": self.nodes, "server": asdict(self.server),
                "fabric": asdict(self.fabric),
                "storage": asdict(self.storage) if self.storage else None}


def _radix(f: FabricSpec) -> tuple[tuple[int, int, int], str]:
    """(leaf, spine, core) ports and the field they came from (k wins over radix)."""
    if f.k is not None:
        return (f.k, f.k, f.k), "fabric.k"
    r = f.radix if f.radix is not None else 64
    if isinstance(r, RadixSpec):
        spine = r.spine if r.spine is not None else r.leaf
        core = r.core if r.core is not None else spine
        return (r.leaf, spine, core), "fabric.radix"
    return (r, r, r), "fabric.radix"


def resolve_fabric(f: FabricSpec, default_link: str) -> FabricPlan:
    """A fabric description -> FabricPlan, checking what needs several fields at once."""
    topology = (f.topology or Topology.FAT_TREE).value
    radix, where = _radix(f)
    if f.k is not None or topology == "fat-tree":
        uniform = not isinstance(f.radix, RadixSpec)
        for name, r in zip(("leaf", "spine", "core"), radix, strict=True):
            if r % 2:
                what = where if uniform or f.k is not None else f"{where}.{name}"
                raise TopologyError(f"{what} must be even for a fat-tree (k/2 ports down, k/2 up), "
                                    f"got {r}")
    over = f.oversubscription if f.oversubscription is not None else 1.0
    if isinstance(over, OversubscriptionSpec):
        ratios = (over.leaf, over.spine)
    else:
        ratios = (float(over), 1.0)
    tiers = None if f.tiers in (None, "auto") else int(f.tiers)
    return FabricPlan(topology=topology, tiers=tiers, oversubscription=ratios,
                      link=f.link or default_link, radix=radix, pod_leaves=f.pod_leaves,
                      flows_per_connection=f.flows_per_connection or 1)


def _server(c: ClusterSpec) -> ServerSpec:
    if c.gpu is None:
        raise TopologyError("gpu: required (a GPU of the catalog, or a preset that names one); "
                            f"known: {', '.join(sorted(hardware.catalog().gpus))}")
    gpu = hardware.gpu(c.gpu)
    gpus = c.gpus_per_node or 8
    nics = c.nics_per_node or gpus
    if c.fabric is not None and c.fabric.rails is not None:
        nics = c.fabric.rails  # a rail per NIC: rails sets the NICs (compute ports) per server
    if gpus % nics or nics > gpus:
        raise TopologyError(f"nics_per_node (fabric.rails) must divide gpus_per_node ({gpus}), "
                            f"got {nics}")
    return ServerSpec(gpu=gpu.name, gpus=gpus, nvlink=c.nvlink or gpu.nvlink, nics=nics,
                      nic=c.nic or "ib-ndr-400", host_link=c.host_link or "pcie5")


def _storage(tiers: list[StorageSpec] | None, nic: str) -> StorageServers | None:
    """The storage tier placed on the fabric (the one that sets `servers`), if any."""
    placed = [t for t in tiers or [] if t.servers is not None]
    if len(placed) > 1:
        raise TopologyError("storage: only one tier may set servers (be attached to the fabric); "
                            f"{len(placed)} do")
    if not placed:
        return None
    t = placed[0]
    assert t.servers is not None
    return StorageServers(servers=t.servers, link=t.link or nic, nics=t.nics)


def resolve(c: ClusterSpec) -> BuildSpec:
    """A merged cluster description -> BuildSpec (without building anything)."""
    server = _server(c)
    fabric = resolve_fabric(c.fabric or FabricSpec(), default_link=server.nic)
    return BuildSpec(name=c.name or "custom", nodes=c.nodes or 1, server=server, fabric=fabric,
                     storage=_storage(c.storage, server.nic))
