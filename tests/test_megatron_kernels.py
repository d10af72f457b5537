"""The kernels a Megatron step runs beyond the matmuls, per era, and Table 1 with them."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from workloads.flops import iteration_flops
from workloads.kernels import edge_kernels, layer_kernels, optimizer_step_kernels
from workloads.megatron import cross_entropy_bytes
from workloads.models import TransformerConfig
from workloads.parallelism import Parallelism, TrainingJob


def _job(framework: str, flash: bool = False, precision: str = "fp16") -> TrainingJob:
    model = TransformerConfig(name="t", layers=4, hidden=2304, heads=24, kv_heads=24, ffn_hidden=4 * 2304,
                              vocab=51200, activation="gelu", dropout=True)
    return TrainingJob(model=model, par=Parallelism(tp=2, recompute="full"), seq_len=2048,
                       global_batch=8, micro_batch=2, precision=precision,
                       flash_attention=flash, framework=framework)


def _names(ks) -> set[str]:
    return {k.name for k in ks}


def test_cross_entropy_runs_over_fp32_logits_pass_by_pass() -> None:
    assert cross_entropy_bytes(2) == (38.0, 14.0)  # 52 bytes per logit in fp16 / bf16
    assert cross_entropy_bytes(4) == (32.0, 8.0)  # fp32 logits: no casts
    ek = edge_kernels(_job("megatron-core"))
    ce = next(k for k in ek.head_fwd if k.name == "cross_entropy")
    assert ce.bytes_moved == 38.0 * dict(ce.shape)["elements"]


def test_mixed_precision_optimizer_passes() -> None:
    fp16 = optimizer_step_kernels(1e6, "fp16")
    bf16 = optimizer_step_kernels(1e6, "bf16")
    assert sum(k.bytes_moved for k in fp16) == pytest.approx(52e6)  # copy, unscale, norm, adam, copy
    assert sum(k.bytes_moved for k in bf16) == pytest.approx(38e6)  # fp32 main grads: no copy, no scaler
    assert [k.op_class for k in fp16].count("optimizer") == 1


def test_2021_runs_bias_and_layout_kernels_that_megatron_core_fuses() -> None:
    old, new = layer_kernels(_job("megatron-2021")), layer_kernels(_job("megatron-core"))
    assert {"qkv_bias_add", "context_permute_copy"} <= _names(old.forward)
    assert {"bias_grad_reduce", "qkv_split_cat_bwd", "context_permute_copy_bwd"} <= _names(old.backward)
    assert not _names(new.forward + new.backward) & {"qkv_bias_add", "bias_grad_reduce",
                                                     "context_permute_copy"}
    ln_old = next(k for k in old.backward if k.name == "layer_norm_bwd")
    ln_new = next(k for k in new.backward if k.name == "layer_norm_bwd")
    assert ln_old.bytes_moved == pytest.approx(5 / 3 * ln_new.bytes_moved)  # apex: 5 streams, TE: 3
    flash_old = layer_kernels(_job("megatron-2021", flash=True))
    assert "context_permute_copy" not in _names(flash_old.forward)


def test_fused_causal_softmax_reads_only_the_lower_triangle() -> None:
    lk = layer_kernels(_job("megatron-2021"))
    f = next(k for k in lk.forward if k.name == "scale_mask_softmax")
    b = next(k for k in lk.backward if k.name == "scale_mask_softmax_bwd")
    n = dict(f.shape)["elements"]
    assert f.bytes_moved == pytest.approx(1.5 * 2 * n) and b.bytes_moved == pytest.approx(2 * 2 * n)


def test_eras_do_the_same_matmul_flops() -> None:
    a, b = _job("megatron-2021"), _job("megatron-core")
    assert iteration_flops(a) == iteration_flops(b)
    assert iteration_flops(replace(a, precision="bf16")).model == iteration_flops(a).model


def test_sc21_table_rows_run_as_2021_and_land_within_the_bar() -> None:
    """The fast rows of Table 1 (the full table: `dcsim validate`) within 12%, A100 profile."""
    from dcsim.app.scenario import load_scenario
    from dcsim.app.simulate import simulate
    from dcsim.app.validate import bundled_validation_dir, megatron_runs, megatron_scenario

    d = bundled_validation_dir()
    table = yaml.safe_load((d / "megatron-sc21-table1.yaml").read_text())
    runs = megatron_runs(d)
    for row in table["rows"][:5]:
        sc = megatron_scenario(row, table, "analytical", runs[float(row["params_b"])])
        assert sc["workload"]["framework"] == "megatron-2021"
        r = simulate(load_scenario(sc))
        assert r.provenance.calibration == "a100-sxm-80gb"
        err = r.hardware_tflops_per_gpu / row["tflops_per_gpu"] - 1
        assert abs(err) < 0.12, (row["params_b"], err)


def test_the_bundled_table_carries_the_same_run_settings_as_the_scripts() -> None:
    from dcsim.app.validate import bundled_validation_dir, megatron_runs

    d = bundled_validation_dir()
    table = yaml.safe_load((d / "megatron-sc21-table1.yaml").read_text())
    runs = megatron_runs(d)
    for row in table["rows"]:
        run = runs[float(row["params_b"])]
        assert row["mbs"] == run["micro_batch"]
        vp = row["layers"] // (row["pp"] * run["layers_per_virtual_stage"]) \
            if "layers_per_virtual_stage" in run else 1
        assert row.get("vp", 1) == vp
        assert row["parallelism"]["overlap_grad_reduce"] == (run["ddp"] == "torch")
