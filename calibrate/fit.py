"""Fit smooth, monotone time-vs-size curves to calibration samples, with held-out error.

Kernels, from the simplest model to the most flexible (dcsim.profile has each curve):
1. saturating: t = t0 + x/r, x the class's size metric (efficiency x/(x + x_half) of a plateau r);
2. roofline: t = t0 + F/a + B/b, when the samples differ in FLOP per byte (attention, whose
   intensity grows with the sequence length; GEMMs of different aspect; the embedding backward's
   rows against its dense table; a class pooled over variants that differ in FLOP per byte).
   The attained FLOP rate 1/(1/a + 1/(b F/B)) is a smooth roofline in arithmetic intensity, so
   one curve prices both a short and a long sequence, which one curve in FLOPs cannot: at equal
   FLOPs, attention over fewer, longer sequences moves fewer bytes and runs faster;
3. two-regime: t = t0 + min(x, x_b)/r1 + max(x - x_b, 0)/r2, continuous at a fitted x_b (a
   working set that outgrows a cache; on CPU, buffers past the allocator's mmap threshold that
   page-fault on every call: cross-entropy over 32000-word logits, a dense embedding gradient);
4. a monotone log-log interpolation.
A model replaces the simpler one kept so far only when its held-out mean relative error is
clearly lower (_PREFER_SIMPLE), and a kernel model that misses one of its own samples by more
than _INSAMPLE_LIMIT is passed over while another one does not (a regime's lone sample cannot
be predicted held out, so held-out error alone would keep a curve that ignores the regime).
Collectives: alpha-beta and a continuous two-segment alpha-beta, chosen the same way. Every fit
minimises RELATIVE error, because a least-squares line in absolute error is dominated by the
large messages and ends up 2x off for small ones (DESIGN.md section 4, gloo on loopback).
Held-out error is leave-one-out; `dcsim calibrate refit PROFILE` fits stored samples again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import math

import numpy as np
from scipy.optimize import nnls

from dcsim.profile.gemm_table import shape_row

from dcsim.profile import (
    OP_SIZE_METRIC,
    AlphaBeta,
    CollectiveFit,
    CollectiveSample,
    ComputeFit,
    FitQuality,
    GemmTableCurve,
    KernelSample,
    LogLogCurve,
    PiecewiseAlphaBeta,
    Profile,
    RooflineCurve,
    SaturatingCurve,
    TwoRegimeCurve,
    curve_time,
)

# Sizes and times: a list of floats or a float array (the fits index arrays by row subsets).
Floats = Sequence[float] | np.ndarray

__all__ = [
    "fit_saturating",
    "fit_roofline",
    "fit_two_regime",
    "roofline_applies",
    "fit_loglog",
    "fit_alpha_beta",
    "fit_piecewise_alpha_beta",
    "fit_compute",
    "fit_collective",
    "fit_profile",
    "refit_profile",
    "loo_errors",
]

AnyCurve = (SaturatingCurve | LogLogCurve | RooflineCurve | TwoRegimeCurve | AlphaBeta | PiecewiseAlphaBeta
            | GemmTableCurve)
Fitter = Callable[[np.ndarray, np.ndarray], AnyCurve]

# A more flexible model replaces the simple one only when its held-out MEAN relative error (the
# mean, so one wild extrapolation counts against it) is below this fraction of the simple one's:
# a guard against choosing noise (our choice, not a published constant; 20% is above the spread
# between reruns of the quick calibration's held-out errors on the 2-core machine).
_PREFER_SIMPLE = 0.8
# Smallest slope (seconds per FLOP or byte) a fit may report, so rates stay finite: 1e-18 s/unit
# is 1e18 units/s, beyond any device (an H100 does ~1e15 FLOP/s dense bf16).
_MIN_SLOPE = 1e-18
# Flexible models need enough points to be judged on held-out data.
_MIN_POINTS_FLEXIBLE = 5
# A kernel model is passed over if it misses one of its own samples by more than this (relative)
# while another model describes all of them within it. A curve that leaves out a whole regime
# (the largest cross-entropy or embedding samples on the 2-core machine, 2-4x slower per byte,
# their buffers page-faulting on every call) can still score well held out, since no model
# predicts a regime's lone sample from the others; but it is 2x off for every larger query. 30%
# is the largest change we saw re-timing a sample (a 0.2 ms residual add; attention samples
# moved 0-15%), so a bigger miss is not noise. Our choice, not a published constant.
_INSAMPLE_LIMIT = 0.3
# A roofline fit needs samples whose FLOP per byte differ by more than this factor (below it the
# two rates cannot be told apart and the saturating curve in the size metric says the same).
_MIN_INTENSITY_SPREAD = 1.1
# Measured shapes a gemm_table query interpolates between: 4 (the corners of the cell a shape
# falls in along two dimensions); the held-out error of the imported sweeps shows the choice.
_GEMM_NEIGHBOURS = 4
# Candidate breaks a two-regime fit tries at most (a published sweep has thousands of sizes).
_MAX_BREAKS = 64


def _arrays(sizes: Floats, times: Floats) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(sizes, dtype=float)
    t = np.asarray(times, dtype=float)
    if x.shape != t.shape or x.ndim != 1 or x.size == 0:
        raise ValueError("sizes and times must be equal-length, non-empty 1-D sequences")
    if np.any(t <= 0) or np.any(x < 0) or not (np.all(np.isfinite(x)) and np.all(np.isfinite(t))):
        raise ValueError("times must be positive and sizes non-negative, all finite")
    return x, t


def _nnls_relative(columns: list[np.ndarray], t: np.ndarray) -> np.ndarray:
    """Non-negative c minimising sum(((A c) - t) / t)^2 for A = columns."""
    a = np.stack([c / t for c in columns], axis=1)
    c, _ = nnls(a, np.ones_like(t))
    return c


def fit_saturating(sizes: Floats, times: Floats) -> SaturatingCurve:
    """t = overhead + size / rate, non-negative, in relative error."""
    x, t = _arrays(sizes, times)
    if x.size == 1 or np.ptp(x) == 0:
        rate = float(np.median(x / t)) if np.all(x > 0) else 1.0 / _MIN_SLOPE
        return SaturatingCurve(rate_max_per_s=max(rate, 1e-300), overhead_s=0.0)
    c0, c1 = _nnls_relative([np.ones_like(x), x], t)
    return SaturatingCurve(rate_max_per_s=1.0 / max(c1, _MIN_SLOPE), overhead_s=float(c0))


def _intensities(flops: np.ndarray, nbytes: np.ndarray) -> np.ndarray | None:
    """FLOP per byte of each sample; None unless every sample has both counts positive."""
    if np.any(flops <= 0) or np.any(nbytes <= 0):
        return None
    return flops / nbytes


def roofline_applies(flops: Floats, nbytes: Floats) -> bool:
    """Whether samples differ enough in FLOP per byte for a roofline fit to mean anything."""
    i = _intensities(np.asarray(flops, dtype=float), np.asarray(nbytes, dtype=float))
    return i is not None and float(np.max(i) / np.min(i)) > _MIN_INTENSITY_SPREAD


def fit_roofline(
    flops: Floats, nbytes: Floats, times: Floats, size_metric: str = "flops"
) -> RooflineCurve:
    """t = overhead + flops / flop_rate + bytes / byte_rate, non-negative, in relative error."""
    f, t = _arrays(flops, times)
    b, _ = _arrays(nbytes, times)
    i = _intensities(f, b)
    if i is None:
        raise ValueError("a roofline fit needs positive FLOP and byte counts")
    if size_metric not in ("flops", "bytes"):
        raise ValueError(f"size_metric must be flops or bytes, got {size_metric!r}")
    c0, cf, cb = _nnls_relative([np.ones_like(f), f, b], t)
    return RooflineCurve(
        size_metric=size_metric, overhead_s=float(c0),  # type: ignore[arg-type]
        flop_rate_per_s=1.0 / max(float(cf), _MIN_SLOPE), byte_rate_per_s=1.0 / max(float(cb), _MIN_SLOPE),
        ref_flops_per_byte=float(np.exp(np.mean(np.log(i)))),
        intensity_min=float(np.min(i)), intensity_max=float(np.max(i)),
    )


def _two_slopes(sizes: Floats, times: Floats) -> tuple[float, np.ndarray]:
    """The continuous two-slope fit t = c0 + c1 min(x, b) + c2 max(x - b, 0), non-negative, in
    relative error: (break b, [c0, c1, c2]), the break searched over the measured sizes."""
    x, t = _arrays(sizes, times)
    ux = np.unique(x)
    best: tuple[float, float, np.ndarray] | None = None
    # Interior breaks only, so each segment has at least one size on it besides the break; a
    # large sweep tries _MAX_BREAKS of them evenly spaced in rank (each try is one NNLS solve).
    breaks = ux[1:-1] if ux.size >= 3 else ux[-1:]
    if breaks.size > _MAX_BREAKS:
        breaks = breaks[np.linspace(0, breaks.size - 1, _MAX_BREAKS).round().astype(int)]
    for brk in breaks:
        small, large = np.minimum(x, brk), np.maximum(x - brk, 0.0)
        c = _nnls_relative([np.ones_like(x), small, large], t)
        score = float(np.sum(((c[0] + c[1] * small + c[2] * large - t) / t) ** 2))
        if best is None or score < best[0]:
            best = (score, float(brk), c)
    assert best is not None
    return best[1], best[2]


def fit_two_regime(sizes: Floats, times: Floats) -> TwoRegimeCurve:
    """Continuous two-rate curve in the size metric (see _two_slopes)."""
    brk, c = _two_slopes(sizes, times)
    return TwoRegimeCurve(
        overhead_s=float(c[0]), break_size=max(brk, 1e-300),
        rate_small_per_s=1.0 / max(float(c[1]), _MIN_SLOPE), rate_large_per_s=1.0 / max(float(c[2]), _MIN_SLOPE),
    )


def _pava(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pool-adjacent-violators: the weighted non-decreasing sequence closest to y."""
    vals: list[float] = []
    wts: list[float] = []
    cnt: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist(), strict=False):
        vals.append(yi)
        wts.append(wi)
        cnt.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v1, w1, n1 = vals.pop(), wts.pop(), cnt.pop()
            v0, w0, n0 = vals.pop(), wts.pop(), cnt.pop()
            wsum = w0 + w1
            vals.append((v0 * w0 + v1 * w1) / wsum)
            wts.append(wsum)
            cnt.append(n0 + n1)
    return np.repeat(np.array(vals), cnt)


def fit_gemm_table(shapes: np.ndarray, flops: np.ndarray, times: np.ndarray) -> GemmTableCurve:
    """A gemm_table curve over [batch, m, n, k] rows: one row per distinct shape, its rate the
    median of its samples' (a shape measured by several sweeps counts once)."""
    rates: dict[tuple[int, ...], list[float]] = defaultdict(list)
    for row, fl, t in zip(shapes.tolist(), flops, times, strict=True):
        rates[tuple(row)].append(math.log(fl / t))
    keys = sorted(rates)
    return GemmTableCurve(shapes=[list(k) for k in keys],
                          log_rates=[float(np.median(rates[k])) for k in keys],
                          neighbours=_GEMM_NEIGHBOURS)


def fit_loglog(sizes: Floats, times: Floats) -> LogLogCurve:
    """Monotone (non-decreasing) piecewise-linear log t vs log size through the samples."""
    x, t = _arrays(sizes, times)
    x = np.maximum(x, 1e-300)
    lx, lt = np.log(x), np.log(t)
    # Merge samples of equal size (their mean log time, weighted by count), then isotonic.
    ux, inverse, counts = np.unique(lx, return_inverse=True, return_counts=True)
    mean_lt = np.bincount(inverse, weights=lt) / counts
    mono = _pava(mean_lt, counts.astype(float))
    return LogLogCurve(log_sizes=ux.tolist(), log_times=mono.tolist())


def fit_alpha_beta(sizes: Floats, times: Floats) -> AlphaBeta:
    """t = alpha + S / bw, non-negative, in relative error."""
    sat = fit_saturating(sizes, times)
    return AlphaBeta(alpha_s=sat.overhead_s, bw_bytes_per_s=sat.rate_max_per_s)


def fit_piecewise_alpha_beta(sizes: Floats, times: Floats) -> PiecewiseAlphaBeta:
    """Continuous two-slope alpha-beta (see _two_slopes)."""
    b, c = _two_slopes(sizes, times)
    return PiecewiseAlphaBeta(
        alpha_s=float(c[0]),
        break_bytes=b,
        bw_small_bytes_per_s=1.0 / max(float(c[1]), _MIN_SLOPE),
        bw_large_bytes_per_s=1.0 / max(float(c[2]), _MIN_SLOPE),
    )


def loo_errors(fitter: Fitter, sizes: Floats, times: Floats) -> np.ndarray | None:
    """Leave-one-out relative errors of `fitter`; None with fewer than 3 samples."""
    x, t = _arrays(sizes, times)
    if x.size < 3:
        return None
    errs = np.empty(x.size)
    for i in range(x.size):
        keep = np.arange(x.size) != i
        curve = fitter(x[keep], t[keep])
        errs[i] = abs(curve_time(curve, float(x[i])) - t[i]) / t[i]
    return errs


# A model for _choose: name, fit (on the rows it is given) and predict (at any rows), where rows
# index the arrays the caller holds (sizes, and for a roofline the FLOP and byte counts).
_Fit = Callable[[np.ndarray], AnyCurve]
_Predict = Callable[[AnyCurve, np.ndarray], np.ndarray]


# Above this many samples, held-out error is K-fold (every K-th sample held out in turn) rather
# than leave-one-out: an imported published sweep has thousands of samples, and thousands of
# refits per model would take minutes for the same answer.
_LOO_MAX = 200
_FOLDS = 10


def heldout_label(n: int) -> str:
    """How held-out error is measured for n samples (FitQuality.heldout)."""
    return "leave-one-out" if n <= _LOO_MAX else f"{_FOLDS}-fold"


def _loo_rows(fit: _Fit, predict: _Predict, t: np.ndarray) -> np.ndarray | None:
    """Held-out relative errors over rows of t (leave-one-out, or K-fold for many samples);
    None with fewer than 3 samples."""
    if t.size < 3:
        return None
    errs = np.empty(t.size)
    rows = np.arange(t.size)
    if t.size > _LOO_MAX:
        for f in range(_FOLDS):
            out = rows[rows % _FOLDS == f]
            curve = fit(rows[rows % _FOLDS != f])
            errs[out] = np.abs(predict(curve, out) - t[out]) / t[out]
        return errs
    for i in range(t.size):
        curve = fit(rows[rows != i])
        errs[i] = abs(float(predict(curve, rows[i : i + 1])[0]) - t[i]) / t[i]
    return errs


def _choose(
    x: np.ndarray, t: np.ndarray, models: Sequence[tuple[str, _Fit, _Predict, int]],
    insample_limit: float | None = None,
) -> tuple[AnyCurve, FitQuality]:
    """Fit every model (name, fit, predict, fewest samples it needs), simplest first; a model
    replaces the one kept so far only if its held-out mean error is clearly lower. With
    `insample_limit`, models that miss one of the samples they were fitted to by more than that
    (relative) are passed over while another model describes every sample within it."""
    candidates: dict[str, float | None] = {}  # held-out mean relative error per model
    heldout: dict[str, np.ndarray | None] = {}
    worst: dict[str, float] = {}  # largest in-sample relative error per model
    rows = np.arange(t.size)
    usable = [m for i, m in enumerate(models) if i == 0 or t.size >= m[3]]
    for name, fit, predict, _ in usable:
        e = _loo_rows(fit, predict, t)
        heldout[name] = e
        candidates[name] = None if e is None else float(np.mean(e))
        worst[name] = float(np.max(np.abs(predict(fit(rows), rows) - t) / t))
    if insample_limit is not None:
        usable = [m for m in usable if worst[m[0]] <= insample_limit] or usable
    pick = usable[0]
    for m in usable[1:]:
        kept, err = candidates[pick[0]], candidates[m[0]]
        if kept is not None and err is not None and err < _PREFER_SIMPLE * kept:
            pick = m
    rows = np.arange(t.size)
    curve = pick[1](rows)
    ins = np.abs(pick[2](curve, rows) - t) / t
    ho = heldout[pick[0]]
    quality = FitQuality(
        n_samples=int(x.size),
        heldout=heldout_label(int(x.size)),
        heldout_median_rel_err=None if ho is None else float(np.median(ho)),
        heldout_max_rel_err=None if ho is None else float(np.max(ho)),
        insample_median_rel_err=float(np.median(ins)),
        insample_max_rel_err=float(np.max(ins)),
        size_min=float(np.min(x)),
        size_max=float(np.max(x)),
        candidates=candidates,
    )
    return curve, quality


def fit_compute(samples: Sequence[KernelSample], variant: str | None = None) -> ComputeFit:
    """One curve for samples of one (op class, precision, pass); `variant` labels a per-variant fit."""
    if not samples:
        raise ValueError("no samples to fit")
    first = samples[0]
    if any((s.op_class, s.precision, s.direction) != (first.op_class, first.precision, first.direction) for s in samples):
        raise ValueError("fit_compute needs samples of one op class, precision and pass")
    metric = OP_SIZE_METRIC[first.op_class]
    f = np.array([s.flops for s in samples], dtype=float)
    b = np.array([s.bytes_moved for s in samples], dtype=float)
    x = f if metric == "flops" else b
    t = np.array([s.median_s for s in samples], dtype=float)
    _arrays(x, t)

    def in_size(c: AnyCurve, rows: np.ndarray) -> np.ndarray:
        return np.array([curve_time(c, float(v)) for v in x[rows]])

    def in_counts(c: AnyCurve, rows: np.ndarray) -> np.ndarray:
        other = b if metric == "flops" else f
        return np.array([curve_time(c, float(v), float(o)) for v, o in zip(x[rows], other[rows], strict=False)])

    models: list[tuple[str, _Fit, _Predict, int]] = [
        ("saturating", lambda r: fit_saturating(x[r], t[r]), in_size, 1)]
    if roofline_applies(f, b):
        models.append(("roofline", lambda r: fit_roofline(f[r], b[r], t[r], metric), in_counts,
                       _MIN_POINTS_FLEXIBLE))
    models.append(("two_regime", lambda r: fit_two_regime(x[r], t[r]), in_size, _MIN_POINTS_FLEXIBLE))
    if first.op_class == "gemm" and all({"m", "n", "k"} <= s.shape.keys() for s in samples):
        shapes = np.array([shape_row(s.shape) for s in samples], dtype=np.int64)

        def in_shape(c: AnyCurve, rows: np.ndarray) -> np.ndarray:
            assert isinstance(c, GemmTableCurve)
            lr, _ = c.table().log_rates(shapes[rows])
            return f[rows] / np.exp(lr)

        models.append(("gemm_table", lambda r: fit_gemm_table(shapes[r], f[r], t[r]), in_shape,
                       _MIN_POINTS_FLEXIBLE))
    models.append(("loglog", lambda r: fit_loglog(x[r], t[r]), in_size, _MIN_POINTS_FLEXIBLE))
    curve, quality = _choose(x, t, models, _INSAMPLE_LIMIT)
    return ComputeFit(
        op_class=first.op_class, precision=first.precision, direction=first.direction, variant=variant,
        size_metric=metric, curve=curve, quality=quality,
    )


def fit_collective(samples: Sequence[CollectiveSample]) -> CollectiveFit:
    """One curve for samples of one (collective, world size, backend)."""
    if not samples:
        raise ValueError("no samples to fit")
    first = samples[0]
    if any((s.op, s.world_size, s.backend) != (first.op, first.world_size, first.backend) for s in samples):
        raise ValueError("fit_collective needs samples of one collective, world size and backend")
    x, t = _arrays([s.size_bytes for s in samples], [s.median_s for s in samples])

    def in_size(c: AnyCurve, rows: np.ndarray) -> np.ndarray:
        return np.array([curve_time(c, float(v)) for v in x[rows]])

    curve, quality = _choose(x, t, [
        ("alpha_beta", lambda r: fit_alpha_beta(x[r], t[r]), in_size, 1),
        ("piecewise_alpha_beta", lambda r: fit_piecewise_alpha_beta(x[r], t[r]), in_size, _MIN_POINTS_FLEXIBLE),
    ])
    return CollectiveFit(op=first.op, world_size=first.world_size, backend=first.backend, curve=curve, quality=quality)


def fit_profile(profile: Profile) -> tuple[list[ComputeFit], list[CollectiveFit]]:
    """Fit every (op class, precision, pass) and every (collective, world size) in a profile.

    A class measured in several variants (layer_norm and rms_norm) gets a pooled fit and one
    per variant, since the variants can differ several-fold on some devices.
    """
    kgroups: dict[tuple[str, str, str], list[KernelSample]] = defaultdict(list)
    for samples in profile.kernels.values():
        for s in samples:
            kgroups[(s.op_class, s.precision, s.direction)].append(s)
    cgroups: dict[tuple[str, int, str], list[CollectiveSample]] = defaultdict(list)
    for csamples in profile.collectives.values():
        for c in csamples:
            cgroups[(c.op, c.world_size, c.backend)].append(c)
    compute: list[ComputeFit] = []
    for k in sorted(kgroups):
        group = kgroups[k]
        compute.append(fit_compute(group))
        variants = sorted({s.variant for s in group})
        if len(variants) > 1:
            compute.extend(fit_compute([s for s in group if s.variant == v], variant=v) for v in variants)
    collective = [fit_collective(cgroups[k]) for k in sorted(cgroups)]
    return compute, collective


def refit_profile(profile: Profile) -> Profile:
    """Fit a profile's stored samples again (with this version's models) and return it, its
    schema version brought to this one (Profile.set_fits); the samples are not touched."""
    compute, collective = fit_profile(profile)
    profile.set_fits(compute, collective)
    return profile
