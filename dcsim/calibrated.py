"""Costs from a calibration profile: measured or fitted times, with spec as the fallback.

On the device the profile measured, a kernel's time is the profile's answer (measured when the
exact op was sampled, else fitted, flagged when it extrapolates) plus the framework's per-kernel
overhead in a step (`Profile.framework`). A backward GEMM the profile did not time is priced as
the two forward GEMMs it runs (dgrad and wgrad: the transposed shapes), `fitted`. A kernel the
profile does not cover (flash attention, fp8 GEMMs, backward norms of a forward-only published
profile) gets the spec roofline with each of its two parts scaled by the profile's measured
efficiency (`MeasuredEfficiency`), flagged `spec`; so does every kernel on another device (the
nearest profiled one's efficiencies, DESIGN.md section 4). `resolve_cost_model` picks the
profile for `run.calibration: auto`.

A kernel is asked of the profile as calibrate/kernels.py measured it (`profile_query`): its
variant from its name (`layer_norm`, `rms_norm`, `gelu`, `swiglu`; residual adds and gradient
sums are the `add` variant, gradient and layout copies the `copy` variant), its FLOP and byte
counts recounted from its shape by the profile's conventions (dcsim.profile.STREAMING_COUNTS,
OPTIMIZER_BYTES_PER_PARAM), where workloads/kernels.py counts some bytes differently (e.g. three
passes over the logits for cross-entropy, 30 bytes per parameter for mixed-precision Adam), and
the flash-attention backward's FLOPs as the profile does (2x the forward's, not the
FLASH_BWD_FLOP_RATIO x of workloads/kernels.py): a profile fit of attention is a roofline in
FLOP and bytes, whose FLOP per byte says the sequence length, so both must count alike.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from dcsim.costs import GEMM_EFFICIENCY_MAX, HBM_EFFICIENCY_MAX, Cost, CostModel, SpecRoofline
from dcsim.hardware import GPUSpec, catalog
from dcsim.profile import (
    ELEMENT_BYTES,
    Metadata,
    OPTIMIZER_BYTES_PER_PARAM,
    OPTIMIZER_FLOPS_PER_PARAM,
    STREAMING_COUNTS,
    Profile,
    ProfileError,
    load_profile,
)
from dcsim.program import Kernel
from dcsim.vocabulary import FLASH_BWD_FLOP_RATIO

# The profile's attention backward does 2x its forward's FLOPs (dcsim.profile.OP_CONVENTIONS).
PROFILE_ATTENTION_BWD_FLOP_RATIO = 2.0

# The profile variant a simulator kernel runs as, by kernel name (without "_bwd"). Names not
# here are priced by their class's pooled fit with the kernel's own counts.
KERNEL_VARIANTS: dict[str, str] = {
    "layer_norm": "layer_norm",
    "rms_norm": "rms_norm",
    "gelu": "gelu",
    "swiglu": "swiglu",
    # residual adds (bias and dropout are no extra pass over memory when fused, or absent)
    "bias_dropout_add": "add",
    "residual_add": "add",
    "pos_embedding_add": "add",
    "grad_accumulate": "add",
    # copies: DDP's gradient copies into and out of its buckets, activation layout copies
    "grad_bucket_copy": "copy",
    "grad_bucket_copy_back": "copy",
    "grad_scale": "copy",
    "layout_copy": "copy",
    "cross_entropy": "cross_entropy",
}


class ProfileQuery(NamedTuple):
    """A simulator kernel as the profile measured it."""

    op_class: str
    variant: str | None
    direction: str
    precision: str
    flops: float
    bytes_moved: float
    shape: dict[str, int] | None = None  # a GEMM's m, n, k: a measured hit must match them


def profile_query(kernel: Kernel) -> ProfileQuery:
    """The profile's (class, variant, pass, precision, FLOP, bytes) for a simulator kernel."""
    direction = "bwd" if kernel.name.endswith("_bwd") else "fwd"
    base = kernel.name.removesuffix("_bwd")
    oc, prec = kernel.op_class, kernel.precision
    flops, nbytes = kernel.flops, kernel.bytes_moved
    shape = dict(kernel.shape or ())
    e = ELEMENT_BYTES.get(prec, 2)
    variant = KERNEL_VARIANTS.get(base)
    if oc == "optimizer":
        params = shape.get("params")
        if params:
            flops = float(OPTIMIZER_FLOPS_PER_PARAM * params)
            nbytes = float(OPTIMIZER_BYTES_PER_PARAM * params)
        return ProfileQuery(oc, None, "fwd", "fp32", flops, nbytes)  # fp32 master weights
    n = shape.get("elements") or shape.get("params")
    if oc in ("norm", "elementwise", "softmax", "cross_entropy") and variant is not None and n:
        counts = STREAMING_COUNTS.get((variant, direction)) or STREAMING_COUNTS.get((variant, "fwd"))
        if counts is not None:
            direction = direction if (variant, direction) in STREAMING_COUNTS else "fwd"
            flops, nbytes = float(counts[0] * n), float(counts[1] * n * e)
        if oc == "cross_entropy":
            variant = None  # one variant only: the pooled fit is its fit
        return ProfileQuery(oc, variant, direction, prec, flops, nbytes)
    if oc == "attention" and base == "flash_attn" and direction == "bwd":
        # workloads count the backward's recomputation (FLASH_BWD_FLOP_RATIO x the forward)
        flops = flops * PROFILE_ATTENTION_BWD_FLOP_RATIO / FLASH_BWD_FLOP_RATIO
    if oc == "embedding" and n:
        if direction == "fwd":
            nbytes = 2.0 * n * e  # read the rows, write the activation
        else:
            flops = float(n)  # one add per gradient element into the table's rows
            if "vocab" in shape and "hidden" in shape:
                nbytes = float(shape["vocab"] * shape["hidden"] + 2 * n) * e  # dense weight grad
    if oc == "gemm" and {"m", "n", "k"} <= shape.keys():
        dims: dict[str, int] = {d: shape[d] for d in ("batch", "m", "n", "k") if d in shape}
        if dims.get("batch", 1) == 1:
            dims.pop("batch", None)
        return ProfileQuery(oc, "bmm" if "batch" in dims else "mm", direction, prec, flops, nbytes, dims)
    return ProfileQuery(oc, None, direction, prec, flops, nbytes)

# Which catalog GPU a profile's device is: the profile's device name contains the marker.
DEVICE_MARKERS = {
    "cpu-host": ("cpu",),
    "a100-sxm-80gb": ("A100",),
    "h100-sxm": ("H100",),
    "h200-sxm": ("H200",),
    "b200": ("B200",),
    "gb200": ("GB200",),
}
# The profiled catalog GPU nearest to one nobody has profiled: the same tensor-core generation
# first (H200 is the H100's GH100 die with HBM3e, NVIDIA H200 datasheet), else the newest one
# before it (Blackwell's nearest measured kind is Hopper).
NEAREST_PROFILED: dict[str, tuple[str, ...]] = {
    "h200-sxm": ("h100-sxm", "a100-sxm-80gb"),
    "b200": ("h100-sxm", "a100-sxm-80gb"),
    "gb200": ("h100-sxm", "a100-sxm-80gb"),
    "h100-sxm": ("a100-sxm-80gb",),
    "a100-sxm-80gb": ("h100-sxm",),
}
# fp16 and bf16 tensor cores run at the same dense rate on A100, H100, H200 and B200 (their
# datasheets, dcsim/data/gpus.yaml), so a GEMM measured in one prices the other.
PRECISION_ALIASES = {"bf16": "fp16", "fp16": "bf16"}
# fp8 GEMMs on Hopper run large matmuls 1.75x faster than bf16 ones, measured by NVIDIA with
# cuBLAS 12.9 on H100 ("Boosting Matrix Multiplication Speed and Flexibility with NVIDIA cuBLAS
# 12.9", NVIDIA technical blog, 2025: "a 1.75x speedup for large matmuls and at least a 1.25x
# speedup for most other cases compared to the BF16 baseline"); training GEMMs are the large
# ones. An fp8 GEMM is priced as the profile's bf16 GEMM of its shape over this ratio (not the
# datasheet's 2x), `fitted` from the bf16 measurements.
FP8_GEMM_SPEEDUP_OVER_BF16 = 1.75
# Samples at or above this quantile of FLOPs (bytes for streaming kernels) give the measured
# plateau efficiency: the large kernels a training step runs, not the launch-bound small ones.
PLATEAU_QUANTILE = 0.75
_STREAMING = ("norm", "elementwise", "softmax", "embedding", "cross_entropy")


def profile_path(name: str, folder: Path) -> Path:
    """A profile by name (FOLDER/NAME.json, the front door passes calibrate/profiles) or by
    path; ProfileError if neither."""
    p = Path(name)
    if p.suffix == ".json" or p.exists():
        if not p.exists():
            raise ProfileError(f"run.calibration: profile file {name} not found")
        return p
    cand = folder / f"{name}.json"
    if not cand.exists():
        known = sorted(x.stem for x in folder.glob("*.json") if not x.name.endswith(".check.json"))
        raise ProfileError(f"run.calibration: unknown profile {name!r}; known: auto, spec, "
                           f"{', '.join(known)} (or a path to a .json profile)")
    return cand


def profiled_gpu(profile: Profile) -> str | None:
    """The catalog name of the device a profile measured, when we know it."""
    md = profile.metadata
    if md.device_kind == "cpu":
        return "cpu-host"
    for gpu, markers in DEVICE_MARKERS.items():
        if any(m.lower() in (md.device_name or "").lower() for m in markers) and gpu != "cpu-host":
            return gpu
    return None


@dataclass(frozen=True)
class MeasuredEfficiency:
    """What a profile measured relative to its device's datasheet, against the spec roofline's
    assumptions: `compute` = measured large-GEMM FLOP rate / (peak x GEMM_EFFICIENCY_MAX);
    `memory[c]` = measured large byte rate of op class c (and `c/variant`) / (HBM x
    HBM_EFFICIENCY_MAX) for each streaming class the profile holds; `streaming` is the
    element-wise class's, which a class the profile did not measure gets (softmax, dropout and
    cross-entropy kernels stream like element-wise ones). 1.0 where there are no samples."""

    compute: float = 1.0
    memory: Mapping[str, float] = field(default_factory=dict)
    streaming: float = 1.0

    def memory_for(self, op_class: str, variant: str | None = None) -> float:
        """The memory-efficiency scale for a kernel: its variant's, else its class's, else the
        element-wise kernels' (the plainest streaming kernels a profile holds)."""
        return self.memory.get(f"{op_class}/{variant}", self.memory.get(op_class, self.streaming))

    @classmethod
    def of(cls, profile: Profile, gpu: GPUSpec) -> "MeasuredEfficiency":
        """The plateau efficiencies of `profile`'s forward samples on its device `gpu`."""
        gemm = [(k.flops, k.flops / k.median_s / gpu.peak(k.precision)) for k in profile.kernels.get("gemm", [])
                if k.direction == "fwd" and k.variant != "bmm" and k.precision in gpu.peak_flops and k.flops > 0]
        mem: dict[str, list[tuple[float, float]]] = {}
        for oc in _STREAMING:
            for k in profile.kernels.get(oc, []):  # type: ignore[call-overload]
                if k.direction == "fwd" and k.bytes_moved > 0:
                    point = (k.bytes_moved, k.bytes_moved / k.median_s / gpu.hbm_bw_bytes_per_s)
                    mem.setdefault(oc, []).append(point)
                    mem.setdefault(f"{oc}/{k.variant}", []).append(point)
        scale = {key: _plateau(pts) / HBM_EFFICIENCY_MAX for key, pts in mem.items()}
        return cls(_plateau(gemm) / GEMM_EFFICIENCY_MAX if gemm else 1.0, scale,
                   scale.get("elementwise", 1.0))


def _plateau(points: list[tuple[float, float]]) -> float:
    """Median efficiency of the points whose size is at or above PLATEAU_QUANTILE."""
    sizes = sorted(p[0] for p in points)
    cut = sizes[int(PLATEAU_QUANTILE * (len(sizes) - 1))]
    return statistics.median(e for s, e in points if s >= cut)


def transposed_gemms(shape: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """The two forward GEMMs a backward GEMM of forward shape C[m,n] = A[m,k] B[k,n] runs:
    dgrad dA[m,k] = dC[m,n] B^T[n,k] and wgrad dB[k,n] = A^T[k,m] dC[m,n] (per batch)."""
    m, n, k = shape["m"], shape["n"], shape["k"]
    extra = {"batch": shape["batch"]} if "batch" in shape else {}
    return {**extra, "m": m, "n": k, "k": n}, {**extra, "m": k, "n": n, "k": m}


@dataclass
class CalibratedCostModel:
    """A CostModel answering from a profile (see module docstring); `device` None prices on
    the profile's own device, a catalog name scales the spec of another one."""

    profile: Profile
    name: str
    spec: SpecRoofline = field(default_factory=SpecRoofline)
    note: str = ""
    _eff: dict[str, MeasuredEfficiency] = field(default_factory=dict, repr=False)

    def efficiency(self, gpu: GPUSpec) -> MeasuredEfficiency:
        """The profile's measured efficiencies on its device `gpu`'s datasheet (computed once)."""
        got = self._eff.get(gpu.name)
        if got is None:
            got = self._eff[gpu.name] = MeasuredEfficiency.of(self.profile, gpu)
        return got

    def scaled_spec(self, kernel: Kernel, gpu: GPUSpec, own: GPUSpec | None = None) -> Cost:
        """The spec roofline with its two parts scaled by the measured efficiencies."""
        eff = self.efficiency(own or gpu)
        t_flop, t_mem = self.spec.parts(kernel, gpu)
        # Capped at 1: a device that beat its own datasheet's assumed plateau (a CPU's bf16 GEMMs
        # ran above its first-principles peak) must not push another device past its peak.
        t_mem /= min(1.0, eff.memory_for(kernel.op_class,
                                         KERNEL_VARIANTS.get(kernel.name.removesuffix("_bwd"))))
        return Cost(self.spec.kernel_fixed_s + max(t_flop / min(1.0, eff.compute), t_mem), "spec")

    def _profile_time(self, q: ProfileQuery) -> Cost | None:
        """The profile's own answer, trying the other 16-bit precision when it has none. A
        published profile answers a streaming kernel only for a variant it measured (its pooled
        fit mixes kernels of other shapes of traffic: residual adds beside fused norms)."""
        for prec in (q.precision, PRECISION_ALIASES.get(q.precision)):
            if prec is None:
                continue
            variant = q.variant if q.op_class != "gemm" or self._has_variant(prec, q) else None
            if (q.op_class in _STREAMING and self.profile.metadata.measurement == "published"
                    and (q.variant is None or not self._has_variant(prec, q))):
                continue
            est = self.profile.op_time(q.op_class, prec, q.flops, q.bytes_moved, q.direction,
                                       variant, q.shape)
            if est is not None:
                return Cost(est.time_s, est.provenance, est.extrapolated)
        return None

    def _has_variant(self, prec: str, q: ProfileQuery) -> bool:
        fit = self.profile.compute_fit(q.op_class, prec, q.direction, q.variant)
        return fit is not None and fit.variant == q.variant

    def _backward_gemm(self, q: ProfileQuery) -> Cost | None:
        """A backward GEMM as its dgrad and wgrad forward GEMMs (fitted from forward samples)."""
        if q.op_class != "gemm" or q.direction != "bwd" or not q.shape:
            return None
        total, extrap = 0.0, False
        for dims in transposed_gemms(q.shape):
            b = dims.get("batch", 1)
            fl = 2.0 * b * dims["m"] * dims["n"] * dims["k"]
            part = self._profile_time(q._replace(direction="fwd", flops=fl, shape=dims))
            if part is None:
                return None
            total += part.time_s
            extrap = extrap or part.extrapolated
        return Cost(total, "fitted", extrap)

    def _fp8_gemm(self, q: ProfileQuery) -> Cost | None:
        """An fp8 GEMM as the bf16 GEMM of its shape over FP8_GEMM_SPEEDUP_OVER_BF16."""
        if q.op_class != "gemm" or q.precision != "fp8":
            return None
        bf16 = q._replace(precision="bf16")
        base = self._profile_time(bf16) or self._backward_gemm(bf16)
        if base is None:
            return None
        return Cost(base.time_s / FP8_GEMM_SPEEDUP_OVER_BF16, "fitted", base.extrapolated)

    def kernel_time(self, kernel: Kernel, gpu: GPUSpec) -> Cost:
        q = profile_query(kernel)
        measured_on = profiled_gpu(self.profile)
        if measured_on != gpu.name:
            # Another device: its roofline, scaled by how far the profiled device ran below ITS
            # OWN datasheet (a CPU's rate against an A100's peak would say 0.1%).
            own = catalog().gpus.get(measured_on) if measured_on else None
            return self.scaled_spec(kernel, gpu, own) if own else self.spec.kernel_time(kernel, gpu)
        cost = self._profile_time(q) or self._backward_gemm(q) or self._fp8_gemm(q)
        if cost is None:
            return self.scaled_spec(kernel, gpu)
        t = cost.time_s
        if q.op_class != "optimizer":  # the optimizer's samples are whole steps already
            # never below half the sample: the correction is microseconds
            t = max(0.5 * t, t + self.profile.framework_overhead(q.direction))
        return Cost(t, cost.provenance, cost.extrapolated)

    def collective_time(self, op: str, world_size: int, size_bytes: float,
                        gpu: GPUSpec) -> Cost | None:
        if profiled_gpu(self.profile) != gpu.name or self.profile.metadata.measurement == "published":
            # gloo on a laptop says nothing about NCCL on an H100 node; a published sample does
            # not say where its ranks sat, so the network model prices the placement at hand
            return None
        est = self.profile.collective_time(op, world_size, size_bytes)
        if est is None:
            return None
        return Cost(est.time_s, est.provenance, est.extrapolated)


@dataclass
class NearestDeviceCostModel:
    """Another device's spec roofline scaled by a profiled device's measured efficiencies."""

    base: CalibratedCostModel
    own: GPUSpec
    name: str
    note: str = ""

    def kernel_time(self, kernel: Kernel, gpu: GPUSpec) -> Cost:
        return self.base.scaled_spec(kernel, gpu, self.own)

    def collective_time(self, op: str, world_size: int, size_bytes: float,
                        gpu: GPUSpec) -> Cost | None:
        return None


def describe(profile: Profile, path: Path) -> str:
    """One line: which profile, whose measurement (dataset, commit, licence) of which device."""
    md = profile.metadata
    if md.measurement == "published":
        src = "; ".join(f"{s.dataset} ({s.repository}@{s.commit[:8]}, {s.licence})" for s in md.sources)
        return f"profile {path.name}: published measurement of {md.device_name}: {src}"
    return f"profile {path.name} measured {md.device_name} ({md.device_kind})"


def load_cost_model(name: str, folder: Path) -> CalibratedCostModel:
    """`run.calibration: NAME | PATH` -> a cost model; ProfileError (one line) when bad.
    NAME is looked up in `folder` (the front door passes the shipped profiles' folder)."""
    path = profile_path(name, folder)
    profile = load_profile(path)
    return CalibratedCostModel(profile=profile, name=path.stem, note=describe(profile, path))


def _device_of(path: Path) -> tuple[str | None, str] | None:
    """(catalog GPU, measurement kind) from a profile file's metadata; None if unreadable."""
    try:
        return _device_of_version(str(path), path.stat().st_mtime_ns)
    except OSError:
        return None


@lru_cache(maxsize=64)
def _device_of_version(path: str, mtime_ns: int) -> tuple[str | None, str] | None:
    """_device_of for one version of a file (a published profile is megabytes of JSON; `auto`
    looks at every shipped profile on every simulation)."""
    try:
        md = Metadata.model_validate(_metadata_json(Path(path)))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return profiled_gpu(Profile(metadata=md)), md.measurement


def _metadata_json(path: Path) -> object:
    """The `metadata` object of a profile file, read from the file's head when it is there
    (both writers put it first), else from the whole file."""
    with path.open(encoding="utf-8") as fh:
        head = fh.read(1 << 16)
    at = head.find('"metadata"')
    start = head.find("{", at) if at >= 0 else -1
    if start >= 0:
        try:
            return json.JSONDecoder().raw_decode(head, start)[0]
        except ValueError:
            pass  # cut off by the head's end: read it all
    return json.loads(path.read_text(encoding="utf-8"))["metadata"]


def shipped_for(gpu: str, folder: Path) -> Path | None:
    """The shipped profile measured on catalog GPU `gpu`: a local measurement outranks a
    published one; None when none ships."""
    found: list[tuple[int, str, Path]] = []
    for p in sorted(folder.glob("*.json")):
        if p.name.endswith(".check.json"):
            continue
        got = _device_of(p)
        if got is not None and got[0] == gpu:
            found.append((0 if got[1] == "local" else 1, p.name, p))
    return min(found)[2] if found else None


def resolve_cost_model(name: str, gpu: GPUSpec, folder: Path,
                       load: Callable[[str, Path], CalibratedCostModel] = load_cost_model) -> CostModel:
    """`run.calibration`: `spec`, a profile name or path, or `auto` = the shipped profile
    measured on this GPU, else the spec scaled by the nearest profiled device, else spec.
    `load` reads a profile (the front door passes a cached loader)."""
    if name == "spec":
        return SpecRoofline()
    if name != "auto":
        return load(name, folder)
    path = shipped_for(gpu.name, folder)
    if path is not None:
        return load(str(path), folder)
    gpus = catalog().gpus
    for near in NEAREST_PROFILED.get(gpu.name, ()):
        path = shipped_for(near, folder)
        if path is not None and near in gpus:
            base = load(str(path), folder)
            return NearestDeviceCostModel(base, gpus[near], f"auto:{path.stem}->{gpu.name}",
                                          f"{gpu.name} spec roofline scaled by the measured "
                                          f"efficiency of {base.note}")
    return SpecRoofline()
