"""Which layers each pipeline stage (and virtual chunk) holds, and their parameters per rank.

Layers are split over pp x vp chunks in order; chunk c of stage i holds model chunk
c * pp + i (Megatron's interleaved assignment). When the layers do not divide, every chunk
gets ceil(layers / chunks) and the shortfall comes off the model's first and last chunks
alternately, as Llama 3 405B did (126 layers on 16 stages: "one layer fewer on the first and
the last stage", Llama 3 Herd of Models sec. 3.3.2). A MoE model's first `dense_layers` layers are
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
    sizes = chunk_sizes(m.layers, p.pp * p.vp)
    index = chunk * p.pp + stage
    first, per = sum(sizes[:index]), sizes[index]
    n_dense_model = m.dense_layers if m.is_moe else m.layers
    dense = max(0, min(first + per, n_dense_model) - first)
    return ChunkLayers(dense=dense, moe=per - dense)


def chunk_sizes(layers: int, chunks: int) -> list[int]:
    """Layers of each model chunk, in model order (see the module docstring)."""
    base = -(-layers // chunks)
    sizes = [base] * chunks
    short = base * chunks - layers
    order = [i for pair in zip(range(chunks), range(chunks - 1, -1, -1), strict=False) for i in pair]
    for i in order[:short]:
        sizes[i] -= 1
    return sizes


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
