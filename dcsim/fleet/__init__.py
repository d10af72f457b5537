"""The fleet: many jobs on one cluster over months (DESIGN.md section 5).

`simulate_fleet(spec, layout, jobs, tiers, speed)` runs the event simulation and returns a
FleetResult. The front door (dcsim/app/fleet.py) builds the layout from a cluster, the jobs from
a trace or a generator, and prices training jobs with the single-job simulator.
"""

from __future__ import annotations

import time
from typing import Callable

from dcsim.fleet.config import FleetSpec
from dcsim.fleet.model import FleetJob, FleetLayout, SpeedFn, StorageTier, nominal_speed
from dcsim.fleet.result import FleetResult, job_frame, series_frame, summarize
from dcsim.fleet.sim import FleetSim


def simulate_fleet(spec: FleetSpec, layout: FleetLayout, jobs: list[FleetJob],
                   tiers: list[StorageTier], speed: SpeedFn = nominal_speed, name: str = "fleet",
                   progress: Callable[[float, float], None] | None = None) -> FleetResult:
    """Run the fleet over spec.horizon and collect frames and the summary."""
    t0 = time.perf_counter()
    sim = FleetSim(spec, layout, jobs, tiers, speed, progress)
    sim.run()
    jf = job_frame(sim.states, sim.power)
    b = sim.books
    capacity = layout.n_gpus * spec.horizon
    summary = summarize(jf, capacity, b.used_gpu_s, b.down_gpu_s, b.it_energy_j, sim.power,
                        sim.interruptions, sim.failures_total, spec.horizon,
                        max((row[1] for row in b.series), default=0.0))
    return FleetResult(name=name, summary=summary, jobs=jf,
                       series=series_frame(b.series, sim.power.pue), segments=sim.segments,
                       wall_s=time.perf_counter() - t0)


__all__ = ["FleetJob", "FleetLayout", "FleetResult", "FleetSpec", "StorageTier", "simulate_fleet",
           "nominal_speed"]
