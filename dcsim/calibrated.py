"""Costs from a calibration profile: measured or fitted times, with spec as the fallback.

On the device the profile measured, a kernel's time is the profile's answer (measured when the
exact op was sampled, else fitted, flagged when it extrapolates) plus the framework's per-kernel
overhead in a step (`Profile.framework`). On another device, the spec roofline is scaled by the
profiled device's efficiency at that size relative to its plateau (DESIGN.md section 4), and the
result says so.

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

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from dcsim.costs import GEMM_EFFICIENCY_MAX, Cost, SpecRoofline
from dcsim.hardware import GPUSpec
from dcsim.profile import (
    ELEMENT_BYTES,
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
        return ProfileQuery(oc, None, direction, prec, flops, nbytes,
                            {"m": shape["m"], "k": shape["k"], "n": shape["n"]})
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
        raise ProfileError(f"run.calibration: unknown profile {name!r}; known: spec, "
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


@dataclass
class CalibratedCostModel:
    """A CostModel answering from a profile (see module docstring)."""

    profile: Profile
    name: str
    spec: SpecRoofline = field(default_factory=SpecRoofline)
    note: str = ""

    def kernel_time(self, kernel: Kernel, gpu: GPUSpec) -> Cost:
        q = profile_query(kernel)
        if profiled_gpu(self.profile) == gpu.name:
            est = self.profile.op_time(q.op_class, q.precision, q.flops, q.bytes_moved, q.direction,
                                       q.variant, q.shape)
            if est is not None:
                t = est.time_s
                if q.op_class != "optimizer":  # the optimizer's samples are whole steps already
                    # never below half the sample: the correction is microseconds
                    t = max(0.5 * t, t + self.profile.framework_overhead(q.direction))
                return Cost(t, est.provenance, est.extrapolated)
            return self.spec.kernel_time(kernel, gpu)
        # Another device: scale the spec roofline by the profiled efficiency shape.
        base = self.spec.kernel_time(kernel, gpu)
        flops_metric = q.op_class in ("gemm", "attention")
        size = q.flops if flops_metric else q.bytes_moved
        other = q.bytes_moved if flops_metric else q.flops
        eff = self.profile.compute_efficiency(q.op_class, q.precision, size, q.direction,
                                              variant=q.variant, other=other)
        if eff is None or eff.fraction <= 0:
            return base
        # The spec roofline already assumes a plateau of GEMM_EFFICIENCY_MAX; the profile
        # says how far below its own plateau an op of this size runs.
        scale = min(1.0, eff.fraction / 1.0)
        return Cost(base.time_s / max(scale, GEMM_EFFICIENCY_MAX * 0.05), "spec", eff.extrapolated)

    def collective_time(self, op: str, world_size: int, size_bytes: float,
                        gpu: GPUSpec) -> Cost | None:
        if profiled_gpu(self.profile) != gpu.name:
            return None  # gloo on a laptop says nothing about NCCL on an H100 node
        est = self.profile.collective_time(op, world_size, size_bytes)
        if est is None:
            return None
        return Cost(est.time_s, est.provenance, est.extrapolated)


def load_cost_model(name: str, folder: Path) -> CalibratedCostModel:
    """`run.calibration: NAME | PATH` -> a cost model; ProfileError (one line) when bad.
    NAME is looked up in `folder` (the front door passes the shipped profiles' folder)."""
    path = profile_path(name, folder)
    profile = load_profile(path)
    profiled_gpu(profile)
    note = (f"profile {path.name} measured {profile.metadata.device_name} "
            f"({profile.metadata.device_kind})")
    return CalibratedCostModel(profile=profile, name=path.stem, note=note)
