"""Accuracy and speed of trace replay: a recorded tiny-GPT DDP step (Kineto trace) replayed on
its own shape (cpu-host, dp 2) against the step time measured while recording it.

    python benchmarks/bench_replay.py [--record N]

Without --record: the committed fixture (tests/fixtures/kineto_tinygpt_ddp2.json). With
--record N: N fresh recordings (one each, no median pick) to show the run-to-run spread.
Prints one JSON line; not a timed test (DESIGN.md section 7).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcsim.app.replay import replay  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "kineto_tinygpt_ddp2.json"
CALIBRATIONS = ("recorded", "cpu-2core")


def errors(trace: Path, measured_s: float) -> dict[str, float]:
    """Replay error (%) against the measured step, per calibration."""
    out = {}
    for cal in CALIBRATIONS:
        r = replay(trace, preset="cpu-host", dp=2, calibration=cal)
        out[cal] = round(100.0 * (r.step_s / measured_s - 1.0), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", type=int, default=0, help="fresh recordings to replay")
    args = ap.parse_args()
    runs = []
    if args.record:
        sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
        from record_kineto_trace import NAME, record

        for _ in range(args.record):
            with tempfile.TemporaryDirectory() as tmp:
                meta = record(Path(tmp), attempts=1)
                runs.append({"step_s": meta["step_s"],
                             "error_pct": errors(Path(tmp) / f"{NAME}.json", meta["step_s"])})
    else:
        meta = json.loads(FIXTURE.with_suffix("").with_suffix(".meta.json").read_text())
        runs.append({"step_s": meta["step_s"], "error_pct": errors(FIXTURE, meta["step_s"])})
    t0 = time.perf_counter()
    replay(FIXTURE, preset="dgx-h100", dp=8)
    wall = time.perf_counter() - t0
    summary = {cal: {"min": min(r["error_pct"][cal] for r in runs),
                     "median": statistics.median(r["error_pct"][cal] for r in runs),
                     "max": max(r["error_pct"][cal] for r in runs)} for cal in CALIBRATIONS}
    print(json.dumps({"bench": "replay", "recordings": len(runs), "runs": runs,
                      "error_pct": summary, "import_and_replay_wall_s": round(wall, 4)}))


if __name__ == "__main__":
    main()
