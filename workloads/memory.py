"""Memory footprint per GPU: weights, gradients, optimizer states, activations.

Model states follow the ZeRO paper (Rajbhandari et al. 2020, section 3.1): mixed-precision
Adam keeps 2 bytes of fp16/bf16 weights, 2 of gradients and 12 of optimizer state (fp32
master weights, momentum, variance) per parameter; ZeRO-1 shards the 12 over data parallel.
Activations follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
Transformer Models"), section 4, generalised to GQA and gated MLPs term by term.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from workloads.parallelism import TrainingJob

WEIGHT_BYTES = 2
GRAD_BYTES = 2
OPTIMIZER_BYTES = 12
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


def activation_bytes_per_layer(job: TrainingJob) -> float:
    """Activation bytes one layer keeps for one micro-batch on one TP rank.

    Korthikanti et al. eq. (1)-(2): s b h (34 + 5 a s / h) without parallelism, where the
    terms are: attention 11 sbh + 5 a s^2 b, MLP 19 sbh, norms 4 sbh (fp16, dropout masks 1 B).
    With TP, 24 sbh of it (the parts inside the TP region) divide by t; with sequence
    parallelism the remaining 10 sbh divide by t too. Selective recompute drops 5 a s^2 b;
    full recompute keeps only each layer's input, 2 sbh.
    """
    m, p = job.model, job.par
    s, b, h, t = job.seq_len, job.micro_batch, m.hidden, p.tp
    e = job.act_bytes
    mask = MASK_BYTES if m.dropout else 0
    if p.recompute == "full":
        return e * s * b * h / (t if p.sequence_parallel else 1)
    # Outside the TP region (replicated unless sequence parallel): the two norm inputs, the
    # QKV and MLP-up inputs (e bytes per element each) and the two dropout masks: 10 sbh.
    outside = s * b * h * (4 * e + 2 * mask)
    # Inside the TP region (divided by t): Q, K, V, the attention-output input, the MLP
    # activation input and output.
    inside = s * b * e * (h + 2 * m.kv_dim)                 # Q, K, V kept for backward
    inside += s * b * h * e                                  # input of the output projection
    inside += s * b * m.mlp_up_width * e                     # activation input (gate+up)
    inside += s * b * m.ffn_hidden * e                       # MLP-down input
    # s^2 terms: softmax output (e), dropout mask (1), dropout output (e) per head.
    attn_sq = m.heads * s * s * b * (e + (mask + e if m.dropout else 0))
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


def memory_footprint(job: TrainingJob, capacity_bytes: float) -> MemoryFootprint:
    """The peak per-GPU footprint over pipeline stages under the 1F1B schedule."""
    m, p = job.model, job.par
    worst: MemoryFootprint | None = None
    layers = job.layers_per_stage()
    act_layer = activation_bytes_per_layer(job)
    for stage in range(p.pp):
        params = layers * m.layer_params() + stage_embedding_params(job, stage)
        params_rank = params / p.tp
        weights = WEIGHT_BYTES * params_rank
        grads = GRAD_BYTES * params_rank
        opt = OPTIMIZER_BYTES * params_rank / (p.dp if p.zero >= 1 else 1)
        in_flight = min(p.pp - stage, job.micro_batches)  # 1F1B: stage i holds pp - i
        acts = act_layer * layers * in_flight
        if stage == p.pp - 1:
            # fp32 logits for the vocab-parallel cross-entropy (Korthikanti et al. sec. 4.3)
            acts += 4.0 * job.seq_len * job.micro_batch * m.vocab / p.tp
        total = weights + grads + opt + acts
        fp = MemoryFootprint(weights, grads, opt, acts, total, capacity_bytes, stage)
        if worst is None or fp.total_bytes > worst.total_bytes:
            worst = fp
    assert worst is not None
    return worst
