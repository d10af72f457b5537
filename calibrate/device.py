"""What machine are we on, and can it run what was asked: device checks and profile metadata."""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess

import torch

from dcsim.profile import Metadata
from dcsim.errors import InputError

__all__ = ["CalibrationInputError", "cpu_count", "cpu_name", "check_device", "check_world_size", "metadata_for", "default_profile_name"]


class CalibrationInputError(InputError):
    """The request cannot run on this machine (bad device, too many ranks, ...); one line says why."""


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
    return torch.cuda.get_device_name(0) if device == "cuda" else cpu_name()


def measured_here(meta: Metadata, device: str) -> bool:
    """Whether a profile was measured on a machine like this one: the same device kind and
    model and, for CPUs, as many usable cores (a profile of another CPU can be several times
    off: the Intel Xeon and AMD EPYC hosts of this project differ 4-5x on fp32 GEMMs)."""
    if meta.device_kind != device or meta.device_name != this_device_name(device):
        return False
    return device != "cpu" or meta.cpu_count == cpu_count()


def check_device(device: str) -> None:
    """Raise CalibrationInputError unless `device` is cpu, or cuda with a visible GPU."""
    if device not in ("cpu", "cuda"):
        raise CalibrationInputError(f"--device must be one of: cpu, cuda (got {device!r})")
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
        gpus = torch.cuda.device_count()
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
    """Metadata describing this machine and run (torch / backend / driver versions)."""
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
    slug = re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")
    return f"{slug}-x{world_size}{suffix}.json"


def join_process_group(rank: int, world_size: int, init_file: str, backend: str, threads: int,
                       timeout_s: float) -> torch.device:
    """Set up one spawned rank: loopback for gloo, pinned threads, its device, the group.

    gloo may pick a non-loopback interface and a default timeout of 30 minutes; both are set
    here (DESIGN.md section 4). The caller destroys the group when done.
    """
    from datetime import timedelta

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
