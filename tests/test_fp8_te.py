"""fp8 as Transformer Engine runs it: fp8 GEMMs only, casts and amax updates around them."""

from __future__ import annotations

import pytest

from dcsim.app.profiles import resolve
from dcsim.calibrated import FP8_GEMM_SPEEDUP_OVER_BF16
from dcsim.hardware import gpu
from workloads.kernels import edge_kernels, gemm, layer_kernels, optimizer_step_kernels
from workloads.models import get_model
from workloads.parallelism import Parallelism, TrainingJob
from workloads.training import build_program


def _job(precision: str) -> TrainingJob:
    return TrainingJob(model=get_model("llama3-8b"), par=Parallelism(tp=2, pp=2, dp=1),
                       seq_len=2048, global_batch=4, micro_batch=1, precision=precision)


def test_only_the_linear_gemms_run_in_fp8_with_casts_around_them() -> None:
    lk = layer_kernels(_job("fp8"))
    fp8 = {k.name for k in lk.forward + lk.backward if k.precision == "fp8"}
    assert fp8 == {"qkv", "attn_out", "mlp_up", "mlp_down", "qkv_bwd", "attn_out_bwd",
                   "mlp_up_bwd", "mlp_down_bwd"}
    casts = [k for k in lk.forward + lk.backward if k.name.startswith("fp8_")]
    assert len(casts) == 8  # four inputs forward, four output grads backward
    grad = next(k for k in casts if k.name == "fp8_cast_transpose_proj_grad")
    assert grad.bytes_moved == (2 + 1 + 1) * dict(grad.shape)["elements"]  # read bf16, write fp8 + fp8^T
    assert all(k.precision == "bf16" for k in edge_kernels(_job("fp8")).head_fwd)
    assert not any(k.name.startswith("fp8_") for k in layer_kernels(_job("bf16")).forward)


def test_fp8_weights_cast_once_per_iteration_and_amax_updates_per_chunk() -> None:
    opt = optimizer_step_kernels(1e6, "fp8")
    assert opt[-1].name == "fp8_weight_cast_transpose" and opt[-1].bytes_moved == 4e6
    prog = build_program(_job("fp8"))
    labels = [o.label for o in prog.ranks[0].ops]
    micro = _job("fp8").micro_batches
    assert sum(lbl.endswith("/fp8_amax") for lbl in labels) == 2 * micro  # forward + backward
    assert not any("fp8_amax" in o.label for o in build_program(_job("bf16")).ranks[0].ops)


def test_fp8_gemm_is_the_measured_bf16_gemm_over_the_published_speedup() -> None:
    h100 = gpu("h100-sxm")
    m = resolve("auto", h100)
    bf16 = m.kernel_time(gemm("mlp_up", 8192, 28672, 4096, 2, "bf16"), h100)
    fp8 = m.kernel_time(gemm("mlp_up", 8192, 28672, 4096, 2, "fp8"), h100)
    assert fp8.provenance == "fitted"
    assert fp8.time_s == pytest.approx(bf16.time_s / FP8_GEMM_SPEEDUP_OVER_BF16)
    assert FP8_GEMM_SPEEDUP_OVER_BF16 < 2.0  # not the datasheet's 2x
