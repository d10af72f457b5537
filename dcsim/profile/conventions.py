"""What a profile's numbers mean: op classes, collectives, precisions and how FLOPs and bytes
are counted (the contract between calibrate/ and the cost model), and the schema version."""

from __future__ import annotations

from typing import Literal

from dcsim.vocabulary import (ADAM_FP32_STEP_BYTES_PER_PARAM, COLLECTIVE_OPS, ELEMENT_BYTES,  # noqa: F401 (re-exported)
                              PRECISIONS)


# Version of the file layout below; bump on an incompatible change (load_profile refuses others).
# 2: compute fits may be `roofline` or `two_regime` curves (a dcsim reading version 1 only would
# not know them, so it refuses the file by its version instead of failing on a curve kind).
# 3: published-measurement profiles: `metadata.sources` (whose measurement, which commit and
# licence), host facts optional (a published dataset may not give them), and the `gemm_table`
# curve (GEMM rate by shape, interpolated between measured shapes).
SCHEMA_VERSION = 3
# Versions this dcsim reads: every version-1 file is a valid version-2 file.
READABLE_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2, 3)

OpClass = Literal[
    "gemm", "attention", "norm", "elementwise", "softmax", "embedding", "cross_entropy", "optimizer"
]
CollectiveOp = Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "send_recv"]
Precision = Literal["fp32", "bf16", "fp16", "fp8"]
Direction = Literal["fwd", "bwd"]
Provenance = Literal["measured", "fitted"]
SizeMetric = Literal["flops", "bytes"]

OP_CLASSES: tuple[str, ...] = (
    "gemm", "attention", "norm", "elementwise", "softmax", "embedding", "cross_entropy", "optimizer"
)
COLLECTIVES: tuple[str, ...] = COLLECTIVE_OPS

# What the efficiency curve of each class is a function of: GEMM and attention are bound by
# arithmetic, the rest by memory traffic (their FLOP counts are tiny next to their bytes).
OP_SIZE_METRIC: dict[str, SizeMetric] = {
    "gemm": "flops",
    "attention": "flops",
    "norm": "bytes",
    "elementwise": "bytes",
    "softmax": "bytes",
    "embedding": "bytes",
    "cross_entropy": "bytes",
    "optimizer": "bytes",
}


# Row-wise and element-wise kernels over n elements (n = elements of the output activation):
# (FLOP per element, elements read + written per element; bytes = that x n x e) by (variant, pass).
# calibrate/kernels.py counts its samples with this table and dcsim/calibrated.py converts the
# simulator's kernels to it, so both sides of a query count alike.
STREAMING_COUNTS: dict[tuple[str, str], tuple[int, int]] = {
    ("layer_norm", "fwd"): (5, 2), ("layer_norm", "bwd"): (8, 3),
    ("rms_norm", "fwd"): (5, 2), ("rms_norm", "bwd"): (8, 3),
    ("gelu", "fwd"): (8, 2), ("gelu", "bwd"): (8, 3),
    # silu(a) * b over n output elements: reads a and b, writes one; backward reads a, b and
    # the output grad and writes two grads.
    ("swiglu", "fwd"): (5, 3), ("swiglu", "bwd"): (8, 5),
    # a + b (a residual add); its backward is where autograd sums the two branches' grads
    # (an in-place a += b), three streams both ways.
    ("add", "fwd"): (1, 3), ("add", "bwd"): (1, 3),
    # y = s * x into another buffer (DDP's copy of a gradient into its bucket, layout copies).
    ("copy", "fwd"): (1, 2),
    ("softmax", "fwd"): (5, 2), ("softmax", "bwd"): (4, 3),
    # over [t, v] logits, n = t v: log-softmax and the target pick; backward writes the grad.
    ("cross_entropy", "fwd"): (4, 2), ("cross_entropy", "bwd"): (3, 2),
}
# AdamW over P fp32 parameters: read p, g, m, v and write p, m, v (7 x 4 bytes); ~12 FLOP each.
OPTIMIZER_BYTES_PER_PARAM = ADAM_FP32_STEP_BYTES_PER_PARAM
OPTIMIZER_FLOPS_PER_PARAM = 12

# How calibrate/kernels.py counts FLOPs and bytes (e = bytes per element of the precision;
# n = elements of the activation). A cost model querying the profile must count the same way.
OP_CONVENTIONS: dict[str, str] = {
    "gemm": "[m,k]@[k,n]: fwd 2mnk FLOP, (mk+kn+mn)e bytes; bwd (dX and dW) 4mnk FLOP, 2(mk+kn+mn)e bytes",
    "attention": "causal SDPA, batch b, heads h, seq s, head dim d: fwd 4bhs^2d FLOP (QK^T and PV, "
    "masked half included, as in Narayanan et al. 2021), 4bhsd e bytes; bwd 2x fwd FLOP, 8bhsd e bytes",
    "norm": "layer_norm / rms_norm over n elements: fwd 5n FLOP, 2n e bytes; bwd 8n FLOP, 3n e bytes",
    "elementwise": "gelu: fwd 8n FLOP, 2n e bytes, bwd 3n e bytes; silu(a)*b over n: fwd 5n FLOP, 3n e "
    "bytes, bwd 5n e bytes; add (a+b; backward a+=b): n FLOP, 3n e bytes; copy (y=s*x, forward "
    "only): n FLOP, 2n e bytes",
    "softmax": "over n elements: fwd 5n FLOP, 2n e bytes; bwd 4n FLOP, 3n e bytes",
    "embedding": "t tokens of width h from a [v,h] table: fwd 0 FLOP, 2th e bytes; bwd th FLOP, "
    "(vh + 2th) e bytes (dense weight gradient)",
    "cross_entropy": "over [t,v] logits: fwd 4tv FLOP, 2tv e bytes; bwd 3tv FLOP, 2tv e bytes",
    "optimizer": "AdamW step (then zero_grad(set_to_none=True)) over P fp32 parameters: 12P FLOP, "
    "7P*4 bytes (read p,g,m,v; write p,m,v); measured and queried as precision fp32 whatever the "
    "compute precision (master weights); timed cold (a step touches its state once)",
}

# Relative tolerance under which a query is taken to be the size of a measured sample.
SAME_SIZE_RTOL = 1e-9

