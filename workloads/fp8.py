"""fp8 training as Transformer Engine runs it: only the GEMMs run in fp8, with casts around them.

Transformer Engine with delayed scaling (NVIDIA/TransformerEngine, transformer_engine/pytorch/
module/linear.py, layernorm_linear.py, layernorm_mlp.py at 3ec87875): activations stay bf16
between modules; each fp8 GEMM needs its input in fp8 and, for the weight-gradient GEMM, its
transpose (Hopper's fp8 tensor cores take only the TN layout, cuBLASLt docs), and the backward
casts each output gradient the same way. Per element, with e bytes of a bf16 element:
- a Linear whose input is bf16 (the attention output projection): fp8_cast_transpose_fused,
  read e, write the fp8 tensor and its transpose (1 + 1);
- a LayerNormLinear (QKV, MLP up) gets its fp8 input from the layer norm itself (the norm
  kernel writes fp8) and a LayerNormMLP's second GEMM from the fused activation-and-cast: only
  the transpose remains, read 1 write 1;
- every output gradient: fp8_cast_transpose (with the bias gradient fused when there is a
  bias): read e, write 1 + 1;
- weights are cast (and transposed) once per iteration: Megatron passes is_first_microbatch, so
  TE caches the fp8 weights over the micro-batches: read e, write 1 + 1 per parameter;
- the amax history and scales are updated by one fused multi-tensor kernel when fp8_autocast
  exits, once per forward and once per backward of a model chunk (TE's FP8GlobalStateManager
  .reduce_and_update_fp8_tensors); the amax all-reduce beside it is a few KB, not modelled.
"""

from __future__ import annotations

from dcsim.program import Kernel

FP8_BYTES = 1
# TE's default amax history length (DelayedScaling(amax_history_len=1024)), fp32 entries; three
# fp8 tensors per GEMM (input, weight, output grad), four GEMMs per layer.
AMAX_HISTORY = 1024
FP8_TENSORS_PER_LAYER = 12


def _pass(name: str, elements: float, bytes_per_element: float, precision: str) -> Kernel:
    return Kernel("elementwise", 0.0, float(elements) * bytes_per_element, precision, name,
                  (("elements", int(elements)),))


def fp8_layer_casts(tokens: int, hidden: int, qkv_width: int, proj_in: int, up_width: int,
                    down_in: int, e: int, precision: str) -> tuple[tuple[Kernel, ...], tuple[Kernel, ...]]:
    """(forward, backward) cast / transpose passes of one layer's four fp8 GEMMs on one rank:
    QKV [tokens, hidden] -> qkv_width, output projection proj_in -> hidden, MLP up hidden ->
    up_width, MLP down down_in -> hidden."""
    t = tokens
    fwd = (_pass("fp8_transpose_qkv_in", t * hidden, 2 * FP8_BYTES, precision),
           _pass("fp8_cast_transpose_proj_in", t * proj_in, e + 2 * FP8_BYTES, precision),
           _pass("fp8_transpose_up_in", t * hidden, 2 * FP8_BYTES, precision),
           _pass("fp8_transpose_down_in", t * down_in, 2 * FP8_BYTES, precision))
    bwd = tuple(_pass(f"fp8_cast_transpose_{name}_grad", t * width, e + 2 * FP8_BYTES, precision)
                for name, width in (("down", hidden), ("up", up_width), ("proj", hidden),
                                    ("qkv", qkv_width)))
    return fwd, bwd


def fp8_weight_casts(params: float, e: int, precision: str) -> Kernel:
    """The once-per-iteration fp8 cast and transpose of the GEMM weights."""
    return _pass("fp8_weight_cast_transpose", params, e + 2 * FP8_BYTES, precision)


def amax_update(layers: int, precision: str) -> Kernel:
    """One fused amax-history roll and scale update over the chunk's fp8 tensors."""
    n = layers * FP8_TENSORS_PER_LAYER * AMAX_HISTORY
    return _pass("fp8_amax_scale_update", n, 2 * 4, precision)
