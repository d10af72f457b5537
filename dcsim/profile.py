"""Calibration profiles: the JSON file `dcsim calibrate` writes, and what the simulator asks of it.

A profile holds the device's metadata, the raw timed samples (kernels and collectives), the
curves fitted to them and the quality of each fit. The simulator asks two questions of it:
`Profile.op_time` (how long does an op of class C with F FLOP and B bytes take here) and
`Profile.collective_time` (how long does this collective of S bytes over n ranks take here).
Every answer says whether it is `measured` (a sample at exactly that size) or `fitted`
(interpolated by the curve) and whether it is extrapolated beyond the measured sizes.

Curves (`kind`): `saturating` (overhead + size / rate), `loglog` (monotone interpolation),
`roofline` (overhead + FLOP / FLOP-rate + bytes / byte-rate: a smooth roofline in arithmetic
intensity, for a class whose samples differ in FLOP per byte), `two_regime` (two rates joined
continuously at a fitted size), and for collectives `alpha_beta` and `piecewise_alpha_beta`.
Schema version 2 added `roofline` and `two_regime`; version-1 files are read unchanged.

This module is pure (pydantic + math): it imports neither torch nor anything from `calibrate`.

Conventions (the contract between `calibrate/` and the cost model):
- Kernel FLOP and byte counts are those documented in `OP_CONVENTIONS`; a query must count the
  same way (e.g. attention FLOPs count the masked half of a causal attention too).
- Collective `size_bytes` follows nccl-tests (doc/PERFORMANCE.md): the size of the whole
  buffer, i.e. per-rank buffer for all_reduce / broadcast / all_to_all, the gathered output for
  all_gather, the un-scattered input for reduce_scatter, and the message for send_recv.
- Collective times are wall time of one operation, the slowest rank; send_recv is one way.
- Kernels are timed cold by default (caches flushed before each call, as a training step finds
  its data in memory) or warm (calls back to back); `KernelSample.cache` says which and
  `Metadata.cache_flush_bytes` how much was written (calibrate/kernels.py says why and what it
  was checked against).
- `Profile.framework` holds the per-kernel framework cost a kernel pays inside a training step
  beyond what its isolated sample already includes (autograd recording, module calls).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from dcsim.errors import InputError

from dcsim.vocabulary import (ADAM_FP32_STEP_BYTES_PER_PARAM, COLLECTIVE_OPS, ELEMENT_BYTES,  # noqa: F401 (re-exported)
                              PRECISIONS)

__all__ = [
    "SCHEMA_VERSION",
    "READABLE_SCHEMA_VERSIONS",
    "OP_CLASSES",
    "COLLECTIVES",
    "PRECISIONS",
    "OP_SIZE_METRIC",
    "OP_CONVENTIONS",
    "ProfileError",
    "OpEstimate",
    "Efficiency",
    "Metadata",
    "KernelSample",
    "CollectiveSample",
    "Unsupported",
    "FrameworkOverhead",
    "STREAMING_COUNTS",
    "OPTIMIZER_FLOPS_PER_PARAM",
    "OPTIMIZER_BYTES_PER_PARAM",
    "ELEMENT_BYTES",
    "SaturatingCurve",
    "LogLogCurve",
    "RooflineCurve",
    "TwoRegimeCurve",
    "AlphaBeta",
    "PiecewiseAlphaBeta",
    "FitQuality",
    "ComputeFit",
    "CollectiveFit",
    "Profile",
    "curve_time",
    "load_profile",
    "save_profile",
]

# Version of the file layout below; bump on an incompatible change (load_profile refuses others).
# 2: compute fits may be `roofline` or `two_regime` curves (a dcsim reading version 1 only would
# not know them, so it refuses the file by its version instead of failing on a curve kind).
SCHEMA_VERSION = 2
# Versions this dcsim reads: every version-1 file is a valid version-2 file.
READABLE_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2)

OpClass = Literal[
    "gemm", "attention", "norm", "elementwise", "softmax", "embedding", "cross_entropy", "optimizer"
]
CollectiveOp = Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "send_recv"]
Precision = Literal["fp32", "bf16", "fp16", "fp8"]
Direction = Literal["fwd", "bwd"]
Provenance = Literal["measured", "fitted"]
SizeMetric = Literal["flops", "bytes"]

OP_CLASSES: tuple[str, ...] = (
    "gemm", "attention", "norm", "elementwise", "softmax", "embedding", "cross_entropy", "optimizer"
)
COLLECTIVES: tuple[str, ...] = COLLECTIVE_OPS

# What the efficiency curve of each class is a function of: GEMM and attention are bound by
# arithmetic, the rest by memory traffic (their FLOP counts are tiny next to their bytes).
OP_SIZE_METRIC: dict[str, SizeMetric] = {
    "gemm": "flops",
    "attention": "flops",
    "norm": "bytes",
    "elementwise": "bytes",
    "softmax": "bytes",
    "embedding": "bytes",
    "cross_entropy": "bytes",
    "optimizer": "bytes",
}


# Row-wise and element-wise kernels over n elements (n = elements of the output activation):
# (FLOP per element, elements read + written per element; bytes = that x n x e) by (variant, pass).
# calibrate/kernels.py counts its samples with this table and dcsim/calibrated.py converts the
# simulator's kernels to it, so both sides of a query count alike.
STREAMING_COUNTS: dict[tuple[str, str], tuple[int, int]] = {
    ("layer_norm", "fwd"): (5, 2), ("layer_norm", "bwd"): (8, 3),
    ("rms_norm", "fwd"): (5, 2), ("rms_norm", "bwd"): (8, 3),
    ("gelu", "fwd"): (8, 2), ("gelu", "bwd"): (8, 3),
    # silu(a) * b over n output elements: reads a and b, writes one; backward reads a, b and
    # the output grad and writes two grads.
    ("swiglu", "fwd"): (5, 3), ("swiglu", "bwd"): (8, 5),
    # a + b (a residual add); its backward is where autograd sums the two branches' grads
    # (an in-place a += b), three streams both ways.
    ("add", "fwd"): (1, 3), ("add", "bwd"): (1, 3),
    # y = s * x into another buffer (DDP's copy of a gradient into its bucket, layout copies).
    ("copy", "fwd"): (1, 2),
    ("softmax", "fwd"): (5, 2), ("softmax", "bwd"): (4, 3),
    # over [t, v] logits, n = t v: log-softmax and the target pick; backward writes the grad.
    ("cross_entropy", "fwd"): (4, 2), ("cross_entropy", "bwd"): (3, 2),
}
# AdamW over P fp32 parameters: read p, g, m, v and write p, m, v (7 x 4 bytes); ~12 FLOP each.
OPTIMIZER_BYTES_PER_PARAM = ADAM_FP32_STEP_BYTES_PER_PARAM
OPTIMIZER_FLOPS_PER_PARAM = 12

# How calibrate/kernels.py counts FLOPs and bytes (e = bytes per element of the precision;
# n = elements of the activation). A cost model querying the profile must count the same way.
OP_CONVENTIONS: dict[str, str] = {
    "gemm": "[m,k]@[k,n]: fwd 2mnk FLOP, (mk+kn+mn)e bytes; bwd (dX and dW) 4mnk FLOP, 2(mk+kn+mn)e bytes",
    "attention": "causal SDPA, batch b, heads h, seq s, head dim d: fwd 4bhs^2d FLOP (QK^T and PV, "
    "masked half included, as in Narayanan et al. 2021), 4bhsd e bytes; bwd 2x fwd FLOP, 8bhsd e bytes",
    "norm": "layer_norm / rms_norm over n elements: fwd 5n FLOP, 2n e bytes; bwd 8n FLOP, 3n e bytes",
    "elementwise": "gelu: fwd 8n FLOP, 2n e bytes, bwd 3n e bytes; silu(a)*b over n: fwd 5n FLOP, 3n e "
    "bytes, bwd 5n e bytes; add (a+b; backward a+=b): n FLOP, 3n e bytes; copy (y=s*x, forward "
    "only): n FLOP, 2n e bytes",
    "softmax": "over n elements: fwd 5n FLOP, 2n e bytes; bwd 4n FLOP, 3n e bytes",
    "embedding": "t tokens of width h from a [v,h] table: fwd 0 FLOP, 2th e bytes; bwd th FLOP, "
    "(vh + 2th) e bytes (dense weight gradient)",
    "cross_entropy": "over [t,v] logits: fwd 4tv FLOP, 2tv e bytes; bwd 3tv FLOP, 2tv e bytes",
    "optimizer": "AdamW step (then zero_grad(set_to_none=True)) over P fp32 parameters: 12P FLOP, "
    "7P*4 bytes (read p,g,m,v; write p,m,v); measured and queried as precision fp32 whatever the "
    "compute precision (master weights); timed cold (a step touches its state once)",
}

# Relative tolerance under which a query is taken to be the size of a measured sample.
_SAME_SIZE_RTOL = 1e-9


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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Metadata(_Model):
    """Where and how a profile was measured."""

    schema_version: int = SCHEMA_VERSION
    device_kind: Literal["cpu", "cuda"]
    device_name: str
    device_count: int = Field(ge=0)
    host: str
    cpu_count: int = Field(ge=1)
    threads: int = Field(ge=1, description="torch intra-op threads per process while timing kernels")
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
    # vendor, family, model, stepping, l2_bytes, l3_bytes, isa, cores (calibrate.device.cpu_identity)
    cpu: dict[str, Any] | None = None


class KernelSample(_Model):
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


class CollectiveSample(_Model):
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


class Unsupported(_Model):
    """Something the run did not or could not measure, and why (instead of a crash)."""

    what: str
    reason: str


class FrameworkOverhead(_Model):
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


class SaturatingCurve(_Model):
    """t(x) = overhead_s + x / rate_max, i.e. efficiency x / (x + x_half) of rate_max, x_half = overhead*rate."""

    kind: Literal["saturating"] = "saturating"
    rate_max_per_s: float = Field(gt=0)
    overhead_s: float = Field(ge=0)


class LogLogCurve(_Model):
    """Monotone piecewise-linear interpolation of log t against log x (knots = measured sizes).

    Beyond the largest knot the largest size's rate holds (t grows like x); below the smallest,
    the first segment's log-log slope continues, clamped to [0, 1] (between a fixed overhead
    and a fixed rate), so the curve stays continuous and monotone everywhere.
    """

    kind: Literal["loglog"] = "loglog"
    log_sizes: list[float] = Field(min_length=1)
    log_times: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _monotone(self) -> "LogLogCurve":
        xs, ys = self.log_sizes, self.log_times
        if len(xs) != len(ys):
            raise ValueError("log_sizes and log_times must have the same length")
        if any(b <= a for a, b in zip(xs, xs[1:], strict=False)):
            raise ValueError("log_sizes must be strictly increasing")
        if any(b < a for a, b in zip(ys, ys[1:], strict=False)):
            raise ValueError("log_times must be non-decreasing (time never falls with size)")
        return self


class AlphaBeta(_Model):
    """t(S) = alpha_s + S / bw_bytes_per_s (Hockney's model)."""

    kind: Literal["alpha_beta"] = "alpha_beta"
    alpha_s: float = Field(ge=0)
    bw_bytes_per_s: float = Field(gt=0)


class PiecewiseAlphaBeta(_Model):
    """Continuous two-segment alpha-beta: slope 1/bw_small up to break_bytes, 1/bw_large beyond."""

    kind: Literal["piecewise_alpha_beta"] = "piecewise_alpha_beta"
    alpha_s: float = Field(ge=0)
    break_bytes: float = Field(gt=0)
    bw_small_bytes_per_s: float = Field(gt=0)
    bw_large_bytes_per_s: float = Field(gt=0)


class RooflineCurve(_Model):
    """t = overhead_s + flops / flop_rate_per_s + bytes / byte_rate_per_s: a smooth roofline.

    At arithmetic intensity I = flops / bytes the attained FLOP rate is 1 / (1/flop_rate +
    1/(byte_rate I)), the roofline min(flop_rate, byte_rate I) with a smooth knee at I =
    flop_rate / byte_rate; along a fixed intensity it is a saturating curve in size. For a
    class whose samples differ in FLOP per byte (attention: I grows with the sequence length;
    GEMMs of different aspect; an embedding backward's rows against its dense table) a curve in
    one size metric cannot tell them apart. `size_metric` says which count a query's `size` is;
    a query without the other count is taken at `ref_flops_per_byte` (the samples' geometric-mean
    intensity); a query outside [intensity_min, intensity_max] is extrapolated.
    """

    kind: Literal["roofline"] = "roofline"
    size_metric: SizeMetric
    overhead_s: float = Field(ge=0)
    flop_rate_per_s: float = Field(gt=0)
    byte_rate_per_s: float = Field(gt=0)
    ref_flops_per_byte: float = Field(gt=0)
    intensity_min: float = Field(gt=0)
    intensity_max: float = Field(gt=0)


class TwoRegimeCurve(_Model):
    """t(x) = overhead_s + min(x, break_size) / rate_small + max(x - break_size, 0) / rate_large.

    Two throughput regimes joined continuously (no step) at a fitted size: e.g. a working set
    that outgrows a cache, or (CPU) buffers big enough that the allocator maps fresh pages on
    every call, which then cost a page fault each. Beyond the largest sample the large-size rate
    holds. x is the fit's size metric (FLOP or bytes).
    """

    kind: Literal["two_regime"] = "two_regime"
    overhead_s: float = Field(ge=0)
    break_size: float = Field(gt=0)
    rate_small_per_s: float = Field(gt=0)
    rate_large_per_s: float = Field(gt=0)


Curve = Annotated[
    Union[SaturatingCurve, LogLogCurve, RooflineCurve, TwoRegimeCurve, AlphaBeta, PiecewiseAlphaBeta],
    Field(discriminator="kind"),
]
AnyCurve = Union[SaturatingCurve, LogLogCurve, RooflineCurve, TwoRegimeCurve, AlphaBeta, PiecewiseAlphaBeta]


class FitQuality(_Model):
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


class ComputeFit(_Model):
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


class CollectiveFit(_Model):
    """Time against message size for one collective at one world size."""

    op: CollectiveOp
    world_size: int = Field(ge=1)
    backend: Literal["gloo", "nccl"]
    curve: Curve
    quality: FitQuality


def _roofline_counts(curve: RooflineCurve, size: float, other: float | None) -> tuple[float, float]:
    """(FLOP, bytes) of a roofline query: `other` is the count that is not the size metric."""
    if other is None:  # along the samples' typical intensity
        other = size / curve.ref_flops_per_byte if curve.size_metric == "flops" else size * curve.ref_flops_per_byte
    return (size, other) if curve.size_metric == "flops" else (other, size)


def curve_time(curve: AnyCurve, size: float, other: float | None = None) -> float:
    """Seconds a curve predicts at `size` (FLOP or bytes); monotone non-decreasing in size.

    `other` matters to a roofline curve only: the count that is not its size metric (bytes for
    a FLOP-metric fit); without it the curve's reference intensity gives it.
    """
    if size < 0 or not math.isfinite(size):
        raise ValueError(f"size must be a finite non-negative number, got {size!r}")
    if other is not None and (other < 0 or not math.isfinite(other)):
        raise ValueError(f"other must be a finite non-negative number, got {other!r}")
    if isinstance(curve, SaturatingCurve):
        return curve.overhead_s + size / curve.rate_max_per_s
    if isinstance(curve, RooflineCurve):
        flops, nbytes = _roofline_counts(curve, size, other)
        return curve.overhead_s + flops / curve.flop_rate_per_s + nbytes / curve.byte_rate_per_s
    if isinstance(curve, TwoRegimeCurve):
        small = min(size, curve.break_size)
        large = max(size - curve.break_size, 0.0)
        return curve.overhead_s + small / curve.rate_small_per_s + large / curve.rate_large_per_s
    if isinstance(curve, AlphaBeta):
        return curve.alpha_s + size / curve.bw_bytes_per_s
    if isinstance(curve, PiecewiseAlphaBeta):
        small = min(size, curve.break_bytes)
        large = max(size - curve.break_bytes, 0.0)
        return curve.alpha_s + small / curve.bw_small_bytes_per_s + large / curve.bw_large_bytes_per_s
    if isinstance(curve, LogLogCurve):
        xs, ys = curve.log_sizes, curve.log_times
        first = (ys[1] - ys[0]) / (xs[1] - xs[0]) if len(xs) > 1 and xs[1] > xs[0] else 0.0
        first = min(max(first, 0.0), 1.0)
        if size <= 0:
            return math.exp(ys[0]) if first == 0.0 else 0.0
        lx = math.log(size)
        if lx <= xs[0]:
            return math.exp(ys[0] + first * (lx - xs[0]))
        if lx >= xs[-1]:
            return math.exp(ys[-1] + (lx - xs[-1]))  # beyond: the largest size's rate, held
        i = bisect.bisect_right(xs, lx)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        w = (lx - x0) / (x1 - x0) if x1 > x0 else 0.0
        return math.exp(y0 + w * (y1 - y0))
    raise TypeError(f"unknown curve {type(curve).__name__}")


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= _SAME_SIZE_RTOL * max(abs(a), abs(b), 1e-300)


def _outside(size: float, q: FitQuality, curve: AnyCurve | None = None, intensity: float | None = None) -> bool:
    """Beyond the measured sizes, or (a roofline curve) beyond the measured FLOP per byte."""
    if size < q.size_min * (1 - _SAME_SIZE_RTOL) or size > q.size_max * (1 + _SAME_SIZE_RTOL):
        return True
    if isinstance(curve, RooflineCurve) and intensity is not None:
        return bool(intensity < curve.intensity_min * (1 - _SAME_SIZE_RTOL)
                    or intensity > curve.intensity_max * (1 + _SAME_SIZE_RTOL))
    return False


def _intensity(flops: float, bytes_moved: float) -> float | None:
    return flops / bytes_moved if bytes_moved > 0 else None


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


class Profile(_Model):
    """A calibration profile: metadata, raw samples, fits, and the questions a cost model asks."""

    metadata: Metadata
    kernels: dict[OpClass, list[KernelSample]] = Field(default_factory=dict)
    collectives: dict[CollectiveOp, list[CollectiveSample]] = Field(default_factory=dict)
    unsupported: list[Unsupported] = Field(default_factory=list)
    compute_fits: list[ComputeFit] = Field(default_factory=list)
    collective_fits: list[CollectiveFit] = Field(default_factory=list)
    framework: FrameworkOverhead | None = None

    _compute_index: dict[tuple[str, str, str, str | None], ComputeFit] | None = PrivateAttr(default=None)
    _collective_index: dict[tuple[str, int], CollectiveFit] | None = PrivateAttr(default=None)
    _sample_index: dict[tuple, list] | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        """Equal content; the lookup caches (private attributes) do not count."""
        if not isinstance(other, Profile):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # mutable, like any non-frozen pydantic model

    # --- bookkeeping used by the runner (fits change only through set_fits) ------------------
    def measured_keys(self) -> set[str]:
        """Keys of every sample already in the profile (a resumed run skips these)."""
        keys = {s.key for ss in self.kernels.values() for s in ss}
        keys |= {s.key for ss in self.collectives.values() for s in ss}
        return keys

    def add_kernel(self, sample: KernelSample) -> None:
        """Append a kernel sample."""
        self.kernels.setdefault(sample.op_class, []).append(sample)
        self._sample_index = None

    def add_collective(self, sample: CollectiveSample) -> None:
        """Append a collective sample."""
        self.collectives.setdefault(sample.op, []).append(sample)
        self._sample_index = None

    def set_fits(self, compute: list[ComputeFit], collective: list[CollectiveFit]) -> None:
        """Replace the fits (after a fitting pass); the file is then of this schema version (an
        older profile resumed or refitted may now hold curves its version did not have)."""
        self.metadata.schema_version = SCHEMA_VERSION
        self.compute_fits = list(compute)
        self.collective_fits = list(collective)
        self._compute_index = None
        self._collective_index = None
        self._sample_index = None

    def _samples(self, key: tuple) -> list:
        """Samples grouped by (op class, precision, pass) or (collective, world size), built once."""
        if self._sample_index is None:
            index: dict[tuple, list] = {}
            for ks in self.kernels.values():
                for k in ks:
                    index.setdefault((k.op_class, k.precision, k.direction), []).append(k)
            for cs in self.collectives.values():
                for c in cs:
                    index.setdefault((c.op, c.world_size), []).append(c)
            self._sample_index = index
        return self._sample_index.get(key, [])

    # --- lookups ------------------------------------------------------------------------------
    def compute_fit(
        self, op_class: str, precision: str, direction: str = "fwd", variant: str | None = None
    ) -> ComputeFit | None:
        """The fit for (op class, precision, pass[, variant]), or None when the profile has none.

        A variant without its own fit falls back to the class's pooled fit.
        """
        if self._compute_index is None:
            self._compute_index = {(f.op_class, f.precision, f.direction, f.variant): f for f in self.compute_fits}
        if variant is not None:
            fit = self._compute_index.get((op_class, precision, direction, variant))
            if fit is not None:
                return fit
        return self._compute_index.get((op_class, precision, direction, None))

    def collective_fit(self, op: str, world_size: int) -> CollectiveFit | None:
        """The fit for (collective, world size), or None when that pair was not measured."""
        if self._collective_index is None:
            self._collective_index = {(f.op, f.world_size): f for f in self.collective_fits}
        return self._collective_index.get((op, int(world_size)))

    def op_classes(self) -> list[tuple[str, str, str]]:
        """(op class, precision, pass) triples this profile can answer for."""
        return sorted({(f.op_class, f.precision, f.direction) for f in self.compute_fits})

    # --- the questions a cost model asks ------------------------------------------------------
    def op_time(
        self,
        op_class: str,
        precision: str,
        flops: float,
        bytes_moved: float,
        direction: str = "fwd",
        variant: str | None = None,
        shape: dict[str, int] | None = None,
    ) -> OpEstimate | None:
        """Seconds for one op of `op_class` doing `flops` FLOP and moving `bytes_moved` bytes.

        The fit's size metric (`OP_SIZE_METRIC`) picks which of the two drives the curve. A
        sample measured at exactly these counts answers `measured`; otherwise the curve answers
        `fitted`. `direction` is "fwd" or "bwd" (the optimizer step is "fwd"); `variant` (e.g.
        "rms_norm") picks a per-variant fit when there is one; `shape` (e.g. a GEMM's m, n, k),
        when given, must match the sample's too (a [256,2048]x[2048,512] GEMM is not the
        [512,256]x[256,2048] one although they count alike). None when the class, precision or
        pass is not in the profile.
        """
        fit = self.compute_fit(op_class, precision, direction, variant)
        if fit is None:
            return None
        size = fit.size_of(flops, bytes_moved)
        hits = [
            s.median_s
            for s in self._samples((op_class, precision, direction))
            if (variant is None or s.variant == variant)
            and _same(s.flops, flops) and _same(s.bytes_moved, bytes_moved)
            and (shape is None or s.shape == shape)
        ]
        if hits:
            return OpEstimate(_median(hits), "measured", False)
        return OpEstimate(fit.time(flops, bytes_moved), "fitted",
                          _outside(size, fit.quality, fit.curve, _intensity(flops, bytes_moved)))

    def achieved_rate(
        self, op_class: str, precision: str, size: float, direction: str = "fwd", variant: str | None = None,
        other: float | None = None,
    ) -> float | None:
        """FLOP/s (or bytes/s for memory-bound classes) the fit predicts at `size`; None if absent.

        `other` is the count that is not the fit's size metric (a roofline fit uses it; without
        it, the fit's reference intensity).
        """
        fit = self.compute_fit(op_class, precision, direction, variant)
        if fit is None or size <= 0:
            return None
        return size / curve_time(fit.curve, size, other)

    def compute_efficiency(
        self,
        op_class: str,
        precision: str,
        size: float,
        direction: str = "fwd",
        peak_per_s: float | None = None,
        variant: str | None = None,
        other: float | None = None,
    ) -> Efficiency | None:
        """Achieved rate at `size` as a fraction of `peak_per_s` (a spec peak FLOP/s or bytes/s).

        Without a peak the fraction is of the curve's own plateau (its best rate over sizes, at
        the query's FLOP per byte for a roofline fit), so an unmeasured device's spec roofline
        can be scaled by this device's shape of efficiency. `other`: as in `achieved_rate`.
        """
        fit = self.compute_fit(op_class, precision, direction, variant)
        rate = self.achieved_rate(op_class, precision, size, direction, variant, other)
        if fit is None or rate is None:
            return None
        if peak_per_s is None:
            peak_per_s = _plateau_rate(fit, size, other)
        if peak_per_s <= 0:
            raise ValueError(f"peak_per_s must be positive, got {peak_per_s!r}")
        intensity = None
        if isinstance(fit.curve, RooflineCurve) and other is not None:
            flops, nbytes = _roofline_counts(fit.curve, size, other)
            intensity = _intensity(flops, nbytes)
        return Efficiency(rate / peak_per_s, "fitted", _outside(size, fit.quality, fit.curve, intensity))

    def collective_time(self, op: str, world_size: int, size_bytes: float) -> OpEstimate | None:
        """Seconds for one collective `op` of `size_bytes` (nccl-tests convention) over
        `world_size` ranks; None when that collective/world size was not measured."""
        fit = self.collective_fit(op, world_size)
        if fit is None:
            return None
        hits = [s.median_s for s in self._samples((op, int(world_size))) if _same(s.size_bytes, size_bytes)]
        if hits:
            return OpEstimate(_median(hits), "measured", False)
        return OpEstimate(curve_time(fit.curve, float(size_bytes)), "fitted", _outside(size_bytes, fit.quality))

    def framework_overhead(self, direction: str = "fwd") -> float:
        """Seconds one kernel of this pass costs the framework in a step beyond its sample (0
        when the profile did not measure it; see FrameworkOverhead)."""
        fw = self.framework
        if fw is None:
            return 0.0
        return fw.bwd_s if direction == "bwd" else fw.fwd_s


def _plateau_rate(fit: ComputeFit, size: float = 1.0, other: float | None = None) -> float:
    """Best rate the curve reaches: rate_max for a saturating curve, the best knot for log-log,
    the large-size rate at the query's intensity (size, other) for a roofline."""
    c = fit.curve
    if isinstance(c, SaturatingCurve):
        return c.rate_max_per_s
    if isinstance(c, RooflineCurve):
        flops, nbytes = _roofline_counts(c, size, other)
        if size <= 0 or flops + nbytes <= 0:
            flops, nbytes = _roofline_counts(c, 1.0, None)
        per_size = (flops / c.flop_rate_per_s + nbytes / c.byte_rate_per_s) / (flops if c.size_metric == "flops" else nbytes)
        return 1.0 / per_size
    if isinstance(c, TwoRegimeCurve):
        return max(c.rate_small_per_s, c.rate_large_per_s)
    if isinstance(c, LogLogCurve):
        return max(math.exp(x - y) for x, y in zip(c.log_sizes, c.log_times, strict=False))
    if isinstance(c, AlphaBeta):
        return c.bw_bytes_per_s
    if isinstance(c, PiecewiseAlphaBeta):
        return max(c.bw_small_bytes_per_s, c.bw_large_bytes_per_s)
    raise TypeError(f"unknown curve {type(c).__name__}")


def _error_field(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
    return f"field {loc!r}: {first.get('msg', 'invalid')}"


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read and validate a profile file; ProfileError names the file and the bad field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"calibration profile {p}: no such file") from None
    except OSError as e:
        raise ProfileError(f"calibration profile {p}: cannot read ({e.strerror or e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(f"calibration profile {p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise ProfileError(f"calibration profile {p}: expected a JSON object at the top level")
    version = (data.get("metadata") or {}).get("schema_version") if isinstance(data.get("metadata"), dict) else None
    if version is not None and version not in READABLE_SCHEMA_VERSIONS:
        readable = ", ".join(str(v) for v in READABLE_SCHEMA_VERSIONS)
        raise ProfileError(
            f"calibration profile {p}: field 'metadata.schema_version' is {version!r}, this dcsim reads {readable}"
            + (" (a newer dcsim wrote it: update dcsim, or refit it with this one: dcsim calibrate refit)"
               if isinstance(version, int) and version > SCHEMA_VERSION else "")
        )
    try:
        return Profile.model_validate(data)
    except ValidationError as e:
        raise ProfileError(f"calibration profile {p}: {_error_field(e)}") from None


def save_profile(profile: Profile, path: str | os.PathLike[str]) -> None:
    """Write a profile atomically (temporary file in the same folder, then rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = profile.model_dump_json(indent=1)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a profile is a shared, committed file
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
