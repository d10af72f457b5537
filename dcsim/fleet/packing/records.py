"""Records of GPU-sharing placement: nodes, pods (tasks), placements and the policy names.

Units follow the Alibaba GPU trace (Weng et al., ATC'23) at the edge and SI inside: CPU in
milli-cores, memory in bytes, GPU in milli-GPU (1000 = one whole GPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

#: One whole GPU in milli-GPU, the trace's unit of GPU sharing (openb `gpu_milli` column).
GPU_MILLI = 1000


class PolicyName(str, Enum):
    """The placement policies compared in the ATC'23 paper (section 6.1) plus FGD itself."""

    RANDOM = "random"
    DOT_PRODUCT = "dot-product"
    GPU_CLUSTERING = "gpu-clustering"
    GPU_PACKING = "gpu-packing"
    BEST_FIT = "best-fit"
    FGD = "fgd"


@dataclass(frozen=True)
class NodeSpec:
    """One GPU node: its CPU, memory, number and model of GPUs."""

    name: str
    cpu_milli: int
    memory_bytes: int
    gpu_count: int
    gpu_model: str


@dataclass(frozen=True)
class PodRequest:
    """One task (a pod in the trace): CPU, memory, and `num_gpu` GPUs of `gpu_milli` each.

    A task asking for part of a GPU has num_gpu = 1 and gpu_milli < 1000 (it shares a GPU); a
    task asking for several GPUs asks for whole ones. `gpu_models` empty means any GPU model.
    """

    name: str
    cpu_milli: int
    memory_bytes: int
    num_gpu: int
    gpu_milli: int
    gpu_models: frozenset[str] = frozenset()
    submit_s: float = 0.0

    @property
    def gpu_request_milli(self) -> int:
        """Total GPU asked for, in milli-GPU."""
        return self.num_gpu * self.gpu_milli

    @property
    def type_key(self) -> tuple[int, int, int, int, frozenset[str]]:
        """What makes two tasks interchangeable for fragmentation: their demands and constraint."""
        return (self.cpu_milli, self.memory_bytes, self.num_gpu, self.gpu_milli, self.gpu_models)


@dataclass(frozen=True)
class Placement:
    """Where a pod went: a node index and the GPU indices (on that node) it holds."""

    node_index: int
    gpu_indices: tuple[int, ...]
    pod: PodRequest
