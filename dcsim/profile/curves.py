"""Fitted curves of time against size (kernels and collectives) and how each predicts."""

from __future__ import annotations

import bisect
import math
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from dcsim.profile.conventions import SizeMetric

if TYPE_CHECKING:
    from dcsim.profile.gemm_table import GemmTable


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class SaturatingCurve(StrictModel):
    """t(x) = overhead_s + x / rate_max, i.e. efficiency x / (x + x_half) of rate_max, x_half = overhead*rate."""

    kind: Literal["saturating"] = "saturating"
    rate_max_per_s: float = Field(gt=0)
    overhead_s: float = Field(ge=0)


class LogLogCurve(StrictModel):
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


class AlphaBeta(StrictModel):
    """t(S) = alpha_s + S / bw_bytes_per_s (Hockney's model)."""

    kind: Literal["alpha_beta"] = "alpha_beta"
    alpha_s: float = Field(ge=0)
    bw_bytes_per_s: float = Field(gt=0)


class PiecewiseAlphaBeta(StrictModel):
    """Continuous two-segment alpha-beta: slope 1/bw_small up to break_bytes, 1/bw_large beyond."""

    kind: Literal["piecewise_alpha_beta"] = "piecewise_alpha_beta"
    alpha_s: float = Field(ge=0)
    break_bytes: float = Field(gt=0)
    bw_small_bytes_per_s: float = Field(gt=0)
    bw_large_bytes_per_s: float = Field(gt=0)


class RooflineCurve(StrictModel):
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


class TwoRegimeCurve(StrictModel):
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


class GemmTableCurve(StrictModel):
    """A GEMM's FLOP rate by shape, interpolated between measured shapes (published sweeps).

    GEMM efficiency depends on the shape, not only on its FLOP count: tile and wave quantisation
    and the alignment of the dimensions move a cuBLAS GEMM between 50% and 80% of peak at equal
    FLOPs (NVIDIA Deep Learning Performance Guide, "Matrix Multiplication Background"; Anthony
    et al. 2024, Fig. 3-6). A query's rate is the inverse-distance-weighted mean of ln(rate) of
    its `neighbours` nearest measured shapes in (log2 batch, log2 m, log2 n, log2 k,
    ALIGN_WEIGHT log2 alignment), where alignment is the largest power of two up to 64 dividing
    both n and k; a query outside the measured box is projected onto it (the edge's rate holds,
    as the log-log curve holds its last rate) and flagged extrapolated. `shapes` rows are
    [batch, m, n, k] (C[m, n] = A[m, k] B[k, n], batch of them); `log_rates` ln FLOP/s.
    """

    kind: Literal["gemm_table"] = "gemm_table"
    shapes: list[list[int]] = Field(min_length=1)
    log_rates: list[float] = Field(min_length=1)
    neighbours: int = Field(default=4, ge=1)
    _table: "GemmTable | None" = PrivateAttr(default=None)

    def table(self) -> "GemmTable":
        """The table's arrays, built on first use."""
        if self._table is None:
            from dcsim.profile.gemm_table import GemmTable
            self._table = GemmTable(self)
        return self._table

    def median_rate(self) -> float:
        """FLOP/s of the median measured shape (a query without a shape gets this)."""
        rs = sorted(self.log_rates)
        return math.exp(rs[len(rs) // 2])

    @model_validator(mode="after")
    def _rows(self) -> "GemmTableCurve":
        if len(self.shapes) != len(self.log_rates) or any(len(r) != 4 for r in self.shapes):
            raise ValueError("gemm_table: one [batch, m, n, k] row per log rate")
        return self


Curve = Annotated[
    Union[SaturatingCurve, LogLogCurve, RooflineCurve, TwoRegimeCurve, AlphaBeta, PiecewiseAlphaBeta,
          GemmTableCurve],
    Field(discriminator="kind"),
]
AnyCurve = Union[SaturatingCurve, LogLogCurve, RooflineCurve, TwoRegimeCurve, AlphaBeta, PiecewiseAlphaBeta,
                 GemmTableCurve]


def roofline_counts(curve: RooflineCurve, size: float, other: float | None) -> tuple[float, float]:
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
    if isinstance(curve, GemmTableCurve):
        return size / curve.median_rate()  # no shape given: the median shape's rate
    if isinstance(curve, RooflineCurve):
        flops, nbytes = roofline_counts(curve, size, other)
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


