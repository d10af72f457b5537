"""Records the fleet simulation works on: the cluster's nodes and switches, jobs, storage tiers.

The front door builds them (from a cluster graph, a node list, a trace); the core never looks at
a graph or a workload: a training job carries what the fleet needs of its workload (checkpoint
size, data read rate) and a callable prices its speed for a placement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

import numpy as np


@dataclass
class FleetLayout:
    """The nodes of a cluster as arrays (index = node id) and the switches above them."""

    gpus: np.ndarray                 # GPUs per node (int)
    gpu_type: np.ndarray             # GPU type code per node (index into type_names)
    type_names: list[str]
    cpu_milli: np.ndarray            # CPU per node, milli-cores (inf when not modelled)
    memory_mib: np.ndarray           # host memory per node, MiB (inf when not modelled)
    leaf: np.ndarray                 # leaf group of each node (nodes whose NICs share leaves)
    pod: np.ndarray                  # pod of each node (0 on a 2-tier fabric)
    switches: int = 0                # leaf switches (failure domains: a switch takes its nodes)
    switch_nodes: list[np.ndarray] = field(default_factory=list)  # nodes under each leaf switch
    nic_bw_bytes_per_s: float = 50e9  # one GPU's NIC (per direction)
    gpu_name: str = "h100-sxm"
    fabric_switches: int = 0         # every switch of the fabric (leaves, spines, cores): power
    _per_leaf: int | None = field(default=None, repr=False)

    @property
    def n_nodes(self) -> int:
        """Nodes in the cluster."""
        return len(self.gpus)

    @property
    def n_gpus(self) -> int:
        """GPUs in the cluster."""
        return int(self.gpus.sum())

    @property
    def max_gpus_per_node(self) -> int:
        """GPUs of the largest node (whole-node jobs take nodes of this size)."""
        return int(self.gpus.max()) if len(self.gpus) else 0

    def nodes_per_leaf(self) -> int:
        """The most nodes any leaf group holds (cached)."""
        if self._per_leaf is None:
            self._per_leaf = int(np.bincount(self.leaf).max()) if len(self.leaf) else 1
        return self._per_leaf


@dataclass(frozen=True)
class StorageTier:
    """A storage tier all jobs share: read and write bandwidth (bytes/s), capacity (bytes)."""

    name: str
    read_bw_bytes_per_s: float
    write_bw_bytes_per_s: float
    capacity_bytes: float | None = None


@dataclass
class FleetJob:
    """One job as submitted. A training job (workload set) advances at its priced speed."""

    id: int
    name: str
    submit_s: float
    gpus: int                        # whole GPUs (0 for a CPU-only pod)
    work_s: float                    # run time at nominal speed (packed placement, no slowdown)
    priority: int = 0
    user: str = ""
    workload: str | None = None      # training workload key (priced by the front door)
    gpu_milli: int = 1000            # share of one GPU when gpus == 1 (GPU-sharing pods)
    gpu_types: tuple[str, ...] = ()  # allowed GPU types (empty: any)
    cpu_milli: float = 0.0
    memory_mib: float = 0.0
    checkpoint_bytes: float = 0.0    # model + optimizer state written per checkpoint (0: none)
    checkpoint_writers: int = 0      # GPUs that write their shard (0: all of the job's)
    read_bytes_per_s: float = 0.0    # data loading at nominal speed

    @property
    def training(self) -> bool:
        """A training job (priced by the simulator, checkpoints) rather than a fixed run time."""
        return self.workload is not None

    @property
    def gpu_amount(self) -> float:
        """GPUs held, fractional for a shared GPU."""
        return self.gpu_milli / 1000.0 if self.gpus == 1 else float(self.gpus)


@dataclass(frozen=True)
class PlacementInfo:
    """Where a job landed, as its speed depends on it: nodes, leaf groups and pods spanned."""

    nodes: int
    leaves: int
    pods: int
    min_leaves: int                  # the fewest leaves this many nodes could span


# The front door's pricing: rate of a job on a placement relative to its nominal speed (1.0 =
# as fast as packed), and the share of a running GPU's time spent computing (for power).
SpeedFn = Callable[[FleetJob, PlacementInfo], "JobSpeed"]


@dataclass(frozen=True)
class JobSpeed:
    """A job's speed on its placement, from the front door's pricing."""
    rate: float = 1.0                # nominal seconds of work per second
    compute_share: float = 1.0       # of the GPU time: computing (the rest communicating / idle)


def nominal_speed(job: FleetJob, where: PlacementInfo) -> JobSpeed:
    """Every job at its nominal speed (jobs given by duration, and tests)."""
    return JobSpeed()


class Phase(str, Enum):
    """What a placed job is doing."""

    STARTING = "starting"            # start-up and checkpoint read-back
    RUNNING = "running"
    CHECKPOINTING = "checkpointing"  # a blocking checkpoint write
    DETECTING = "detecting"          # failed, not yet noticed: GPUs held, no progress


class StopReason(str, Enum):
    """Why a job's work was cut short (GPU-hours lost are booked by reason)."""

    FAILURE = "failure"
    PREEMPTION = "preemption"
