"""Fleet speed: the Llama 3 54-day case on 16,384 GPUs and the quarter on 4,096 GPUs (item 12 of
issue 12). Prints one JSON line: total wall time per case, split into pricing (the single-job
simulator, once per shape), cluster layout and the fleet event loop, and peak RSS."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {"llama3_54days": "examples/fleet/llama3-405b-54days.yaml",
         "quarter_4096": "examples/fleet/quarter-4096.yaml",
         "openb_default": "examples/fleet/openb-default.yaml"}


def one(path: str) -> dict:
    """Run one case in this process (the parent runs each in its own, so RSS is the case's)."""
    sys.path.insert(0, str(ROOT))
    from dcsim.app.fleet import run_fleet

    t0 = time.perf_counter()
    r = run_fleet(ROOT / path)
    wall = time.perf_counter() - t0
    s = r.summary
    return {"wall_s": round(wall, 2), "fleet_loop_s": round(s["fleet_wall_s"], 2),
            "pricing_s": round(s["pricing"]["pricing_wall_s"], 2),
            "setup_s": round(wall - s["fleet_wall_s"] - s["pricing"]["pricing_wall_s"], 2),
            "shapes_priced": s["pricing"]["shapes_priced"], "jobs": s["jobs"]["submitted"],
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "utilization": round(s["utilization"], 4), "ettr": s["ettr"]}


def main() -> None:
    if len(sys.argv) > 1:
        print(json.dumps(one(sys.argv[1])))
        return
    out = {}
    for name, path in CASES.items():
        p = subprocess.run([sys.executable, __file__, path], capture_output=True, text=True,
                           cwd=ROOT)
        out[name] = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else \
            {"error": p.stderr.strip().splitlines()[-1:]}
    print(json.dumps({"benchmark": "fleet", **out}))


if __name__ == "__main__":
    main()
