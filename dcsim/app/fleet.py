"""`dcsim fleet run FILE` (and `dcsim fleet pack ...`): a datacenter over months.

Python entry point: `run_fleet(scenario_dict_or_path, overrides) -> FleetResult` (`.summary`,
`.jobs`, `.series`); `dcsim capacity` builds on it.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.table import Table

from dcsim import units
from dcsim.app.fleet_setup import (
    Pricer,
    layout_from_node_list,
    layout_from_preset,
    load_fleet_scenario,
    prepare_jobs,
    storage_tiers,
)
from dcsim.errors import InputError
from dcsim.fleet import FleetResult, simulate_fleet

fleet_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Many jobs on one cluster over months: scheduler, failures, "
                             "checkpoints, storage, power and cost.")
out = Console()
err = Console(stderr=True)


def run_fleet(source: str | Path | dict[str, Any], overrides: list[str] | None = None,
              progress: Callable[[float, float], None] | None = None,
              price_cache: dict[str, Any] | None = None) -> FleetResult:
    """Load a fleet scenario, price its training jobs, run it; ScenarioError on bad input.
    `price_cache`: a dict kept across calls (e.g. a sweep over cluster sizes) so a job shape is
    priced by the single-job simulator once for all of them."""
    t0 = time.perf_counter()
    sc, base = load_fleet_scenario(source, overrides)
    cluster = None
    if sc.cluster.node_list is not None:
        p = Path(sc.cluster.node_list)
        layout = layout_from_node_list(p if p.exists() or p.is_absolute() else base / p)
    else:
        layout, cluster = layout_from_preset(sc)
    tiers = storage_tiers(sc, cluster)
    pricer = Pricer(sc, layout.n_nodes, layout.nodes_per_leaf(), max(layout.max_gpus_per_node, 1),
                    shared=price_cache)
    jobs = prepare_jobs(sc, base, pricer, layout)
    priced_before = pricer.wall_s
    r = simulate_fleet(sc.fleet, layout, jobs, tiers, pricer.speed, sc.name, progress)
    r.summary["pricing"] = {"shapes_priced": len(pricer.cache), "shapes_reused": pricer.reused,
                            "pricing_wall_s": pricer.wall_s,
                            "network": sc.run.network, "calibration": sc.run.calibration}
    # the event loop alone (training jobs placed spread are priced while it runs)
    r.summary["fleet_wall_s"] = r.wall_s - (pricer.wall_s - priced_before)
    r.wall_s = time.perf_counter() - t0
    return r


@contextmanager
def _time_progress() -> Iterator[Callable[[float, float], None] | None]:
    """A bar of simulated days on a terminal (nothing when piped: --json stays one object)."""
    if not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("simulating"), BarColumn(), TextColumn("day {task.completed:.1f}"
                  "/{task.total:.1f}"), TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("fleet", total=1.0)
        last = [0.0]

        def update(t: float, horizon: float) -> None:
            if t - last[0] >= horizon / 200:
                last[0] = t
                bar.update(task, completed=t / 86400, total=horizon / 86400)
        yield update


def _gb(x: float | None) -> str:
    """Bytes as GB for the summary table; '-' for unlimited."""
    return "unlimited" if x is None else f"{x / 1e9:,.0f} GB"


def summary_table(r: FleetResult) -> Table:
    """The terminal summary of a fleet run."""
    s = r.summary
    t = Table(title=f"{r.name}: {units.format_duration(s['horizon_s'])}", header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    pct = lambda d: " / ".join("-" if d[k] is None else units.format_duration(d[k])  # noqa: E731
                               for k in ("p50", "p95", "p99"))
    gh, pw, cs = s["gpu_hours"], s["power"], s["checkpoint_storage"]
    rows = [("jobs submitted / started / completed",
             f"{s['jobs']['submitted']:,} / {s['jobs']['started']:,} / {s['jobs']['completed']:,}"),
            ("GPU utilization (peak GPUs allocated)",
             f"{100 * s['utilization']:.1f}% ({s['allocated_gpus_peak']:,.0f})"),
            ("queue wait p50 / p95 / p99", pct(s["queue_wait_s"])),
            ("job completion p50 / p95 / p99", pct(s["jct_s"])),
            ("effective training time ratio", "-" if s["ettr"] is None else f"{100 * s['ettr']:.1f}%"),
            ("interruptions", f"{sum(s['interruptions'].values()):,}"),
            ("GPU-hours used / idle / down", f"{gh['used']:,.0f} / {gh['idle']:,.0f} / {gh['down']:,.0f}"),
            ("GPU-hours lost (rework + restarts)", f"{gh['lost']:,.0f}"),
            ("energy (facility)", f"{s['energy_kwh'] / 1000:,.1f} MWh"),
            ("cost", f"${s['cost_usd']:,.0f}"),
            ("carbon", f"{s['carbon_kg'] / 1000:,.1f} t CO2"),
            ("power cap per GPU (switches / storage)",
             f"{'-' if pw['gpu_cap_w'] is None else format(pw['gpu_cap_w'], ',.0f') + ' W'} "
             f"({pw['switches_w'] / 1000:,.1f} / {pw['storage_w'] / 1000:,.1f} kW)"),
            ("checkpoint tier: peak used (capacity)",
             f"{_gb(cs['peak_used_bytes'])} ({_gb(cs['capacity_bytes'])})"),
            ("  deleted (finished jobs) / did not fit",
             f"{cs['finished_checkpoints_deleted']:,} / {cs['checkpoints_not_fit']:,} "
             f"({len(cs['jobs_with_checkpoints_not_fit'])} jobs)"),
            ("simulated in", f"{r.wall_s:.2f} s ({s['pricing']['shapes_priced']} shapes priced "
                             f"in {s['pricing']['pricing_wall_s']:.2f} s)")]
    for cause, n in reversed(list(s["interruptions"].items())[:6]):
        rows.insert(6, (f"  {cause}", str(n)))
    for k, v in rows:
        t.add_row(k, v)
    return t


@fleet_app.command("run")
def run_cmd(
    file: Path = typer.Argument(..., help="fleet scenario YAML"),
    set_: list[str] = typer.Option([], "--set", help="override a field: key.path=value"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="write Parquet, JSON, plots, "
                                           "timeline here"),
    no_plots: bool = typer.Option(False, "--no-plots", help="skip the PNG plots"),
) -> None:
    """Simulate a fleet scenario: jobs, scheduler, failures, checkpoints, power, cost."""
    try:
        with _time_progress() as progress:
            r = run_fleet(file, list(set_), progress)
    except (InputError, FileNotFoundError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if out_dir is not None:
        from dcsim.app.fleet_outputs import write_outputs
        try:
            write_outputs(r, out_dir, plots=not no_plots)
        except OSError as exc:
            err.print(f"[bold red]error:[/] --out {out_dir}: {exc.strerror or exc}",
                      highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(json.dumps(r.to_dict()) + "\n")
    else:
        out.print(summary_table(r))


def _mount_pack() -> None:
    """`dcsim fleet pack` is the ATC'23 fragmentation experiment (dcsim/app/fleet_pack.py)."""
    try:
        from dcsim.app.fleet_pack import pack_cmd
    except ImportError:
        return
    fleet_app.command("pack")(pack_cmd)


_mount_pack()
