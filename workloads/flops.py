"""FLOPs per iteration: model FLOPs (what the model needs) and hardware FLOPs (what ran).

Counted from the same kernels the simulator executes (GEMMs and attention matmuls), so MFU
and the simulated time can never disagree about the work. For GPT-style models this equals
Narayanan et al. SC'21 eq. (3): 72 B s l h^2 (1 + s/(6h) + V/(12 l h)) without recompute and
96 B s l h^2 (1 + s/(6h) + V/(16 l h)) with full recompute (tests hold it to that).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dcsim.program import Kernel
from workloads.kernels import edge_kernels, layer_kernels
from workloads.parallelism import TrainingJob

MATMUL_CLASSES = ("gemm", "attention")


def _matmul_flops(kernels: tuple[Kernel, ...]) -> float:
    return sum(k.flops for k in kernels if k.op_class in MATMUL_CLASSES)


@dataclass(frozen=True)
class IterationFlops:
    model: float
    hardware: float


def iteration_flops(job: TrainingJob) -> IterationFlops:
    """Model and hardware FLOPs of one iteration over the whole job (all GPUs).

    Per-rank kernel FLOPs times the ranks that share a micro-batch (tp x cp) times the
    micro-batches of all replicas. MoE routing imbalance moves work between ranks but does not
    add any, so both counts use balanced routing.
    """
    job = replace(job, moe_imbalance=1.0)
    m = job.model
    ek = edge_kernels(job)
    kinds = [(layer_kernels(job), m.layers - m.moe_layers())]
    if m.is_moe:
        kinds.append((layer_kernels(job, moe=True), m.moe_layers()))
    model = hardware = 0.0
    for lk, n in kinds:
        per_layer = _matmul_flops(lk.forward) + _matmul_flops(lk.backward)
        model += n * per_layer
        hardware += n * (per_layer + _matmul_flops(lk.recompute))
    head = _matmul_flops(ek.head_fwd) + _matmul_flops(ek.head_bwd)
    ranks_per_micro_batch = job.par.tp * job.par.cp
    samples = job.global_batch // job.micro_batch  # micro-batches over all replicas
    scale = samples * ranks_per_micro_batch
    return IterationFlops(model=scale * (model + head), hardware=scale * (hardware + head))


def narayanan_flops(batch: int, seq: int, layers: int, hidden: int, vocab: int,
                    full_recompute: bool) -> float:
    """Narayanan et al. SC'21 eq. (3) (and its no-recompute form), GPT-style ffn = 4h."""
    b, s, l, h, v = batch, seq, layers, hidden, vocab
    if full_recompute:
        return 96.0 * b * s * l * h * h * (1 + s / (6 * h) + v / (16 * l * h))
    return 72.0 * b * s * l * h * h * (1 + s / (6 * h) + v / (12 * l * h))
