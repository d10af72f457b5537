"""Fitting recovers known parameters from synthetic samples, stays monotone, reports held-out error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibrate.fit import (
    fit_alpha_beta,
    fit_collective,
    fit_compute,
    fit_loglog,
    fit_piecewise_alpha_beta,
    fit_profile,
    fit_saturating,
    loo_errors,
)
from dcsim.profile import (
    AlphaBeta,
    CollectiveSample,
    KernelSample,
    Metadata,
    PiecewiseAlphaBeta,
    Profile,
    SaturatingCurve,
    curve_time,
)


def _noisy(times: np.ndarray, rel: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return times * (1 + rel * rng.standard_normal(times.size))


def _kernel(i: int, flops: float, t: float, variant: str = "matmul", op: str = "gemm") -> KernelSample:
    return KernelSample(key=f"k{i}-{variant}", op_class=op, direction="fwd", precision="fp32", variant=variant,
                        shape={"i": i}, flops=flops, bytes_moved=flops / 10, median_s=t, p10_s=t, p90_s=t, repeats=5)


def _coll(i: int, size: float, t: float, op: str = "all_reduce") -> CollectiveSample:
    return CollectiveSample(key=f"c{i}", op=op, world_size=2, size_bytes=size, backend="gloo",
                            median_s=t, p10_s=t, p90_s=t, repeats=5)


def test_saturating_recovers_rate_and_overhead() -> None:
    # A CPU-like GEMM: 170 GFLOP/s plateau, 20 us per-call overhead (calibrate quick run, fp32).
    rate, overhead = 170e9, 20e-6
    x = np.logspace(6, 10, 12)
    t = _noisy(overhead + x / rate, 0.03)
    c = fit_saturating(x, t)
    assert c.rate_max_per_s == pytest.approx(rate, rel=0.05)
    assert c.overhead_s == pytest.approx(overhead, rel=0.25)


def test_saturating_exact_without_noise() -> None:
    x = np.logspace(5, 9, 6)
    c = fit_saturating(x, 1e-5 + x / 1e9)
    assert c.rate_max_per_s == pytest.approx(1e9, rel=1e-6)
    assert c.overhead_s == pytest.approx(1e-5, rel=1e-6)


def test_alpha_beta_gloo_like_is_good_for_small_messages() -> None:
    # DESIGN.md section 4: gloo on loopback ~0.4 ms latency, ~1.5 GB/s for large messages.
    alpha, bw = 4e-4, 1.5e9
    x = 1024.0 * 2.0 ** np.arange(15)
    t = _noisy(alpha + x / bw, 0.05, seed=1)
    c = fit_alpha_beta(x, t)
    assert c.alpha_s == pytest.approx(alpha, rel=0.1)
    assert c.bw_bytes_per_s == pytest.approx(bw, rel=0.1)
    # Fitting in relative error keeps the smallest message close (a plain least-squares line
    # would be dominated by the 16 MiB point).
    assert abs(curve_time(c, x[0]) - t[0]) / t[0] < 0.15


def test_piecewise_recovers_break_and_both_bandwidths() -> None:
    truth = PiecewiseAlphaBeta(alpha_s=5e-5, break_bytes=65536, bw_small_bytes_per_s=3e8, bw_large_bytes_per_s=2e9)
    x = 1024.0 * 2.0 ** np.arange(15)
    t = np.array([curve_time(truth, s) for s in x])
    c = fit_piecewise_alpha_beta(x, t)
    assert c.break_bytes == truth.break_bytes
    assert c.bw_small_bytes_per_s == pytest.approx(3e8, rel=0.02)
    assert c.bw_large_bytes_per_s == pytest.approx(2e9, rel=0.02)
    assert c.alpha_s == pytest.approx(5e-5, rel=0.05)
    # And the selection prefers it over a single line on such data.
    fit = fit_collective([_coll(i, s, v) for i, (s, v) in enumerate(zip(x, t))])
    assert fit.curve.kind == "piecewise_alpha_beta"
    assert fit.quality.heldout_median_rel_err is not None and fit.quality.heldout_median_rel_err < 0.05


def test_selection_keeps_simple_model_on_simple_data() -> None:
    x = 1024.0 * 2.0 ** np.arange(12)
    t = _noisy(3e-4 + x / 1e9, 0.02, seed=3)
    fit = fit_collective([_coll(i, s, v) for i, (s, v) in enumerate(zip(x, t))])
    assert isinstance(fit.curve, AlphaBeta)
    q = fit.quality
    assert q.n_samples == 12 and q.size_min == x[0] and q.size_max == x[-1]
    assert q.heldout_median_rel_err is not None and q.heldout_median_rel_err < 0.05
    assert set(q.candidates) == {"alpha_beta", "piecewise_alpha_beta"}


def test_compute_fit_reports_heldout_error() -> None:
    x = np.logspace(6, 10, 10)
    t = _noisy(2e-5 + x / 1.7e11, 0.02, seed=4)
    fit = fit_compute([_kernel(i, f, v) for i, (f, v) in enumerate(zip(x, t))])
    assert isinstance(fit.curve, SaturatingCurve)
    assert fit.size_metric == "flops"
    assert fit.quality.heldout_median_rel_err is not None and fit.quality.heldout_median_rel_err < 0.05
    assert fit.quality.heldout_max_rel_err >= fit.quality.heldout_median_rel_err  # type: ignore[operator]


def test_loglog_is_monotone_on_noisy_decreasing_data() -> None:
    x = np.array([1e3, 1e4, 1e5, 1e6, 1e7])
    t = np.array([1e-4, 0.8e-4, 3e-4, 2e-3, 1.5e-3])  # two violations of monotonicity
    c = fit_loglog(x, t)
    grid = np.logspace(2, 8, 200)
    ts = [curve_time(c, g) for g in grid]
    assert all(b >= a for a, b in zip(ts, ts[1:]))
    assert curve_time(c, 1e5) == pytest.approx(3e-4)  # a point that violates nothing is kept


def test_loo_needs_three_points() -> None:
    assert loo_errors(fit_saturating, [1.0, 2.0], [1.0, 2.0]) is None
    errs = loo_errors(fit_saturating, [1.0, 2.0, 4.0], [1.0, 2.0, 4.0])
    assert errs is not None and np.allclose(errs, 0.0, atol=1e-9)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        fit_saturating([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        fit_saturating([1.0, 2.0], [1.0, -1.0])
    with pytest.raises(ValueError):
        fit_compute([])


def test_fit_profile_groups_and_fits_variants() -> None:
    prof = Profile(metadata=Metadata(device_kind="cpu", device_name="x", device_count=1, host="h", cpu_count=2,
                                     threads=1, torch_version="t"))
    x = np.logspace(5, 8, 6)
    for i, s in enumerate(x):
        prof.add_kernel(_kernel(i, s, 1e-6 + s / 1e9, variant="layer_norm", op="norm"))
        prof.add_kernel(_kernel(i, s, 1e-6 + s / 2.5e8, variant="rms_norm", op="norm"))
        prof.add_collective(_coll(i, s, 1e-4 + s / 1e9))
    compute, coll = fit_profile(prof)
    assert {(f.op_class, f.variant) for f in compute} == {("norm", None), ("norm", "layer_norm"), ("norm", "rms_norm")}
    assert [c.op for c in coll] == ["all_reduce"]
    prof.set_fits(compute, coll)
    # norm's size metric is bytes (flops / 10 in these samples): variants differ 4x, the fits see it.
    ln = prof.op_time("norm", "fp32", 0, 3e6, variant="layer_norm")
    rms = prof.op_time("norm", "fp32", 0, 3e6, variant="rms_norm")
    assert ln is not None and rms is not None and rms.time_s > 3 * ln.time_s


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(1e2, 1e10), st.floats(1e-6, 1.0)), min_size=1, max_size=12),
    st.lists(st.floats(1e0, 1e11), min_size=2, max_size=20),
)
def test_every_fitted_curve_is_monotone(points: list[tuple[float, float]], queries: list[float]) -> None:
    x = np.array([p[0] for p in points])
    t = np.array([p[1] for p in points])
    qs = sorted(queries)
    for fitter in (fit_saturating, fit_loglog, fit_alpha_beta, fit_piecewise_alpha_beta):
        c = fitter(x, t)
        ts = [curve_time(c, q) for q in qs]
        assert all(b >= a * (1 - 1e-12) for a, b in zip(ts, ts[1:])), fitter.__name__
        assert all(v >= 0 and np.isfinite(v) for v in ts)
