"""Shared pieces of the published-data readers: sample construction and device names."""

from __future__ import annotations

from dcsim.profile import ELEMENT_BYTES, KernelSample
from dcsim.errors import InputError

# The catalog GPU each dataset's device folder is, and the CUDA device name its profile
# records (dcsim.calibrated.DEVICE_MARKERS maps the name back to the catalog).
DEVICES: dict[str, tuple[str, str]] = {
    "a100": ("a100-sxm-80gb", "NVIDIA A100-SXM4-80GB"),
    "h100": ("h100-sxm", "NVIDIA H100 80GB HBM3"),
}


def sig(x: float, digits: int = 5) -> float:
    """x to `digits` significant digits: the datasets print 3-5 (a profile file stays small)."""
    return float(f"{x:.{digits}g}")


class PublishedImportError(InputError):
    """The dataset folder or an option is not what the importer reads; one line says which."""


def gemm_sample(key: str, variant: str, batch: int, m: int, n: int, k: int, time_s: float,
                precision: str = "fp16", cache: str = "warm") -> KernelSample:
    """A forward GEMM sample C[m, n] = A[m, k] B[k, n] (batch of them), counted as
    dcsim.profile.OP_CONVENTIONS counts GEMMs (2mnk FLOP, (mk + kn + mn) e bytes)."""
    e = ELEMENT_BYTES[precision]
    shape = {"m": m, "n": n, "k": k}
    if batch > 1:
        shape["batch"] = batch
    return KernelSample(
        key=key, op_class="gemm", direction="fwd", precision=precision,  # type: ignore[arg-type]
        variant=variant, shape=shape, flops=2.0 * batch * m * n * k,
        bytes_moved=float(e * batch * (m * k + k * n + m * n)), median_s=sig(time_s),
        p10_s=sig(time_s), p90_s=sig(time_s), repeats=1, cache=cache)  # type: ignore[arg-type]
