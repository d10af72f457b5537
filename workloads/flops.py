"""FLOPs per iteration: model FLOPs (what the model needs) and hardware FLOPs (what ran).

Counted from the same kernels the simulator executes (GEMMs and attention matmuls), so MFU
and the simulated time can never disagree about the work. For GPT-style models this equals
Narayanan et al. SC'21 eq. (3): 72 B s l h^2 (1 + s/(6h) + V/(12 l h)) without recompute and
96 B s l h^2 (1 + s/(6h) + V/(16 l h)) with full recompute (tests hold it to that).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """Model and hardware FLOPs of one iteration over the whole job (all GPUs)."""
    lk, ek = layer_kernels(job), edge_kernels(job)
    per_layer_model = _matmul_flops(lk.forward) + _matmul_flops(lk.backward)
    per_layer_hw = per_layer_model + _matmul_flops(lk.recompute)
    head = _matmul_flops(ek.head_fwd) + _matmul_flops(ek.head_bwd)
    samples = job.global_batch // job.micro_batch  # micro-batches over all replicas
    tp = job.par.tp
    layers = job.model.layers
    model = samples * tp * (layers * per_layer_model + head)
    hardware = samples * tp * (layers * per_layer_hw + head)
    return IterationFlops(model=model, hardware=hardware)


def narayanan_flops(batch: int, seq: int, layers: int, hidden: int, vocab: int,
                    full_recompute: bool) -> float:
    """Narayanan et al. SC'21 eq. (3) (and its no-recompute form), GPT-style ffn = 4h."""
    b, s, l, h, v = batch, seq, layers, hidden, vocab
    if full_recompute:
        return 96.0 * b * s * l * h * h * (1 + s / (6 * h) + v / (16 * l * h))
    return 72.0 * b * s * l * h * h * (1 + s / (6 * h) + v / (12 * l * h))
