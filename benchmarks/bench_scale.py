"""Scale benchmarks of issue 4, one JSON line each (not timed tests):

- Llama 3 405B on 16,384 H100 (TP 8, PP 16, DP 128, sequence 8,192, batch 2,048), folded,
  flow network: target <= 10 s and <= 4 GiB;
- GPT-3 175B on 1,024 GPUs unfolded with the flow network: target <= 60 s.

    python benchmarks/bench_scale.py [--only llama405b|gpt3-unfolded]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import simulate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CASES = {
    "llama405b": (EXAMPLES / "llama3-405b-16384xh100.yaml", ["run.network=flow"], 10.0),
    "gpt3-unfolded": (EXAMPLES / "gpt3-175b-1024xh100.yaml",
                      ["run.network=flow", "run.fold=off"], 60.0),
}


def run(name: str) -> dict:
    path, overrides, target = CASES[name]
    sc = load_scenario(path, overrides)
    t0 = time.perf_counter()
    r = simulate(sc)
    wall = time.perf_counter() - t0
    return {
        "benchmark": name, "wall_s": round(wall, 3), "target_s": target,
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "simulated_ranks": r.simulated_ranks, "ops": r.events,
        "iteration_s": round(r.iteration_s, 4), "mfu": round(r.mfu, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=sorted(CASES))
    args = ap.parse_args()
    if args.only:
        print(json.dumps(run(args.only)), flush=True)
        return
    # One process per case: max_rss_mib is a process's peak, so a shared one would report the
    # larger case's memory for both.
    for name in sorted(CASES):
        subprocess.run([sys.executable, __file__, "--only", name], check=True)


if __name__ == "__main__":
    main()
