"""`dcsim capacity FILE`: how many GPUs for a demand and a service level, by fleet simulation."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.table import Table

from dcsim import units
from dcsim.app.capacity_search.search import CapacityResult, absolute_paths, search
from dcsim.app.capacity_search.spec import load_capacity
from dcsim.app.scenario import ScenarioError


def run_capacity_file(path: Path, overrides: list[str] | None = None,
                      progress: Callable[[int, int], None] | None = None) -> CapacityResult:
    """Load a capacity file and search its node range."""
    spec, data, base = load_capacity(path, overrides)
    cluster = data.get("cluster") or {}
    if not isinstance(cluster, dict) or not cluster.get("preset"):
        raise ScenarioError("cluster.preset: dcsim capacity sizes a cluster of one building "
                            "block (a preset), not a node list")
    import topologies
    try:
        gpn = int(topologies.load_preset(cluster["preset"])["gpus_per_node"])
    except topologies.TopologyError as exc:
        raise ScenarioError(f"cluster.preset: {exc}") from None
    name = str(data.get("name") or path.stem)
    return search(name, absolute_paths(data, base), spec, gpn, progress=progress)


def capacity_json(r: CapacityResult) -> dict[str, Any]:
    """The --json object: recommendation (nodes, gpus) and every size tried."""
    rec = r.recommendation
    s = r.spec
    return {
        "name": r.name,
        "recommendation": None if rec is None else {"nodes": rec.nodes, "gpus": rec.gpus},
        "slo": s.slo.model_dump(), "decide_on": s.decide_on.value, "confidence": s.confidence,
        "seeds": s.seeds, "demand_scale": r.demand_scale,
        "candidates": [c.to_dict() for c in r.tried],
        "fleet_runs": r.runs, "wall_s": r.wall_s,
    }


def capacity_table(r: CapacityResult) -> Table:
    t = Table(title=f"{r.name}: cluster sizes tried (demand x{r.demand_scale:.3g}, "
                    f"{len(r.spec.seeds)} seeds each)", header_style="bold")
    for col in ("nodes", "GPUs", "p95 wait (mean)", f"{100 * r.spec.confidence:.0f}% interval",
                "jobs done", "utilization", "cost", "energy", "meets SLO"):
        t.add_column(col, justify="right", no_wrap=True)
    for c in r.tried:
        w = c.queue_wait_s_p95
        t.add_row(str(c.nodes), f"{c.gpus:,}",
                  units.format_duration(w.mean) if w.seeds else "-",
                  f"{units.format_duration(w.ci_low)} - {units.format_duration(w.ci_high)}"
                  if w.seeds else c.note[:40],
                  f"{100 * c.completed_share.mean:.1f}%" if w.seeds else "-",
                  f"{100 * c.utilization:.1f}%", f"${c.cost_usd / 1e6:.2f}M",
                  f"{c.energy_kwh / 1e3:,.0f} MWh", "yes" if c.meets_slo else "no")
    return t


def capacity_plot(r: CapacityResult) -> bytes:
    """Wait vs cluster size, with the interval and the target."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    pts = [c for c in r.tried if c.queue_wait_s_p95.seeds]
    xs = [c.gpus for c in pts]
    h = 3600.0
    ax.plot(xs, [c.queue_wait_s_p95.mean / h for c in pts], marker="o", label="p95 wait (mean)")
    ax.fill_between(xs, [c.queue_wait_s_p95.ci_low / h for c in pts],
                    [c.queue_wait_s_p95.ci_high / h for c in pts], alpha=0.25,
                    label=f"{100 * r.spec.confidence:.0f}% interval over seeds")
    if r.spec.slo.queue_wait_p95 is not None:
        ax.axhline(r.spec.slo.queue_wait_p95 / h, color="k", ls="--", lw=1, label="target")
    if r.recommendation is not None:
        ax.axvline(r.recommendation.gpus, color="g", lw=1, label="recommended")
    ax.set_xlabel("GPUs")
    ax.set_ylabel("p95 queueing delay (h)")
    ax.set_title(f"{r.name}: wait vs cluster size", fontsize=10)
    ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def capacity_cmd(
    file: Path = typer.Argument(..., help="fleet scenario YAML with a capacity: section"),
    set_: list[str] = typer.Option([], "--set", help="override a field: key.path=value"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write wait vs size as a PNG"),
) -> None:
    """The smallest cluster that meets a service level for a demand (fleet simulation)."""
    from dcsim.app.cli import err, fail
    from dcsim.errors import InputError
    from dcsim.app.cli import out as console
    from dcsim.app.console import terminal_progress
    from dcsim.app.plan import wide, write_atomic

    try:
        with terminal_progress(err, "working") as progress:
            r = run_capacity_file(file, list(set_), progress)
    except InputError as exc:
        fail(str(exc))
    if plot is not None:
        write_atomic(plot, capacity_plot(r))
    if as_json:
        sys.stdout.write(json.dumps(capacity_json(r)) + "\n")
        return
    wide(console).print(capacity_table(r))
    rec = r.recommendation
    if rec is None:
        console.print(f"no size up to {r.spec.nodes.max} nodes meets the service level")
    else:
        console.print(f"recommendation: {rec.nodes} nodes ({rec.gpus:,} GPUs); "
                      f"{r.runs} fleet runs in {r.wall_s:.1f} s", highlight=False)
