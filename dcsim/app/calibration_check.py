"""`dcsim calibrate check`: a real tiny-GPT DDP step measured against the simulator's prediction
for the same model, layout and calibration profile: the honest end-to-end test of the chain.

Besides the step, both sides are split into phases: measured forward (with the loss), backward
(with DDP's gradient all-reduce and bucket copies) and optimizer (step and zero_grad); predicted
the same phases from the simulated program priced by the same cost model (`predicted_phases`).

`python -m dcsim.app.calibration_check --runs 3 --out calibrate/profiles/cpu-2core.check.json`
measures the check several times and saves every run and their spread (what
notebooks/calibration.ipynb plots).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dcsim.app.scenario import load_scenario
from dcsim.app.profiles import committed_profiles
from dcsim.app.simulate import simulate


@dataclass
class CheckResult:
    measured_step_s: float
    predicted_step_s: float
    error_pct: float
    measured: dict[str, float]
    predicted: dict[str, Any]
    profile: str
    device: str
    world_size: int
    model: dict[str, Any]
    plot: str | None = None
    # predicted forward / backward / exposed DP communication / optimizer, from the program
    predicted_phases: dict[str, float] = field(default_factory=dict)
    created: str = ""
    loadavg: list[float] = field(default_factory=list)  # 1/5/15-min load when the check started
    # Cores other processes used while the check measured (Linux; `others_cores_during`). The
    # ranks need a core each: on the 2-core machine another process holding a core doubled the
    # step, so such a run is not comparable.
    busy_cores: float | None = None
    # The device the profile was measured on, and whether that is a machine like this one: a
    # profile of another machine predicts that machine, not the step measured here.
    profile_device: str = ""
    profile_measured_here: bool = True
    # Why the profile is not this machine's ("" when it is): recorded identity, or timings
    mismatch: str = ""
    # A few of the profile's own kernel samples re-timed here (calibrate/fingerprint.py)
    fingerprint: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tiny_scenario(cfg: Any, world_size: int, profile: str, preset: str) -> dict[str, Any]:
    """The scenario of the tiny GPT that calibrate.tinygpt trains (same shapes, same layout)."""
    return {
        "name": "calibrate-check-tiny-gpt",
        "cluster": {"preset": preset, "nodes": 1},
        "workload": {
            "model": {"name": "tiny-gpt", "layers": cfg.layers, "hidden": cfg.hidden,
                      "heads": cfg.heads, "ffn_hidden": cfg.ffn_hidden, "vocab": cfg.vocab,
                      "activation": "gelu", "tied_embeddings": False, "dropout": False},
            "seq_len": cfg.seq_len,
            "precision": cfg.precision,
            # torch DDP: one data-parallel step, gradients bucketed as calibrate.tinygpt buckets
            # them (its explicit bucket size: no separate first bucket)
            "parallelism": {"dp": world_size,
                            "ddp_bucket_params": int(getattr(cfg, "ddp_bucket_params", 6_553_600))},
            "batch": {"global": cfg.micro_batch * world_size, "micro": cfg.micro_batch},
            "flash_attention": True,  # scaled_dot_product_attention never stores s x s scores
        },
        "run": {"network": "analytical", "fold": "auto", "calibration": profile},
    }


def predicted_phases(scenario: dict[str, Any], res: Any) -> dict[str, float]:
    """The simulated step split as the measurement splits it: forward kernels (with the loss),
    backward kernels, exposed DP communication, optimizer; priced by the scenario's cost model
    on its critical (here: only) rank."""
    from dcsim.app.rank_order import resolve_rank_order
    from dcsim.app.simulate import build_cluster, cost_model_for, job_from_scenario
    from workloads.training import build_program

    sc = load_scenario(scenario)
    job, cluster = job_from_scenario(sc), build_cluster(sc)
    job = resolve_rank_order(job, cluster)[0]
    costs = cost_model_for(sc.run.calibration, cluster.gpu_spec)
    program = build_program(job, fold=True)
    fwd = bwd = 0.0
    for op in program.ranks[0].ops:
        if op.kind != "compute" or op.category != "compute":
            continue
        t = op.repeat * sum(costs.kernel_time(k, cluster.gpu_spec).time_s for k in op.kernels)
        if op.label.startswith("F"):
            fwd += t
        else:
            bwd += t
    b = res.breakdown
    return {"forward_s": fwd, "backward_s": bwd, "comm_s": sum(b.exposed_comm_s.values()),
            "optimizer_s": b.optimizer_s, "step_s": res.iteration_s}


def _cpu_busy_s() -> float | None:
    """CPU seconds all cores have spent busy since boot (Linux /proc/stat), None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        busy = sum(vals[:8]) - vals[3] - vals[4]  # all but idle and iowait (guest is in user)
        return busy / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def busy_cores(seconds: float = 1.0) -> float | None:
    """Cores in use (by anything) over the next `seconds`; None where unreadable."""
    import time

    b0, t0 = _cpu_busy_s(), time.monotonic()
    time.sleep(seconds)
    b1, t1 = _cpu_busy_s(), time.monotonic()
    if b0 is None or b1 is None:
        return None
    return max(0.0, (b1 - b0) / (t1 - t0))


def others_cores_during(fn: Any) -> tuple[Any, float | None]:
    """Run `fn()`; also return how many cores other processes used meanwhile: the machine's busy
    CPU time less this process's and its (finished, reaped) children's, over the wall time."""
    import resource
    import time

    def own() -> float:
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    b0, o0, t0 = _cpu_busy_s(), own(), time.monotonic()
    out = fn()
    b1, o1, t1 = _cpu_busy_s(), own(), time.monotonic()
    if b0 is None or b1 is None or t1 <= t0:
        return out, None
    return out, max(0.0, ((b1 - b0) - (o1 - o0)) / (t1 - t0))




def profile_fit(meta_profile: Any, device: str) -> tuple[str, dict[str, Any]]:
    """Why a profile does not describe this machine ("" when it does) and the fingerprint: its
    recorded device and CPU identity first, then (CPUs) a few seconds re-timing its samples."""
    from calibrate.device import mismatch

    reasons = mismatch(meta_profile.metadata, device)
    if reasons:
        return "; ".join(reasons), {}
    if device != "cpu":
        return "", {}
    from calibrate.fingerprint import fingerprint

    fp = fingerprint(meta_profile)
    return ("" if fp.agrees else fp.describe()), fp.to_dict()


def choose_profile(device: str) -> str:
    """The committed profile measured on a machine like this one (`--profile auto`): same device,
    cores and recorded CPU identity, confirmed by fingerprint timings; a CalibrationInputError
    naming each candidate and why it was passed over when none fits."""
    from calibrate.device import CalibrationInputError, cpu_count, this_device_name
    from dcsim.profile import load_profile

    seen = []
    for path in committed_profiles():
        why, _ = profile_fit(load_profile(path), device)
        if not why:
            return path.stem
        seen.append(f"{path.stem}: {why}")
    raise CalibrationInputError(
        f"--profile auto: no committed profile describes this machine ({this_device_name(device)}, "
        f"{cpu_count()} cores); measure it with `dcsim calibrate run --quick --device {device} "
        f"--out FILE` (about 2 minutes) and pass --profile FILE; passed over: "
        f"{'; '.join(seen) or 'none committed'}")


def run_check(device: str = "cpu", profile: str = "auto", world_size: int = 2,
              steps: int = 10, plot_path: Path | None = None) -> CheckResult:
    """Measure the tiny GPT's DDP step here and predict it from `profile`."""
    from calibrate.device import check_device
    from calibrate.tinygpt import TinyGPTConfig, measure_ddp_step  # torch only here

    check_device(device)
    if profile == "auto":
        profile = choose_profile(device)
    profile_device, why = "", ""
    fp: dict[str, Any] = {}
    if profile != "spec":
        from dcsim.app.profiles import load_cost_model
        model = load_cost_model(profile, "--profile")  # a bad profile fails before measuring
        profile_device = model.profile.metadata.device_name
        why, fp = profile_fit(model.profile, device)
    cfg = TinyGPTConfig()
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else []
    measured, busy = others_cores_during(
        lambda: measure_ddp_step(cfg, world_size=world_size, device=device, steps=steps))
    preset = "cpu-host" if device == "cpu" else "dgx-h100"
    scenario = tiny_scenario(cfg, world_size, profile, preset)
    res = simulate(load_scenario(scenario))
    err = 100.0 * (res.iteration_s - measured.step_s) / measured.step_s
    meas = {"forward_s": measured.forward_s, "backward_s": measured.backward_s,
            "optimizer_s": measured.optimizer_s, "step_s": measured.step_s,
            "step_p10_s": measured.step_p10_s, "step_p90_s": measured.step_p90_s}
    pred = {"breakdown": asdict(res.breakdown), "provenance": asdict(res.provenance)}
    out = CheckResult(measured.step_s, res.iteration_s, err, meas, pred, profile, device,
                      world_size, asdict(cfg), predicted_phases=predicted_phases(scenario, res),
                      created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      loadavg=load, busy_cores=busy, profile_device=profile_device,
                      profile_measured_here=not why, mismatch=why, fingerprint=fp)
    if plot_path is not None:
        out.plot = str(plot_comparison(out, plot_path))
    return out


# A run with at least this many cores busy around it (other processes) is not comparable.
BUSY_CORES = 0.5


def summarize_runs(runs: list[CheckResult]) -> dict[str, Any]:
    """Median and range of several checks (the machine is shared and noisy: each run compares
    its own measurement with the prediction); over the quiet runs when there are any, with how
    many runs were left out as busy."""
    quiet = [r for r in runs if (r.busy_cores or 0.0) < BUSY_CORES]
    used = quiet or runs
    meas = [r.measured_step_s for r in used]
    errs = [r.error_pct for r in used]
    return {
        "runs": len(runs),
        "quiet_runs": len(quiet),
        "measured_step_median_s": statistics.median(meas),
        "measured_step_min_s": min(meas),
        "measured_step_max_s": max(meas),
        "predicted_step_s": statistics.median(r.predicted_step_s for r in runs),
        "error_pct_median": statistics.median(errs),
        "error_pct_min": min(errs),
        "error_pct_max": max(errs),
        "busy_runs": sum(1 for r in runs if (r.busy_cores or 0.0) >= BUSY_CORES),
        "error_pct_all_runs": [r.error_pct for r in runs],
    }


def save_checks(runs: list[CheckResult], path: Path) -> Path:
    """Write several check results and their summary as JSON (what the notebook reads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"summary": summarize_runs(runs), "runs": [r.to_dict() for r in runs]}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def plot_comparison(r: CheckResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    draw_comparison(ax, r)
    fig.tight_layout()
    from dcsim.files import atomic_path

    with atomic_path(Path(path), "--plot") as tmp:  # whole or not at all
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".").lower() or "png")
    plt.close(fig)
    return path


def draw_comparison(ax: Any, r: CheckResult | dict[str, Any]) -> None:
    """Stacked bars, measured phases against predicted phases, on a matplotlib axis."""
    d = r.to_dict() if isinstance(r, CheckResult) else r
    m, p = d["measured"], d.get("predicted_phases") or {}
    if not p:  # an old result without phases: the engine's breakdown
        b = d["predicted"]["breakdown"]
        p = {"forward_s": b["compute_s"], "backward_s": 0.0, "comm_s": sum(b["exposed_comm_s"].values()),
             "optimizer_s": b["optimizer_s"]}
    rows = [("measured", [("forward", m["forward_s"]), ("backward + DDP all-reduce", m["backward_s"]),
                          ("optimizer", m["optimizer_s"])]),
            ("predicted", [("forward", p["forward_s"]), ("backward", p["backward_s"]),
                           ("DP all-reduce (exposed)", p["comm_s"]), ("optimizer", p["optimizer_s"])])]
    colors = {"forward": "C0", "backward": "C1", "backward + DDP all-reduce": "C1",
              "DP all-reduce (exposed)": "C3", "optimizer": "C2"}
    seen: set[str] = set()
    for name, parts in rows:
        left = 0.0
        for label, v in parts:
            ax.barh([name], [v * 1e3], left=[left * 1e3], color=colors[label],
                    hatch="//" if label.startswith("DP") else None,
                    label=None if label in seen else label, alpha=0.85)
            seen.add(label)
            left += v
    ax.set_xlabel("milliseconds per step")
    ax.set_title(f"tiny GPT, DDP x{d['world_size']} on {d['device']}: "
                 f"{d['measured_step_s'] * 1e3:.1f} ms measured, {d['predicted_step_s'] * 1e3:.1f} "
                 f"predicted ({d['error_pct']:+.1f}%)", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run `dcsim calibrate check` several times and save "
                                 "every run (e.g. calibrate/profiles/cpu-2core.check.json).")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--profile", default="auto")
    ap.add_argument("--world-size", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--plot", type=Path, default=None, help="also write a PNG of each run (RUN number appended)")
    ap.add_argument("--wait-idle", type=float, default=120.0,
                    help="before each run, wait up to this many seconds for the machine to be idle")
    a = ap.parse_args(argv)
    runs = []
    for i in range(a.runs):
        waited = 0.0
        while a.device == "cpu" and waited < a.wait_idle and (busy_cores(2.0) or 0.0) >= BUSY_CORES:
            waited += 2.0
        plot = None if a.plot is None else a.plot.with_name(f"{a.plot.stem}-{i + 1}{a.plot.suffix or '.png'}")
        r = run_check(a.device, a.profile, a.world_size, a.steps, plot)
        runs.append(r)
        busy = "" if r.busy_cores is None else f" ({r.busy_cores:.2f} cores used by other processes meanwhile)"
        print(f"run {i + 1}: measured {r.measured_step_s * 1e3:.1f} ms, predicted "
              f"{r.predicted_step_s * 1e3:.1f} ms, error {r.error_pct:+.1f}%{busy}", flush=True)
    save_checks(runs, a.out)
    s = summarize_runs(runs)
    print(f"median error {s['error_pct_median']:+.1f}% (range {s['error_pct_min']:+.1f}% .. "
          f"{s['error_pct_max']:+.1f}%) over {s['quiet_runs']} quiet run(s), {s['busy_runs']} busy; wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
