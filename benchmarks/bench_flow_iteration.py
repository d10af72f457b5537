"""Speed benchmark of the flow network: one iteration of GPT-3 175B on 1,024 H100 (TP 8, PP 8,
DP 16; examples/gpt3-175b-1024xh100.yaml), folded, with run.network=flow. Target: <= 5 s on a
2-core machine (issue 3). Prints one JSON line; not a timed test (DESIGN.md section 2).

    python benchmarks/bench_flow_iteration.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_iteration import timed_runs  # the same timing loop and figures
from dcsim.engine import Engine
from dcsim.network.flow_backend import FlowBackend
from dcsim.app.scenario import Scenario, load_scenario
from dcsim.app.simulate import build_cluster, cost_model_for, job_from_scenario
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
    cluster = build_cluster(sc)
    Engine(program, cluster, cost_model_for(sc.run.calibration, cluster.gpu_spec), network="flow",
           flow_backend=factory).run()
    net = backends[0].network
    return {"maxmin_solves": net.solves, "flow_sets": net.flow_sets}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sc = load_scenario(EXAMPLE, ["run.network=flow", "run.fold=auto"])
    print(json.dumps({
        "benchmark": "gpt3-175b-1024gpu-flow-iteration",
        "target_s": TARGET_S,
        **timed_runs(sc, args.repeats),
        **flow_counts(sc),
    }))


if __name__ == "__main__":
    main()
