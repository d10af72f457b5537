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
    fit_roofline,
    fit_saturating,
    fit_two_regime,
    loo_errors,
    roofline_applies,
)
from dcsim.profile import (
    AlphaBeta,
    CollectiveSample,
    KernelSample,
    Metadata,
    PiecewiseAlphaBeta,
    Profile,
    RooflineCurve,
    SaturatingCurve,
    TwoRegimeCurve,
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
    for fitter in (fit_saturating, fit_loglog, fit_alpha_beta, fit_piecewise_alpha_beta, fit_two_regime):
        c = fitter(x, t)
        ts = [curve_time(c, q) for q in qs]
        assert all(b >= a * (1 - 1e-12) for a, b in zip(ts, ts[1:])), fitter.__name__
        assert all(v >= 0 and np.isfinite(v) for v in ts)


# --- roofline and two-regime kernel models ---------------------------------------------------

def _attention(i: int, b: int, h: int, s: int, t: float, d: int = 64, direction: str = "fwd") -> KernelSample:
    """A causal-SDPA sample counted as calibrate/kernels.py counts it (fp32)."""
    f = 4.0 * b * h * s * s * d * (1 if direction == "fwd" else 2)
    by = 4.0 * b * h * s * d * 4 * (1 if direction == "fwd" else 2)
    return KernelSample(key=f"a{i}", op_class="attention", direction=direction, precision="fp32",
                        variant="sdpa_causal", shape={"b": b, "h": h, "s": s, "d": d}, flops=f, bytes_moved=by,
                        median_s=t, p10_s=t, p90_s=t, repeats=7)


# The CPU sweep's attention shapes (calibrate/kernels.py, quick) and a few more.
_ATTN_SHAPES = [(1, 4, 64), (1, 4, 128), (4, 4, 128), (2, 8, 256), (4, 8, 256), (1, 8, 512), (2, 8, 512),
                (1, 8, 1024), (2, 16, 1024)]


def _attn_counts(shapes: list[tuple[int, int, int]], d: int = 64) -> tuple[np.ndarray, np.ndarray]:
    f = np.array([4.0 * b * h * s * s * d for b, h, s in shapes])
    return f, np.array([16.0 * b * h * s * d for b, h, s in shapes])


def test_roofline_recovers_both_rates_and_overhead() -> None:
    # About the 2-core machine's fp32 attention forward: 180 GFLOP/s, 3 GB/s per query row, 0.15 ms.
    t0, a, bw = 1.5e-4, 1.8e11, 3e9
    f, by = _attn_counts(_ATTN_SHAPES)
    t = _noisy(t0 + f / a + by / bw, 0.02, seed=5)
    c = fit_roofline(f, by, t, "flops")
    assert c.flop_rate_per_s == pytest.approx(a, rel=0.1)
    assert c.byte_rate_per_s == pytest.approx(bw, rel=0.1)
    assert c.overhead_s == pytest.approx(t0, rel=0.3)
    assert c.intensity_min == pytest.approx(np.min(f / by)) and c.intensity_max == pytest.approx(np.max(f / by))
    exact = fit_roofline(f, by, t0 + f / a + by / bw, "flops")
    assert exact.flop_rate_per_s == pytest.approx(a, rel=1e-6)
    assert exact.byte_rate_per_s == pytest.approx(bw, rel=1e-6)
    assert exact.overhead_s == pytest.approx(t0, rel=1e-6)


def test_attention_is_fitted_as_a_roofline_and_predicts_held_out_shapes() -> None:
    t0, a, bw = 1.5e-4, 1.8e11, 3e9
    f, by = _attn_counts(_ATTN_SHAPES)
    t = _noisy(t0 + f / a + by / bw, 0.03, seed=6)
    samples = [_attention(i, b, h, s, v) for i, ((b, h, s), v) in enumerate(zip(_ATTN_SHAPES, t))]
    fit = fit_compute(samples)
    assert isinstance(fit.curve, RooflineCurve) and fit.size_metric == "flops"
    q = fit.quality
    assert q.heldout_median_rel_err is not None and q.heldout_median_rel_err < 0.05
    # One curve in FLOPs cannot tell 2 x 512 from 8 x 256 tokens' worth of heads at equal FLOPs.
    assert q.candidates["roofline"] < 0.5 * q.candidates["saturating"]  # type: ignore[operator]
    # Shapes never measured: between the samples, and a sequence twice the longest (4x the FLOPs).
    fq, bq = _attn_counts([(3, 8, 384), (1, 8, 2048)])
    truth = t0 + fq / a + bq / bw
    assert fit.time(fq[0], bq[0]) == pytest.approx(truth[0], rel=0.05)
    assert fit.time(fq[1], bq[1]) == pytest.approx(truth[1], rel=0.1)


def test_roofline_curve_is_monotone_in_both_counts_and_uses_its_reference_intensity() -> None:
    c = RooflineCurve(size_metric="flops", overhead_s=1e-4, flop_rate_per_s=2e11, byte_rate_per_s=3e9,
                      ref_flops_per_byte=16.0, intensity_min=4.0, intensity_max=64.0)
    # Same FLOPs, fewer bytes (longer sequences, fewer heads): faster.
    assert curve_time(c, 1e9, 1e7) > curve_time(c, 1e9, 1e6)
    assert curve_time(c, 1e9, 1e6) == pytest.approx(1e-4 + 1e9 / 2e11 + 1e6 / 3e9)
    assert curve_time(c, 1e9) == pytest.approx(curve_time(c, 1e9, 1e9 / 16.0))
    grid = np.logspace(3, 12, 50)
    ts = [curve_time(c, g) for g in grid]
    assert all(b >= a for a, b in zip(ts, ts[1:]))
    bytes_metric = c.model_copy(update={"size_metric": "bytes"})
    assert curve_time(bytes_metric, 1e6, 1e9) == pytest.approx(curve_time(c, 1e9, 1e6))
    with pytest.raises(ValueError):
        curve_time(c, 1e9, -1.0)


def test_roofline_needs_samples_that_differ_in_intensity() -> None:
    x = np.logspace(5, 8, 7)
    assert not roofline_applies(2.5 * x, x)  # one streaming variant: FLOP per byte fixed
    assert not roofline_applies(np.zeros_like(x), x)  # the embedding forward counts no FLOPs
    assert roofline_applies(*_attn_counts(_ATTN_SHAPES))
    fit = fit_compute([_kernel(i, v, 1e-5 + v / 1e11) for i, v in enumerate(x)])  # flops / 10 bytes each
    assert "roofline" not in fit.quality.candidates
    with pytest.raises(ValueError):
        fit_roofline(np.zeros(3), np.ones(3), np.ones(3))


def test_pooled_variants_that_differ_in_flops_per_byte_share_a_roofline() -> None:
    # A compute-heavy and a copy-like variant in one pooled fit: a byte curve is off for both.
    t0, a, bw = 5e-5, 2e9, 1.2e10
    x = np.logspace(5, 8, 7)
    samples = []
    for j, (variant, fpb) in enumerate((("gelu", 2.0), ("add", 1 / 12))):
        for i, by in enumerate(x):
            t = t0 + fpb * by / a + by / bw
            samples.append(KernelSample(
                key=f"e{j}{i}", op_class="elementwise", direction="fwd", precision="fp32", variant=variant,
                shape={"i": i}, flops=fpb * by, bytes_moved=by, median_s=t, p10_s=t, p90_s=t, repeats=5))
    fit = fit_compute(samples)
    assert isinstance(fit.curve, RooflineCurve) and fit.size_metric == "bytes"
    assert fit.quality.heldout_median_rel_err is not None and fit.quality.heldout_median_rel_err < 1e-6
    assert fit.curve.flop_rate_per_s == pytest.approx(a, rel=1e-6)


def test_two_regime_recovers_break_and_both_rates() -> None:
    truth = TwoRegimeCurve(overhead_s=2e-4, break_size=6.4e7, rate_small_per_s=7e9, rate_large_per_s=2e9)
    x = np.array([1e6, 4e6, 8e6, 3.2e7, 6.4e7, 1.28e8, 2.56e8])
    c = fit_two_regime(x, [curve_time(truth, v) for v in x])
    assert c.break_size == truth.break_size
    assert c.rate_small_per_s == pytest.approx(7e9, rel=1e-6)
    assert c.rate_large_per_s == pytest.approx(2e9, rel=1e-6)
    assert c.overhead_s == pytest.approx(2e-4, rel=1e-6)
    assert curve_time(c, 6.4e7 * (1 - 1e-12)) == pytest.approx(curve_time(c, 6.4e7 * (1 + 1e-12)))  # no step


def test_a_slow_regime_is_not_left_out_for_a_better_held_out_score() -> None:
    # Cross-entropy-like: 7 GB/s until the buffers outgrow a threshold, then 2 GB/s for the rest
    # (the 2-core machine's 1024 x 32000 logits). Held out, no model predicts the regime's largest
    # sample; a straight line that ignores it would be 2x off beyond the sweep.
    truth = TwoRegimeCurve(overhead_s=2e-4, break_size=6.4e7, rate_small_per_s=7e9, rate_large_per_s=2e9)
    x = np.array([1e6, 4e6, 8e6, 3.2e7, 6.4e7, 1.28e8, 2.56e8])
    t = _noisy(np.array([curve_time(truth, v) for v in x]), 0.02, seed=7)
    samples = [KernelSample(key=f"c{i}", op_class="cross_entropy", direction="bwd", precision="fp32",
                            variant="cross_entropy", shape={"i": i}, flops=0.75 * v, bytes_moved=v, median_s=s,
                            p10_s=s, p90_s=s, repeats=7) for i, (v, s) in enumerate(zip(x, t))]
    fit = fit_compute(samples)
    assert fit.curve.kind == "two_regime"
    assert fit.quality.insample_max_rel_err < 0.1
    assert fit.quality.heldout_median_rel_err is not None and fit.quality.heldout_median_rel_err < 0.1
    assert curve_time(fit.curve, 5.12e8) == pytest.approx(curve_time(truth, 5.12e8), rel=0.1)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(1e4, 1e10), st.floats(1e-2, 1e3), st.floats(1e-6, 1.0)), min_size=1, max_size=12),
    st.lists(st.floats(1e0, 1e11), min_size=2, max_size=20),
    st.floats(1e-3, 1e3),
)
def test_every_fitted_roofline_is_monotone_and_finite(
    points: list[tuple[float, float, float]], queries: list[float], intensity: float
) -> None:
    f = np.array([p[0] for p in points])
    by = f / np.array([p[1] for p in points])
    t = np.array([p[2] for p in points])
    c = fit_roofline(f, by, t, "flops")
    qs = sorted(queries)
    for other in (None, "fixed intensity"):
        ts = [curve_time(c, q, None if other is None else q / intensity) for q in qs]
        assert all(b >= a * (1 - 1e-12) for a, b in zip(ts, ts[1:]))
        assert all(v >= 0 and np.isfinite(v) for v in ts)
    # more bytes at the same FLOPs never takes less time
    assert curve_time(c, qs[-1], 2.0) >= curve_time(c, qs[-1], 1.0)
