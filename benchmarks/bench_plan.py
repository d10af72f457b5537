"""Speed benchmark: the ranking stage of `dcsim plan` (validity rules, memory, fast model) on
one core, over the whole search space of a plan file. Prints one JSON line; not a timed test.

    python benchmarks/bench_plan.py [--plan examples/plan/gpt3-175b-1024xh100.yaml]

`candidates_per_min` counts every candidate of the space (those the shared rules reject in
microseconds too); `priced_per_min` counts only those the fast model priced.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from dcsim.app.planning.search import rank
from dcsim.app.planning.spec import load_plan

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plan", default=str(ROOT / "examples/plan/gpt3-175b-1024xh100.yaml"))
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    sc, plan, _raw = load_plan(args.plan)
    t0, c0 = time.perf_counter(), time.process_time()
    ranked, evaluated, feasible, rejected, _ = rank(sc, plan)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    memory_rejects = rejected.get("memory", 0)
    priced = feasible + sum(v for k, v in rejected.items() if k.startswith("plan.constraints"))
    print(json.dumps({
        "benchmark": "plan-ranking",
        "plan": Path(args.plan).name,
        "cores": 1,
        "candidates": evaluated,
        "rejected_by_rules": evaluated - priced - memory_rejects,
        "rejected_by_memory": memory_rejects,
        "priced_by_fast_model": priced,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        # on a shared machine the process may wait for its core: CPU time is the core's work
        "candidates_per_min": round(60 * evaluated / wall),
        "priced_per_min": round(60 * priced / wall),
        "candidates_per_cpu_min": round(60 * evaluated / cpu),
        "priced_per_cpu_min": round(60 * priced / cpu),
        "ms_per_priced_candidate_cpu": round(1e3 * cpu / max(priced, 1), 2),
        "best": ranked[0].cand.label() if ranked else None,
        "best_iteration_s": round(ranked[0].est.iteration_s, 4) if ranked else None,
        "bar_candidates_per_min": 3000,
    }))


if __name__ == "__main__":
    main()
