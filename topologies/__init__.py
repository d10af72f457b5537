"""Builders of cluster graphs: servers (NVLink domains) on a Clos / fat-tree / rail-optimized fabric.

    build_cluster("dgx-h100", nodes=32, fabric={"oversubscription": 2})  -> dcsim.cluster.Cluster
    list_presets()                                                        -> ["dgx-a100", ...]

Presets are YAML files in topologies/presets/. A preset may also be given as a dict (inline, in
a scenario) or as a path to a YAML file; a dict with a `preset` key extends that preset.
Bad input raises TopologyError (a ValueError) whose message names the field and what is allowed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import networkx as nx
from pydantic import ValidationError

from dcsim import hardware
from dcsim.cluster import Cluster
from dcsim.errors import PathError
from dcsim.files import read_input_text
from dcsim.fields import abbreviate, format_validation_error
from dcsim.limits import LimitExceeded, Limits
from dcsim.yamlio import YamlInputError, load_yaml
from topologies.errors import TopologyError
from topologies.fabric import Endpoint, build_fabric
from topologies.schema import ClusterSpec, FabricSpec, NodeSpec, StorageSpec
from topologies.server import add_servers
from topologies.spec import BuildSpec, resolve

__all__ = ["BuildSpec", "ClusterSpec", "FabricSpec", "NodeSpec", "StorageSpec", "TopologyError",
           "build_cluster", "build_from_spec", "list_presets", "load_preset", "resolve_spec"]

# A preset may extend another (`preset: name`); a chain longer than this is a loop.
MAX_PRESET_CHAIN = 8


def list_presets() -> list[str]:
    """Names of the bundled presets (topologies/presets/*.yaml), sorted."""
    folder = resources.files("topologies").joinpath("presets")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The dict of a bundled preset by name, or of a YAML file by path."""
    if name in list_presets():
        text = resources.files("topologies").joinpath("presets", f"{name}.yaml").read_text()
    elif name.endswith((".yaml", ".yml")) and Path(name).is_file():
        text = _read_preset_file(Path(name))
    else:
        raise TopologyError(f"unknown preset {abbreviate(name)}; known: {', '.join(list_presets())} "
                            f"(or a path to a .yaml file)")
    try:
        data = load_yaml(text, f"preset {name!r}")
    except YamlInputError as exc:
        raise TopologyError(str(exc)) from None
    if not isinstance(data, dict):
        raise TopologyError(f"preset {name!r} is not a mapping")
    data.setdefault("name", Path(name).stem if name.endswith((".yaml", ".yml")) else name)
    return data


def _read_preset_file(path: Path) -> str:
    """The UTF-8 text of a preset file; a one-line TopologyError naming it otherwise."""
    try:
        return read_input_text(path, "preset")
    except PathError as exc:
        raise TopologyError(str(exc)) from None


def validate_cluster(data: Any, where: str = "") -> ClusterSpec:
    """A cluster description (preset file or inline mapping) -> ClusterSpec, or TopologyError."""
    if isinstance(data, ClusterSpec):
        return data
    if not isinstance(data, Mapping):
        raise TopologyError(f"{where or 'preset'}: must be a preset name ({', '.join(list_presets())}) "
                            f"or a mapping")
    try:
        return ClusterSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise TopologyError(format_validation_error(exc, ClusterSpec, prefix=where)) from None


def merged_spec(preset: str | Mapping[str, Any] | ClusterSpec) -> ClusterSpec:
    """The description with every preset it extends merged under it (its own keys win)."""
    spec = (validate_cluster(load_preset(preset), f"preset {preset!r}") if isinstance(preset, str)
            else validate_cluster(preset))
    chain: list[ClusterSpec] = [spec]
    while chain[-1].preset is not None:
        if len(chain) > MAX_PRESET_CHAIN:
            raise TopologyError(f"preset: more than {MAX_PRESET_CHAIN} presets extend each other")
        name = chain[-1].preset
        chain.append(validate_cluster(load_preset(name), f"preset {name!r}"))
    merged = chain[-1]
    for over in reversed(chain[:-1]):
        merged = merged.overlay(over)
    return merged


def resolve_spec(preset: str | Mapping[str, Any] | ClusterSpec, nodes: int | None = None,
                 fabric: Mapping[str, Any] | FabricSpec | None = None) -> BuildSpec:
    """Validate a preset + overrides without building the graph."""
    spec = merged_spec(preset)
    over: dict[str, Any] = {}
    if nodes is not None:
        over["nodes"] = nodes
    if fabric is not None:
        over["fabric"] = fabric.model_dump(exclude_unset=True) if isinstance(fabric, FabricSpec) \
            else fabric
    if over:
        spec = spec.overlay(validate_cluster(over))
    return resolve(spec)


def build_cluster(preset: str | Mapping[str, Any] | ClusterSpec, nodes: int | None = None,
                  fabric: Mapping[str, Any] | FabricSpec | None = None,
                  limits: Limits | None = None) -> Cluster:
    """Build a Cluster (graph contract in dcsim/cluster.py) from a preset and overrides; the
    cluster's size is checked against `limits` (default: this machine's) before anything is built."""
    spec = resolve_spec(preset, nodes, fabric)
    try:
        (limits or Limits.default()).check_cluster(spec.nodes, spec.server.gpus)
    except LimitExceeded as exc:
        raise TopologyError(str(exc)) from None
    return build_from_spec(spec)


def build_from_spec(spec: BuildSpec) -> Cluster:
    """The cluster graph of resolved build parameters."""
    if spec.fabric.topology == "none" and spec.nodes > 1:
        raise TopologyError("fabric.topology 'none' allows a single node; set nodes: 1 or a fabric topology")
    g = nx.Graph(name=spec.name)
    gpu_nodes, nic_nodes = add_servers(g, spec.server, spec.nodes)
    summary = None
    if spec.fabric.topology != "none":
        endpoints = [Endpoint(node=n, server=g.nodes[n]["server"], rail=g.nodes[n]["local"],
                              link=spec.server.nic) for n in nic_nodes]
        summary = build_fabric(g, endpoints, spec.server.nics, spec.fabric, spec.storage)
    description = spec.describe()
    description["fabric_summary"] = summary.as_dict() if summary else None
    return Cluster(name=spec.name, graph=g, gpu_spec=hardware.gpu(spec.server.gpu),
                   gpus_per_node=spec.server.gpus, gpu_nodes=gpu_nodes, description=description)
