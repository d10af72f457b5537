"""The `fleet:` section of a fleet scenario as validated, typed objects (SI units inside).

Quantities may carry units ("54 days", "2 TB/s", "700 W"); they are converted once, here.
Failure rates, power figures and prices default to published numbers (sources beside them in
dcsim/fleet/failures.py and dcsim/fleet/power.py).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dcsim import units


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _dur(v: Any) -> Any:
    return None if v is None else units.parse_duration(v)


def _nonneg(name: str, v: float | None) -> float | None:
    if v is not None and v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


class SourceKind(str, Enum):
    """Where the jobs come from."""

    LIST = "list"            # jobs written in the scenario
    GENERATOR = "generator"  # arrivals, sizes and durations drawn from distributions
    ALIBABA = "alibaba"      # Alibaba GPU v2023 pod list (openb_pod_list_*.csv)
    JOBLOG = "joblog"        # a generic CSV / Parquet job log (columns in dcsim/fleet/sources.py)
    PHILLY = "philly"        # generator arrivals with Philly's published run times


class ListedJob(_Strict):
    """One job written in the scenario."""

    name: str | None = None
    submit: float = 0.0
    gpus: int = Field(ge=1)
    duration: float | None = None       # run time at nominal speed (jobs without a workload)
    workload: str | None = None         # a key of the scenario's `workloads:` mapping
    priority: int = 0
    user: str = ""
    gpu_type: str | None = None
    count: int = Field(1, ge=1)         # this many copies, submitted `every` apart
    every: float = 0.0

    parse_units = field_validator("submit", "duration", "every", mode="before")(classmethod(
        lambda cls, v: _dur(v)))

    @field_validator("submit", "duration", "every")
    @classmethod
    def _pos(cls, v: float | None) -> float | None:
        return _nonneg("time", v)


class Distribution(_Strict):
    """A positive quantity by its median and mean (lognormal), or an empirical CSV column."""

    median: float | None = None
    mean: float | None = None
    max: float | None = None
    values: list[float] | None = None   # draw uniformly among these
    weights: list[float] | None = None

    parse_units = field_validator("median", "mean", "max", mode="before")(classmethod(
        lambda cls, v: None if v is None else units.parse_duration(v)))

    @field_validator("median", "mean", "max")
    @classmethod
    def _pos(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be > 0, got {v}")
        return v


class GeneratorSpec(_Strict):
    """A synthetic job stream: Poisson arrivals, job sizes, run times, a share of training jobs."""

    jobs: int = Field(1000, ge=1)
    arrival_rate_per_h: float | None = Field(None, gt=0)   # default: jobs spread over the horizon
    gpus: Distribution = Field(default_factory=lambda: Distribution.model_validate(
        {"median": 1, "mean": 4, "max": 64}))
    duration: Distribution = Field(default_factory=lambda: Distribution.model_validate(
        {"median": 900, "mean": 3600}))
    # Training jobs: this share of jobs of at least `training_min_gpus` names a workload.
    training_share: float = Field(0.0, ge=0, le=1)
    training_min_gpus: int = Field(8, ge=1)
    training_workloads: list[str] = Field(default_factory=list)
    priority_levels: int = Field(1, ge=1)


class JobSourceSpec(_Strict):
    """Where the fleet's jobs come from and how to read them."""
    source: SourceKind = SourceKind.LIST
    items: list[ListedJob] = Field(default_factory=list, alias="list")
    path: str | None = None                 # trace file (alibaba, joblog, philly)
    generator: GeneratorSpec = Field(default_factory=lambda: GeneratorSpec.model_validate({}))
    limit: int | None = Field(None, ge=1)   # first N jobs of a trace
    time_scale: float = Field(1.0, gt=0)    # multiply trace run times (what-if)


class SchedulerKind(str, Enum):
    """The scheduling policies."""
    FIFO = "fifo"
    BACKFILL = "backfill"          # EASY backfill (Lifka 1995; Mu'alem & Feitelson 2001)
    PRIORITY = "priority"          # strict priority with preemption of lower priorities


class SchedulerSpec(_Strict):
    """Scheduler, placement policy and their knobs."""
    policy: SchedulerKind = SchedulerKind.FIFO
    placement: str = "packed"      # a name in dcsim.fleet.placement.PLACEMENTS
    # Jobs behind the head that backfill looks at per pass (Slurm's bf_max_job_test default: 500,
    # slurm.conf(5)).
    backfill_depth: int = Field(500, ge=1)
    # A preempted training job writes a checkpoint before it leaves (`checkpoint`), or leaves at
    # once and loses its work since the last one (`lose`).
    preemption: Literal["checkpoint", "lose"] = "checkpoint"


class FailureModel(str, Enum):
    """The failure rate tables."""
    NONE = "none"
    LLAMA3 = "llama3"   # Llama 3 405B interruption table, per cause (Dubey et al. 2024, Table 5)
    RSC1 = "rsc1"       # the same cause mix scaled to RSC-1's 6.5 per 1,000 node-days


class CauseOverride(_Strict):
    """A scenario's rate or repair time for one cause."""
    rate_per_component_day: float | None = None
    repair: float | None = None

    parse_units = field_validator("repair", mode="before")(classmethod(lambda cls, v: _dur(v)))

    @field_validator("rate_per_component_day", "repair")
    @classmethod
    def _pos(cls, v: float | None) -> float | None:
        return _nonneg("a rate or a repair time", v)


class FailureSpec(_Strict):
    """Failure rates, detection, restart and spares."""
    model: FailureModel = FailureModel.NONE
    rate_scale: float = Field(1.0, ge=0)
    causes: dict[str, CauseOverride] = Field(default_factory=dict)
    # Time from a failure to the job noticing it. Default: PyTorch's NCCL process-group timeout,
    # 10 min (torch.distributed.constants.default_pg_nccl_timeout).
    detection: float = 600.0
    # Scheduler pass that requeues the job. Default: Slurm's sched_interval, 60 s (slurm.conf(5)).
    requeue: float = 60.0
    # Process start, NCCL init and data-loader warm-up before the checkpoint is read back.
    # ASSUMED: 3 min (no published figure at hand for this scale; a scenario field to vary).
    startup: float = 180.0
    spare_nodes: int = Field(0, ge=0)   # nodes held back from the scheduler, swapped in on failure

    parse_units = field_validator("detection", "requeue", "startup", mode="before")(classmethod(
        lambda cls, v: _dur(v)))

    @field_validator("detection", "requeue", "startup")
    @classmethod
    def _pos(cls, v: float) -> float:
        _nonneg("a time", v)
        return v


class CheckpointSpec(_Strict):
    """Checkpoint interval, tier and mode."""
    interval: float | Literal["auto"] | None = "auto"   # work between checkpoints; auto = Young
    tier: str | None = None       # storage tier written to (default: the first tier)
    asynchronous: bool = Field(False, alias="async")
    # Snapshot to host memory for async checkpoints: PCIe Gen5 x16, 64 GB/s per direction
    # (PCI-SIG PCIe 5.0: 32 GT/s x 16 lanes, 128b/130b).
    host_copy_bw: float = 63e9
    per_gpu_write_bw: float | None = None   # cap of one GPU's share (default: its NIC)

    @field_validator("interval", mode="before")
    @classmethod
    def _iv(cls, v: Any) -> Any:
        if v in (None, "auto"):
            return v
        x = units.parse_duration(v)
        if x <= 0:
            raise ValueError(f"must be > 0 or auto, got {v!r}")
        return x

    @field_validator("host_copy_bw", "per_gpu_write_bw", mode="before")
    @classmethod
    def _bw(cls, v: Any) -> Any:
        if v is None:
            return None
        x = units.parse_bandwidth(v)
        if x <= 0:
            raise ValueError(f"a bandwidth must be > 0, got {v!r}")
        return x


class PowerSpec(_Strict):
    """Power and prices; None means the default of dcsim/fleet/power.py (sources there)."""

    gpu_idle_w: float | None = None
    gpu_compute_w: float | None = None
    gpu_comm_w: float | None = None
    node_overhead_w: float | None = None
    pue: float | None = Field(None, ge=1.0)
    price_usd_per_kwh: float | None = Field(None, ge=0)
    gpu_hour_usd: float | None = Field(None, ge=0)
    carbon_kg_per_kwh: float | None = Field(None, ge=0)
    gpu_cap_w: float | None = None      # a power cap per GPU (nvidia-smi -pl)
    cluster_cap_w: float | None = None  # a cap on the cluster's IT power (GPUs, nodes, switches,
    #                                     storage): provisioned as a uniform per-GPU cap
    switch_w: float | None = None       # per fabric switch (default: dcsim/fleet/power.py)
    storage_w: float | None = None      # all storage tiers together (default: not counted)

    @field_validator("gpu_cap_w", "cluster_cap_w")
    @classmethod
    def _cap(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError(f"a power cap must be > 0, got {v}")
        return v

    @field_validator("gpu_idle_w", "gpu_compute_w", "gpu_comm_w", "node_overhead_w", "gpu_cap_w",
                     "cluster_cap_w", "switch_w", "storage_w", mode="before")
    @classmethod
    def _w(cls, v: Any) -> Any:
        if v is None:
            return None
        x = units.parse_power(v)
        if x < 0:
            raise ValueError(f"a power must be >= 0, got {v!r}")
        return x


class FleetSpec(_Strict):
    """The `fleet:` section of a fleet scenario."""
    horizon: float = 30 * 86400.0
    seed: int = 0
    jobs: JobSourceSpec = Field(default_factory=lambda: JobSourceSpec.model_validate({}))
    scheduler: SchedulerSpec = Field(default_factory=lambda: SchedulerSpec.model_validate({}))
    failures: FailureSpec = Field(default_factory=lambda: FailureSpec.model_validate({}))
    checkpoint: CheckpointSpec = Field(default_factory=lambda: CheckpointSpec.model_validate({}))
    power: PowerSpec = Field(default_factory=lambda: PowerSpec.model_validate({}))
    data_tier: str | None = None      # storage tier training jobs read their data from
    bytes_per_token: float = Field(4.0, gt=0)   # tokenized data: int32 token ids (Megatron)
    sample_every: float = 3600.0      # time series resolution of the outputs

    parse_units = field_validator("horizon", "sample_every", mode="before")(classmethod(
        lambda cls, v: _dur(v)))

    @field_validator("horizon", "sample_every")
    @classmethod
    def _pos(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"must be > 0, got {v}")
        return v
