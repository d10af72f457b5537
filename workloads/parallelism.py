"""Parallel layout of a training job: the typed config, its checks, and rank placement.

Two rank orders, tensor fastest in both so TP groups sit inside a node:
- tp-cp-dp-pp, Megatron-LM's default (megatron/core/parallel_state.py, order "tp-cp-ep-dp-pp"):
  rank = ((pp_index * dp + dp_index) * cp + cp_index) * tp + tp_index;
- tp-cp-pp-dp, Llama 3's (The Llama 3 Herd of Models, 2024, sec. 3.3.2: "[TP, CP, PP, DP]"),
  so a whole pipeline sits in consecutive GPUs (one pod) and only data parallelism, the traffic
  least sensitive to latency, crosses an oversubscribed tier:
  rank = ((dp_index * pp + pp_index) * cp + cp_index) * tp + tp_index.
`auto` is resolved against the cluster by the app (dcsim/app/rank_order.py); unresolved it
means Megatron's order. Expert parallelism is carved out of data parallelism (Megatron-Core's expert-data-
parallel layout): EP groups are `ep` consecutive data-parallel replicas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from dcsim import vocabulary
from workloads.models import TransformerConfig
from dcsim.errors import InputError

RECOMPUTE = ("none", "selective", "full")
PRECISIONS = vocabulary.PRECISIONS


class RankOrder(StrEnum):
    """How job ranks map to GPUs, fastest-varying group first (see the module docstring)."""

    AUTO = "auto"
    TP_CP_DP_PP = "tp-cp-dp-pp"  # Megatron-LM's default
    TP_CP_PP_DP = "tp-cp-pp-dp"  # Llama 3: pipelines inside a pod, DP across pods


class ParallelismError(InputError):
    """A layout that cannot run; the message names the field."""


@dataclass(frozen=True)
class Parallelism:
    tp: int = 1
    pp: int = 1
    dp: int = 1
    vp: int = 1
    cp: int = 1
    ep: int = 1
    zero: int = 0
    sequence_parallel: bool = False
    recompute: str = "none"
    # Megatron-LM's --overlap-grad-reduce: reduce gradient buckets while the backward pass
    # still runs. Megatron's 2021 LocalDDP (SC'21) reduced once after the backward pass.
    overlap_grad_reduce: bool = True
    # Megatron-Core's --overlap-param-gather (distributed optimizer): the updated parameters'
    # all-gather runs bucket by bucket under the next forward pass instead of blocking after the
    # optimizer step (megatron/core/distributed/param_and_grad_buffer.py). Off by default there.
    overlap_param_gather: bool = False
    # Megatron-LM's gradient_accumulation_fusion (2022): the weight-gradient GEMM accumulates
    # straight into the fp32 main grad. Without it (SC'21), every micro-batch after the first
    # adds a fresh weight gradient into the accumulated one: an extra pass over the weights.
    gradient_accumulation_fusion: bool = True
    # Megatron/TransformerEngine --tp-comm-overlap: TP collectives run beside the GEMMs they
    # feed (userbuffers), so only the part longer than the layer's compute is exposed.
    tp_comm_overlap: bool = False
    # Pipeline sends run on their own stream (Megatron's batched isend/irecv); false makes the
    # sender's compute wait for its send, as the blocking p2p of 2021 did.
    overlap_p2p_comm: bool = True
    # Megatron-LM DDP bucket size in parameters (--ddp-bucket-size; default max(40M, 1M x dp)).
    ddp_bucket_params: int | None = None
    # Allow layers not divisible by pp x vp: the first and last chunks get one layer fewer
    # (Megatron's --decoder-first/last-pipeline-num-layers; Llama 3 405B: 126 layers on PP 16).
    uneven_stages: bool = False
    # Who shards the weights under ZeRO-3: "deepspeed" (per-module gathers, prefetch bucket)
    # or "fsdp" (one gather per wrapped layer, prefetch one deep); see workloads/sharding.py.
    zero3_impl: str = "deepspeed"
    # Rank order (RankOrder); "auto" is resolved against the cluster before a program is built.
    rank_order: RankOrder = RankOrder.AUTO

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp * self.cp

    def rank(self, pp_i: int, dp_i: int, tp_i: int, cp_i: int = 0) -> int:
        """The job rank of a (pipeline, data, tensor, context) index in this layout's order."""
        if self.rank_order == RankOrder.TP_CP_PP_DP:
            return ((dp_i * self.pp + pp_i) * self.cp + cp_i) * self.tp + tp_i
        return ((pp_i * self.dp + dp_i) * self.cp + cp_i) * self.tp + tp_i

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingJob:
    """What one job trains and how: model, sequence, batch, precision, layout."""

    model: TransformerConfig
    par: Parallelism
    seq_len: int
    global_batch: int
    micro_batch: int = 1
    precision: str = "bf16"
    flash_attention: bool = True
    # MoE: tokens on the busiest expert rank over the mean (1.0 = perfectly balanced routing).
    moe_imbalance: float = 1.0
    # "megatron-core" (with Transformer Engine) or "megatron-2021": see workloads/kernels.py.
    framework: str = "megatron-core"

    @property
    def micro_batches(self) -> int:
        """Micro-batches per pipeline per iteration (gradient accumulation steps)."""
        return self.global_batch // (self.micro_batch * self.par.dp)

    @property
    def tokens_per_iteration(self) -> int:
        return self.global_batch * self.seq_len

    @property
    def act_bytes(self) -> int:
        """Bytes of one activation element (fp8 training keeps bf16 activations)."""
        return vocabulary.ELEMENT_BYTES["fp32" if self.precision == "fp32" else "bf16"]


def validate_job(job: TrainingJob, n_gpus: int | None = None) -> None:
    """Raise ParallelismError naming the first field that makes the layout impossible."""
    p, m = job.par, job.model
    for f in ("tp", "pp", "dp", "vp", "cp", "ep"):
        if getattr(p, f) < 1:
            raise ParallelismError(f"workload.parallelism.{f}: must be >= 1, got {getattr(p, f)}")
    if p.recompute not in RECOMPUTE:
        raise ParallelismError(
            f"workload.parallelism.recompute: {p.recompute!r} is not one of {', '.join(RECOMPUTE)}"
        )
    if p.zero not in (0, 1, 2, 3):
        raise ParallelismError(f"workload.parallelism.zero: {p.zero}; allowed: 0, 1, 2, 3")
    if p.zero3_impl not in ("deepspeed", "fsdp"):
        raise ParallelismError(
            f"workload.parallelism.zero3_impl: {p.zero3_impl!r}; allowed: deepspeed, fsdp")
    if job.precision not in PRECISIONS:
        raise ParallelismError(
            f"workload.precision: {job.precision!r} is not one of {', '.join(PRECISIONS)}"
        )
    if n_gpus is not None and p.world != n_gpus:
        raise ParallelismError(
            f"workload.parallelism: tp x pp x dp x cp = {p.tp}x{p.pp}x{p.dp}x{p.cp} = {p.world} "
            f"but the cluster has {n_gpus} GPUs"
        )
    if m.heads % p.tp:
        raise ParallelismError(
            f"workload.parallelism.tp: heads={m.heads} is not divisible by tp={p.tp}"
        )
    if m.kv_heads % p.tp and p.tp % m.kv_heads:
        raise ParallelismError(
            f"workload.parallelism.tp: kv_heads={m.kv_heads} and tp={p.tp} do not divide"
        )
    if m.ffn_hidden % p.tp:
        raise ParallelismError(
            f"workload.parallelism.tp: ffn_hidden={m.ffn_hidden} is not divisible by tp={p.tp}"
        )
    if m.layers < p.pp * p.vp or (m.layers % (p.pp * p.vp) and not p.uneven_stages):
        raise ParallelismError(
            f"workload.parallelism.pp: layers={m.layers} is not divisible by pp x vp = "
            f"{p.pp * p.vp} (set uneven_stages: true to take the shortfall off the first and "
            "last stages, as Llama 3 405B did)"
        )
    if p.vp > 1 and p.pp == 1:
        raise ParallelismError("workload.parallelism.vp: interleaving (vp > 1) needs pp > 1")
    if p.vp > 1 and job.micro_batches % p.pp:
        raise ParallelismError(
            f"workload.parallelism.vp: the interleaved schedule needs micro-batches "
            f"({job.micro_batches}) divisible by pp={p.pp}"
        )
    if p.cp > 1 and job.seq_len % (2 * p.cp):
        raise ParallelismError(
            f"workload.parallelism.cp: seq_len={job.seq_len} is not divisible by 2 x cp = {2 * p.cp}"
        )
    if p.ep > 1:
        if not m.is_moe:
            raise ParallelismError("workload.parallelism.ep: expert parallelism needs a MoE model "
                                   "(workload.model.experts > 1)")
        if p.dp % p.ep:
            raise ParallelismError(
                f"workload.parallelism.ep: ep={p.ep} must divide dp={p.dp} (experts are sharded "
                "over data-parallel replicas)"
            )
    if m.is_moe and m.experts % p.ep:
        raise ParallelismError(
            f"workload.parallelism.ep: experts={m.experts} is not divisible by ep={p.ep}"
        )
    if job.micro_batch < 1 or job.global_batch < 1:
        raise ParallelismError("workload.batch: global and micro must be >= 1")
    if job.global_batch % (job.micro_batch * p.dp):
        raise ParallelismError(
            f"workload.batch.global: {job.global_batch} is not divisible by micro x dp = "
            f"{job.micro_batch}x{p.dp}"
        )
    if job.seq_len < 1:
        raise ParallelismError("workload.seq_len: must be >= 1")
