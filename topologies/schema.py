"""The one schema of a cluster description: node (server), fabric and storage, as written in a
preset file (topologies/presets/*.yaml), inline in a scenario's `cluster`, or passed to
`build_cluster`. Every field a preset may set, a scenario may set, with the same units and errors.

These models check each field on its own (types, units, ranges, catalog names); the checks that
need several fields at once (a fat-tree's even radix, NICs dividing GPUs) run when the merged
description is resolved into build parameters (topologies/spec.py).
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field, field_validator

from dcsim import hardware
from dcsim.fields import Bandwidth, Bytes, Count, Count2, Strict, abbreviate


class Topology(str, Enum):
    """Fabric families one folded-Clos builder covers (topologies/fabric.py); none: one node."""

    FAT_TREE = "fat-tree"
    CLOS = "clos"
    LEAF_SPINE = "leaf-spine"
    RAIL_OPTIMIZED = "rail-optimized"
    NONE = "none"


TOPOLOGIES: tuple[str, ...] = tuple(t.value for t in Topology)
# Link kinds (dcsim/data/links.yaml) each port may take.
FABRIC_LINK_KINDS = ("infiniband", "roce")
NVLINK_KINDS = ("nvlink", "pcie")
HOST_LINK_KINDS = ("pcie",)


def _ratio(value: Any) -> float:
    """'3:1', 3, 3.0 -> 3.0 (down:up); >= 1 (a fabric is never *under*-subscribed here)."""
    allowed = f"must be a ratio >= 1 such as 1, 3 or '3:1', got {abbreviate(value)}"
    try:
        if isinstance(value, str) and ":" in value:
            a, b = value.split(":")
            out = float(a) / float(b)
        elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        else:
            out = float(value)
    except (ValueError, ZeroDivisionError):
        raise ValueError(allowed) from None
    if not math.isfinite(out) or out < 1.0:
        raise ValueError(allowed)
    return out


Ratio = Annotated[float, BeforeValidator(_ratio)]


def link_name(name: Any, kinds: tuple[str, ...]) -> str:
    """A catalog link name whose kind is one of `kinds` (ValueError listing the allowed ones)."""
    if not isinstance(name, str):
        raise ValueError(f"must be a link name, got {abbreviate(name)}")
    try:
        spec = hardware.link(name)
    except hardware.UnknownHardware:
        ok = ", ".join(n for n, s in sorted(hardware.catalog().links.items()) if s.kind in kinds)
        raise ValueError(f"unknown link {abbreviate(name)}; allowed: {ok}") from None
    if spec.kind not in kinds:
        ok = ", ".join(n for n, s in sorted(hardware.catalog().links.items()) if s.kind in kinds)
        raise ValueError(f"{name!r} is a {spec.kind} link; allowed: {ok}")
    return spec.name


def _fabric_link(v: Any) -> str:
    return link_name(v, FABRIC_LINK_KINDS)


FabricLink = Annotated[str, BeforeValidator(_fabric_link)]


class RadixSpec(Strict):
    """Ports per switch by tier; a tier left out takes the one below it."""

    leaf: Count2 = 64
    spine: Count2 | None = None
    core: Count2 | None = None


class OversubscriptionSpec(Strict):
    """Down:up port ratio by tier (leaf: to spines; spine: pods to the core)."""

    leaf: Ratio = 1.0
    spine: Ratio = 1.0


class FabricSpec(Strict):
    """The scale-out network; every key is optional (a scenario's keys override a preset's)."""

    topology: Topology | None = None
    tiers: Annotated[int, Field(ge=1, le=3)] | Literal["auto"] | None = None
    oversubscription: Ratio | OversubscriptionSpec | None = None
    link: FabricLink | None = None
    radix: Count2 | RadixSpec | None = None
    k: Count2 | None = None           # fat-tree arity: wins over radix
    rails: Count | None = None        # one rail (compute NIC) per GPU group: sets nics_per_node
    pod_leaves: Count | None = None
    # Network flows (queue pairs) a collective library opens per GPU pair, each hashed onto its
    # own ECMP path (Llama 3 paper sec. 3.3.1: 16 flows per GPU pair with E-ECMP on RoCE).
    flows_per_connection: Count | None = None

    @field_validator("tiers", mode="before")
    @classmethod
    def _tiers(cls, v: Any) -> Any:
        if isinstance(v, bool) or (v is not None and v != "auto" and not isinstance(v, int)):
            raise ValueError(f"must be 1, 2, 3 or 'auto', got {abbreviate(v)}")
        return v


class StorageSpec(Strict):
    """A storage tier: its bandwidths (checkpoints are written at write_bw) and, with `servers`,
    its servers attached to their own leaves of the fabric (storage traffic then shares links)."""

    tier: str = Field("storage", validation_alias=AliasChoices("tier", "name"))
    read_bw: Bandwidth | None = None
    write_bw: Bandwidth | None = None
    capacity: Bytes | None = None
    servers: Count | None = None
    link: FabricLink | None = None    # default: the nodes' NIC
    nics: Count = 1                   # NICs per storage server


def _storage_list(v: Any) -> Any:
    """A preset may give one storage mapping; the schema keeps a list of tiers."""
    return [v] if isinstance(v, dict) else v


class NodeSpec(Strict):
    """One server (an NVLink domain): GPUs on an NVSwitch, NICs on a host link."""

    gpu: str | None = None
    gpus_per_node: Count | None = None
    nvlink: str | None = None
    nics_per_node: Count | None = None
    nic: FabricLink | None = None
    host_link: str | None = None

    @field_validator("gpu")
    @classmethod
    def _gpu(cls, v: str | None) -> str | None:
        if v is not None and v not in hardware.catalog().gpus:
            raise ValueError(f"unknown GPU {abbreviate(v)}; known: "
                             f"{', '.join(sorted(hardware.catalog().gpus))}")
        return v

    @field_validator("nvlink")
    @classmethod
    def _nvlink(cls, v: str | None) -> str | None:
        return None if v is None else link_name(v, NVLINK_KINDS)

    @field_validator("host_link")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        return None if v is None else link_name(v, HOST_LINK_KINDS)


class ClusterSpec(NodeSpec):
    """A cluster: nodes of one kind on a fabric with storage tiers. `preset` names a bundled
    preset (or a YAML file) this description extends key by key (fabric keys merge)."""

    preset: str | None = None
    name: str | None = None
    description: str | None = None
    source: str | None = None
    nodes: Count | None = None
    fabric: FabricSpec | None = None
    storage: Annotated[list[StorageSpec], BeforeValidator(_storage_list)] | None = None

    def overlay(self, over: "ClusterSpec") -> "ClusterSpec":
        """This description with the keys `over` sets in their place (fabric merged by key)."""
        data = self.model_dump(exclude_unset=True, by_alias=False)
        top = over.model_dump(exclude_unset=True, by_alias=False)
        fabric = {**(data.get("fabric") or {}), **(top.pop("fabric", None) or {})}
        data.update(top)
        if fabric:
            data["fabric"] = fabric
        data.pop("preset", None)
        return ClusterSpec.model_validate(data)
