"""EleutherAI/cookbook sizing sweeps (Anthony et al. 2024): A100 torch.mm / bmm / linear times.

Formats and method: ../shared/data/kernels/eleutherai-cookbook/PROVENANCE.md. What each line
means, from benchmarks/sizing/utils.py (EleutherAI/cookbook, 14836f42): `benchmark_mm(m, n, k)`
times torch.mm(A[m, n], B[n, k]); `benchmark_mm_b(m, n, k, label, b)` times
torch.nn.functional.linear(A[b, m, n], B[k, n]), one GEMM of b m rows; `benchmark_bmm(b, m, n,
k)` times torch.bmm(A[b, m, n], B[b, n, k]). In each the inner dimension is n; in this
project's convention (C[m, n] = A[m, k] B[k, n]) the sample is (m, n=k_theirs, k=n_theirs).
The printed time is the MAXIMUM of 200 timed calls (np.amax), so rates are slightly
pessimistic; we take the time from the printed throughput (more digits than the time).
"""

from __future__ import annotations

import re
from pathlib import Path

from calibrate.published.common import PublishedImportError, gemm_sample
from dcsim.profile import KernelSample, PublishedSource

REPOSITORY = "github.com/EleutherAI/cookbook"
COMMIT = "fb3e361dfa2f8f0c34285eb167c380bba2166ca1"

# "Throughput (in TFLOP/s) for 32x4096x32: 0.213" (mm), "...for 1x32x4096x32: 0.284" (bmm)
_PLAIN = re.compile(r"^Throughput \(in TFLOP/s\) for (\d+(?:x\d+)+)(?:, b=(\d+))?: ([0-9.]+)\s*$")
# "Throughput (in TFLOP/s) for mlp_h_to_4h (4x2304x9216, b=2048): 219.556" (linear) or
# "... for attention_key_query_prob (512x2048x18x2048): 10.940" (bmm)
_LABELLED = re.compile(r"^Throughput \(in TFLOP/s\) for (\w+) \((\d+(?:x\d+)+)(?:, b=(\d+))?\): ([0-9.]+)\s*$")

FILES = ("gemm_data/mm/m_sweep/a100.out", "gemm_data/mm/ksweep_low/a100.out",
         "gemm_data/mm/ksweep_high/a100.out", "gemm_data/bmm/msweep/a100.out",
         "gemm_data/bmm/bsweep/a100.out", "transformer_data/h_sweep.out",
         "transformer_data/vocab_h_sweep.out", "transformer_data/vocab_v_sweep.out")


def _sample(key: str, dims: list[int], b: int | None, tflops: float) -> KernelSample | None:
    """One GEMM from its printed dims: 3 dims = mm or linear (with b rows of m), 4 = bmm."""
    if tflops <= 0:
        return None
    if len(dims) == 3:
        m, inner, out = dims
        rows = m * (b or 1)
        flops = 2.0 * rows * inner * out
        return gemm_sample(key, "mm", 1, rows, out, inner, flops / (tflops * 1e12))
    if len(dims) == 4:
        batch, m, inner, out = dims
        flops = 2.0 * batch * m * inner * out
        return gemm_sample(key, "bmm", batch, m, out, inner, flops / (tflops * 1e12))
    return None


def parse(text: str, where: str) -> list[KernelSample]:
    """The GEMM samples of one sweep output."""
    out: list[KernelSample] = []
    for i, line in enumerate(text.splitlines()):
        got = _LABELLED.match(line)
        if got:
            label, dims, b, v = got.group(1), got.group(2), got.group(3), got.group(4)
        else:
            got = _PLAIN.match(line)
            if not got:
                continue
            label, dims, b, v = "mm", got.group(1), got.group(2), got.group(3)
        s = _sample(f"published/eleutherai/{where}:{i + 1}/{label}", [int(x) for x in dims.split("x")],
                    int(b) if b else None, float(v))
        if s is not None:
            out.append(s)
    return out


def samples(root: Path) -> tuple[list[KernelSample], list[str]]:
    """Every GEMM of the A100 sweeps; also the files read."""
    out: list[KernelSample] = []
    read: list[str] = []
    for rel in FILES:
        path = root / rel
        if path.exists():
            out.extend(parse(path.read_text(errors="replace"), rel))
            read.append(rel)
    if not out:
        raise PublishedImportError(f"PATH: no EleutherAI sweep output under {root} (expected the "
                                   "eleutherai-cookbook folder of ../shared/data/kernels)")
    return out, read


def source(files: list[str], samples: int) -> PublishedSource:
    """The provenance record of what was read."""
    return PublishedSource(
        dataset="eleutherai-cookbook", repository=REPOSITORY, commit=COMMIT, paths=files,
        gpu="A100 (40 or 80 GB not stated; GEMMs are compute-bound and both run 312 TFLOP/s fp16)",
        licence="Apache-2.0", licence_file="licences/eleutherai-cookbook-LICENSE",
        citation="Anthony et al., The Case for Co-Designing Model Architectures with Hardware, "
                 "ICPP 2024 (arXiv 2401.14489)",
        timing="maximum of 200 calls after 50 warm-up calls, torch.cuda.synchronize after each "
               "(benchmarks/sizing/utils.py np.amax), fp16, torch 1.13.1; time = FLOPs / printed rate",
        samples=samples)
