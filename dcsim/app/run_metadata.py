"""The JSON of a result holds what the simulation determined; how this run went (wall time,
host, versions) sits in a separate `run_metadata` block, which `--no-timing` drops, so two runs
of the same scenario and seed give byte-identical JSON."""

from __future__ import annotations

import platform
import socket
from importlib import metadata
from typing import Any

__all__ = ["split_run_metadata", "run_metadata"]


def _version() -> str:
    try:
        return metadata.version("dcsim")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def run_metadata(wall_s: float | None) -> dict[str, Any]:
    """Wall time of this run, the host and the versions that produced it."""
    return {"wall_s": wall_s, "host": socket.gethostname(), "dcsim_version": _version(),
            "python": platform.python_version(), "platform": platform.platform()}


def split_run_metadata(data: dict[str, Any], timing: bool = True) -> dict[str, Any]:
    """`data` (a result's to_dict()) with every `wall_s` taken out of the simulated figures and,
    when `timing`, put in a `run_metadata` block (per job too, for several jobs)."""
    out = dict(data)
    wall = out.pop("wall_s", None)
    jobs_wall: dict[str, Any] = {}
    if isinstance(out.get("jobs"), list):
        jobs = []
        for i, j in enumerate(out["jobs"]):
            if isinstance(j, dict) and "wall_s" in j:
                j = dict(j)
                jobs_wall[str(j.get("name", i))] = j.pop("wall_s")
            jobs.append(j)
        out["jobs"] = jobs
    if timing:
        meta = run_metadata(wall)
        if jobs_wall:
            meta["jobs_wall_s"] = jobs_wall
        out["run_metadata"] = meta
    return out
