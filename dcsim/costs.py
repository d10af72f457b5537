"""CostModel: how long a kernel takes on a device, and where that number came from.

Two implementations share one protocol: `SpecRoofline` (datasheet peaks, a smooth size-
dependent efficiency) and, from a calibration profile, a measured/fitted model
(`dcsim.calibrated`). The engine asks only `kernel_time` and `collective_time`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dcsim import vocabulary
from dcsim.hardware import GPUSpec
from dcsim.program import Kernel

PROVENANCES = vocabulary.PROVENANCES


@dataclass(frozen=True, slots=True)
class Cost:
    """A priced op: seconds, where the number came from, whether it extrapolated."""

    time_s: float
    provenance: str
    extrapolated: bool = False


class CostModel(Protocol):
    """Prices kernels (and optionally collectives) on a device."""

    @property
    def name(self) -> str:
        """Which model: 'spec' or the profile's name (read-only: frozen models satisfy it)."""
        ...

    def kernel_time(self, kernel: Kernel, gpu: GPUSpec) -> Cost:
        """Time of one kernel execution on `gpu`."""
        ...

    def collective_time(self, op: str, world_size: int, size_bytes: float,
                        gpu: GPUSpec) -> Cost | None:
        """A measured collective time on `gpu`'s machines, or None to let the network model
        price it (always None for a device the model did not measure)."""
        ...


# --- Spec roofline constants -------------------------------------------------------------
# Large-GEMM plateau of cuBLAS on tensor cores: about 80% of the dense datasheet peak on
# A100/H100 for large, well-shaped bf16/fp16 GEMMs (NVIDIA Deep Learning Performance Guide,
# "Matrix Multiplication Background", large-GEMM throughput plateau).
GEMM_EFFICIENCY_MAX = 0.80
# Attention kernels (fused / flash) reach a lower plateau than plain GEMMs: FlashAttention-2
# reports 50-73% of peak on A100 forward+backward (Dao 2023, Fig. 4-5); we take the low-middle.
ATTENTION_EFFICIENCY_MAX = 0.60
# Achievable HBM bandwidth for streaming kernels: about 85-90% of the datasheet number
# (STREAM/BabelStream-style copy kernels on A100/H100; e.g. nvbandwidth device-local copy).
HBM_EFFICIENCY_MAX = 0.85
# Fixed cost per kernel: launch plus ramp/tail of a grid, a few microseconds on CUDA
# (CUDA C Best Practices Guide: kernel launch overhead on the order of microseconds).
# It makes efficiency a smooth, saturating function of size: eff(F) = e_max * F/(F + F_half)
# with F_half = t0 * peak * e_max, i.e. time = t0 + F / (peak * e_max). No step functions.
KERNEL_FIXED_S = 4e-6

_COMPUTE_BOUND = {"gemm": GEMM_EFFICIENCY_MAX, "attention": ATTENTION_EFFICIENCY_MAX}


@dataclass(frozen=True)
class SpecRoofline:
    """max(FLOPs / (peak x eff), bytes / (HBM x eff)) plus a fixed per-kernel cost."""

    name: str = "spec"
    kernel_fixed_s: float = KERNEL_FIXED_S

    def kernel_time(self, kernel: Kernel, gpu: GPUSpec) -> Cost:
        t_flop, t_mem = self.parts(kernel, gpu)
        return Cost(self.kernel_fixed_s + max(t_flop, t_mem), "spec")

    def parts(self, kernel: Kernel, gpu: GPUSpec) -> tuple[float, float]:
        """(arithmetic seconds, memory seconds) of a kernel at the spec efficiencies, before the
        fixed cost: a calibrated model scales each by a measured efficiency."""
        peak = gpu.peak(_tensor_precision(kernel, gpu))
        e_flop = _COMPUTE_BOUND.get(kernel.op_class, GEMM_EFFICIENCY_MAX)
        t_flop = kernel.flops / (peak * e_flop) if kernel.flops else 0.0
        t_mem = kernel.bytes_moved / (gpu.hbm_bw_bytes_per_s * HBM_EFFICIENCY_MAX)
        return t_flop, t_mem

    def collective_time(self, op: str, world_size: int, size_bytes: float,
                        gpu: GPUSpec) -> Cost | None:
        return None


def _tensor_precision(kernel: Kernel, gpu: GPUSpec) -> str:
    """The precision whose peak applies; non-tensor-core math (optimizer) runs in fp32."""
    if kernel.op_class == "optimizer":
        return "fp32" if "fp32" in gpu.peak_flops else kernel.precision
    return kernel.precision
