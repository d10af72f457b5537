"""Speed benchmark of the flow network: one iteration of GPT-3 175B on 1,024 H100 (TP 8, PP 8,
DP 16; examples/gpt3-175b-1024xh100.yaml), folded, with run.network=flow. Target: <= 5 s on a
2-core machine (issue 3). Prints one JSON line; not a timed test (DESIGN.md section 2).

    python benchmarks/bench_flow_iteration.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

from dcsim.engine import Engine
from dcsim.network.flow_backend import FlowBackend
from dcsim.scenario import Scenario, load_scenario
from dcsim.simulate import build_cluster, cost_model_for, job_from_scenario, simulate
from workloads.training import build_program

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gpt3-175b-1024xh100.yaml"
TARGET_S = 5.0


def flow_counts(sc: Scenario) -> dict[str, int]:
    """Max-min solves and flow sets of one run (a separate, untimed run that keeps the network)."""
    backends: list[FlowBackend] = []

    def factory(env, cluster, **kwargs):
        backends.append(FlowBackend(env, cluster, **kwargs))
        return backends[-1]

    program = build_program(job_from_scenario(sc), fold=True)
    Engine(program, build_cluster(sc), cost_model_for(sc.run.calibration), network="flow",
           flow_backend=factory).run()
    net = backends[0].network
    return {"maxmin_solves": net.solves, "flow_sets": net.flow_sets}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sc = load_scenario(EXAMPLE, ["run.network=flow", "run.fold=auto"])
    walls, result = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        result = simulate(sc)
        walls.append(time.perf_counter() - t0)
    assert result is not None
    print(json.dumps({
        "benchmark": "gpt3-175b-1024gpu-flow-iteration",
        "wall_s_median": round(statistics.median(walls), 4),
        "wall_s_all": [round(w, 4) for w in walls],
        "target_s": TARGET_S,
        "simulated_ranks": result.simulated_ranks,
        "ops": result.events,
        **flow_counts(sc),
        "iteration_s": round(result.iteration_s, 4),
        "mfu": round(result.mfu, 4),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
