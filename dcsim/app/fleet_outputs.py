"""Write a fleet result under --out: Parquet frames, summary JSON, plots, a Perfetto timeline.
Each file is written to a temporary name and renamed, so an interrupted run leaves no
half-written file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from dcsim.fleet.result import FleetResult

# Slices in the timeline at most (one per job placement and node); beyond, per job only.
MAX_TIMELINE_SLICES = 200_000


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary name and rename (no half-written file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_outputs(r: FleetResult, out: Path, plots: bool = True) -> list[Path]:
    """jobs.parquet, series.parquet, summary.json, timeline.json and PNG plots."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "jobs.parquet", out / "series.parquet", out / "summary.json",
             out / "timeline.json"]
    _atomic(files[0], lambda p: r.jobs.to_parquet(p, index=False))
    _atomic(files[1], lambda p: r.series.to_parquet(p, index=False))
    _atomic(files[2], lambda p: _text(p, json.dumps(r.to_dict(), indent=2)))
    _atomic(files[3], lambda p: _text(p, json.dumps(timeline(r))))
    if plots:
        files += write_plots(r, out)
    return files


def _text(path: Path, text: str) -> None:
    path.write_text(text)


def timeline(r: FleetResult) -> dict[str, Any]:
    """Chrome trace: a process per node (a thread per job placement on it) when small enough,
    else one track per job; times in microseconds of simulated time."""
    names = dict(zip(r.jobs["id"], r.jobs["name"], strict=False)) if len(r.jobs) else {}
    per_node = sum(len(s[3]) for s in r.segments) <= MAX_TIMELINE_SLICES
    ev: list[dict[str, Any]] = []
    for jid, t0, t1, nodes in r.segments:
        base = {"name": str(names.get(jid, jid)), "ph": "X", "ts": t0 * 1e6,
                "dur": max(t1 - t0, 0.0) * 1e6,
                "args": {"job": int(jid), "nodes": len(nodes), "first_node": int(nodes[0])}}
        if per_node:
            ev += [dict(base, pid=int(n), tid=int(jid)) for n in nodes]
        else:
            ev.append(dict(base, pid=0, tid=int(jid)))
    if per_node:
        ev += [{"name": "process_name", "ph": "M", "pid": n, "args": {"name": f"node {n}"}}
               for n in sorted({int(n) for s in r.segments for n in s[3]})]
    return {"traceEvents": ev, "displayTimeUnit": "ms",
            "otherData": {"fleet": r.name, "tracks": "node" if per_node else "job"}}


def write_plots(r: FleetResult, out: Path) -> list[Path]:
    """Utilization and queue over time, power, and the wait-time CDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = r.series
    cap = r.summary["gpu_hours"]["capacity"] * 3600 / r.summary["horizon_s"]
    days = s["t_s"] / 86400
    paths = []
    fig, ax = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    ax[0].step(days, s["allocated_gpus"] / cap, where="post", label="allocated")
    ax[0].step(days, s["down_gpus"] / cap, where="post", label="down")
    ax[0].set_ylabel("share of GPUs")
    ax[0].legend()
    ax[1].step(days, s["queued_jobs"], where="post", label="queued")
    ax[1].step(days, s["running_jobs"], where="post", label="running")
    ax[1].set_ylabel("jobs")
    ax[1].set_xlabel("day")
    ax[1].legend()
    paths.append(_save(fig, out / "utilization.png"))
    fig, ax1 = plt.subplots(figsize=(9, 3))
    ax1.step(days, s["facility_power_w"] / 1e6, where="post")
    ax1.set_ylabel("facility power (MW)")
    ax1.set_xlabel("day")
    paths.append(_save(fig, out / "power.png"))
    waits = np.sort(r.jobs["wait_s"].dropna().to_numpy(float)) if len(r.jobs) else np.array([])
    fig, ax2 = plt.subplots(figsize=(6, 4))
    if len(waits):
        ax2.step(waits / 3600, np.arange(1, len(waits) + 1) / len(waits), where="post")
    ax2.set_xlabel("queue wait (h)")
    ax2.set_ylabel("share of jobs")
    paths.append(_save(fig, out / "wait_cdf.png"))
    plt.close("all")
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    _atomic(path, lambda p: fig.savefig(p, format="png", dpi=90))
    return path


def resample(series: pd.DataFrame, every_s: float, horizon_s: float) -> pd.DataFrame:
    """The event series as a step function sampled every `every_s`."""
    grid = pd.DataFrame({"t_s": np.arange(0.0, horizon_s + every_s / 2, every_s)})
    return pd.merge_asof(grid, series.sort_values("t_s"), on="t_s")
