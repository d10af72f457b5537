"""The kernels one TP rank runs for one micro-batch: a layer's forward, backward, recompute.

Shapes follow Megatron-LM's transformer layer (Narayanan et al. SC'21; Korthikanti et al.
2022). GEMM FLOPs are 2mnk; bytes are what a kernel reads and writes in HBM. Backward GEMMs
do two products (input grad and weight grad) each as large as the forward one.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcsim.program import Kernel
from dcsim.vocabulary import FLASH_BWD_FLOP_RATIO
from workloads.fp8 import amax_update, fp8_layer_casts, fp8_weight_casts
from workloads.megatron import (
    SOFTMAX_BWD_STREAMS,
    SOFTMAX_FWD_STREAMS,
    attention_copies,
    bias_kernels,
    cross_entropy_bytes,
    layer_norm_bwd_streams,
    optimizer_kernels,
)
from workloads.parallelism import TrainingJob

# Bytes of a dropout mask element (torch stores a uint8/bool mask).
MASK_BYTES = 1


def gemm(name: str, m: int, n: int, k: int, e: int, precision: str, factor: int = 1) -> Kernel:
    """A [m x k] @ [k x n] GEMM (`factor` of them back to back, e.g. 2 in backward)."""
    return Kernel(
        "gemm",
        flops=factor * 2.0 * m * n * k,
        bytes_moved=factor * float(e) * (m * k + k * n + m * n),
        precision=precision,
        name=name,
        shape=(("m", m), ("n", n), ("k", k)),
    )


def streaming(op_class: str, name: str, elements: float, bytes_per_element: float,
              precision: str) -> Kernel:
    """A memory-bound kernel touching `elements` values at `bytes_per_element` each."""
    return Kernel(op_class, 0.0, float(elements) * bytes_per_element, precision, name,
                  (("elements", int(elements)),))


@dataclass(frozen=True)
class LayerKernels:
    """One layer, one micro-batch, one TP rank.

    `attn_forward`/`attn_backward` are the attention-core kernels inside forward/backward
    (what context parallelism overlaps its KV exchange with).
    """

    forward: tuple[Kernel, ...]
    backward: tuple[Kernel, ...]
    recompute: tuple[Kernel, ...]  # re-run of (part of) the forward before backward
    attn_forward: tuple[Kernel, ...] = ()
    attn_backward: tuple[Kernel, ...] = ()


def local_tokens(job: TrainingJob) -> int:
    """Tokens of one micro-batch on one rank: the sequence is split over context parallelism."""
    return job.micro_batch * job.seq_len // job.par.cp


def layer_kernels(job: TrainingJob, moe: bool = False) -> LayerKernels:
    """The kernels of a dense layer, or with `moe` of a mixture-of-experts layer (the MLP
    becomes router + top_k routed experts + shared experts; all-to-all is the generator's)."""
    m, p = job.model, job.par
    b, s, h, t, e = job.micro_batch, job.seq_len, m.hidden, p.tp, job.act_bytes
    gprec, prec = linear_precision(job), other_precision(job)
    tokens = local_tokens(job)
    local_heads = max(1, m.heads // t)
    d = m.head_dim
    kv_local = max(1, m.kv_heads // t) * d
    # Norms, residual adds and dropout work on the full hidden unless sequence-parallel.
    tok_h = tokens * h / (t if p.sequence_parallel else 1)
    drop_add_bytes = 3 * e + (MASK_BYTES if m.dropout else 0)  # read x, residual; write; mask

    qkv = gemm("qkv", tokens, h // t + 2 * kv_local, h, e, gprec)
    proj = gemm("attn_out", tokens, h, h // t, e, gprec)
    act_fwd_bpe = 3 * e if m.activation == "swiglu" else 2 * e
    act_bwd_bpe = 5 * e if m.activation == "swiglu" else 3 * e

    # QK^T and PV of the local queries against the whole sequence (ring attention brings every
    # KV block by), no causal saving counted, as in Narayanan et al. eq. (3).
    attn_flops = 4.0 * b * (s // p.cp) * s * local_heads * d
    if job.flash_attention:
        qkvo_bytes = e * tokens * (2 * local_heads * d + 2 * kv_local)
        core_fwd: tuple[Kernel, ...] = (Kernel("attention", attn_flops, qkvo_bytes, prec, "flash_attn_fwd"),)
        core_bwd: tuple[Kernel, ...] = (Kernel("attention", FLASH_BWD_FLOP_RATIO * attn_flops, 2 * qkvo_bytes,
                           prec, "flash_attn_bwd"),)
    else:
        probs = b * local_heads * (s // p.cp) * s
        # Batched matmuls over b x heads: scores[s/cp, s] = Q[s/cp, d] K^T[d, s] and
        # context[s/cp, d] = P[s/cp, s] V[s, d] (Megatron's baddbmm / bmm, CoreAttention).
        sc_shape = (("batch", b * local_heads), ("m", s // p.cp), ("n", s), ("k", d))
        ctx_shape = (("batch", b * local_heads), ("m", s // p.cp), ("n", d), ("k", s))
        scores = Kernel("gemm", attn_flops / 2, e * (b * local_heads * 2 * s * d + probs), prec,
                        "attn_scores", sc_shape)
        context = Kernel("gemm", attn_flops / 2, e * (probs + b * local_heads * 2 * s * d), prec,
                         "attn_context", ctx_shape)
        # Megatron's fused causal softmax touches only the lower triangle (workloads/megatron.py)
        softmax_f = streaming("softmax", "scale_mask_softmax", probs, SOFTMAX_FWD_STREAMS * e, prec)
        softmax_b = streaming("softmax", "scale_mask_softmax_bwd", probs, SOFTMAX_BWD_STREAMS * e, prec)
        core_fwd = (scores, softmax_f)
        core_bwd = (_bwd(context), softmax_b, _bwd(scores))
        if m.dropout:
            core_fwd += (streaming("elementwise", "attn_dropout", probs, 2 * e + MASK_BYTES, prec),)
            core_bwd = (streaming("elementwise", "attn_dropout_bwd", probs, 2 * e + MASK_BYTES,
                                  prec),) + core_bwd
        core_fwd += (context,)

    norm_f = streaming("norm", m.norm, tok_h, 2 * e, prec)
    norm_b = streaming("norm", m.norm + "_bwd", tok_h, layer_norm_bwd_streams(job.framework) * e, prec)
    add_f = streaming("elementwise", "bias_dropout_add", tok_h, drop_add_bytes, prec)
    add_b = streaming("elementwise", "bias_dropout_add_bwd", tok_h, 2 * e + MASK_BYTES, prec)

    if moe:
        mlp_f, mlp_b = _moe_mlp(job, tokens, act_fwd_bpe, act_bwd_bpe)
    else:
        fc1 = gemm("mlp_up", tokens, m.mlp_up_width // t, h, e, gprec)
        fc2 = gemm("mlp_down", tokens, h, m.ffn_hidden // t, e, gprec)
        act_elems = tokens * m.ffn_hidden / t
        act_f = streaming("elementwise", m.activation, act_elems, act_fwd_bpe, prec)
        act_b = streaming("elementwise", m.activation + "_bwd", act_elems, act_bwd_bpe, prec)
        mlp_f, mlp_b = (fc1, act_f, fc2), (_bwd(fc2), act_b, _bwd(fc1))

    bias_f, bias_b = bias_kernels(job.framework, tokens, h // t + 2 * kv_local,
                                  m.mlp_up_width // t, h, e, prec)
    copy_f, copy_b = attention_copies(job.framework, tokens, local_heads * d, e, prec,
                                      job.flash_attention)
    core_fwd = core_fwd + copy_f
    core_bwd = copy_b + core_bwd
    cast_f, cast_b = fp8_casts(job, tokens)
    forward = (norm_f, *cast_f[:1], qkv, *bias_f, *core_fwd, *cast_f[1:2], proj, add_f, norm_f,
               *cast_f[2:], *mlp_f, add_f)
    backward = (add_b, *cast_b[:2], *mlp_b, norm_b, add_b, *cast_b[2:3], _bwd(proj), *core_bwd,
                *cast_b[3:], _bwd(qkv), *bias_b, norm_b)
    if p.recompute == "full":
        recompute = forward
    elif p.recompute == "selective" and not job.flash_attention:
        recompute = core_fwd  # Korthikanti et al. 2022: recompute only the attention core
    else:
        recompute = ()  # flash attention already recomputes its core inside its backward
    return LayerKernels(forward, backward, recompute, core_fwd, core_bwd)


def linear_precision(job: TrainingJob) -> str:
    """Precision of the transformer layers' linear GEMMs (fp8 under Transformer Engine)."""
    return job.precision


def other_precision(job: TrainingJob) -> str:
    """Precision of everything else: with fp8 only the linear GEMMs run in fp8 (TE); attention,
    norms, element-wise kernels and the output layer stay bf16."""
    return "bf16" if job.precision == "fp8" else job.precision


def fp8_casts(job: TrainingJob, tokens: int) -> tuple[tuple[Kernel, ...], tuple[Kernel, ...]]:
    """The cast / transpose passes around a dense layer's fp8 GEMMs (workloads/fp8.py)."""
    if job.precision != "fp8":
        return (), ()
    m, t = job.model, job.par.tp
    kv_local = max(1, m.kv_heads // t) * m.head_dim
    return fp8_layer_casts(tokens, m.hidden, m.hidden // t + 2 * kv_local, m.hidden // t,
                           m.mlp_up_width // t, m.ffn_hidden // t, job.act_bytes, "bf16")


def expert_tokens(job: TrainingJob, tokens: int) -> float:
    """Token-expert pairs one rank's experts process per micro-batch: top_k per token,
    times the load-imbalance factor (the busiest rank sets the pace)."""
    return tokens * job.model.top_k * job.moe_imbalance


def _moe_mlp(job: TrainingJob, tokens: int, act_fwd_bpe: int,
             act_bwd_bpe: int) -> tuple[tuple[Kernel, ...], tuple[Kernel, ...]]:
    """Router, routed experts (as one grouped GEMM per projection) and shared experts."""
    m, t, e = job.model, job.par.tp, job.act_bytes
    gprec, prec = linear_precision(job), other_precision(job)
    h = m.hidden
    routed = int(expert_tokens(job, tokens))
    router = gemm("router", tokens, m.experts, h, e, prec)  # a torch Linear, not a TE module
    topk = streaming("softmax", "router_topk", tokens * m.experts, 2 * e, prec)
    up = gemm("expert_up", routed, m.gated * m.moe_ffn_hidden // t, h, e, gprec)
    down = gemm("expert_down", routed, h, m.moe_ffn_hidden // t, e, gprec)
    act_elems = routed * m.moe_ffn_hidden / t
    act_f = streaming("elementwise", m.activation, act_elems, act_fwd_bpe, prec)
    act_b = streaming("elementwise", m.activation + "_bwd", act_elems, act_bwd_bpe, prec)
    fwd: tuple[Kernel, ...] = (router, topk, up, act_f, down)
    bwd: tuple[Kernel, ...] = (_bwd(down), act_b, _bwd(up), _bwd(router))
    if m.shared_experts:
        width = m.shared_experts * m.moe_ffn_hidden // t
        s_up = gemm("shared_up", tokens, m.gated * width, h, e, gprec)
        s_down = gemm("shared_down", tokens, h, width, e, gprec)
        fwd += (s_up, s_down)
        bwd += (_bwd(s_down), _bwd(s_up))
    return fwd, bwd


def _bwd(k: Kernel) -> Kernel:
    """Backward of a GEMM: input-grad and weight-grad products, each as big as the forward."""
    return Kernel(k.op_class, 2 * k.flops, 2 * k.bytes_moved, k.precision, k.name + "_bwd", k.shape)


@dataclass(frozen=True)
class EdgeKernels:
    """Embedding (first stage) and output head + loss (last stage), per micro-batch."""

    embed_fwd: tuple[Kernel, ...]
    embed_bwd: tuple[Kernel, ...]
    head_fwd: tuple[Kernel, ...]
    head_bwd: tuple[Kernel, ...]


def edge_kernels(job: TrainingJob) -> EdgeKernels:
    m, p = job.model, job.par
    tokens, e, prec = local_tokens(job), job.act_bytes, other_precision(job)
    v_local = -(-m.vocab // p.tp)
    embed = streaming("embedding", "embedding", tokens * m.hidden, e, prec)
    logits = gemm("logits", tokens, v_local, m.hidden, e, prec)
    # Vocab-parallel cross-entropy over fp32 logits, pass by pass (workloads/megatron.py).
    ce_fwd_bytes, ce_bwd_bytes = cross_entropy_bytes(e)
    ce_f = streaming("cross_entropy", "cross_entropy", tokens * v_local, ce_fwd_bytes, prec)
    ce_b = streaming("cross_entropy", "cross_entropy_bwd", tokens * v_local, ce_bwd_bytes, prec)
    final_norm = streaming("norm", m.norm, tokens * m.hidden, 2 * e, prec)
    ln_bwd = layer_norm_bwd_streams(job.framework) * e
    return EdgeKernels(
        embed_fwd=(embed,),
        embed_bwd=(streaming("embedding", "embedding_bwd", tokens * m.hidden, 2 * e, prec),),
        head_fwd=(final_norm, logits, ce_f),
        head_bwd=(ce_b, _bwd(logits), streaming("norm", m.norm + "_bwd", tokens * m.hidden,
                                                ln_bwd, prec)),
    )


def optimizer_kernel(params: float, precision: str) -> Kernel:
    """The Adam update alone (apex FusedAdam over fp32 master weights); the step's other passes
    come with it from `optimizer_step_kernels`."""
    return optimizer_kernels(params, precision, 4 if precision == "fp32" else 2)[-2]


def optimizer_step_kernels(params: float, precision: str) -> tuple[Kernel, ...]:
    """Every pass of the mixed-precision optimizer step over `params` (workloads/megatron.py);
    with fp8, the model weights are bf16 and TE casts them to fp8 once per iteration."""
    if precision == "fp8":
        return optimizer_kernels(params, "bf16", 2) + (fp8_weight_casts(params, 2, "bf16"),)
    return optimizer_kernels(params, precision, 4 if precision == "fp32" else 2)


def fp8_amax_kernels(job: TrainingJob, layers: int) -> tuple[Kernel, ...]:
    """The amax / scale update when a chunk's fp8_autocast exits (forward or backward)."""
    return (amax_update(layers, "bf16"),) if job.precision == "fp8" and layers else ()


def grad_accumulate_kernel(params: float, precision: str) -> Kernel:
    """Adding one micro-batch's weight gradients into the accumulated ones (unfused):
    read both (2 + 2 bytes in fp16/bf16) and write the sum (2): 6 bytes per parameter."""
    return Kernel("elementwise", params, 6.0 * params, precision, "grad_accumulate",
                  (("params", int(params)),))
