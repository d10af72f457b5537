"""Scenarios priced from the committed CPU profile vs the spec roofline: provenance shares."""

import pytest
from typer.testing import CliRunner

from dcsim.app.profiles import load_cost_model
from dcsim.calibrated import profiled_gpu
from dcsim.app.calibration_check import tiny_scenario
from dcsim.app.cli import app
from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import simulate


class _Cfg:  # the tiny GPT's shapes without importing torch
    layers, hidden, heads, ffn_hidden, vocab, seq_len, micro_batch, precision = (
        2, 256, 4, 1024, 2048, 128, 4, "fp32")


def test_cpu_profile_prices_the_tiny_gpt_with_measured_shares():
    res = simulate(load_scenario(tiny_scenario(_Cfg, 2, "cpu-2core", "cpu-host")))
    p = res.provenance
    assert p.calibration == "cpu-2core"
    assert p.measured + p.fitted + p.spec == pytest.approx(1.0)
    assert p.measured > 0.3 and p.spec < 0.05
    spec = simulate(load_scenario(tiny_scenario(_Cfg, 2, "spec", "cpu-host")))
    assert spec.provenance.spec == pytest.approx(1.0) and spec.provenance.measured == 0.0
    assert spec.iteration_s != res.iteration_s


def test_profile_on_another_gpu_scales_spec_and_says_so():
    model = load_cost_model("cpu-2core")
    assert profiled_gpu(model.profile) == "cpu-host"
    sc = tiny_scenario(_Cfg, 8, "cpu-2core", "dgx-h100")
    sc["workload"]["precision"] = "bf16"
    res = simulate(load_scenario(sc))
    assert res.provenance.measured == 0.0 and "cpu" in res.provenance.note


@pytest.mark.parametrize("value,message", [
    ("no-such-profile", "unknown profile 'no-such-profile'"),
    ("/nonexistent/p.json", "not found"),
])
def test_bad_calibration_exits_2(tmp_path, value, message):
    import yaml
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(tiny_scenario(_Cfg, 2, "spec", "cpu-host")))
    r = CliRunner().invoke(app, ["simulate", str(f), "--calibration", value])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_corrupt_profile_exits_2(tmp_path):
    import yaml
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(tiny_scenario(_Cfg, 2, "spec", "cpu-host")))
    r = CliRunner().invoke(app, ["simulate", str(f), "--calibration", str(bad)])
    assert r.exit_code == 2 and "bad.json" in r.output


def _gpu():
    from dcsim.hardware import gpu
    return gpu("cpu-host")


def test_kernels_are_asked_by_variant_and_the_profiles_counts():
    from dcsim.calibrated import profile_query
    from dcsim.program import Kernel
    from workloads.kernels import optimizer_kernel, streaming

    ce = profile_query(streaming("cross_entropy", "cross_entropy", 512 * 2048, 3 * 4, "fp32"))
    assert (ce.op_class, ce.direction, ce.bytes_moved) == ("cross_entropy", "fwd", 2.0 * 512 * 2048 * 4)
    gelu = profile_query(streaming("elementwise", "gelu_bwd", 1000, 3 * 2, "bf16"))
    assert (gelu.variant, gelu.direction, gelu.bytes_moved) == ("gelu", "bwd", 3 * 1000 * 2)
    ln = profile_query(streaming("norm", "rms_norm", 1000, 2 * 4, "fp32"))
    assert ln.variant == "rms_norm" and ln.bytes_moved == 2 * 1000 * 4
    add = profile_query(streaming("elementwise", "bias_dropout_add_bwd", 1000, 2 * 2 + 1, "bf16"))
    assert (add.variant, add.direction, add.bytes_moved) == ("add", "bwd", 3 * 1000 * 2)
    copy_back = profile_query(streaming("elementwise", "grad_bucket_copy_back", 1000, 8, "fp32"))
    assert (copy_back.variant, copy_back.direction, copy_back.bytes_moved) == ("copy", "fwd", 2 * 1000 * 4)
    adam = profile_query(optimizer_kernel(1e6, "bf16"))
    assert (adam.precision, adam.bytes_moved, adam.flops) == ("fp32", 28e6, 12e6)
    gemm = profile_query(Kernel("gemm", 2.0 * 8 * 16 * 32, 1.0, "fp32", "qkv", (("m", 8), ("n", 32), ("k", 16))))
    assert gemm.shape == {"m": 8, "k": 16, "n": 32} and gemm.flops == 2.0 * 8 * 16 * 32
    odd = profile_query(streaming("elementwise", "attn_dropout", 1000, 5, "bf16"))
    assert odd.variant is None and odd.bytes_moved == 5000  # unknown: pooled fit, own counts


def test_committed_profile_prices_gelu_by_its_own_fit_plus_framework_overhead():
    from workloads.kernels import streaming

    model = load_cost_model("cpu-2core")
    prof = model.profile
    k = streaming("elementwise", "gelu", 512 * 1024, 2 * 4, "fp32")
    got = model.kernel_time(k, _gpu())
    own = prof.op_time("elementwise", "fp32", 8.0 * 512 * 1024, 2.0 * 512 * 1024 * 4, "fwd", "gelu")
    assert got.time_s == pytest.approx(own.time_s + prof.framework_overhead("fwd"))
    assert prof.framework is not None and got.provenance in ("measured", "fitted")


def test_check_phases_add_up_to_the_simulated_step():
    from dcsim.app.calibration_check import predicted_phases

    sc = tiny_scenario(_Cfg, 2, "cpu-2core", "cpu-host")
    res = simulate(load_scenario(sc))
    ph = predicted_phases(sc, res)
    assert ph["forward_s"] > 0 and ph["backward_s"] > ph["forward_s"] and ph["comm_s"] > 0
    assert ph["forward_s"] + ph["backward_s"] + ph["comm_s"] + ph["optimizer_s"] == pytest.approx(res.iteration_s)
    assert sc["workload"]["parallelism"]["ddp_bucket_params"] == 25 * 2**20 // 4


def test_check_summary_leaves_busy_runs_out_and_says_so(tmp_path):
    import json

    from dcsim.app.calibration_check import CheckResult, others_cores_during, save_checks

    def run(measured, busy):
        pred = 0.1
        return CheckResult(measured, pred, 100 * (pred - measured) / measured, {"step_s": measured}, {}, "p",
                           "cpu", 2, {}, busy_cores=busy)

    runs = [run(0.1, 0.0), run(0.11, 0.1), run(0.2, 1.0)]
    data = json.loads(save_checks(runs, tmp_path / "c.json").read_text())
    s = data["summary"]
    assert (s["runs"], s["quiet_runs"], s["busy_runs"]) == (3, 2, 1)
    assert s["measured_step_max_s"] == 0.11 and len(s["error_pct_all_runs"]) == 3
    assert len(data["runs"]) == 3 and data["runs"][2]["busy_cores"] == 1.0
    out, others = others_cores_during(lambda: sum(range(10_000)))
    assert out == sum(range(10_000)) and (others is None or others >= 0.0)


def test_flash_attention_backward_is_asked_with_the_profiles_flop_count():
    # workloads count the flash backward's recomputation (2.5x the forward); the profile's
    # attention samples count 2x (dcsim.profile.OP_CONVENTIONS). Its roofline fit reads the
    # sequence length from FLOP per byte, so a query must count as the samples did.
    from dcsim.calibrated import profile_query
    from dcsim.app.simulate import build_cluster, cost_model_for, job_from_scenario
    from workloads.training import build_program

    sc = load_scenario(tiny_scenario(_Cfg, 2, "cpu-2core", "cpu-host"))
    job, cluster = job_from_scenario(sc), build_cluster(sc)
    costs = cost_model_for(sc.run.calibration)
    kernels = {k.name: k for op in build_program(job, fold=True).ranks[0].ops if op.kind == "compute"
               for k in op.kernels}
    fwd, bwd = profile_query(kernels["flash_attn_fwd"]), profile_query(kernels["flash_attn_bwd"])
    b, h, s, d = _Cfg.micro_batch, _Cfg.heads, _Cfg.seq_len, _Cfg.hidden // _Cfg.heads
    assert fwd.flops == 4.0 * b * h * s * s * d and fwd.bytes_moved == 4.0 * b * h * s * d * 4
    assert bwd.flops == 2 * fwd.flops and bwd.bytes_moved == 2 * fwd.bytes_moved
    # the tiny GPT's attention shape was sampled (b 4, h 4, s 128): both passes are measured
    for name in ("flash_attn_fwd", "flash_attn_bwd"):
        assert costs.kernel_time(kernels[name], cluster.gpu_spec).provenance == "measured"
    # the embedding backward counts one add per gradient element, as its samples do
    emb = profile_query(kernels["embedding_bwd"])
    assert emb.flops == s * b * _Cfg.hidden


def test_roofline_fit_prices_another_device_by_its_intensity():
    # On another device the spec roofline is scaled by the profile's efficiency at the kernel's
    # own FLOP per byte; the attained rate at equal FLOPs is higher with fewer bytes (a longer
    # sequence, fewer heads).
    model = load_cost_model("cpu-2core")
    prof = model.profile
    f, long_b, short_b = 4.0 * 8 * 512 * 512 * 64, 16.0 * 8 * 512 * 64, 16.0 * 32 * 256 * 64
    assert prof.achieved_rate("attention", "fp32", f, "fwd", other=long_b) > prof.achieved_rate(
        "attention", "fp32", f, "fwd", other=short_b)
    for other in (long_b, short_b, None):
        eff = prof.compute_efficiency("attention", "fp32", f, "fwd", other=other)
        assert eff is not None and 0 < eff.fraction <= 1 and not eff.extrapolated
    sc = tiny_scenario(_Cfg, 8, "cpu-2core", "dgx-h100")
    res = simulate(load_scenario(sc))
    assert res.provenance.spec == pytest.approx(1.0) and res.iteration_s > 0


def test_another_devices_profile_scales_by_its_own_datasheet_and_never_past_peak():
    """A CPU profile on an A100 kernel: the CPU's efficiency is taken against the cpu-host
    roofline (not the A100's peak, which would say 0.1%) and capped at 1 (a device that beat its
    own assumed plateau must not push another past its peak)."""
    from dcsim.costs import SpecRoofline
    from dcsim.hardware import gpu as gpu_spec
    from dcsim.program import Kernel

    a100 = gpu_spec("a100-sxm-80gb")
    k = Kernel("gemm", flops=2.0 * 8192 ** 3, bytes_moved=3 * 2.0 * 8192 ** 2, precision="bf16",
               name="fc1", shape=(("m", 8192), ("n", 8192), ("k", 8192)))
    spec = SpecRoofline().kernel_time(k, a100).time_s
    scaled = load_cost_model("cpu-2core").kernel_time(k, a100).time_s
    assert spec <= scaled < 3 * spec
