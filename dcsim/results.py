"""Results as typed records: the JSON contract of `dcsim simulate` and the summary table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
    def from_categories(cls, cats: dict[str, float]) -> "Breakdown":
        return cls(
            compute_s=cats.get("compute", 0.0),
            optimizer_s=cats.get("optimizer", 0.0),
            exposed_comm_s={d: cats.get(d, 0.0) for d in COMM_DIMS},
            pipeline_bubble_s=cats.get("pipeline_bubble", 0.0),
            io_s=cats.get("io", 0.0),
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
class SimulationResult:
    """One simulated scenario: the contract fields of DESIGN.md section 3 and context."""

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
    # The engine's op timings (for --trace); not part of the JSON contract.
    timing: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        timing, self.timing = self.timing, None
        try:
            return asdict(self)
        finally:
            self.timing = timing
