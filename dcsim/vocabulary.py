"""Shared vocabulary of the core: names and per-unit constants that several packages must agree on.

One place for them, each with its source, so workloads, calibration, the scenario schema and the
cost models cannot drift apart. Kinds are str enums (they compare equal to their plain names, as
YAML and JSON files write them); the tuples list the names in a fixed order for messages.
"""

from __future__ import annotations

from enum import Enum
from typing import Mapping


class CollectiveOp(str, Enum):
    """The collectives of torch.distributed / NCCL that programs, profiles and benchmarks name."""

    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"
    BROADCAST = "broadcast"
    SEND_RECV = "send_recv"


COLLECTIVE_OPS: tuple[str, ...] = tuple(op.value for op in CollectiveOp)


class Precision(str, Enum):
    """Number formats a training job computes in (fp8 training keeps bf16 activations)."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"


PRECISIONS: tuple[str, ...] = tuple(p.value for p in Precision)
# Datasheets also give a tf32 tensor-core rate (fp32 storage, 10-bit mantissa in the multiplier).
DATASHEET_PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16", "fp8")

# Bytes per element of each format: IEEE 754 binary32 and binary16, bfloat16 (16 bits), OCP FP8
# (E4M3/E5M2, 8 bits); tf32 is stored as binary32 (NVIDIA A100 whitepaper, "TF32").
ELEMENT_BYTES: Mapping[str, int] = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}


class ProvenanceKind(str, Enum):
    """Where a number users see came from (DESIGN.md section 1)."""

    MEASURED = "measured"  # a calibration profile's samples
    FITTED = "fitted"      # interpolated from measurements
    SPEC = "spec"          # datasheet roofline


PROVENANCES: tuple[str, ...] = tuple(p.value for p in ProvenanceKind)

# Model and optimizer state per parameter under mixed-precision Adam (Rajbhandari et al. 2020,
# "ZeRO", section 3.1): fp16/bf16 weights (2) and gradients (2), and fp32 master weights,
# momentum and variance (4 + 4 + 4 = 12).
WEIGHT_BYTES_PER_PARAM = 2
GRAD_BYTES_PER_PARAM = 2
OPTIMIZER_STATE_BYTES_PER_PARAM = 12
# What a checkpoint holds per parameter: the working weights and the optimizer state (2 + 12);
# gradients are not saved (Megatron-LM's checkpoint keeps model + optimizer state dicts).
CHECKPOINT_BYTES_PER_PARAM = WEIGHT_BYTES_PER_PARAM + OPTIMIZER_STATE_BYTES_PER_PARAM
# Memory traffic of one AdamW step over fp32 parameters (torch.optim.AdamW, foreach): read p, g,
# m, v and write p, m, v: 7 x 4 bytes (what calibrate/kernels.py measures as "optimizer").
ADAM_FP32_STEP_BYTES_PER_PARAM = 7 * 4
# The same step in mixed precision: fp32 master, m, v and the fp32 grad read (16), master, m, v
# written (12), plus the fp16/bf16 working copy written (2).
ADAM_MIXED_STEP_BYTES_PER_PARAM = 16 + 12 + 2

# FlashAttention backward runs 5 matmuls against 2 in forward: 2.5x the forward FLOPs
# (Dao et al. 2022, FlashAttention, section 3.1 / appendix B).
FLASH_BWD_FLOP_RATIO = 2.5
