"""Kernel sweep plans, FLOP/byte conventions and timing on CPU (tiny shapes only)."""

from __future__ import annotations

import torch

from calibrate.kernels import KernelPoint, counts, measure_point, plan_points
from calibrate.timing import QUICK_TIMING, time_fn
from dcsim.profile import OP_CLASSES, OP_SIZE_METRIC


def _p(op: str, variant: str, direction: str, precision: str = "fp32", **dims: int) -> KernelPoint:
    return KernelPoint(op, variant, direction, precision, tuple(dims.items()))


def test_gemm_counts_2mnk_forward_twice_that_backward() -> None:
    f, b = counts(_p("gemm", "matmul", "fwd", m=8, k=16, n=32))
    assert f == 2 * 8 * 16 * 32 and b == (8 * 16 + 16 * 32 + 8 * 32) * 4
    f2, b2 = counts(_p("gemm", "matmul", "bwd", "bf16", m=8, k=16, n=32))
    assert f2 == 2 * f and b2 == 2 * (8 * 16 + 16 * 32 + 8 * 32) * 2


def test_attention_counts_follow_the_model_flops_convention() -> None:
    f, _ = counts(_p("attention", "sdpa_causal", "fwd", b=2, h=4, s=128, d=64))
    assert f == 4 * 2 * 4 * 128 * 128 * 64
    assert counts(_p("attention", "sdpa_causal", "bwd", b=2, h=4, s=128, d=64))[0] == 2 * f


def test_optimizer_counts_seven_fp32_streams() -> None:
    assert counts(_p("optimizer", "adamw", "fwd", p=1000)) == (12_000.0, 28_000.0)


def test_quick_cpu_plan_covers_every_class_both_passes_with_unique_keys() -> None:
    points, skipped = plan_points("cpu", True, ["fp32"])
    assert {p.op_class for p in points} == set(OP_CLASSES) == set(OP_SIZE_METRIC)
    assert {p.direction for p in points if p.op_class != "optimizer"} == {"fwd", "bwd"}
    keys = [p.key for p in points]
    assert len(keys) == len(set(keys))
    assert not skipped
    assert plan_points("cpu", True, ["fp8"])[1][0].what == "kernels/fp8"
    assert all(p.precision == "fp32" for p in plan_points("cpu", True, ["bf16", "fp32"])[0] if p.op_class == "optimizer")


def test_measure_tiny_points_on_cpu() -> None:
    cpu = torch.device("cpu")
    for p in (_p("gemm", "matmul", "bwd", m=16, k=16, n=16), _p("norm", "rms_norm", "fwd", t=8, h=32),
              _p("embedding", "embedding", "bwd", t=8, v=64, h=16), _p("optimizer", "adamw", "fwd", p=4096),
              _p("attention", "sdpa_causal", "bwd", "bf16", b=1, h=2, s=16, d=8)):
        s = measure_point(p, cpu, QUICK_TIMING)
        assert 0 < s.p10_s <= s.median_s <= s.p90_s and s.repeats >= QUICK_TIMING.min_repeats
        assert (s.flops, s.bytes_moved) == counts(p) and s.key == p.key


def test_time_fn_statistics_are_ordered() -> None:
    t = time_fn(lambda: sum(range(200)), torch.device("cpu"), QUICK_TIMING)
    assert 0 < t.p10_s <= t.median_s <= t.p90_s


def test_streaming_counts_come_from_the_shared_table() -> None:
    from dcsim.profile import STREAMING_COUNTS

    n = 8 * 64
    for variant, op in (("layer_norm", "norm"), ("gelu", "elementwise"), ("swiglu", "elementwise"),
                        ("add", "elementwise"), ("copy", "elementwise")):
        for direction in ("fwd", "bwd"):
            if (variant, direction) not in STREAMING_COUNTS:
                continue
            fl, by = STREAMING_COUNTS[(variant, direction)]
            assert counts(_p(op, variant, direction, "bf16", t=8, h=64)) == (fl * n, by * n * 2)
    assert counts(_p("cross_entropy", "cross_entropy", "fwd", t=8, v=64)) == (4.0 * 512, 2.0 * 512 * 4)


def test_plan_has_forward_only_copies_and_the_output_head_gemm() -> None:
    points, _ = plan_points("cpu", True, ["fp32"])
    copies = {p.direction for p in points if p.variant == "copy"}
    assert copies == {"fwd"}
    assert {p.direction for p in points if p.variant == "add"} == {"fwd", "bwd"}
    assert any(p.op_class == "gemm" and p.dims == {"m": 512, "k": 256, "n": 2048} for p in points)


def test_cold_timing_flushes_and_says_so() -> None:
    from calibrate.kernels import CachePolicy, cache_mode
    from calibrate.timing import CacheFlush, time_cold

    cpu = torch.device("cpu")
    policy = CachePolicy(CacheFlush(cpu, 1 << 20))  # a small flush keeps the test fast
    p = _p("elementwise", "add", "fwd", t=8, h=64)
    assert cache_mode(p, policy) == "cold" and cache_mode(p, None) == "warm"
    s = measure_point(p, cpu, QUICK_TIMING, policy)
    assert s.cache == "cold" and 0 < s.p10_s <= s.median_s <= s.p90_s
    assert QUICK_TIMING.cold_min_repeats <= s.repeats <= QUICK_TIMING.cold_max_repeats
    assert measure_point(p, cpu, QUICK_TIMING).cache == "warm"
    calls = {"setup": 0, "fn": 0}

    def setup() -> None:
        calls["setup"] += 1

    def fn() -> None:
        assert calls["setup"] == calls["fn"] + 1  # setup before every timed call
        calls["fn"] += 1

    t = time_cold(fn, cpu, QUICK_TIMING, policy.flush, setup)  # type: ignore[arg-type]
    assert calls["fn"] == t.repeats + QUICK_TIMING.min_warmup_calls + 1


def test_optimizer_point_steps_with_gradients_every_call() -> None:
    from calibrate.kernels import CachePolicy
    from calibrate.timing import CacheFlush

    cpu = torch.device("cpu")
    warm = measure_point(_p("optimizer", "adamw", "fwd", p=1 << 16), cpu, QUICK_TIMING)
    cold = measure_point(_p("optimizer", "adamw", "fwd", p=1 << 16), cpu, QUICK_TIMING,
                         CachePolicy(CacheFlush(cpu, 1 << 20)))
    assert warm.cache == "warm" and cold.cache == "cold"
    # an AdamW step over 64 Ki parameters does real work: more than a step without gradients
    assert min(warm.median_s, cold.median_s) > 5e-6


def test_framework_overhead_is_measured_per_kernel() -> None:
    from calibrate.kernels import measure_framework

    fw = measure_framework(torch.device("cpu"), QUICK_TIMING)
    assert fw.step_fwd_s > 0 and fw.step_bwd_s > 0 and fw.call_fwd_s > 0 and fw.call_bwd_s > 0
    assert fw.fwd_s == fw.step_fwd_s - fw.call_fwd_s
    assert abs(fw.fwd_s) < 1e-3 and abs(fw.bwd_s) < 1e-3  # microseconds, not milliseconds
