"""A fleet run's result: per-job records and cluster series as pandas frames, and the summary.

Summary keys (the `--json` contract): utilization, queue_wait_s and jct_s (p50/p95/p99),
ettr (GPU-hours of useful training over GPU-hours held), interruptions (count by cause),
gpu_hours (used, idle, down, lost), energy_kwh, cost_usd, carbon_kg.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dcsim.fleet.power import PowerModel
from dcsim.fleet.state import JobState


@dataclass
class FleetResult:
    """A fleet run: summary, per-job and series frames, placements."""
    name: str
    summary: dict[str, Any]
    jobs: pd.DataFrame
    series: pd.DataFrame
    segments: list[tuple[int, float, float, np.ndarray]] = field(default_factory=list)
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `--json` prints."""
        return {"name": self.name, "summary": self.summary, "wall_s": self.wall_s}


def _pct(x: np.ndarray) -> dict[str, float | None]:
    if len(x) == 0:
        return {"p50": None, "p95": None, "p99": None}
    return {f"p{q}": float(np.percentile(x, q)) for q in (50, 95, 99)}


def job_frame(states: list[JobState], power: PowerModel) -> pd.DataFrame:
    """One row per job: times, GPUs, restarts, GPU-hours by use and loss, ETTR, energy, cost."""
    rows = []
    for s in states:
        j = s.job
        g = s.gpus
        held_h = s.held_gpu_s / 3600
        useful_h = s.productive_s * g / 3600
        run_w = power.busy_gpu_w(s.speed.compute_share)
        held_s = s.held_gpu_s / g if g else 0.0
        e_j = g * (run_w * s.run_wall_s + power.gpu_idle_w * max(held_s - s.run_wall_s, 0.0)
                   + power.node_overhead_w / 8.0 * held_s) * power.pue
        rows.append({
            "id": j.id, "name": j.name, "user": j.user, "workload": j.workload or "",
            "gpus": g, "priority": j.priority, "submit_s": j.submit_s,
            "start_s": s.first_start, "end_s": s.end,
            "wait_s": (s.first_start - j.submit_s) if s.first_start is not None else s.wait_s,
            "queued_total_s": s.wait_s,
            "run_s": (s.end - s.first_start) if s.end is not None and s.first_start is not None
            else None,
            "jct_s": (s.end - j.submit_s) if s.end is not None else None,
            "completed": s.end is not None, "restarts": s.restarts, "preemptions": s.preemptions,
            "checkpoints": s.checkpoints, "interruptions": sum(s.interruptions.values()),
            "gpu_h_held": held_h, "gpu_h_useful": useful_h,
            "gpu_h_lost_failure": s.lost_gpu_s.get("failure", 0.0) / 3600,
            "gpu_h_lost_preemption": s.lost_gpu_s.get("preemption", 0.0) / 3600,
            "gpu_h_restart": s.restart_gpu_s / 3600, "gpu_h_checkpoint": s.ckpt_gpu_s / 3600,
            "ettr": useful_h / held_h if held_h > 0 else None,
            "energy_kwh": e_j / 3.6e6,
            "cost_usd": held_h * power.gpu_hour_usd + e_j / 3.6e6 * power.price_usd_per_kwh,
        })
    return pd.DataFrame(rows)


def series_frame(series: list[tuple], pue: float) -> pd.DataFrame:
    """The event series as a frame, facility power added."""
    df = pd.DataFrame(series, columns=["t_s", "allocated_gpus", "running_jobs", "queued_jobs",
                                       "down_gpus", "it_power_w"])
    df["facility_power_w"] = df["it_power_w"] * pue
    return df


def summarize(jobs: pd.DataFrame, capacity_gpu_s: float, used_gpu_s: float, down_gpu_s: float,
              it_energy_j: float, power: PowerModel, interruptions: dict[str, int],
              failures: dict[str, int], horizon_s: float, peak_gpus: float = 0.0
              ) -> dict[str, Any]:
    """The summary object (see the module docstring)."""
    started = jobs[jobs["start_s"].notna()] if len(jobs) else jobs
    done = jobs[jobs["completed"]] if len(jobs) else jobs
    train = jobs[jobs["workload"] != ""] if len(jobs) else jobs
    basis = train if len(train) else jobs
    held = float(basis["gpu_h_held"].sum()) if len(basis) else 0.0
    useful = float(basis["gpu_h_useful"].sum()) if len(basis) else 0.0
    lost = float((jobs["gpu_h_lost_failure"] + jobs["gpu_h_lost_preemption"]
                  + jobs["gpu_h_restart"]).sum()) if len(jobs) else 0.0
    energy_kwh = it_energy_j * power.pue / 3.6e6
    cap_h = capacity_gpu_s / 3600
    return {
        "utilization": used_gpu_s / capacity_gpu_s if capacity_gpu_s else 0.0,
        "queue_wait_s": _pct(started["wait_s"].to_numpy(float) if len(started) else np.array([])),
        "jct_s": _pct(done["jct_s"].to_numpy(float) if len(done) else np.array([])),
        "ettr": useful / held if held > 0 else None,
        "interruptions": dict(sorted(interruptions.items(), key=lambda kv: -kv[1])),
        "gpu_hours": {"capacity": cap_h, "used": used_gpu_s / 3600, "down": down_gpu_s / 3600,
                      "idle": cap_h - used_gpu_s / 3600 - down_gpu_s / 3600, "lost": lost},
        "energy_kwh": energy_kwh,
        "cost_usd": cap_h * power.gpu_hour_usd + energy_kwh * power.price_usd_per_kwh,
        "carbon_kg": energy_kwh * power.carbon_kg_per_kwh,
        "jobs": {"submitted": len(jobs), "started": len(started), "completed": len(done)},
        "allocated_gpus_peak": peak_gpus,
        "failures": dict(sorted(failures.items(), key=lambda kv: -kv[1])),
        "horizon_s": horizon_s,
    }
