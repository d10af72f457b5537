"""`dcsim ...`: the front door (typer + rich).

Bad input (the InputError family, click usage errors, OS errors on paths the user named) exits 2
with one line; Ctrl-C exits 130 with one line; anything else is a bug and keeps its traceback
(dcsim/guard.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from dcsim import units
from dcsim.app.console import stderr_console, stdout_console, terminal_progress
from dcsim.guard import GuardedGroup
from dcsim.files import (IMAGE_SUFFIXES, atomic_path, atomic_write_text, check_output_dir,
                             check_output_file, read_input_text)
from dcsim.app.run_metadata import split_run_metadata
from dcsim.errors import InputError
from dcsim.results import SimulationResult

app = typer.Typer(cls=GuardedGroup, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="dcsim: simulate AI training clusters before you buy, build or book them.")
out = stdout_console()
err = stderr_console()

NETWORKS = ("analytical", "flow")


def fail(message: str, code: int = 2) -> None:
    """Print one error line on stderr and exit (2: the user's input is wrong)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)


def _summary_table(r: SimulationResult, timing: bool = True) -> Table:
    t = Table(title=f"{r.name}: {r.gpus} GPUs", show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("iteration", units.format_duration(r.iteration_s)),
        ("tokens/s", f"{r.tokens_per_s:,.0f}"),
        ("model TFLOP/s per GPU (MFU)", f"{r.model_tflops_per_gpu:.1f} ({100 * r.mfu:.1f}%)"),
        ("hardware TFLOP/s per GPU (HFU)",
         f"{r.hardware_tflops_per_gpu:.1f} ({100 * r.hfu:.1f}%)"),
        ("memory per GPU", f"{units.format_bytes(r.memory_per_gpu_bytes)} "
                           f"({'fits' if r.fits_in_memory else 'DOES NOT FIT'} in "
                           f"{units.format_bytes(r.memory['capacity_bytes'])})"),
        ("time to train", units.format_duration(r.time_to_train_s)
         if r.time_to_train_s else "(no train.tokens)"),
    ]
    if r.checkpoint and r.checkpoint.count:
        unpriced = f" ({r.checkpoint.note})" if r.checkpoint.write_s_each == 0 else ""
        rows.append(("  of which checkpoints", f"{r.checkpoint.count} x "
                     f"{units.format_duration(r.checkpoint.write_s_each)}{unpriced}"))
    b = r.breakdown
    parts = [("compute", b.compute_s), ("optimizer", b.optimizer_s),
             *[(f"exposed {d} comm", v) for d, v in b.exposed_comm_s.items() if v > 0],
             ("pipeline bubble", b.pipeline_bubble_s), ("storage I/O", b.io_s)]
    for name, v in parts:
        if v > 0 or name == "compute":
            rows.append((f"  {name}", f"{units.format_duration(v)} "
                                      f"({100 * v / r.iteration_s:.1f}%)"))
    p = r.provenance
    rows.append(("costs from", f"{p.calibration}: measured {100 * p.measured:.0f}%, "
                               f"fitted {100 * p.fitted:.0f}%, spec {100 * p.spec:.0f}%"))
    if p.calibration != "spec" and p.measured + p.fitted == 0:
        # the profile was measured on another device: say so here, not only in the JSON
        gpu = (r.cluster.get("server") or {}).get("gpu", "GPU") if r.cluster else "GPU"
        rows.append(("  note", f"{p.note or 'profile of another device'}, not this "
                               f"scenario's {gpu}: spec roofline scaled by its efficiency"))
    order = r.rank_order
    if order and order["order"] != "tp-cp-dp-pp":  # Megatron's default order goes unsaid
        rows.append(("rank order", f"{order['order']} ({order['reason']})"))
    wall = f", {units.format_duration(r.wall_s)}" if timing else ""
    rows.append(("simulated", f"{r.simulated_ranks} ranks, {r.events:,} ops{wall}"))
    for key, value in rows:
        t.add_row(key, value)
    return t


@app.command()
def simulate(
    file: Path = typer.Argument(..., help="scenario YAML file"),
    set_: list[str] = typer.Option([], "--set", help="override a field: key.path=value"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="write result.json here"),
    calibration: Optional[str] = typer.Option(None, "--calibration",
                                              help="spec | profile name | profile path"),
    trace: Optional[Path] = typer.Option(None, "--trace",
                                         help="write the timeline as a Chrome trace (Perfetto)"),
    compare_alone: bool = typer.Option(False, "--compare-alone",
                                       help="several jobs: also run each alone on the same "
                                            "GPUs and show its slowdown"),
    timing: bool = typer.Option(True, "--timing/--no-timing",
                                help="--no-timing: leave out wall time, host and version "
                                     "(the run metadata), so identical runs diff clean"),
) -> None:
    """Simulate one training iteration of a scenario and report time, MFU, memory."""
    from dcsim.app.scenario import load_scenario
    from dcsim.app.simulate import simulate as run

    read_input_text(file, "scenario file")  # a directory, unreadable or non-UTF-8: one line
    if out_dir is not None:
        check_output_dir(out_dir, "--out")
    if trace is not None:
        check_output_file(trace, "--trace")
    if calibration and calibration != "spec":
        from dcsim.app.profiles import resolve_profile
        resolve_profile(calibration, "--calibration")  # named as the flag, not run.calibration
    overrides = list(set_) + ([f"run.calibration={calibration}"] if calibration else [])
    sc = load_scenario(file, overrides)
    if compare_alone and not sc.jobs:
        raise InputError("--compare-alone: the scenario has one workload, not several jobs")
    result: Any
    with terminal_progress(err, f"simulating {sc.name}", "ops") as progress:
        if compare_alone:
            from dcsim.app.multijob import simulate_jobs
            result = simulate_jobs(sc, compare_alone=True)
        else:
            result = run(sc, progress=progress)
    if trace is not None:
        _write_trace(result, trace)
    data = split_run_metadata(result.to_dict(), timing=timing)
    if out_dir:
        atomic_write_text(out_dir / "result.json", json.dumps(data, indent=2) + "\n", "--out")
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
    elif result.multi_job:
        from dcsim.app.multijob import print_multijob  # several jobs on one cluster
        print_multijob(result, out, timing)
    else:
        out.print(_summary_table(result, timing))


def _write_trace(result: Any, path: Path) -> None:
    """--trace: the Chrome trace, written under a temporary name and renamed."""
    from dcsim.trace import write_chrome_trace

    if getattr(result, "timing", None) is None:
        raise InputError("--trace: this scenario's result has no op timings to write "
                         "(several jobs on one cluster are not traced yet)")
    with atomic_path(path, "--trace") as tmp:
        write_chrome_trace(result, tmp)


@app.command()
def validate(
    network: str = typer.Option("analytical", help="analytical | flow"),
    validation_dir: Optional[Path] = typer.Option(
        None, "--dir", help="folder with the public validation files (default: bundled copy)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Predicted vs published: every public table, with its mean and worst error and the
    costs (calibration profile) that priced it."""
    from dcsim.app.validate import bundled_validation_dir, render, validation_report

    if network not in NETWORKS:
        raise InputError(f"--network: got {network!r}; use one of {', '.join(NETWORKS)}")
    if validation_dir is not None and not validation_dir.is_dir():
        raise InputError(f"--dir {validation_dir}: not a directory")
    folder = validation_dir or bundled_validation_dir()
    path = folder / "megatron-sc21-table1.yaml"
    if not path.exists():
        fail(f"--dir: {path} not found")
    read_input_text(path, "--dir")
    tables = validation_report(folder, network)
    if as_json:
        mega = tables[0]
        summary: dict[str, Any] = {
            "tables": [t.to_dict() for t in tables],
            "megatron_sc21_table1": mega.to_dict()["rows"],
            "mean_abs_error_pct": mega.mean_abs_error_pct,
            "max_abs_error_pct": mega.max_abs_error_pct,
        }
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    render(tables, out)


# --- mounted command groups ---------------------------------------------------------------
from calibrate.cli import app as calibrate_app  # noqa: E402  (imports torch lazily)
from dcsim.app.topo_cli import collective_cmd, topo_app  # noqa: E402

app.add_typer(calibrate_app, name="calibrate")
app.add_typer(topo_app, name="topo")
app.command("collective")(collective_cmd)
from dcsim.app.replay import replay_cmd  # noqa: E402

app.command("replay")(replay_cmd)
from dcsim.app.fleet import fleet_app  # noqa: E402

app.add_typer(fleet_app, name="fleet")
from dcsim.app.plan import plan_cmd  # noqa: E402  (planning, sweeps, reports, capacity)

app.command("plan")(plan_cmd)
from dcsim.app.sweep import sweep_cmd  # noqa: E402

app.command("sweep")(sweep_cmd)
from dcsim.app.report import report_cmd  # noqa: E402

app.command("report")(report_cmd)
from dcsim.app.capacity import capacity_cmd  # noqa: E402

app.command("capacity")(capacity_cmd)


@calibrate_app.command("check")
def calibrate_check(
    device: str = typer.Option("cpu", help="cpu | cuda"),
    profile: str = typer.Option("auto", help="auto (the committed profile measured on a "
                                "machine like this one) | spec | profile name | path"),
    world_size: int = typer.Option(2, help="data-parallel ranks"),
    steps: int = typer.Option(10, help="timed training steps"),
    plot: Optional[Path] = typer.Option(None, help="write a PNG comparing the two"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train a tiny GPT with DDP for real and compare its step time with the prediction."""
    from calibrate.device import require_torch
    from dcsim.app.calibration_check import run_check

    if steps < 1:
        raise InputError(f"--steps must be at least 1, got {steps}")
    if plot is not None:
        check_output_file(plot, "--plot", IMAGE_SUFFIXES)
    require_torch("dcsim calibrate check")
    r = run_check(device, profile, world_size, steps, plot)
    if not r.profile_measured_here:
        err.print(f"warning: profile {r.profile} was measured on {r.profile_device}, not on "
                  f"this machine ({r.mismatch or 'another machine'}): its prediction is for that "
                  "machine, not this step; measure this one with `dcsim calibrate run --quick "
                  f"--device {device} --out FILE` and pass --profile FILE",
                  highlight=False, markup=False)
    if as_json:
        sys.stdout.write(json.dumps(r.to_dict()) + "\n")
        return
    out.print(f"measured step  {units.format_duration(r.measured_step_s)}")
    out.print(f"predicted step {units.format_duration(r.predicted_step_s)} "
              f"(profile {r.profile})")
    out.print(f"error          {r.error_pct:+.1f}%")


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:  # outside a command (while importing, parsing)
        sys.stderr.write("\ninterrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
