"""The Profile: its samples and fits, and the questions a cost model asks of it."""

from __future__ import annotations

import math

from pydantic import Field, PrivateAttr

from dcsim.profile.conventions import SAME_SIZE_RTOL, SCHEMA_VERSION, CollectiveOp, OpClass
from dcsim.profile.curves import (
    AlphaBeta,
    AnyCurve,
    GemmTableCurve,
    LogLogCurve,
    PiecewiseAlphaBeta,
    RooflineCurve,
    SaturatingCurve,
    TwoRegimeCurve,
    StrictModel,
    roofline_counts,
    curve_time,
)
from dcsim.profile.records import (
    CollectiveFit,
    CollectiveSample,
    ComputeFit,
    Efficiency,
    FitQuality,
    FrameworkOverhead,
    KernelSample,
    Metadata,
    OpEstimate,
    Unsupported,
)


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= SAME_SIZE_RTOL * max(abs(a), abs(b), 1e-300)


def _outside(size: float, q: FitQuality, curve: AnyCurve | None = None, intensity: float | None = None) -> bool:
    """Beyond the measured sizes, or (a roofline curve) beyond the measured FLOP per byte."""
    if size < q.size_min * (1 - SAME_SIZE_RTOL) or size > q.size_max * (1 + SAME_SIZE_RTOL):
        return True
    if isinstance(curve, RooflineCurve) and intensity is not None:
        return bool(intensity < curve.intensity_min * (1 - SAME_SIZE_RTOL)
                    or intensity > curve.intensity_max * (1 + SAME_SIZE_RTOL))
    return False


def _intensity(flops: float, bytes_moved: float) -> float | None:
    return flops / bytes_moved if bytes_moved > 0 else None


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


class Profile(StrictModel):
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
    _shape_index: dict[tuple, list[KernelSample]] | None = PrivateAttr(default=None)

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
        self._sample_index = self._shape_index = None

    def add_collective(self, sample: CollectiveSample) -> None:
        """Append a collective sample."""
        self.collectives.setdefault(sample.op, []).append(sample)
        self._sample_index = self._shape_index = None

    def set_fits(self, compute: list[ComputeFit], collective: list[CollectiveFit]) -> None:
        """Replace the fits (after a fitting pass); the file is then of this schema version (an
        older profile resumed or refitted may now hold curves its version did not have)."""
        self.metadata.schema_version = SCHEMA_VERSION
        self.compute_fits = list(compute)
        self.collective_fits = list(collective)
        self._compute_index = None
        self._collective_index = None
        self._sample_index = self._shape_index = None

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
        if shape is not None:
            hits = [s.median_s for s in self._shape_samples(op_class, precision, direction, shape)
                    if (variant is None or s.variant == variant) and _same(s.flops, flops)]
        else:
            hits = [
                s.median_s
                for s in self._samples((op_class, precision, direction))
                if (variant is None or s.variant == variant)
                and _same(s.flops, flops) and _same(s.bytes_moved, bytes_moved)
            ]
        if hits:
            return OpEstimate(_median(hits), "measured", False)
        if isinstance(fit.curve, GemmTableCurve) and shape is not None and {"m", "n", "k"} <= shape.keys():
            t, far = fit.curve.table().time(flops, shape)
            return OpEstimate(t, "fitted", far)
        return OpEstimate(fit.time(flops, bytes_moved), "fitted",
                          _outside(size, fit.quality, fit.curve, _intensity(flops, bytes_moved)))

    def _shape_samples(self, op_class: str, precision: str, direction: str,
                       shape: dict[str, int]) -> list[KernelSample]:
        """Samples of (class, precision, pass) measured at exactly `shape` (indexed once)."""
        if self._shape_index is None:
            index: dict[tuple, list[KernelSample]] = {}
            for ks in self.kernels.values():
                for k in ks:
                    key = (k.op_class, k.precision, k.direction, tuple(sorted(k.shape.items())))
                    index.setdefault(key, []).append(k)
            self._shape_index = index
        return self._shape_index.get((op_class, precision, direction, tuple(sorted(shape.items()))), [])

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
            flops, nbytes = roofline_counts(fit.curve, size, other)
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
        flops, nbytes = roofline_counts(c, size, other)
        if size <= 0 or flops + nbytes <= 0:
            flops, nbytes = roofline_counts(c, 1.0, None)
        per_size = (flops / c.flop_rate_per_s + nbytes / c.byte_rate_per_s) / (flops if c.size_metric == "flops" else nbytes)
        return 1.0 / per_size
    if isinstance(c, TwoRegimeCurve):
        return max(c.rate_small_per_s, c.rate_large_per_s)
    if isinstance(c, GemmTableCurve):
        return math.exp(max(c.log_rates))
    if isinstance(c, LogLogCurve):
        return max(math.exp(x - y) for x, y in zip(c.log_sizes, c.log_times, strict=False))
    if isinstance(c, AlphaBeta):
        return c.bw_bytes_per_s
    if isinstance(c, PiecewiseAlphaBeta):
        return max(c.bw_small_bytes_per_s, c.bw_large_bytes_per_s)
    raise TypeError(f"unknown curve {type(c).__name__}")


