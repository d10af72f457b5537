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
    if len(jf):
        jf["checkpoints_not_fit"] = [sim.store.refused.get(int(i), 0) for i in jf["id"]]
    b = sim.books
    capacity = layout.n_gpus * spec.horizon
    summary = summarize(jf, capacity, b.used_gpu_s, b.down_gpu_s, b.it_energy_j, sim.power,
                        sim.interruptions, sim.failures_total, spec.horizon,
                        max((row[1] for row in b.series), default=0.0))
    summary["provenance"] = provenance(spec)
    summary["checkpoint_storage"] = {"tier": sim.ckpt_tier, **sim.store.summary()}
    pw = sim.power
    summary["power"] = {"switches_w": pw.switches_w, "fabric_switches": layout.fabric_switches,
                        "storage_w": pw.storage_w, "gpu_cap_w": pw.gpu_cap_w,
                        "cluster_cap_w": spec.power.cluster_cap_w}
    return FleetResult(name=name, summary=summary, jobs=jf,
                       series=series_frame(b.series, sim.power.pue), segments=sim.segments,
                       wall_s=time.perf_counter() - t0)


def provenance(spec: FleetSpec) -> dict[str, str]:
    """Where the fleet's constants come from (sources in dcsim/fleet/failures.py, power.py,
    config.py); ASSUMED marks the ones no publication gave."""
    f, p = spec.failures, spec.power
    given = lambda v, src: "scenario" if v is not None else src  # noqa: E731
    return {
        "failure_rates": {"none": "no failures", "llama3": "Llama 3 paper Table 5 (per component)",
                          "rsc1": "Llama 3 mix scaled to RSC-1 6.5/1000 node-days (Kokolis et al. "
                                  "HPCA'25)"}[f.model.value]
        + ("" if not f.causes else "; some causes set by the scenario"),
        "repair_times": "ASSUMED (dcsim/fleet/failures.py)" if not f.causes else "scenario/ASSUMED",
        "detection": "PyTorch NCCL timeout 10 min" if f.detection == 600 else "scenario",
        "requeue": "Slurm sched_interval 60 s" if f.requeue == 60 else "scenario",
        "startup": "ASSUMED 3 min" if f.startup == 180 else "scenario",
        "gpu_power": given(p.gpu_compute_w, "datasheet board power; idle 10% and "
                                            "communicating 50% ASSUMED"),
        "node_overhead": given(p.node_overhead_w, "DGX datasheet system max less GPUs"),
        "pue": given(p.pue, "Google fleet 2023"),
        "electricity": given(p.price_usd_per_kwh, "EIA US industrial 2023"),
        "carbon": given(p.carbon_kg_per_kwh, "EIA US 2022"),
        "gpu_hour_price": given(p.gpu_hour_usd, "ASSUMED 2.0 USD"),
        "power_cap": "none" if p.gpu_cap_w is None and p.cluster_cap_w is None else
        "scenario cap (a cluster cap as the uniform per-GPU cap it needs); slowdown by a "
        "first-principles cube law (P ~ f^3), not a measured curve",
        "switch_power": given(p.switch_w, "NVIDIA QM9700 max power (user manual, not re-read)"),
        "storage_power": given(p.storage_w, "not counted (no datasheet default)"),
    }


__all__ = ["FleetJob", "FleetLayout", "FleetResult", "FleetSpec", "StorageTier", "simulate_fleet",
           "nominal_speed"]
