"""Fit smooth, monotone time-vs-size curves to calibration samples, with held-out error.

Kernels: a saturating curve t = t0 + x/r (efficiency x/(x + x_half) of a plateau rate r) and a
monotone log-log interpolation are both fitted; the simple one is kept unless the other predicts
held-out points clearly better (mean leave-one-out relative error). Collectives: alpha-beta and a continuous two-segment alpha-beta,
chosen the same way. Every fit minimises RELATIVE error, because a least-squares line in absolute
error is dominated by the large messages and ends up 2x off for small ones (DESIGN.md section 4,
gloo on loopback). Held-out error is leave-one-out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import nnls

from dcsim.profile import (
    OP_SIZE_METRIC,
    AlphaBeta,
    CollectiveFit,
    CollectiveSample,
    ComputeFit,
    FitQuality,
    KernelSample,
    LogLogCurve,
    PiecewiseAlphaBeta,
    Profile,
    SaturatingCurve,
    curve_time,
)

__all__ = [
    "fit_saturating",
    "fit_loglog",
    "fit_alpha_beta",
    "fit_piecewise_alpha_beta",
    "fit_compute",
    "fit_collective",
    "fit_profile",
    "loo_errors",
]

AnyCurve = SaturatingCurve | LogLogCurve | AlphaBeta | PiecewiseAlphaBeta
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


def _arrays(sizes: Sequence[float], times: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
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


def fit_saturating(sizes: Sequence[float], times: Sequence[float]) -> SaturatingCurve:
    """t = overhead + size / rate, non-negative, in relative error."""
    x, t = _arrays(sizes, times)
    if x.size == 1 or np.ptp(x) == 0:
        rate = float(np.median(x / t)) if np.all(x > 0) else 1.0 / _MIN_SLOPE
        return SaturatingCurve(rate_max_per_s=max(rate, 1e-300), overhead_s=0.0)
    c0, c1 = _nnls_relative([np.ones_like(x), x], t)
    return SaturatingCurve(rate_max_per_s=1.0 / max(c1, _MIN_SLOPE), overhead_s=float(c0))


def _pava(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pool-adjacent-violators: the weighted non-decreasing sequence closest to y."""
    vals: list[float] = []
    wts: list[float] = []
    cnt: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist()):
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


def fit_loglog(sizes: Sequence[float], times: Sequence[float]) -> LogLogCurve:
    """Monotone (non-decreasing) piecewise-linear log t vs log size through the samples."""
    x, t = _arrays(sizes, times)
    x = np.maximum(x, 1e-300)
    lx, lt = np.log(x), np.log(t)
    # Merge samples of equal size (their mean log time, weighted by count), then isotonic.
    ux, inverse, counts = np.unique(lx, return_inverse=True, return_counts=True)
    mean_lt = np.bincount(inverse, weights=lt) / counts
    mono = _pava(mean_lt, counts.astype(float))
    return LogLogCurve(log_sizes=ux.tolist(), log_times=mono.tolist())


def fit_alpha_beta(sizes: Sequence[float], times: Sequence[float]) -> AlphaBeta:
    """t = alpha + S / bw, non-negative, in relative error."""
    sat = fit_saturating(sizes, times)
    return AlphaBeta(alpha_s=sat.overhead_s, bw_bytes_per_s=sat.rate_max_per_s)


def fit_piecewise_alpha_beta(sizes: Sequence[float], times: Sequence[float]) -> PiecewiseAlphaBeta:
    """Continuous two-slope alpha-beta; the break is searched over the measured sizes."""
    x, t = _arrays(sizes, times)
    ux = np.unique(x)
    best: tuple[float, float, np.ndarray] | None = None
    # Interior breaks only, so each segment has at least one size on it besides the break.
    for b in ux[1:-1] if ux.size >= 3 else ux[-1:]:
        small, large = np.minimum(x, b), np.maximum(x - b, 0.0)
        c = _nnls_relative([np.ones_like(x), small, large], t)
        pred = c[0] + c[1] * small + c[2] * large
        sse = float(np.sum(((pred - t) / t) ** 2))
        if best is None or sse < best[0]:
            best = (sse, float(b), c)
    assert best is not None
    _, b, c = best
    return PiecewiseAlphaBeta(
        alpha_s=float(c[0]),
        break_bytes=b,
        bw_small_bytes_per_s=1.0 / max(float(c[1]), _MIN_SLOPE),
        bw_large_bytes_per_s=1.0 / max(float(c[2]), _MIN_SLOPE),
    )


def _rel_errors(curve: AnyCurve, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    pred = np.array([curve_time(curve, float(xi)) for xi in x])
    return np.abs(pred - t) / t


def loo_errors(fitter: Fitter, sizes: Sequence[float], times: Sequence[float]) -> np.ndarray | None:
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


def _choose(
    x: np.ndarray, t: np.ndarray, simple: tuple[str, Fitter], flexible: tuple[str, Fitter]
) -> tuple[AnyCurve, FitQuality]:
    """Fit both models, keep the flexible one only if it is clearly better held-out."""
    candidates: dict[str, float | None] = {}  # held-out mean relative error per model
    heldout: dict[str, np.ndarray | None] = {}
    for name, fitter in (simple, flexible):
        if name == flexible[0] and x.size < _MIN_POINTS_FLEXIBLE:
            continue
        e = loo_errors(fitter, x, t)
        heldout[name] = e
        candidates[name] = None if e is None else float(np.mean(e))
    pick = simple
    s_err, f_err = candidates.get(simple[0]), candidates.get(flexible[0])
    if s_err is not None and f_err is not None and f_err < _PREFER_SIMPLE * s_err:
        pick = flexible
    curve = pick[1](x, t)
    ins = _rel_errors(curve, x, t)
    ho = heldout[pick[0]]
    quality = FitQuality(
        n_samples=int(x.size),
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
    x = np.array([s.flops if metric == "flops" else s.bytes_moved for s in samples], dtype=float)
    t = np.array([s.median_s for s in samples], dtype=float)
    curve, quality = _choose(x, t, ("saturating", fit_saturating), ("loglog", fit_loglog))
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
    x = np.array([s.size_bytes for s in samples], dtype=float)
    t = np.array([s.median_s for s in samples], dtype=float)
    curve, quality = _choose(
        x, t, ("alpha_beta", fit_alpha_beta), ("piecewise_alpha_beta", fit_piecewise_alpha_beta)
    )
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
