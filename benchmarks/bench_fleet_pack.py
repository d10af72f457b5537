"""Speed of one `dcsim fleet pack` run (policy, seed) on the openb default trace: the ATC'23
workload-inflation experiment (1,213 nodes, 6,212 GPUs, ~10.8k pods drawn). The authors' Go
simulator takes about 10 minutes per run on 2 vCPUs (kubernetes-scheduler-simulator README).

    python benchmarks/bench_fleet_pack.py [--policy fgd] [--seed 42] [--data DIR]

Prints one JSON line: wall seconds of the run (reading the CSVs excluded), peak RSS of the
process, and the allocation ratio at 100% arrived load. Not a timed test (DESIGN.md section 7).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcsim.fleet.packing import read_nodes, read_pods, run_pack  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "traces" / "alibaba-gpu-v2023"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", default="fgd")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    nodes = read_nodes(args.data / "openb_node_list_gpu_node.csv")
    pods = read_pods(args.data / "openb_pod_list_default.csv", {n.gpu_model for n in nodes})
    t0 = time.perf_counter()
    result = run_pack(nodes, pods, args.policy, args.seed)
    wall = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({
        "bench": "fleet_pack", "policy": args.policy, "seed": args.seed,
        "trace": "openb_pod_list_default", "pods_arrived": result.pods_arrived,
        "wall_s": round(wall, 2), "target_s": 30, "peak_rss_mib": round(peak_mib, 1),
        "allocation_pct_at_100": result.allocation_pct_by_arrived_pct["100"],
        "host": platform.processor() or platform.machine()}))


if __name__ == "__main__":
    main()
