"""The tiny GPT: its parameter count formula, and one real 2-rank DDP measurement (gloo)."""

from __future__ import annotations

import math

import pytest

from calibrate.device import CalibrationInputError, cpu_count
from calibrate.tinygpt import TinyGPT, TinyGPTConfig, measure_ddp_step


def test_parameter_count_matches_the_model() -> None:
    c = TinyGPTConfig(layers=3, hidden=96, heads=3, ffn_hidden=384, vocab=500, seq_len=32)
    assert sum(p.numel() for p in TinyGPT(c).parameters()) == c.parameter_count()


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        TinyGPTConfig(hidden=100, heads=3)
    with pytest.raises(ValueError):
        TinyGPTConfig(precision="fp16")
    with pytest.raises(ValueError):
        TinyGPTConfig(ddp_bucket_mb=0)


def test_ddp_bucket_is_explicit_and_the_scenario_uses_it() -> None:
    from dcsim.app.calibration_check import tiny_scenario

    c = TinyGPTConfig()
    assert c.ddp_bucket_params == 25 * 2**20 // 4  # torch's default size, fp32 gradients
    assert c.ddp_bucket_params > c.parameter_count()  # one bucket: nothing reduced during backward
    sc = tiny_scenario(TinyGPTConfig(ddp_bucket_mb=1.0), 2, "spec", "cpu-host")
    assert sc["workload"]["parallelism"]["ddp_bucket_params"] == 2**20 // 4


def test_too_many_ranks_is_refused() -> None:
    with pytest.raises(CalibrationInputError):
        measure_ddp_step(world_size=cpu_count() + 1)


@pytest.mark.skipif(cpu_count() < 2, reason="two ranks need two cores")
def test_ddp_step_over_two_gloo_ranks() -> None:
    c = TinyGPTConfig(layers=1, hidden=64, heads=2, ffn_hidden=256, vocab=256, seq_len=32, micro_batch=2)
    r = measure_ddp_step(c, world_size=2, steps=3, warmup=1)
    assert r.world_size == 2 and r.backend == "gloo" and r.threads_per_rank >= 1
    assert min(r.forward_s, r.backward_s, r.optimizer_s) > 0
    assert r.step_p10_s <= r.step_s <= r.step_p90_s
    # Phases are medians of their own; their sum is close to the median step.
    assert 0.5 * r.step_s < r.forward_s + r.backward_s + r.optimizer_s < 1.5 * r.step_s
    assert math.isfinite(r.first_loss) and math.isfinite(r.last_loss)
