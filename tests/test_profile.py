"""Calibration profile files: round trip, clear one-line errors, and the cost-model questions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.profile import (
    SCHEMA_VERSION,
    AlphaBeta,
    CollectiveFit,
    CollectiveSample,
    ComputeFit,
    FitQuality,
    KernelSample,
    LogLogCurve,
    Metadata,
    OpEstimate,
    PiecewiseAlphaBeta,
    Profile,
    ProfileError,
    SaturatingCurve,
    curve_time,
    load_profile,
    save_profile,
)

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "calibrate" / "profiles" / "cpu-2core.json"


def _quality(lo: float, hi: float) -> FitQuality:
    return FitQuality(n_samples=4, heldout_median_rel_err=0.05, heldout_max_rel_err=0.1,
                      insample_median_rel_err=0.02, insample_max_rel_err=0.04, size_min=lo, size_max=hi)


def _profile() -> Profile:
    p = Profile(metadata=Metadata(device_kind="cpu", device_name="test cpu", device_count=1, host="h",
                                  cpu_count=2, threads=1, torch_version="2.13.0", backend="gloo"))
    p.add_kernel(KernelSample(key="g1", op_class="gemm", direction="fwd", precision="fp32", variant="matmul",
                              shape={"m": 64, "k": 64, "n": 64}, flops=2 * 64**3, bytes_moved=3 * 64 * 64 * 4,
                              median_s=5e-5, p10_s=4e-5, p90_s=6e-5, repeats=10))
    p.add_collective(CollectiveSample(key="c1", op="all_reduce", world_size=2, size_bytes=1024, backend="gloo",
                                      median_s=4e-4, p10_s=3e-4, p90_s=5e-4, repeats=10))
    p.set_fits(
        [ComputeFit(op_class="gemm", precision="fp32", direction="fwd", size_metric="flops",
                    curve=SaturatingCurve(rate_max_per_s=1e11, overhead_s=1e-5), quality=_quality(1e5, 1e9)),
         ComputeFit(op_class="norm", precision="fp32", direction="fwd", size_metric="bytes",
                    curve=SaturatingCurve(rate_max_per_s=2e10, overhead_s=2e-6), quality=_quality(1e5, 1e8)),
         ComputeFit(op_class="norm", precision="fp32", direction="fwd", variant="rms_norm", size_metric="bytes",
                    curve=SaturatingCurve(rate_max_per_s=5e9, overhead_s=2e-6), quality=_quality(1e5, 1e8))],
        [CollectiveFit(op="all_reduce", world_size=2, backend="gloo", curve=AlphaBeta(alpha_s=4e-4, bw_bytes_per_s=1.5e9),
                       quality=_quality(1024, 16 * 2**20))],
    )
    return p


def test_round_trip(tmp_path: Path) -> None:
    p = _profile()
    path = tmp_path / "sub" / "p.json"
    save_profile(p, path)
    q = load_profile(path)
    assert q == p
    assert q.op_time("gemm", "fp32", 1e8, 0) is not None and q == p  # lookup caches do not count
    assert q.metadata.schema_version == SCHEMA_VERSION
    assert [f.name for f in path.parent.iterdir()] == ["p.json"]  # no temporary file left behind


def test_save_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("old")
    save_profile(_profile(), path)
    assert load_profile(path).metadata.device_name == "test cpu"


def _one_line(err: pytest.ExceptionInfo[ProfileError]) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as e:
        load_profile(tmp_path / "nope.json")
    assert "nope.json" in _one_line(e) and "no such file" in str(e.value)


def test_corrupt_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"metadata": {')
    with pytest.raises(ProfileError) as e:
        load_profile(path)
    assert "bad.json" in _one_line(e) and "not valid JSON" in str(e.value)


def test_schema_error_names_the_field(tmp_path: Path) -> None:
    data = json.loads(_profile().model_dump_json())
    del data["metadata"]["device_kind"]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError) as e:
        load_profile(path)
    assert "metadata.device_kind" in _one_line(e) and "p.json" in str(e.value)

    data = json.loads(_profile().model_dump_json())
    data["collective_fits"][0]["curve"]["bw_bytes_per_s"] = -1
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError) as e:
        load_profile(path)
    assert "collective_fits.0.curve" in _one_line(e)


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    data = json.loads(_profile().model_dump_json())
    data["metadata"]["schema_version"] = SCHEMA_VERSION + 1
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="schema_version"):
        load_profile(path)


def test_op_time_measured_fitted_extrapolated() -> None:
    p = _profile()
    hit = p.op_time("gemm", "fp32", 2 * 64**3, 3 * 64 * 64 * 4)
    assert hit == OpEstimate(5e-5, "measured", False)
    mid = p.op_time("gemm", "fp32", 1e8, 0)
    assert mid is not None and mid.provenance == "fitted" and not mid.extrapolated
    assert mid.time_s == pytest.approx(1e-5 + 1e8 / 1e11)
    far = p.op_time("gemm", "fp32", 1e12, 0)
    assert far is not None and far.extrapolated
    assert p.op_time("gemm", "bf16", 1e8, 0) is None
    assert p.op_time("attention", "fp32", 1e8, 0) is None
    assert p.op_time("gemm", "fp32", 1e8, 0, direction="bwd") is None


def test_op_time_uses_bytes_for_memory_bound_classes_and_variants() -> None:
    p = _profile()
    pooled = p.op_time("norm", "fp32", flops=1.0, bytes_moved=1e7)
    rms = p.op_time("norm", "fp32", flops=1.0, bytes_moved=1e7, variant="rms_norm")
    ln = p.op_time("norm", "fp32", flops=1.0, bytes_moved=1e7, variant="layer_norm")  # no own fit: pooled
    assert pooled is not None and rms is not None and ln is not None
    assert pooled.time_s == pytest.approx(2e-6 + 1e7 / 2e10)
    assert rms.time_s == pytest.approx(2e-6 + 1e7 / 5e9)
    assert ln == pooled


def test_collective_time() -> None:
    p = _profile()
    assert p.collective_time("all_reduce", 2, 1024) == OpEstimate(4e-4, "measured", False)
    est = p.collective_time("all_reduce", 2, 2**20)
    assert est is not None and est.provenance == "fitted" and not est.extrapolated
    assert est.time_s == pytest.approx(4e-4 + 2**20 / 1.5e9)
    assert p.collective_time("all_reduce", 2, 2**30).extrapolated  # type: ignore[union-attr]
    assert p.collective_time("all_reduce", 4, 2**20) is None
    assert p.collective_time("all_to_all", 2, 2**20) is None


def test_compute_efficiency() -> None:
    p = _profile()
    eff = p.compute_efficiency("gemm", "fp32", 1e9)
    assert eff is not None
    fraction, provenance, extrapolated = eff
    assert fraction == pytest.approx(1e9 / (1e9 + 1e-5 * 1e11))  # x / (x + x_half)
    assert provenance == "fitted" and not extrapolated
    spec = p.compute_efficiency("gemm", "fp32", 1e9, peak_per_s=2e11)
    assert spec is not None and spec.fraction == pytest.approx(fraction / 2)
    assert p.compute_efficiency("softmax", "fp32", 1e9) is None


@settings(max_examples=80, deadline=None)
@given(
    st.floats(-5, 10),
    st.lists(st.tuples(st.floats(0.01, 3), st.floats(0, 2)), min_size=0, max_size=7),
    st.lists(st.floats(0, 1e12), min_size=2, max_size=30),
)
def test_loglog_curve_is_monotone_and_continuous(
    x0: float, steps: list[tuple[float, float]], sizes: list[float]
) -> None:
    xs, ys = [x0], [-8.0]
    for dx, dy in steps:
        xs.append(xs[-1] + dx)
        ys.append(ys[-1] + dy)
    c = LogLogCurve(log_sizes=xs, log_times=ys)
    ts = [curve_time(c, s) for s in sorted(sizes)]
    assert all(b >= a * (1 - 1e-9) for a, b in zip(ts, ts[1:]))
    for x, y in zip(xs, ys):  # passes through its knots
        assert curve_time(c, math.exp(x)) == pytest.approx(math.exp(y), rel=1e-9)


def test_loglog_curve_rejects_non_monotone_knots() -> None:
    with pytest.raises(ValueError):
        LogLogCurve(log_sizes=[1.0, 2.0], log_times=[0.0, -1.0])
    with pytest.raises(ValueError):
        LogLogCurve(log_sizes=[2.0, 1.0], log_times=[0.0, 1.0])


def test_piecewise_curve_is_continuous_at_break() -> None:
    c = PiecewiseAlphaBeta(alpha_s=1e-4, break_bytes=1e5, bw_small_bytes_per_s=1e8, bw_large_bytes_per_s=1e9)
    assert curve_time(c, 1e5 * (1 - 1e-12)) == pytest.approx(curve_time(c, 1e5 * (1 + 1e-12)))
    assert curve_time(c, 2e5) == pytest.approx(1e-4 + 1e5 / 1e8 + 1e5 / 1e9)


def test_committed_cpu_profile_loads_and_answers() -> None:
    p = load_profile(COMMITTED)
    assert p.metadata.device_kind == "cpu" and p.metadata.complete
    gemm = p.op_time("gemm", "fp32", 1e9, 1e7)
    assert gemm is not None and 1e-4 < gemm.time_s < 10.0
    for op in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "send_recv"):
        est = p.collective_time(op, 2, 2**20)
        assert est is not None and 1e-6 < est.time_s < 1.0, op
    for f in p.compute_fits + p.collective_fits:
        assert f.quality.heldout_median_rel_err is not None


def test_framework_overhead_round_trip_and_per_pass(tmp_path: Path) -> None:
    from dcsim.profile import FrameworkOverhead

    p = _profile()
    assert p.framework_overhead("fwd") == 0.0 and p.framework_overhead("bwd") == 0.0
    p.framework = FrameworkOverhead(step_fwd_s=6e-6, step_bwd_s=12e-6, call_fwd_s=2e-6, call_bwd_s=20e-6, repeats=9)
    p.metadata.cache_flush_bytes = 256 << 20
    p.kernels["gemm"][0].cache = "cold"
    assert p.framework_overhead("fwd") == pytest.approx(4e-6)
    assert p.framework_overhead("bwd") == pytest.approx(-8e-6)
    path = tmp_path / "p.json"
    save_profile(p, path)
    back = load_profile(path)
    assert back == p and back.framework is not None and back.kernels["gemm"][0].cache == "cold"


def test_measured_hit_needs_the_same_gemm_shape_when_given() -> None:
    p = _profile()
    counts = (2 * 64**3, 3 * 64 * 64 * 4)
    assert p.op_time("gemm", "fp32", *counts, shape={"m": 64, "k": 64, "n": 64}).provenance == "measured"  # type: ignore[union-attr]
    other = p.op_time("gemm", "fp32", *counts, shape={"m": 32, "k": 128, "n": 64})
    assert other is not None and other.provenance == "fitted"


def test_old_profiles_without_the_new_fields_still_load(tmp_path: Path) -> None:
    data = json.loads(_profile().model_dump_json())
    data.pop("framework")
    data["metadata"].pop("cache_flush_bytes")
    for samples in data["kernels"].values():
        for s in samples:
            s.pop("cache")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    p = load_profile(path)
    assert p.framework is None and p.metadata.cache_flush_bytes is None
    assert p.framework_overhead("bwd") == 0.0
