"""A fleet scenario -> the core's inputs: the node layout (from a cluster preset or a node
list), storage tiers, jobs (with their workloads' checkpoint size and data rate), and the
pricing of training jobs by the single-job simulator (cached per shape and placement class).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dcsim import units
from dcsim.app.scenario import (ClusterSpec, JobSpec, RunSpec, Scenario, ScenarioError,
                                WorkloadSpec, read_scenario_file, scenario_error_text,
                                set_path)
from dcsim.fleet.config import FleetSpec
from dcsim.fleet.model import FleetJob, FleetLayout, JobSpeed, PlacementInfo, StorageTier
from dcsim.fleet.sources import SourceError, load_jobs


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FleetClusterSpec(ClusterSpec):
    """The cluster of a simulate scenario (a preset or inline, with fabric and storage tiers), or
    a node list CSV (sn, cpu_milli, memory_mib, gpu, model: the Alibaba openb node list's
    columns) with storage tiers."""

    node_list: str | None = None

    def simulate_cluster(self, **over: Any) -> dict[str, Any]:
        """As a simulate scenario's `cluster:` (the keys the user set, `over` on top)."""
        data = self.model_dump(exclude_unset=True, exclude_none=True, by_alias=True,
                               exclude={"node_list"})
        return {**data, **over}


class FleetScenario(_Strict):
    """A fleet scenario: cluster, named workloads, fleet section, run options."""
    name: str = "fleet"
    cluster: FleetClusterSpec
    workloads: dict[str, WorkloadSpec] = Field(default_factory=dict)
    fleet: FleetSpec = Field(default_factory=lambda: FleetSpec.model_validate({}))
    run: RunSpec = Field(default_factory=RunSpec)

    @field_validator("cluster")
    @classmethod
    def _one(cls, v: FleetClusterSpec) -> FleetClusterSpec:
        if v.node_list is not None and v.preset is not None:
            raise ValueError("give either preset (and nodes) or node_list, not both")
        return v


def load_fleet_scenario(source: str | Path | dict[str, Any],
                        overrides: list[str] | None = None) -> tuple[FleetScenario, Path]:
    """Read, override and validate; ScenarioError (one line) on bad input."""
    base = Path(".")
    if isinstance(source, dict):
        data = copy.deepcopy(source)
    else:
        path = Path(source)
        # the scenario reader: UTF-8, duplicate keys, alias and depth bounds, named errors
        data = read_scenario_file(path)
        if not isinstance(data, dict):
            raise ScenarioError(f"{path}: a fleet scenario is a mapping with cluster and fleet")
        base = path.parent
    for a in overrides or []:
        set_path(data, a)
    try:
        return FleetScenario.model_validate(data), base
    except ValidationError as exc:
        raise ScenarioError(scenario_error_text(exc)) from None
    except units.UnitError as exc:
        raise ScenarioError(str(exc)) from None


# --- the layout ----------------------------------------------------------------------------------


def layout_from_preset(sc: FleetScenario) -> tuple[FleetLayout, Any]:
    """Build the cluster graph once and read each server's leaf switches and pod off it."""
    import topologies
    try:
        spec = ClusterSpec.model_validate(sc.cluster.simulate_cluster())
        cluster = topologies.build_cluster(spec)
    except ValidationError as exc:
        raise ScenarioError(f"cluster.{scenario_error_text(exc)}") from None
    except topologies.TopologyError as exc:
        raise ScenarioError(str(exc)) from None
    n = cluster.n_nodes
    leaves_of, pod_of, under = _server_sites(cluster)
    groups: dict[tuple[int, ...], int] = {}
    leaf = np.array([groups.setdefault(leaves_of[i], len(groups)) for i in range(n)])
    pod = np.array([pod_of[i] for i in range(n)])
    switch_nodes = [np.array(v) for _, v in sorted(under.items())]
    g = cluster.graph
    nic_bw = 50e9
    for _a, _b, d in g.edges(data=True):
        if d.get("tier") == "nic-leaf":
            nic_bw = float(d["bw_bytes_per_s"])
            break
    gpn = cluster.gpus_per_node
    lay = FleetLayout(gpus=np.full(n, gpn), gpu_type=np.zeros(n, dtype=int),
                      type_names=[cluster.gpu_spec.name], cpu_milli=np.full(n, np.inf),
                      memory_mib=np.full(n, np.inf), leaf=leaf, pod=pod,
                      switches=len(switch_nodes), switch_nodes=switch_nodes,
                      nic_bw_bytes_per_s=nic_bw, gpu_name=cluster.gpu_spec.name,
                      fabric_switches=sum(1 for _, k in g.nodes(data="kind")
                                          if k in ("leaf", "spine", "core")))
    return lay, cluster


def _server_sites(cluster: Any) -> tuple[dict[int, tuple[int, ...]], dict[int, int],
                                          dict[int, list[int]]]:
    """Per server: the leaf switches its NICs plug into and its pod; per leaf: its servers.
    One pass over the NICs' links at set-up (the simulation itself never walks the graph)."""
    g = cluster.graph
    ids: dict[Any, int] = {}
    leaves: dict[int, set[int]] = {}
    pods: dict[int, int] = {}
    for node, d in g.nodes(data=True):
        if d.get("kind") != "nic":
            continue
        server = int(d["server"])
        for nb in g.neighbors(node):
            nd = g.nodes[nb]
            if nd.get("kind") == "leaf":
                leaves.setdefault(server, set()).add(ids.setdefault(nb, len(ids)))
                pods.setdefault(server, int(nd.get("pod", 0)))
    under: dict[int, list[int]] = {}
    for server in sorted(leaves):
        for sw in leaves[server]:
            under.setdefault(sw, []).append(server)
    n = cluster.n_nodes
    return ({i: tuple(sorted(leaves.get(i, ()))) for i in range(n)},
            {i: pods.get(i, 0) for i in range(n)}, under)


NODE_LIST_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")


def layout_from_node_list(path: Path) -> FleetLayout:
    """Nodes of a node list CSV; each node its own leaf (no fabric is described)."""
    if not path.exists():
        raise ScenarioError(f"cluster.node_list: {path}: no such file")
    df = pd.read_csv(path)
    missing = [c for c in NODE_LIST_COLUMNS if c not in df.columns]
    if missing:
        raise ScenarioError(f"cluster.node_list: missing column {missing[0]!r} "
                            f"(needs {', '.join(NODE_LIST_COLUMNS)})")
    if df.empty:
        raise ScenarioError(f"cluster.node_list: {path} has no nodes")
    types = sorted(df["model"].astype(str).unique())
    n = len(df)
    return FleetLayout(gpus=df["gpu"].to_numpy(int), type_names=types,
                       gpu_type=np.array([types.index(str(m)) for m in df["model"]]),
                       cpu_milli=df["cpu_milli"].to_numpy(float),
                       memory_mib=df["memory_mib"].to_numpy(float), leaf=np.arange(n),
                       pod=np.zeros(n, dtype=int), switches=0, switch_nodes=[],
                       gpu_name=types[0])


def storage_network_bw(cluster: Any) -> float | None:
    """Bandwidth of the links from the storage servers into the fabric (per direction), when the
    cluster places a storage tier on its fabric: every byte to or from that tier crosses them."""
    if cluster is None:
        return None
    g = cluster.graph
    bw = sum(float(d["bw_bytes_per_s"]) for n, nd in g.nodes(data=True)
             if nd.get("kind") == "storage" for _, _, d in g.edges(n, data=True))
    return bw or None


def storage_tiers(sc: FleetScenario, cluster: Any = None) -> list[StorageTier]:
    """The tiers as shared resources; the one placed on the fabric (`servers`) is capped by its
    servers' links (the storage network)."""
    net = storage_network_bw(cluster)
    out = []
    for i, s in enumerate(sc.cluster.storage or []):
        if s.read_bw is None or s.write_bw is None:
            raise ScenarioError(f"cluster.storage[{i}]: the fleet needs read_bw and write_bw")
        if s.read_bw <= 0 or s.write_bw <= 0:
            raise ScenarioError(f"cluster.storage[{i}]: read_bw and write_bw must be > 0")
        read, write = float(s.read_bw), float(s.write_bw)
        if s.servers is not None and net is not None:
            read, write = min(read, net), min(write, net)
        out.append(StorageTier(s.tier, read, write,
                               None if s.capacity is None else float(s.capacity)))
    return out


# --- pricing training jobs ----------------------------------------------------------------------

# Bytes of model state a checkpoint holds per parameter (bf16 weights + fp32 master weights and
# Adam moments, as the single-job simulator's checkpoint cost uses).
from dcsim.app.simulate import CHECKPOINT_BYTES_PER_PARAM  # noqa: E402


@dataclass
class Priced:
    """One pricing of a training job by the single-job simulator."""
    iteration_s: float
    compute_share: float
    tokens_per_iteration: int
    params: int
    writers: int


@dataclass
class Pricer:
    """Prices training jobs with `dcsim simulate` (analytical network by default), once per
    (workload, GPUs, placement class); `spread` when a job spans more than 1.25x the fewest
    leaves its node count needs, priced as that job spread one server per leaf (on a cluster of
    the same fabric with just enough leaves)."""

    sc: FleetScenario
    cluster_nodes: int
    nodes_per_leaf: int = 1
    gpus_per_node: int = 8
    cache: dict[tuple[str, int, str], Priced] = field(default_factory=dict)
    wall_s: float = 0.0
    # Prices kept across runs (a capacity sweep over cluster sizes), keyed by everything a
    # price depends on: the cluster description but its size, the run options, the workload.
    shared: dict[str, Priced] | None = None
    reused: int = 0

    def workload(self, name: str, gpus: int) -> WorkloadSpec:
        """A named workload with data parallelism fitted to the job's GPUs."""
        if name not in self.sc.workloads:
            raise ScenarioError(f"workload {name!r}: not in the scenario's workloads "
                                f"({', '.join(self.sc.workloads) or 'none'})")
        w = self.sc.workloads[name].model_copy(deep=True)
        p = w.parallelism
        per_replica = p.tp * p.pp * p.cp
        if p.tp * p.pp * p.dp * p.cp != gpus:
            if gpus % per_replica:
                raise ScenarioError(f"workloads.{name}.parallelism: a job of {gpus} GPUs is not a "
                                    f"multiple of tp x pp x cp = {per_replica}")
            p.dp = gpus // per_replica
        return w

    def price(self, name: str, gpus: int, klass: str) -> Priced:
        """Price (cached) a workload on a GPU count and placement class."""
        key = (name, gpus, klass)
        if key in self.cache:
            return self.cache[key]
        fp = self._fingerprint(name, gpus, klass) if self.shared is not None else ""
        if self.shared is not None and fp in self.shared:
            self.cache[key] = self.shared[fp]
            self.reused += 1
        else:
            self.cache[key] = self._simulate(name, gpus, klass)
            if self.shared is not None:
                self.shared[fp] = self.cache[key]
        return self.cache[key]

    def _fingerprint(self, name: str, gpus: int, klass: str) -> str:
        """Everything a price depends on, as one string."""
        import json

        nodes = math.ceil(gpus / self.gpus_per_node)
        spread_nodes = min(self.cluster_nodes, nodes * self.nodes_per_leaf)
        return json.dumps([self.sc.cluster.simulate_cluster(nodes=None, storage=None),
                           self.sc.run.model_dump(mode="json"),
                           self.sc.workloads[name].model_dump(mode="json", by_alias=True)
                           if name in self.sc.workloads else name,
                           gpus, klass, spread_nodes if klass == "spread" else nodes],
                          sort_keys=True, default=str)

    def _simulate(self, name: str, gpus: int, klass: str) -> Priced:
        import time

        from dcsim.app.simulate import job_from_workload, simulate

        t0 = time.perf_counter()
        w = self.workload(name, gpus)
        gpn = self.gpus_per_node
        nodes = math.ceil(gpus / gpn)
        cl = self.sc.cluster.simulate_cluster(nodes=nodes)
        run = self.sc.run.model_dump(mode="json")
        try:
            if klass == "spread" and nodes > 1:
                # one server per leaf: the job on as many leaves as it has servers
                cl["nodes"] = min(self.cluster_nodes, nodes * self.nodes_per_leaf)
                sc = Scenario.model_validate({"name": name, "cluster": cl, "run": run, "jobs": [
                    JobSpec(name=name, workload=w, placement="spread").model_dump(by_alias=True)]})
                r = simulate(sc).jobs[0]
            else:
                sc = Scenario.model_validate({"name": name, "cluster": cl, "run": run,
                                              "workload": w.model_dump(by_alias=True)})
                r = simulate(sc).jobs[0]  # one result type: the job's record either way
        except ValidationError as exc:
            raise ScenarioError(f"workloads.{name}: {scenario_error_text(exc)}") from None
        except ScenarioError as exc:
            raise ScenarioError(f"workloads.{name} on {gpus} GPUs: {exc}") from None
        job = job_from_workload(w)
        p = job.par
        writers = gpus if p.zero >= 1 else p.tp * p.pp * p.cp * p.ep
        self.wall_s += time.perf_counter() - t0
        return Priced(r.iteration_s, r.breakdown.compute_s / r.iteration_s,
                      job.tokens_per_iteration, job.model.total_params(), writers)

    def speed(self, job: FleetJob, where: PlacementInfo) -> JobSpeed:
        """The core's speed callable: rate relative to the packed (nominal) iteration."""
        assert job.workload is not None
        klass = "spread" if where.leaves > 1.25 * max(where.min_leaves, 1) else "packed"
        nominal = self.price(job.workload, job.gpus, "packed")
        placed = self.price(job.workload, job.gpus, klass)
        return JobSpeed(rate=nominal.iteration_s / placed.iteration_s,
                        compute_share=placed.compute_share)


def prepare_jobs(sc: FleetScenario, base: Path, pricer: Pricer, layout: FleetLayout,
                 ) -> list[FleetJob]:
    """Jobs of the scenario's source, with training jobs' work, checkpoint and data rate."""
    f = sc.fleet
    try:
        jobs = load_jobs(f.jobs, f.horizon, f.seed, base)
    except SourceError as exc:
        raise ScenarioError(str(exc)) from None
    biggest = layout.n_gpus - f.failures.spare_nodes * layout.max_gpus_per_node
    for j in jobs:
        if j.gpus > biggest:
            raise ScenarioError(f"fleet.jobs: job {j.name!r} asks for {j.gpus} GPUs but the "
                                f"cluster schedules {biggest}")
        bad = [t for t in j.gpu_types if t not in layout.type_names]
        if bad:
            raise ScenarioError(f"fleet.jobs: job {j.name!r} asks for GPU type {bad[0]!r}; the "
                                f"cluster has {', '.join(layout.type_names)}")
        if j.workload is None:
            continue
        p = pricer.price(j.workload, j.gpus, "packed")
        if math.isnan(j.work_s):
            tokens = sc.workloads[j.workload].train.tokens
            if not tokens:
                raise ScenarioError(f"workloads.{j.workload}.train.tokens: needed for a job "
                                    "with no duration")
            j.work_s = math.ceil(tokens / p.tokens_per_iteration) * p.iteration_s
        j.checkpoint_bytes = CHECKPOINT_BYTES_PER_PARAM * p.params
        j.checkpoint_writers = p.writers
        j.read_bytes_per_s = p.tokens_per_iteration / p.iteration_s * f.bytes_per_token
    return jobs
