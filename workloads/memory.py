"""Memory footprint per GPU: weights, gradients, optimizer states, activations.

Model states follow the ZeRO paper (Rajbhandari et al. 2020, section 3.1): mixed-precision
Adam keeps 2 bytes of fp16/bf16 weights, 2 of gradients and 12 of optimizer state (fp32
master weights, momentum, variance) per parameter; ZeRO-1 shards the 12 over data parallel,
ZeRO-2 also the gradients, ZeRO-3 (FSDP) also the weights. The activations held at the peak
come from the schedule itself: the most micro-batch chunks a rank has run forward but not yet
backward (p - i for 1F1B stage i; more with interleaving).
Activations follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
Transformer Models"), section 4, generalised to GQA and gated MLPs term by term.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from dcsim import vocabulary
from workloads.layout import (chunk_layers, dense_params_per_rank, expert_params_per_rank,
                              stage_layers)
from workloads.parallelism import TrainingJob

WEIGHT_BYTES = vocabulary.WEIGHT_BYTES_PER_PARAM
GRAD_BYTES = vocabulary.GRAD_BYTES_PER_PARAM
OPTIMIZER_BYTES = vocabulary.OPTIMIZER_STATE_BYTES_PER_PARAM
MASK_BYTES = 1


@dataclass(frozen=True)
class MemoryFootprint:
    """Bytes per GPU on the most loaded pipeline stage."""

    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    total_bytes: float
    capacity_bytes: float
    stage: int

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    def to_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "fits": self.fits}


def activation_bytes_per_layer(job: TrainingJob, moe: bool = False) -> float:
    """Activation bytes one layer keeps for one micro-batch on one TP rank.

    Korthikanti et al. eq. (1)-(2): s b h (34 + 5 a s / h) without parallelism, where the
    terms are: attention 11 sbh + 5 a s^2 b, MLP 19 sbh, norms 4 sbh (fp16, dropout masks 1 B).
    With TP, 24 sbh of it (the parts inside the TP region) divide by t; with sequence
    parallelism the remaining 10 sbh divide by t too. Selective recompute drops 5 a s^2 b;
    full recompute keeps only each layer's input, 2 sbh.
    """
    m, p = job.model, job.par
    s, b, h, t = job.seq_len // p.cp, job.micro_batch, m.hidden, p.tp
    e = job.act_bytes
    mask = MASK_BYTES if m.dropout else 0
    if p.recompute == "full":
        return e * s * b * h / (t if p.sequence_parallel else 1)
    # Outside the TP region (replicated unless sequence parallel): the two norm inputs, the
    # QKV and MLP-up inputs (e bytes per element each) and the two dropout masks: 10 sbh.
    outside = s * b * h * (4 * e + 2 * mask)
    # Inside the TP region (divided by t): Q, K, V, the attention-output input, the MLP
    # activation input and output.
    inside: float = s * b * e * (h + 2 * m.kv_dim)          # Q, K, V kept for backward
    inside += s * b * h * e                                  # input of the output projection
    if moe:  # routed token copies through the experts (top_k each, busiest rank)
        width = m.moe_ffn_hidden * (m.top_k * job.moe_imbalance + m.shared_experts)
        inside += s * b * width * (m.gated + 1) * e
    else:
        inside += s * b * m.mlp_up_width * e                 # activation input (gate+up)
        inside += s * b * m.ffn_hidden * e                   # MLP-down input
    # s^2 terms: softmax output (e), dropout mask (1), dropout output (e) per head.
    attn_sq: float = m.heads * s * (s * p.cp) * b * (e + (mask + e if m.dropout else 0))
    if p.recompute == "selective" or job.flash_attention:
        attn_sq = 0.0  # recomputed (selective) or never stored (flash attention)
    outside_div = t if p.sequence_parallel else 1
    return outside / outside_div + (inside + attn_sq) / t


def stage_embedding_params(job: TrainingJob, stage: int) -> int:
    """Embedding weights a stage holds: the input table on the first stage, the output head
    on the last (its own if untied; a tied copy when the two ends are different stages)."""
    m, last = job.model, job.par.pp - 1
    n = m.embedding_params() if stage == 0 else 0
    if stage == last and (not m.tied_embeddings or last > 0):
        n += m.embedding_params()
    return n


def max_in_flight(job: TrainingJob, stage: int) -> int:
    """Most micro-batch chunks a stage holds activations for, read off its schedule."""
    from workloads.schedule import pipeline_order  # the schedule the engine runs

    held = peak = 0
    for phase, _chunk, _j in pipeline_order(stage, job.par.pp, job.par.vp, job.micro_batches):
        held += 1 if phase == "F" else -1
        peak = max(peak, held)
    return peak


def memory_footprint(job: TrainingJob, capacity_bytes: float) -> MemoryFootprint:
    """The peak per-GPU footprint over pipeline stages under the chosen schedule."""
    m, p = job.model, job.par
    worst: MemoryFootprint | None = None
    dense_act = activation_bytes_per_layer(job)
    moe_act = activation_bytes_per_layer(job, moe=True) if m.is_moe else 0.0
    for stage in range(p.pp):
        layers = stage_layers(job, stage)
        replicated = dense_params_per_rank(job, layers) + stage_embedding_params(job, stage) / p.tp
        params = replicated + expert_params_per_rank(job, layers)
        # Experts are replicated over dp/ep ranks, everything else over dp x cp.
        shard = p.dp * p.cp
        expert_shard = max(1, p.dp // p.ep)
        sharded = replicated / shard + expert_params_per_rank(job, layers) / expert_shard
        weights = WEIGHT_BYTES * (sharded if p.zero >= 3 else params)
        grads = GRAD_BYTES * (sharded if p.zero >= 2 else params)
        opt = OPTIMIZER_BYTES * (sharded if p.zero >= 1 else params)
        # Per-chunk activations (a chunk holds layers / (pp x vp) layers).
        per_chunk = max(c.dense * dense_act + c.moe * moe_act
                        for c in (chunk_layers(job, stage, k) for k in range(p.vp)))
        acts = per_chunk * max_in_flight(job, stage)
        if stage == p.pp - 1:
            # fp32 logits for the vocab-parallel cross-entropy (Korthikanti et al. sec. 4.3)
            acts += 4.0 * job.seq_len // p.cp * job.micro_batch * m.vocab / p.tp
        total = weights + grads + opt + acts
        fp = MemoryFootprint(weights, grads, opt, acts, total, capacity_bytes, stage)
        if worst is None or fp.total_bytes > worst.total_bytes:
            worst = fp
    assert worst is not None
    return worst
