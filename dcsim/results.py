"""Results as typed records, flat rows and pandas frames.

A `SimulationResult` is one simulated scenario: a list of per-job records (`JobResult`, the
figures of DESIGN.md section 3; one job, or several sharing the cluster) and the run's own
figures. `to_dict()` is the JSON contract of `dcsim simulate --json`; `to_record()` is one flat
row (scenario fields as `scenario.<path>` columns, the same paths `--set` takes, and the
figures as columns, nested ones dotted: `breakdown.exposed_comm_s.dp`); `to_frame(results)`
makes a pandas DataFrame of many results, one row each (`per_job=True`: one row per job),
keeping only the scenario columns that vary between them.

    frame = to_frame([simulate(load_scenario(f, [f"workload.parallelism.tp={tp}"]))
                      for tp in (2, 4, 8)])
    frame[["scenario.workload.parallelism.tp", "iteration_s", "mfu"]]
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Iterable, Mapping, Protocol, TypeVar, overload

from dcsim.program import CATEGORY_OF, Category
from dcsim.timing import IterationTiming

if TYPE_CHECKING:
    import pandas as pd

COMM_DIMS = ("tp", "pp", "dp", "cp", "ep")


@dataclass
class Breakdown:
    """Where the critical rank's iteration went; the parts add up to iteration_s."""

    compute_s: float
    optimizer_s: float
    exposed_comm_s: dict[str, float]
    pipeline_bubble_s: float
    io_s: float

    @classmethod
    def from_categories(cls, cats: Mapping[Category, float]) -> "Breakdown":
        """From the attribution walk's seconds by category."""
        return cls(
            compute_s=cats.get(Category.COMPUTE, 0.0),
            optimizer_s=cats.get(Category.OPTIMIZER, 0.0),
            exposed_comm_s={d: cats.get(CATEGORY_OF[d], 0.0) for d in COMM_DIMS},
            pipeline_bubble_s=cats.get(Category.PIPELINE_BUBBLE, 0.0),
            io_s=cats.get(Category.IO, 0.0),
        )

    def total_s(self) -> float:
        return (self.compute_s + self.optimizer_s + sum(self.exposed_comm_s.values())
                + self.pipeline_bubble_s + self.io_s)


@dataclass
class Provenance:
    """Where the costs came from: shares of compute time by source."""

    calibration: str
    measured: float
    fitted: float
    spec: float
    extrapolated: float
    note: str = ""


@dataclass
class CheckpointCost:
    """The hook for checkpoint cost in time to train (the fleet model refines it: failures,
    restarts, asynchronous writes, shared storage). Here: blocking writes of the full model
    state to the scenario's first storage tier, if it names one."""

    every_s: float | None
    count: int
    bytes_each: float
    write_s_each: float
    total_s: float
    note: str


@dataclass
class JobResult:
    """One job: the contract fields of DESIGN.md section 3 and context; in a multi-job
    scenario also where it ran and (when asked) how much the other jobs slowed it."""

    name: str
    iteration_s: float
    tokens_per_s: float
    model_tflops_per_gpu: float
    mfu: float
    hardware_tflops_per_gpu: float
    hfu: float
    memory_per_gpu_bytes: float
    fits_in_memory: bool
    time_to_train_s: float | None
    iterations_to_train: int | None
    checkpoint: CheckpointCost | None
    breakdown: Breakdown
    provenance: Provenance
    memory: dict[str, Any]
    gpus: int
    critical_rank: int
    simulated_ranks: int
    events: int
    wall_s: float
    scenario: dict[str, Any] = field(default_factory=dict)
    cluster: dict[str, Any] = field(default_factory=dict)
    # The rank order the job ran in and why ({"order", "reason"}; dcsim/app/rank_order.py).
    rank_order: dict[str, str] | None = None
    # multi-job scenarios only (not in a single job's JSON):
    placement: dict[str, Any] | None = None
    iterations_measured: int = 1  # the figures are the mean of this many iterations
    iterations_simulated: int = 1  # ... of this many run (the rest kept the others company)
    alone_iteration_s: float | None = None  # the same job and placement, cluster to itself
    slowdown: float | None = None  # iteration_s / alone_iteration_s
    # The engine's op timings of this job (for --trace); not part of the JSON contract.
    timing: IterationTiming | None = field(default=None, repr=False, compare=False)

    def to_dict(self, shared: bool = True) -> dict[str, Any]:
        """The JSON record; shared=False leaves out the multi-job fields."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "timing" and (shared or f.name not in MULTI_JOB_FIELDS)}
        out["timing"] = None  # the key the JSON has always had (op timings never go there)
        return asdict_values(out)

    def figures(self) -> dict[str, Any]:
        """The job's figures as one flat mapping (nested records dotted; no scenario or
        cluster description)."""
        d = self.to_dict(shared=self.placement is not None)
        for key in ("scenario", "cluster", "timing"):
            d.pop(key)
        return flatten(d)

    def to_record(self) -> dict[str, Any]:
        """One flat row: this job's scenario fields (scenario.<path>) and its figures."""
        return {**flatten(self.scenario, "scenario"), **self.figures()}


MULTI_JOB_FIELDS = ("placement", "iterations_measured", "iterations_simulated",
                    "alone_iteration_s", "slowdown")

T = TypeVar("T")


class _OnlyJob(Generic[T]):
    """A figure of the scenario's only job, read through its SimulationResult
    (`result.iteration_s` is `result.jobs[0].iteration_s`); an AttributeError that says so
    on a multi-job result."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> "_OnlyJob[T]": ...

    @overload
    def __get__(self, obj: "SimulationResult", owner: type) -> T: ...

    def __get__(self, obj: "SimulationResult | None", owner: type) -> "T | _OnlyJob[T]":
        if obj is None:
            return self
        return getattr(obj.only_job, self.name)  # type: ignore[no-any-return]

    def __set__(self, obj: "SimulationResult", value: T) -> None:
        raise AttributeError(f"{self.name} is the job's figure: set it on result.jobs[i]")


@dataclass
class SimulationResult:
    """One simulated scenario: its jobs (one, or several sharing the cluster) and the run.

    For a single-job scenario the job's figures read through (`result.iteration_s`,
    `result.breakdown`, ...) and `to_dict()` is that job's record, as DESIGN.md section 3
    says; a multi-job scenario's record holds the run and a list of jobs.
    """

    name: str
    jobs: list[JobResult]
    gpus: int  # GPUs in the cluster
    events: int
    wall_s: float
    scenario: dict[str, Any] = field(default_factory=dict)
    cluster: dict[str, Any] = field(default_factory=dict)
    multi_job: bool = False  # the scenario listed `jobs:` (several jobs sharing the cluster)
    network: str = ""
    gpus_used: int | None = None  # multi-job: GPUs the jobs were placed on
    contention: str = ""  # multi-job: how the jobs interact under this network model
    window_s: float | None = None  # multi-job: the end of the longest job's first iteration
    # The run's op timings (for --trace; .program is what ran); not part of the JSON contract.
    timing: IterationTiming | None = field(default=None, repr=False, compare=False)

    iteration_s = _OnlyJob[float]()
    tokens_per_s = _OnlyJob[float]()
    model_tflops_per_gpu = _OnlyJob[float]()
    mfu = _OnlyJob[float]()
    hardware_tflops_per_gpu = _OnlyJob[float]()
    hfu = _OnlyJob[float]()
    memory_per_gpu_bytes = _OnlyJob[float]()
    fits_in_memory = _OnlyJob[bool]()
    time_to_train_s = _OnlyJob["float | None"]()
    iterations_to_train = _OnlyJob["int | None"]()
    checkpoint = _OnlyJob["CheckpointCost | None"]()
    breakdown = _OnlyJob[Breakdown]()
    provenance = _OnlyJob[Provenance]()
    memory = _OnlyJob["dict[str, Any]"]()
    critical_rank = _OnlyJob[int]()
    simulated_ranks = _OnlyJob[int]()
    rank_order = _OnlyJob["dict[str, str] | None"]()

    @property
    def only_job(self) -> JobResult:
        """The job of a single-job scenario (AttributeError on a multi-job one)."""
        if self.multi_job or len(self.jobs) != 1:
            raise AttributeError(f"{self.name}: a result of {len(self.jobs)} jobs has no single "
                                 f"job's figures; read result.jobs[i] or result.job(name)")
        return self.jobs[0]

    def job(self, name: str) -> JobResult:
        """The job called `name`."""
        for j in self.jobs:
            if j.name == name:
                return j
        raise KeyError(f"no job named {name!r}; jobs: {', '.join(j.name for j in self.jobs)}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (DESIGN.md section 3): a single job's record, or the run with its
        list of jobs."""
        if not self.multi_job:
            return self.only_job.to_dict(shared=False)
        return asdict_values({
            "name": self.name, "gpus": self.gpus, "gpus_used": self.gpus_used,
            "network": self.network, "contention": self.contention, "window_s": self.window_s,
            "events": self.events, "wall_s": self.wall_s, "scenario": self.scenario,
            "cluster": self.cluster, "jobs": [j.to_dict() for j in self.jobs]})

    def to_record(self) -> dict[str, Any]:
        """One flat row: scenario fields (scenario.<path>), the run's figures, and each job's
        figures (a single job's as they are, several as job.<name>.<figure>)."""
        row: dict[str, Any] = {**flatten(self.scenario, "scenario"), "name": self.name,
                               "gpus": self.gpus, "events": self.events, "wall_s": self.wall_s}
        if not self.multi_job:
            return {**row, **self.only_job.figures()}
        row.update(gpus_used=self.gpus_used, network=self.network, window_s=self.window_s,
                   jobs=len(self.jobs))
        for j in self.jobs:
            row.update(flatten(j.figures(), f"job.{j.name}"))
        return row

    def to_records(self) -> list[dict[str, Any]]:
        """A flat row per job: the scenario's fields, the run's, and the job's figures."""
        run = {**flatten(self.scenario, "scenario"), "scenario_name": self.name,
               "run_gpus": self.gpus, "run_wall_s": self.wall_s}
        return [{**run, **j.figures()} for j in self.jobs]


# --- flat rows and frames -----------------------------------------------------------------------

class Recordable(Protocol):
    """Anything with a flat row."""

    def to_record(self) -> dict[str, Any]: ...


def asdict_values(d: dict[str, Any]) -> dict[str, Any]:
    """Dataclass values of a mapping as plain dicts (what asdict does to a whole record)."""
    return {k: asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type)
            else [asdict(x) if dataclasses.is_dataclass(x) and not isinstance(x, type) else x
                  for x in v] if isinstance(v, list) else v
            for k, v in d.items()}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as one flat mapping with dotted keys (records in a list by
    index: `cluster.storage.0.tier`; a list of plain values is one tuple cell); an empty
    dict or list becomes None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, (list, tuple)) and not any(isinstance(v, (dict, list, tuple))
                                                    or dataclasses.is_dataclass(v) for v in value):
        return {prefix: tuple(value) if value else None}  # numbers or names: one cell
    if isinstance(value, (dict, list, tuple)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        out: dict[str, Any] = {}
        for k, v in items:
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        if not out and prefix:
            out[prefix] = None
        return out
    return {prefix: value}


def to_frame(results: Iterable[Recordable], per_job: bool = False,
             varied_only: bool = True) -> "pd.DataFrame":
    """Many results as a pandas DataFrame: a row per result (`per_job`: a row per job of a
    SimulationResult), figures as columns. varied_only drops the scenario.* columns whose
    value is the same in every row (kept when there is only one row)."""
    import pandas as pd  # only here: importing pandas takes a while, simulate does not need it

    rows: list[dict[str, Any]] = []
    for r in results:
        rows.extend(r.to_records() if per_job and hasattr(r, "to_records") else [r.to_record()])
    frame = pd.DataFrame.from_records(rows)
    if varied_only and len(rows) > 1:
        same = [c for c in frame.columns if str(c).startswith("scenario.")
                and len({repr(v) for v in frame[c]}) == 1]
        frame = frame.drop(columns=same)
    return frame
