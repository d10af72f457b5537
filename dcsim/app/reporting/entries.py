"""A report's inputs as entries: each a named run (scenario, plan, capacity or fleet) with
its headline figures, the resolved scenario it ran and where its costs came from."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


from dcsim.app.scenario import ScenarioError, read_yaml_file


class EntryKind(str, Enum):
    SIMULATE = "simulate"
    PLAN = "plan"
    CAPACITY = "capacity"
    FLEET = "fleet"


@dataclass
class Entry:
    """One run in a report."""

    name: str
    kind: EntryKind
    source: str
    scenario: dict[str, Any]
    calibration: str
    figures: dict[str, float | None]       # headline numbers (the history keeps these)
    details: dict[str, Any] = field(default_factory=dict)  # for the page's plots and tables

    @property
    def scenario_hash(self) -> str:
        blob = json.dumps(self.scenario, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def simulate_entry(result: dict[str, Any], source: str) -> Entry:
    """From a `simulate --json` object."""
    bd = result.get("breakdown") or {}
    figures: dict[str, float | None] = {
        k: result.get(k) for k in ("iteration_s", "tokens_per_s", "mfu", "hfu",
                                   "model_tflops_per_gpu", "memory_per_gpu_bytes",
                                   "time_to_train_s")}
    figures["pipeline_bubble_s"] = bd.get("pipeline_bubble_s")
    for dim, v in (bd.get("exposed_comm_s") or {}).items():
        figures[f"exposed_{dim}_comm_s"] = v
    scenario = result.get("scenario") or {}
    return Entry(result.get("name") or scenario.get("name") or Path(source).stem,
                 EntryKind.SIMULATE, source, scenario,
                 (result.get("provenance") or {}).get("calibration", "spec"),
                 figures, {"breakdown": bd, "gpus": result.get("gpus")})


def plan_entry(data: dict[str, Any], source: str, name: str) -> Entry:
    """From a `plan --json` object."""
    best = data.get("best") or []
    b = best[0] if best else {}
    res = b.get("result") or {}
    figures: dict[str, float | None] = {
        "evaluated": data.get("evaluated"), "feasible": data.get("feasible"),
        "best_iteration_s": res.get("iteration_s"), "best_mfu": res.get("mfu"),
        "best_time_to_train_s": b.get("time_to_train_s"), "best_cost_usd": b.get("cost_usd"),
        "best_energy_kwh": b.get("energy_kwh")}
    scenario = b.get("scenario") or {}
    cal = ((scenario.get("run") or {}).get("calibration")) or "spec"
    return Entry(name, EntryKind.PLAN, source, {"best": scenario, "objective": data.get("objective")},
                 cal, figures, {"best": best, "rejected": data.get("rejected") or {}})


def capacity_entry(data: dict[str, Any], source: str, name: str) -> Entry:
    """From a `capacity --json` object."""
    rec = data.get("recommendation") or {}
    figures: dict[str, float | None] = {"recommended_nodes": rec.get("nodes"),
                                        "recommended_gpus": rec.get("gpus")}
    chosen: dict[str, Any] = next((c for c in data.get("candidates") or []
                                   if c.get("nodes") == rec.get("nodes")), {})
    for k in ("queue_wait_s_p95", "utilization", "cost_usd", "energy_kwh"):
        v = chosen.get(k)
        figures[k] = v.get("mean") if isinstance(v, dict) else v
    return Entry(name, EntryKind.CAPACITY, source, data.get("scenario") or {},
                 data.get("calibration", "spec"), figures, {"candidates": data.get("candidates") or []})


def fleet_entry(summary: dict[str, Any], scenario: dict[str, Any], source: str, name: str) -> Entry:
    """From a fleet run's summary: its numbers, nested ones dotted (queue_wait_s.p95); wall-clock
    times of the run itself are not figures of the fleet (they change every run)."""
    figures: dict[str, float | None] = {}
    for k, v in summary.items():
        items = v.items() if isinstance(v, dict) else [("", v)]
        for sub, x in items:
            key = f"{k}.{sub}" if sub else k
            if isinstance(x, (int, float)) and not isinstance(x, bool) and "wall_s" not in key:
                figures[key] = float(x)
    return Entry(name, EntryKind.FLEET, source, scenario, "spec", figures, {})


def load_entry(path: Path) -> Entry:
    """Run (YAML) or read (JSON) one input: a scenario, a plan file (plan:), a capacity file
    (capacity:) or a fleet scenario (fleet:); JSON files are the commands' --json output."""
    if not path.exists():
        raise ScenarioError(f"{path}: no such file")
    if path.suffix == ".json":
        return _from_json(path)
    data = read_yaml_file(path, "input file")
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario, plan, capacity or fleet mapping")
    name = str(data.get("name") or path.stem)
    if "plan" in data:
        from dcsim.app.plan import plan_json
        from dcsim.app.planning.search import run_plan
        from dcsim.app.planning.spec import load_plan
        sc, plan, raw = load_plan(path)
        return plan_entry(plan_json(run_plan(sc, plan, raw), name), str(path), name)
    if "capacity" in data:
        from dcsim.app.capacity import capacity_json, run_capacity_file
        return capacity_entry(capacity_json(run_capacity_file(path)), str(path), name)
    if "fleet" in data:
        from dcsim.app.fleet import run_fleet
        r = run_fleet(path)
        return fleet_entry(r.summary, data, str(path), name)
    from dcsim.app.scenario import load_scenario
    from dcsim.app.simulate import simulate
    return simulate_entry(simulate(load_scenario(path)).to_dict(), str(path))


def _from_json(path: Path) -> Entry:
    try:
        data = json.loads(path.read_bytes())
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a JSON object from dcsim simulate/plan/capacity --json")
    if "iteration_s" in data:
        return simulate_entry(data, str(path))
    name = str(data.get("name") or path.stem)
    if "best" in data and "evaluated" in data:
        return plan_entry(data, str(path), name)
    if "recommendation" in data:
        return capacity_entry(data, str(path), name)
    raise ScenarioError(f"{path}: not the --json output of dcsim simulate, plan or capacity")
