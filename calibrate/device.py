"""What machine are we on, and can it run what was asked: device checks and profile metadata.

torch is imported only where a function needs it, so `CalibrationInputError`, the CPU identity
and `require_torch` (which says how to install the calibration extra) work without it.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcsim.errors import InputError
from dcsim.profile import Metadata

if TYPE_CHECKING:
    import torch

__all__ = ["CalibrationInputError", "cpu_count", "cpu_name", "cpu_identity", "identity_mismatch",
           "require_torch", "check_device", "check_world_size", "metadata_for",
           "default_profile_name"]

# What to install for calibration (pyproject.toml's `calibrate` extra; the Makefile's target).
TORCH_HINT = ("install the calibration extra: `pip install '.[calibrate]'` in a clone "
              "(or `make calibrate-env`)")


class CalibrationInputError(InputError):
    """The request cannot run on this machine (bad device, too many ranks, ...); one line says why."""


def require_torch(what: str) -> None:
    """CalibrationInputError saying how to get torch when it is not installed."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise CalibrationInputError(f"{what} measures this machine with torch, which is not "
                                    f"installed; {TORCH_HINT}") from None


def _torch() -> Any:
    require_torch("calibration")
    import torch
    return torch


# Instruction sets that change kernel speed several-fold (AVX-512 / AMX GEMMs, BF16 dot
# products): two CPUs that differ in these differ in every fitted kernel.
_ISA_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
              "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def _cache_bytes(level: int) -> int | None:
    """Size of cpu0's unified or data cache at `level` from sysfs (Linux), None elsewhere."""
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for idx in sorted(root.glob("index*")):
        try:
            if int((idx / "level").read_text()) != level or \
                    (idx / "type").read_text().strip() == "Instruction":
                continue
            text = (idx / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        m = re.fullmatch(r"(\d+)([KMG]?)", text)
        if m:
            return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]
    return None


def cpu_identity() -> dict[str, Any]:
    """This CPU beyond its marketing name: vendor, family, model, stepping, L2 / L3 sizes and
    the instruction sets that matter for kernels (Linux /proc/cpuinfo and sysfs). Cloud VMs
    report "AMD EPYC" for CPUs several times apart in speed; these fields tell them apart."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                k, _, v = line.partition(":")
                fields[k.strip()] = v.strip()
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())

    def num(key: str) -> int | None:
        v = fields.get(key, "")
        return int(v) if v.isdigit() else None

    return {"vendor": fields.get("vendor_id") or platform.machine(),
            "model_name": fields.get("model name") or cpu_name(),
            "family": num("cpu family"), "model": num("model"), "stepping": num("stepping"),
            "l2_bytes": _cache_bytes(2), "l3_bytes": _cache_bytes(3),
            "isa": sorted(flags.intersection(_ISA_FLAGS)), "cores": cpu_count()}


def identity_mismatch(recorded: dict[str, Any] | None, here: dict[str, Any]) -> list[str]:
    """How a profile's recorded CPU identity differs from this one ([] when it matches or when
    the profile recorded none)."""
    if not recorded:
        return []
    out = []
    for key in ("vendor", "family", "model", "l2_bytes", "l3_bytes", "cores"):
        a, b = recorded.get(key), here.get(key)
        if a is not None and b is not None and a != b:
            out.append(f"{key} {a} there, {b} here")
    isa_a, isa_b = set(recorded.get("isa") or []), set(here.get("isa") or [])
    if recorded.get("isa") is not None and isa_a != isa_b:
        diff = sorted(isa_a ^ isa_b)
        out.append(f"instruction sets differ ({', '.join(diff)})")
    return out


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, which containers narrow), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or platform.processor() elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def this_device_name(device: str) -> str:
    """The name a profile measured on this machine would carry (Metadata.device_name)."""
    return _torch().cuda.get_device_name(0) if device == "cuda" else cpu_name()


def mismatch(meta: Metadata, device: str) -> list[str]:
    """Why a profile was not measured on a machine like this one ([] when nothing recorded
    says so): another device kind or model, another core count, and for CPUs another family,
    model, cache size or instruction set when the profile recorded its CPU identity (a profile
    of another CPU can be several times off: the Intel Xeon and AMD EPYC hosts of this project
    differ 4-5x on fp32 GEMMs, and two "AMD EPYC" hosts 1.6x)."""
    if meta.device_kind != device:
        return [f"a {meta.device_kind} profile, not {device}"]
    here = this_device_name(device)
    if meta.device_name != here:
        return [f"device {meta.device_name!r}, this machine {here!r}"]
    if device != "cpu":
        return []
    out = [] if meta.cpu_count == cpu_count() else [
        f"{meta.cpu_count} cores there, {cpu_count()} here"]
    return out + identity_mismatch(getattr(meta, "cpu", None), cpu_identity())


def measured_here(meta: Metadata, device: str) -> bool:
    """Whether a profile's recorded device matches this machine (see `mismatch`)."""
    return not mismatch(meta, device)


def check_device(device: str) -> None:
    """Raise CalibrationInputError unless `device` is cpu, or cuda with a visible GPU."""
    if device not in ("cpu", "cuda"):
        raise CalibrationInputError(f"--device must be one of: cpu, cuda (got {device!r})")
    torch = _torch()
    if device == "cuda" and not torch.cuda.is_available():
        built = "with" if torch.version.cuda else "without"
        raise CalibrationInputError(
            f"--device cuda: no CUDA GPU is visible to torch {torch.__version__} (built {built} CUDA); use --device cpu"
        )


def check_world_size(device: str, world_size: int) -> None:
    """Refuse a world size this machine cannot time honestly (one core or one GPU per rank)."""
    if world_size < 1:
        raise CalibrationInputError(f"--world-size must be at least 1 (got {world_size})")
    if device == "cpu":
        cores = cpu_count()
        if world_size > cores:
            # DESIGN.md section 4: 4 ranks on 2 cores time the scheduler, not the collective.
            raise CalibrationInputError(
                f"--world-size {world_size}: this machine has {cores} CPU core(s) and each CPU rank needs its own; "
                f"use --world-size {cores} or less"
            )
    else:
        gpus = _torch().cuda.device_count()
        if world_size > gpus:
            raise CalibrationInputError(f"--world-size {world_size}: this machine has {gpus} GPU(s); use --world-size {gpus} or less")


def _nvidia_driver() -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def metadata_for(device: str, threads: int, collective_threads: int | None, quick: bool) -> Metadata:
    """Metadata describing this machine and run (torch / backend / driver versions, and the
    CPU's identity so a later check can tell this CPU from another of the same name)."""
    torch = _torch()
    if device == "cuda":
        name, count = torch.cuda.get_device_name(0), torch.cuda.device_count()
        backend = "nccl"
        try:
            v = torch.cuda.nccl.version()
            backend_version = ".".join(str(x) for x in v) if isinstance(v, tuple) else str(v)
        except (AttributeError, RuntimeError):
            backend_version = None
        driver, cuda_rt = _nvidia_driver(), torch.version.cuda
    else:
        name, count = cpu_name(), 1
        backend, backend_version = "gloo", f"bundled with torch {torch.__version__}"
        driver, cuda_rt = None, None
    return Metadata(
        device_kind=device,  # type: ignore[arg-type]
        device_name=name,
        device_count=count,
        host=socket.gethostname(),
        cpu_count=cpu_count(),
        threads=threads,
        collective_threads=collective_threads,
        torch_version=torch.__version__,
        backend=backend,  # type: ignore[arg-type]
        backend_version=backend_version,
        driver=driver,
        cuda_runtime=cuda_rt,
        quick=quick,
        cpu=cpu_identity(),
        notes=[
            f"platform {platform.platform()}",
            f"python {platform.python_version()}",
            f"kernels timed in one process with {threads} torch thread(s)"
            + (f"; collectives with {collective_threads} thread(s) per rank, fp32 buffers" if collective_threads else ""),
        ],
    )


def default_profile_name(device: str, world_size: int, quick: bool) -> str:
    """A file name for a profile of this machine, e.g. cpu-2core-quick.json or nvidia-h100-x8.json."""
    suffix = "-quick" if quick else ""
    if device == "cpu":
        return f"cpu-{cpu_count()}core{suffix}.json"
    slug = re.sub(r"[^a-z0-9]+", "-", _torch().cuda.get_device_name(0).lower()).strip("-")
    return f"{slug}-x{world_size}{suffix}.json"


def join_process_group(rank: int, world_size: int, init_file: str, backend: str, threads: int,
                       timeout_s: float) -> "torch.device":
    """Set up one spawned rank: loopback for gloo, pinned threads, its device, the group.

    gloo may pick a non-loopback interface and a default timeout of 30 minutes; both are set
    here (DESIGN.md section 4). The caller destroys the group when done.
    """
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(threads)
    if backend == "nccl":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=timeout_s))
    return device
