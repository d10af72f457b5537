"""Costs from a calibration profile: measured or fitted times, with spec as the fallback.

On the device the profile measured, a kernel's time is the profile's answer (measured when the
exact op was sampled, else fitted, flagged when it extrapolates). On another device, the spec
roofline is scaled by the profiled device's efficiency at that size relative to its plateau
(DESIGN.md section 4), and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from dcsim.costs import GEMM_EFFICIENCY_MAX, Cost, SpecRoofline
from dcsim.hardware import GPUSpec
from dcsim.profile import Profile, ProfileError, load_profile
from dcsim.program import Kernel

# Which catalog GPU a profile's device is: the profile's device name contains the marker.
DEVICE_MARKERS = {
    "cpu-host": ("cpu",),
    "a100-sxm-80gb": ("A100",),
    "h100-sxm": ("H100",),
    "h200-sxm": ("H200",),
    "b200": ("B200",),
    "gb200": ("GB200",),
}


def profile_path(name: str) -> Path:
    """A profile by name (calibrate/profiles/NAME.json) or by path; ProfileError if neither."""
    p = Path(name)
    if p.suffix == ".json" or p.exists():
        if not p.exists():
            raise ProfileError(f"run.calibration: profile file {name} not found")
        return p
    folder = Path(str(resources.files("calibrate").joinpath("profiles")))
    cand = folder / f"{name}.json"
    if not cand.exists():
        known = sorted(x.stem for x in folder.glob("*.json"))
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
        direction = "bwd" if kernel.name.endswith("_bwd") else "fwd"
        prec = kernel.precision
        if profiled_gpu(self.profile) == gpu.name:
            est = self.profile.op_time(kernel.op_class, prec, kernel.flops, kernel.bytes_moved,
                                       direction)
            if est is not None:
                return Cost(est.time_s, est.provenance, est.extrapolated)
            return self.spec.kernel_time(kernel, gpu)
        # Another device: scale the spec roofline by the profiled efficiency shape.
        base = self.spec.kernel_time(kernel, gpu)
        size = kernel.flops if kernel.op_class in ("gemm", "attention") else kernel.bytes_moved
        eff = self.profile.compute_efficiency(kernel.op_class, prec, size, direction)
        if eff is None or eff.fraction <= 0:
            return base
        # The spec roofline already assumes a plateau of GEMM_EFFICIENCY_MAX; the profile
        # says how far below its own plateau an op of this size runs.
        scale = min(1.0, eff.fraction / 1.0)
        return Cost(base.time_s / max(scale, GEMM_EFFICIENCY_MAX * 0.05), "spec", eff.extrapolated)

    def collective_time(self, op: str, world_size: int, size_bytes: float) -> Cost | None:
        est = self.profile.collective_time(op, world_size, size_bytes)
        if est is None:
            return None
        return Cost(est.time_s, est.provenance, est.extrapolated)


def load_cost_model(name: str) -> CalibratedCostModel:
    """`run.calibration: NAME | PATH` -> a cost model; ProfileError (one line) when bad."""
    path = profile_path(name)
    profile = load_profile(path)
    dev = profiled_gpu(profile)
    note = (f"profile {path.name} measured {profile.metadata.device_name} "
            f"({profile.metadata.device_kind})")
    return CalibratedCostModel(profile=profile, name=path.stem, note=note)
