"""microsoft/vidur profiling data: forward kernel times (compute/) and NCCL curves (network/).

Layout and column meanings: ../shared/data/kernels/vidur/PROVENANCE.md. How Vidur ran each op
(vidur/profiling/mlp/mlp_impl.py at e26eb8f7): ColumnParallelLinear / RowParallelLinear GEMMs
(no bias for these models), sarathi's fused RMSNorm (torch LayerNorm for phi-2), SiluAndMul
(torch GELU for phi-2), the residual add `residual + hidden_states` of models with a
post-attention norm (phi-2's three-way add is not imported: it is a different kernel),
VocabParallelEmbedding; fp16, inference mode, 20 timed calls after 2 warm-up calls
(mlp_wrapper.py ACTIVE_STEPS, WARMUP_STEPS), back to back (warm caches).
"""

from __future__ import annotations

import csv
from pathlib import Path

from calibrate.published.common import PublishedImportError, gemm_sample, sig
from dcsim.profile import (
    ELEMENT_BYTES,
    STREAMING_COUNTS,
    CollectiveSample,
    KernelSample,
    PublishedSource,
)

REPOSITORY = "github.com/microsoft/vidur"
COMMIT = "7d47513363ec447a741ac5e47241580b47724fbf"
TIMED_CALLS = 20  # vidur/profiling/mlp/mlp_wrapper.py ACTIVE_STEPS
_MS = 1e-3
_PREC = "fp16"


def keep_tokens(tokens: int, every: int) -> bool:
    """Rows kept: every token count when `every` is 1, else powers of two and multiples of
    `every` (the profile stays a few MB; the dropped rows lie between kept ones)."""
    return every <= 1 or tokens % every == 0 or tokens & (tokens - 1) == 0


def _ms(row: dict[str, str], op: str) -> tuple[float, float, float] | None:
    """(median, min, max) seconds of one op in a row, None when the row has no time for it."""
    try:
        med, lo, hi = (float(row[f"time_stats.{op}.{s}"]) for s in ("median", "min", "max"))
    except (KeyError, ValueError):
        return None
    return (sig(med * _MS), sig(lo * _MS), sig(hi * _MS)) if med > 0 else None


def _streaming(key: str, op_class: str, variant: str, elements: int,
               t: tuple[float, float, float]) -> KernelSample:
    """A forward row-wise/element-wise sample counted by dcsim.profile.STREAMING_COUNTS."""
    e = ELEMENT_BYTES[_PREC]
    if op_class == "embedding":  # read the rows, write the activation (OP_CONVENTIONS)
        flops, nbytes = 0.0, 2.0 * elements * e
    else:
        f, b = STREAMING_COUNTS[(variant, "fwd")]
        flops, nbytes = float(f * elements), float(b * elements * e)
    return KernelSample(key=key, op_class=op_class, direction="fwd", precision=_PREC,  # type: ignore[arg-type]
                        variant=variant, shape={"elements": elements}, flops=flops,
                        bytes_moved=nbytes, median_s=t[0], p10_s=t[1], p90_s=t[2],
                        repeats=TIMED_CALLS, cache="warm")


def row_samples(row: dict[str, str], where: str) -> list[KernelSample]:
    """The kernel samples of one mlp.csv row (one token count and TP degree of one model)."""
    tok, tp = int(row["num_tokens"]), int(row["num_tensor_parallel_workers"])
    h, f = int(row["n_embd"]), int(row["n_expanded_embd"])
    heads, kv = int(row["n_head"]), int(row["n_kv_head"])
    gated = row["use_gated_mlp"].strip().lower() == "true"
    hd = h // heads
    gemms = {
        "attn_pre_proj": (tok, (heads + 2 * kv) * hd // tp, h),
        "attn_post_proj": (tok, h, heads * hd // tp),
        "mlp_up_proj": (tok, (2 if gated else 1) * f // tp, h),
        "mlp_down_proj": (tok, h, f // tp),
    }
    out: list[KernelSample] = []
    tag = f"published/vidur/{where}/tp{tp}/t{tok}"
    for op, (m, n, k) in gemms.items():
        t = _ms(row, op)
        if t is not None:
            s = gemm_sample(f"{tag}/{op}", "mm", 1, m, n, k, t[0], _PREC)
            out.append(s.model_copy(update={"p10_s": t[1], "p90_s": t[2], "repeats": TIMED_CALLS}))
    norm = "rms_norm" if gated else "layer_norm"
    streams = [("input_layernorm", "norm", norm, tok * h), ("emb", "embedding", "embedding", tok * h),
               ("mlp_act", "elementwise", "swiglu" if gated else "gelu", tok * f // tp)]
    if gated:  # a post-attention norm and a two-operand residual add
        streams += [("post_attention_layernorm", "norm", norm, tok * h), ("add", "elementwise", "add", tok * h)]
    for op, oc, variant, n_el in streams:
        t = _ms(row, op)
        if t is not None:
            out.append(_streaming(f"{tag}/{op}", oc, variant, n_el, t))
    return out


def compute_samples(root: Path, device: str, every: int) -> tuple[list[KernelSample], list[str]]:
    """Every kept row of compute/<device>/*/*/mlp.csv; also the files read."""
    files = sorted((root / "compute" / device).glob("*/*/mlp.csv"))
    if not files:
        raise PublishedImportError(f"PATH: no compute/{device}/*/*/mlp.csv under {root} "
                                   "(expected the vidur folder of ../shared/data/kernels)")
    out: list[KernelSample] = []
    for path in files:
        where = "/".join(path.parts[-3:-1])
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("num_tokens") and keep_tokens(int(row["num_tokens"]), every):
                    out.extend(row_samples(row, where))
    return out, [str(p.relative_to(root)) for p in files]


def collective_samples(root: Path, device: str) -> tuple[list[CollectiveSample], list[str]]:
    """NCCL all-reduce and send/recv inside one node (devices_per_node = num_workers): groups
    spread over nodes are not imported, since a sample does not say where its ranks sit."""
    out: list[CollectiveSample] = []
    read: list[str] = []
    for name in ("all_reduce", "send_recv"):
        path = root / "network" / f"{device}_dgx" / f"{name}.csv"
        if not path.exists():
            continue
        read.append(str(path.relative_to(root)))
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                n, per_node = int(row["num_workers"]), int(row["devices_per_node"])
                if n != per_node:
                    continue
                t = _ms(row, name)
                if t is None:
                    continue
                size = 2.0 * int(row["size"])  # fp16 elements (collectives_impl.py)
                out.append(CollectiveSample(
                    key=f"published/vidur/{device}_dgx/{name}/n{n}/{int(size)}", op=name,  # type: ignore[arg-type]
                    world_size=n, size_bytes=size, backend="nccl", median_s=t[0], p10_s=t[1],
                    p90_s=t[2], repeats=1))
    return out, read


def source(root: Path, device: str, files: list[str], samples: int) -> PublishedSource:
    """The provenance record of what was read."""
    gpu = {"a100": "A100 80GB DGX (A100-SXM4-80GB)", "h100": "H100 DGX (H100-SXM5-80GB)"}[device]
    return PublishedSource(
        dataset="vidur", repository=REPOSITORY, commit=COMMIT, paths=files, gpu=gpu,
        licence="MIT", licence_file="licences/vidur-LICENSE",
        citation="Agrawal et al., Vidur: A Large-Scale Simulation Framework for LLM Inference, MLSys 2024",
        timing="median of 20 back-to-back calls after 2 warm-up calls (CUDA timer), fp16, inference "
               "mode; p10_s/p90_s hold the min and max (the data has no percentiles)",
        samples=samples)
