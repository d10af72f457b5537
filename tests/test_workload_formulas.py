"""FLOP and memory formulas against hand calculations from the cited papers."""

import pytest

from workloads.flops import iteration_flops, narayanan_flops
from workloads.memory import activation_bytes_per_layer, memory_footprint
from workloads.models import get_model, model_from_dict
from workloads.parallelism import Parallelism, TrainingJob


def gpt(layers=24, hidden=2304, heads=24, vocab=51200):
    return model_from_dict({"layers": layers, "hidden": hidden, "heads": heads,
                            "ffn_hidden": 4 * hidden, "vocab": vocab})


@pytest.mark.parametrize("recompute", ["none", "full"])
@pytest.mark.parametrize("tp,pp", [(1, 1), (2, 1), (8, 4)])
def test_flops_match_narayanan_eq3(recompute, tp, pp):
    m = gpt(layers=48, hidden=8192, heads=64)
    job = TrainingJob(m, Parallelism(tp=tp, pp=pp, dp=4, recompute=recompute), seq_len=2048,
                      global_batch=64, micro_batch=1, precision="fp16", flash_attention=False)
    fl = iteration_flops(job)
    expected_hw = narayanan_flops(64, 2048, 48, 8192, 51200, full_recompute=recompute == "full")
    expected_model = narayanan_flops(64, 2048, 48, 8192, 51200, full_recompute=False)
    assert fl.hardware == pytest.approx(expected_hw, rel=1e-9)
    assert fl.model == pytest.approx(expected_model, rel=1e-9)


def test_eq3_by_hand_for_gpt3():
    # 72 * B s l h^2 (1 + s/6h + V/12lh), B=1536, s=2048, l=96, h=12288, V=50257
    b, s, l, h, v = 1536, 2048, 96, 12288, 50257
    by_hand = 72 * b * s * l * h * h * (1 + s / (6 * h) + v / (12 * l * h))
    assert narayanan_flops(b, s, l, h, v, False) == pytest.approx(by_hand)
    # the well-known ~6 N D rule: 6 * 175e9 * tokens is within 10% for GPT-3
    assert by_hand == pytest.approx(6 * 174.6e9 * b * s, rel=0.1)


def test_param_counts():
    assert get_model("gpt3-175b").total_params() == pytest.approx(174.6e9, rel=0.01)
    assert get_model("llama3-8b").total_params() == pytest.approx(8.03e9, rel=0.01)
    assert get_model("llama3-70b").total_params() == pytest.approx(70.6e9, rel=0.01)
    assert get_model("llama3-405b").total_params() == pytest.approx(405.9e9, rel=0.01)


def _job(tp, sp, recompute, flash=False):
    m = gpt(layers=96, hidden=12288, heads=96)
    return TrainingJob(m, Parallelism(tp=tp, pp=8, dp=16, sequence_parallel=sp, recompute=recompute),
                       seq_len=2048, global_batch=1536, micro_batch=1, precision="bf16",
                       flash_attention=flash)


@pytest.mark.parametrize("tp,sp,recompute,coef", [
    # Korthikanti et al. 2022, Table 2: activation memory per layer
    (1, False, "none", lambda s, b, h, a, t: s * b * h * (34 + 5 * a * s / h)),
    (8, False, "none", lambda s, b, h, a, t: s * b * h * (10 + 24 / t + 5 * a * s / (h * t))),
    (8, True, "none", lambda s, b, h, a, t: s * b * h / t * (34 + 5 * a * s / h)),
    (8, True, "selective", lambda s, b, h, a, t: s * b * h / t * 34),
    (8, False, "selective", lambda s, b, h, a, t: s * b * h * (10 + 24 / t)),
    (8, False, "full", lambda s, b, h, a, t: 2 * s * b * h),
])
def test_activation_memory_matches_korthikanti(tp, sp, recompute, coef):
    job = _job(tp, sp, recompute)
    expected = coef(2048, 1, 12288, 96, tp)
    assert activation_bytes_per_layer(job) == pytest.approx(expected, rel=1e-9)


def test_model_states_are_2_2_12_bytes_per_param():
    m = gpt(layers=8, hidden=1024, heads=16)
    job = TrainingJob(m, Parallelism(tp=1, pp=1, dp=8, zero=0, recompute="full"), 2048, 8)
    fp = memory_footprint(job, 80e9)
    params = m.total_params() - m.hidden  # the final norm is not counted per stage
    assert fp.weights_bytes == pytest.approx(2 * params, rel=1e-3)
    assert fp.gradients_bytes == pytest.approx(2 * params, rel=1e-3)
    assert fp.optimizer_bytes == pytest.approx(12 * params, rel=1e-3)
    z1 = memory_footprint(TrainingJob(m, Parallelism(dp=8, zero=1, recompute="full"), 2048, 8), 80e9)
    assert z1.optimizer_bytes == pytest.approx(fp.optimizer_bytes / 8)


def test_gpt3_on_one_gpu_does_not_fit_but_fits_sharded():
    m = get_model("gpt3-175b")
    one = memory_footprint(TrainingJob(m, Parallelism(recompute="full"), 2048, 1), 80 * 2**30)
    assert not one.fits and one.total_bytes > 16 * 174e9
    sharded = memory_footprint(TrainingJob(m, Parallelism(tp=8, pp=8, dp=16, zero=1,
                                                          sequence_parallel=True,
                                                          recompute="selective"), 2048, 1536),
                               80 * 2**30)
    assert sharded.fits
