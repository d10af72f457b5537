"""Which layers each pipeline stage (and virtual chunk) holds, and their parameters per rank.

Layers are split evenly over pp x vp chunks in order; chunk c of stage i holds model chunk
c * pp + i (Megatron's interleaved assignment). A MoE model's first `dense_layers` layers are
dense. Parameters per rank: attention, norms and dense MLPs divide by TP; routed experts
divide by TP x EP.
"""

from __future__ import annotations

from dataclasses import dataclass

from workloads.parallelism import TrainingJob


@dataclass(frozen=True)
class ChunkLayers:
    dense: int
    moe: int

    @property
    def total(self) -> int:
        return self.dense + self.moe


def chunk_layers(job: TrainingJob, stage: int, chunk: int) -> ChunkLayers:
    """Dense and MoE layer counts of one (stage, virtual chunk)."""
    m, p = job.model, job.par
    per = m.layers // (p.pp * p.vp)
    first = (chunk * p.pp + stage) * per
    n_dense_model = m.dense_layers if m.is_moe else m.layers
    dense = max(0, min(first + per, n_dense_model) - first)
    return ChunkLayers(dense=dense, moe=per - dense)


def stage_layers(job: TrainingJob, stage: int) -> ChunkLayers:
    chunks = [chunk_layers(job, stage, c) for c in range(job.par.vp)]
    return ChunkLayers(sum(c.dense for c in chunks), sum(c.moe for c in chunks))


def dense_params_per_rank(job: TrainingJob, layers: ChunkLayers) -> float:
    """Parameters replicated across data parallelism (and sharded by TP) of these layers."""
    m = job.model
    dense = layers.dense * (m.attention_params() + m.dense_mlp_params())
    if m.is_moe:
        dense += layers.moe * (m.attention_params() + m.shared_experts * m.expert_params()
                               + m.hidden * m.experts)
    return dense / job.par.tp


def expert_params_per_rank(job: TrainingJob, layers: ChunkLayers) -> float:
    """Routed-expert parameters these layers place on one rank (sharded by TP x EP)."""
    m = job.model
    if not m.is_moe:
        return 0.0
    return layers.moe * m.experts * m.expert_params() / (job.par.tp * job.par.ep)
