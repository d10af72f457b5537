"""The records a profile file holds: metadata, raw samples, fits with their quality."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal, NamedTuple

from pydantic import Field, model_validator

from dcsim.errors import InputError

from dcsim.profile.conventions import (
    SCHEMA_VERSION,
    CollectiveOp,
    Direction,
    OpClass,
    Precision,
    Provenance,
    SizeMetric,
)
from dcsim.profile.curves import Curve, RooflineCurve, StrictModel, curve_time


class ProfileError(InputError):
    """A profile file is missing, is not JSON, or does not match the schema; one line says which."""


class OpEstimate(NamedTuple):
    """The time of one op, where it came from, and whether it lies outside the measured sizes."""

    time_s: float
    provenance: Provenance
    extrapolated: bool


class Efficiency(NamedTuple):
    """Achieved fraction of a peak (the given one, or the curve's own plateau), with provenance."""

    fraction: float
    provenance: Provenance
    extrapolated: bool



class PublishedSource(StrictModel):
    """Whose measurement a published profile holds: dataset, repository, commit, GPU, licence."""

    dataset: str
    repository: str
    commit: str
    paths: list[str] = Field(default_factory=list)
    gpu: str
    licence: str
    licence_file: str | None = Field(default=None, description="the licence's copy kept beside the profile")
    citation: str | None = None
    timing: str = Field(description="how the publisher timed each kernel (what a sample's median is)")
    samples: int = Field(default=0, ge=0)


class Metadata(StrictModel):
    """Where and how a profile was measured."""

    schema_version: int = SCHEMA_VERSION
    device_kind: Literal["cpu", "cuda"]
    device_name: str
    device_count: int = Field(ge=0)
    host: str
    cpu_count: int | None = Field(default=None, ge=1, description="None: not known (a published dataset)")
    threads: int | None = Field(default=None, ge=1, description="torch intra-op threads per process while timing kernels")
    collective_threads: int | None = Field(default=None, ge=1, description="threads per rank in collectives")
    torch_version: str
    backend: Literal["gloo", "nccl"] | None = None
    backend_version: str | None = None
    driver: str | None = None
    cuda_runtime: str | None = None
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    quick: bool = False
    complete: bool = False
    cache_flush_bytes: int | None = Field(
        default=None, ge=0, description="bytes written before each call of a kernel timed cold (0: timed warm)")
    notes: list[str] = Field(default_factory=list)
    measurement: Literal["local", "published"] = Field(
        default="local", description="local: `dcsim calibrate run` measured it; published: imported from others' data")
    sources: list["PublishedSource"] = Field(default_factory=list)
    # vendor, family, model, stepping, l2_bytes, l3_bytes, isa, cores (calibrate.device.cpu_identity)
    cpu: dict[str, Any] | None = None


class KernelSample(StrictModel):
    """One timed kernel at one shape: forward or backward of an op class."""

    key: str
    op_class: OpClass
    direction: Direction
    precision: Precision
    variant: str
    shape: dict[str, int]
    flops: float = Field(ge=0)
    bytes_moved: float = Field(ge=0)
    median_s: float = Field(gt=0)
    p10_s: float = Field(gt=0)
    p90_s: float = Field(gt=0)
    repeats: int = Field(ge=1)
    cache: Literal["warm", "cold"] | None = Field(
        default=None, description="cold: caches flushed before each call; warm: back-to-back calls")


class CollectiveSample(StrictModel):
    """One timed collective at one size and world size (times of the slowest rank)."""

    key: str
    op: CollectiveOp
    world_size: int = Field(ge=1)
    size_bytes: float = Field(gt=0)
    backend: Literal["gloo", "nccl"]
    median_s: float = Field(gt=0)
    p10_s: float = Field(gt=0)
    p90_s: float = Field(gt=0)
    repeats: int = Field(ge=1)


class Unsupported(StrictModel):
    """Something the run did not or could not measure, and why (instead of a crash)."""

    what: str
    reason: str


class FrameworkOverhead(StrictModel):
    """What one kernel costs the framework inside a training step beyond its isolated sample.

    Measured on tiny tensors, where the kernels themselves cost nothing: `step_fwd_s` is one
    module call with autograd recording (an nn.Linear in a deep nn.Sequential), `step_bwd_s` its
    node in the one backward pass of the whole chain; `call_fwd_s` and `call_bwd_s` are what an
    isolated kernel sample already pays (a bare call without autograd; one autograd.grad call).
    The cost model adds `fwd_s` = step - call to every forward kernel and `bwd_s` to every
    backward kernel (negative when the isolated backward sample paid more: a whole autograd
    call instead of one node of a running backward).
    """

    step_fwd_s: float = Field(ge=0)
    step_bwd_s: float = Field(ge=0)
    call_fwd_s: float = Field(ge=0)
    call_bwd_s: float = Field(ge=0)
    repeats: int = Field(ge=1)

    @property
    def fwd_s(self) -> float:
        return self.step_fwd_s - self.call_fwd_s

    @property
    def bwd_s(self) -> float:
        return self.step_bwd_s - self.call_bwd_s


class FitQuality(StrictModel):
    """How well a fit predicts; held-out errors are leave-one-out relative errors |pred-meas|/meas."""

    n_samples: int = Field(ge=1)
    heldout: str = "leave-one-out"
    heldout_median_rel_err: float | None = None
    heldout_max_rel_err: float | None = None
    insample_median_rel_err: float
    insample_max_rel_err: float
    size_min: float
    size_max: float
    candidates: dict[str, float | None] = Field(
        default_factory=dict, description="held-out mean relative error of each model tried (the selection score)"
    )


class ComputeFit(StrictModel):
    """Time against size for one op class, precision and pass; `variant` None pools all the
    class's variants (e.g. layer_norm and rms_norm), a name fits that variant alone."""

    op_class: OpClass
    precision: Precision
    direction: Direction
    variant: str | None = None
    size_metric: SizeMetric
    curve: Curve
    quality: FitQuality

    @model_validator(mode="after")
    def _metric_agrees(self) -> "ComputeFit":
        if isinstance(self.curve, RooflineCurve) and self.curve.size_metric != self.size_metric:
            raise ValueError("a roofline curve's size_metric must be its fit's")
        return self

    def size_of(self, flops: float, bytes_moved: float) -> float:
        """The count this fit's curve is a function of (its size metric)."""
        return float(flops if self.size_metric == "flops" else bytes_moved)

    def time(self, flops: float, bytes_moved: float) -> float:
        """Seconds the curve predicts for an op of these counts (a roofline uses both)."""
        size = self.size_of(flops, bytes_moved)
        other = float(bytes_moved if self.size_metric == "flops" else flops)
        return curve_time(self.curve, size, other)


class CollectiveFit(StrictModel):
    """Time against message size for one collective at one world size."""

    op: CollectiveOp
    world_size: int = Field(ge=1)
    backend: Literal["gloo", "nccl"]
    curve: Curve
    quality: FitQuality


