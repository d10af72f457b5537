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
import yaml

from dcsim import hardware
from dcsim.cluster import Cluster
from topologies.errors import TopologyError
from topologies.fabric import Endpoint, build_fabric
from topologies.server import add_servers
from topologies.spec import BuildSpec, parse_spec

__all__ = ["TopologyError", "build_cluster", "list_presets", "load_preset", "resolve_spec"]


def list_presets() -> list[str]:
    """Names of the bundled presets (topologies/presets/*.yaml), sorted."""
    folder = resources.files("topologies").joinpath("presets")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The dict of a bundled preset by name, or of a YAML file by path."""
    if name in list_presets():
        text = resources.files("topologies").joinpath("presets", f"{name}.yaml").read_text()
    elif name.endswith((".yaml", ".yml")) and Path(name).is_file():
        text = Path(name).read_text()
    else:
        raise TopologyError(f"unknown preset {name!r}; known: {', '.join(list_presets())} "
                            f"(or a path to a .yaml file)")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise TopologyError(f"preset {name!r} is not a mapping")
    data.setdefault("name", Path(name).stem if name.endswith((".yaml", ".yml")) else name)
    return data


def _merge(preset: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(preset, str):
        return load_preset(preset)
    if not isinstance(preset, Mapping):
        raise TopologyError(f"preset must be a name ({', '.join(list_presets())}) or a mapping, got {preset!r}")
    d = dict(preset)
    base_name = d.pop("preset", None)
    if base_name is None:
        return d
    base = load_preset(str(base_name))
    fabric = dict(base.get("fabric") or {})
    fabric.update(d.pop("fabric", None) or {})
    base.update(d)
    base["fabric"] = fabric
    return base


def resolve_spec(preset: str | Mapping[str, Any], nodes: int | None = None,
                 fabric: Mapping[str, Any] | None = None) -> BuildSpec:
    """Validate a preset + overrides without building the graph."""
    return parse_spec(_merge(preset), nodes, fabric)


def build_cluster(preset: str | Mapping[str, Any], nodes: int | None = None,
                  fabric: Mapping[str, Any] | None = None) -> Cluster:
    """Build a Cluster (graph contract in dcsim/cluster.py) from a preset and overrides."""
    spec = resolve_spec(preset, nodes, fabric)
    g = nx.Graph(name=spec.name)
    gpu_nodes, nic_nodes = add_servers(g, spec.server, spec.nodes)
    summary = None
    if spec.fabric.topology != "none":
        endpoints = [Endpoint(node=n, server=g.nodes[n]["server"], rail=g.nodes[n]["local"],
                              link=spec.server.nic) for n in nic_nodes]
        summary = build_fabric(g, endpoints, spec.server.nics, spec.fabric, spec.storage)
    elif spec.nodes > 1:
        raise TopologyError("fabric.topology 'none' allows a single node; set nodes: 1 or a fabric topology")
    description = spec.describe()
    description["fabric_summary"] = summary.as_dict() if summary else None
    return Cluster(name=spec.name, graph=g, gpu_spec=hardware.gpu(spec.server.gpu),
                   gpus_per_node=spec.server.gpus, gpu_nodes=gpu_nodes, description=description)
