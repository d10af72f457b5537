"""Kernels a Megatron training step runs beyond the model's matmuls, by era, with sources.

Each count is the HBM traffic of the kernel as the framework's code runs it (e = bytes of an
activation element; fp32 = 4). Two eras (`TrainingJob.framework`):
- "megatron-2021": Megatron-LM as the SC'21 paper ran it (NVIDIA/Megatron-LM, examples/sc21,
  container pytorch:20.12, apex FusedLayerNorm, torch F.linear biases);
- "megatron-core": Megatron-Core with Transformer Engine, where biases and their gradients
  ride in cuBLASLt GEMM epilogues and layer norm backward is one fused kernel.
Where both eras run the same code (cross-entropy, the mixed-precision optimizer) the count is
the same.
"""

from __future__ import annotations

from dcsim.program import Kernel
from dcsim.vocabulary import ADAM_FP32_STEP_BYTES_PER_PARAM

MEGATRON_2021 = "megatron-2021"
MEGATRON_CORE = "megatron-core"
FRAMEWORKS = (MEGATRON_CORE, MEGATRON_2021)
FP32_BYTES = 4

# Layer-norm backward, streams of the activation it reads and writes per element.
# 2021, apex FusedLayerNorm (NVIDIA/apex csrc/layer_norm_cuda_kernel.cu, cuComputeGradInput reads
# dout and input and writes grad_input; cuComputePartGradGammaBeta reads dout and input again):
# 5 streams. Megatron-Core + Transformer Engine (transformer_engine/common/normalization/layernorm/
# ln_bwd_kernels.cuh: one kernel reads x and dz, writes dx, and keeps dgamma/dbeta partials per
# CTA): 3 streams.
LN_BWD_STREAMS = {MEGATRON_2021: 5, MEGATRON_CORE: 3}

# Megatron's fused causal softmax (megatron/fused_kernels/scaled_upper_triang_masked_softmax.h,
# NVIDIA/Megatron-LM 2387ce01): the forward reads only the lower triangle of each row
# (local_seq = row + 1 elements) and writes the whole row (zeros above the diagonal); the
# backward reads grad and output in the lower triangle and writes the whole row. Streams per
# element of the s x s scores, lower triangle = half (s >> 1):
SOFTMAX_FWD_STREAMS = 0.5 + 1.0
SOFTMAX_BWD_STREAMS = 0.5 + 0.5 + 1.0


def layer_norm_bwd_streams(framework: str) -> int:
    """Streams per element of the layer-norm backward in this era."""
    return LN_BWD_STREAMS.get(framework, LN_BWD_STREAMS[MEGATRON_CORE])


def bias_kernels(framework: str, tokens: int, qkv_width: int, up_width: int, hidden: int,
                 e: int, precision: str) -> tuple[tuple[Kernel, ...], tuple[Kernel, ...]]:
    """Bias adds (forward) and bias-gradient reductions (backward) that run as kernels of
    their own: 2021 only (Megatron-Core + TE fuse both into the GEMMs' epilogues).

    NVIDIA/Megatron-LM megatron/model/transformer.py (b35d061e, the 2021 ParallelAttention /
    ParallelMLP): the QKV ColumnParallelLinear adds its bias in torch F.linear, which for the 3-D
    [s, b, h] input is matmul then `output += bias` (torch 1.8 functional.linear): read and write
    the output once more. Its backward reduces the output grad over tokens for the bias grad.
    dense_h_to_4h, the attention dense and dense_4h_to_h skip the bias add (skip_bias_add=True)
    and hand the bias to bias_gelu (megatron/model/fused_bias_gelu.py, whose backward returns
    the bias grad at the input's shape, summed by autograd) and bias_dropout_add (TorchScript;
    the broadcast bias's grad is summed the same way): one reduction read each.
    """
    if framework != MEGATRON_2021:
        return (), ()
    fwd = (Kernel("elementwise", float(tokens * qkv_width), 2.0 * e * tokens * qkv_width, precision,
                  "qkv_bias_add", (("elements", tokens * qkv_width),)),)
    width = qkv_width + up_width + 2 * hidden
    bwd = (Kernel("elementwise", float(tokens * width), float(e * tokens * width), precision,
                  "bias_grad_reduce", (("elements", tokens * width),)),)
    return fwd, bwd


def attention_copies(framework: str, tokens: int, local_width: int, e: int, precision: str,
                     flash: bool) -> tuple[tuple[Kernel, ...], tuple[Kernel, ...]]:
    """Layout copies around the unfused attention of 2021 (megatron/model/transformer.py,
    b35d061e, ParallelAttention.forward): q, k, v are views of the QKV output (split along the
    last dim, no copy), the context `permute(2, 0, 1, 3).contiguous()` copies tokens x h/tp
    elements; backward copies that grad back and concatenates the q, k, v grads into the QKV
    output's grad (the split's backward, torch.cat): 3 x tokens x h/tp elements. Two streams
    (read, write) per element."""
    if framework != MEGATRON_2021 or flash:
        return (), ()
    ctx = tokens * local_width
    fwd = (Kernel("elementwise", 0.0, 2.0 * e * ctx, precision, "context_permute_copy",
                  (("elements", ctx),)),)
    bwd = (Kernel("elementwise", 0.0, 2.0 * e * ctx, precision, "context_permute_copy_bwd",
                  (("elements", ctx),)),
           Kernel("elementwise", 0.0, 2.0 * e * 3 * ctx, precision, "qkv_split_cat_bwd",
                  (("elements", 3 * ctx),)))
    return fwd, bwd


def cross_entropy_bytes(e: int) -> tuple[float, float]:
    """(forward, backward) bytes per logit of Megatron's vocab-parallel cross-entropy.

    The logits are cast to fp32 first (megatron/model/gpt_model.py, 152aab30,
    post_language_model_processing: `vocab_parallel_cross_entropy(output.float(), labels)` unless
    --fp16-lm-cross-entropy, off by default; Megatron-Core's GPTModel.compute_language_model_loss
    does the same), then megatron/mpu/cross_entropy.py (34ed99d1) _VocabParallelCrossEntropy:
    forward max (read 4), sub_ (read + write 8), exp (8), sum (read 4), div_ (8); backward
    mul_ by the loss grad (8) and the grad's cast back to the logits' dtype (4 + e).
    """
    cast = 0 if e == FP32_BYTES else e + FP32_BYTES
    return float(cast + 4 + 8 + 8 + 4 + 8), float(8 + cast)


def optimizer_kernels(params: float, precision: str, e: int) -> tuple[Kernel, ...]:
    """The mixed-precision optimizer step over `params` (this rank's shard), pass by pass.

    NVIDIA/Megatron-LM megatron/optimizer/optimizer.py (d657a3ef; Megatron-Core's
    megatron/core/optimizer/optimizer.py runs the same steps), Float16OptimizerWithFloat16Params
    .step: copy the model grads to fp32 main grads (`main_grad.float()`: a copy when the grad
    buffer is fp16, as with --fp16 and the default --no-accumulate-allreduce-grads-in-fp32; an
    alias when it is fp32, as Megatron forces for bf16); unscale and check for inf/nan (fp16's
    loss scaling only: torch._amp_foreach_non_finite_check_and_unscale_, read + write fp32);
    the grad norm for clipping (clip_grad 1.0 by default; multi_tensor_l2norm reads the grads;
    the scale pass runs only when the norm exceeds the clip); apex FusedAdam (read p, g, m, v,
    write p, m, v in fp32: 28 bytes); copy the fp32 main params to the fp16/bf16 model params.
    """
    p = float(params)
    n = int(params)
    fp16 = precision == "fp16"
    passes: list[tuple[str, float]] = []
    if fp16:
        passes += [("grad_to_main", e + FP32_BYTES), ("unscale_inf_check", 2 * FP32_BYTES)]
    passes += [("grad_norm", FP32_BYTES)]
    ks = [Kernel("elementwise", p, b * p, precision, name, (("elements", n),)) for name, b in passes]
    ks.append(Kernel("optimizer", ADAM_FLOPS_PER_PARAM * p, ADAM_BYTES_PER_PARAM * p, precision,
                     "adam", (("params", n),)))
    ks.append(Kernel("elementwise", p, (FP32_BYTES + e) * p, precision, "main_to_model_params",
                     (("elements", n),)))
    return tuple(ks)


# apex FusedAdam over fp32 master params: read p, g, m, v (16 bytes) and write p, m, v (12):
# the fp32 Adam step of dcsim.vocabulary; about 10 FLOP per parameter (csrc/multi_tensor_adam.cu).
ADAM_BYTES_PER_PARAM = ADAM_FP32_STEP_BYTES_PER_PARAM
ADAM_FLOPS_PER_PARAM = 10
