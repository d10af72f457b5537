"""Speed benchmark: one simulated iteration of GPT-3 175B on 1,024 H100 (TP 8, PP 8, DP 16,
global batch 1536), folded. Prints one JSON line; not a timed test (DESIGN.md section 2).

    python benchmarks/bench_iteration.py [--network analytical|flow] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from dcsim.app.scenario import Scenario, load_scenario
from dcsim.app.simulate import simulate

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gpt3-175b-1024xh100.yaml"


def timed_runs(sc: Scenario, repeats: int) -> dict[str, Any]:
    """Simulate `sc` `repeats` times: wall times and the figures of the last result."""
    walls, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = simulate(sc)
        walls.append(time.perf_counter() - t0)
    assert result is not None
    return {
        "wall_s_median": round(statistics.median(walls), 4),
        "wall_s_all": [round(w, 4) for w in walls],
        "simulated_ranks": result.simulated_ranks,
        "ops": result.events,
        "iteration_s": round(result.iteration_s, 4),
        "mfu": round(result.mfu, 4),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--network", default="analytical", choices=["analytical", "flow"])
    ap.add_argument("--fold", default="auto", choices=["auto", "off"])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sc = load_scenario(EXAMPLE, [f"run.network={args.network}", f"run.fold={args.fold}"])
    print(json.dumps({
        "benchmark": "gpt3-175b-1024gpu-iteration",
        "network": args.network,
        "fold": args.fold,
        "target_s": 2.0 if args.network == "analytical" else 5.0,
        **timed_runs(sc, args.repeats),
    }))


if __name__ == "__main__":
    main()
