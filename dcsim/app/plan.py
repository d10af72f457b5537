"""`dcsim plan FILE`: the best layouts of a workload on a cluster, ranked and confirmed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from dcsim import units
from dcsim.app.console import terminal_progress
from dcsim.app.planning.search import PlanResult, Ranked, agreement_pct, run_plan
from dcsim.app.planning.spec import load_plan


def result_contract(r: Ranked) -> dict[str, Any]:
    """A row's result in the `simulate --json` contract: the confirming simulation's when
    there is one, else the fast model's figures (marked `"source": "fast"`)."""
    if r.confirmed is not None:
        d = r.confirmed.to_dict()
        d.pop("scenario", None)  # given beside it, once
        d["source"] = "simulate"
        return d
    bd = r.est.breakdown
    return {
        "source": "fast", "iteration_s": r.est.iteration_s, "tokens_per_s": r.tokens_per_s,
        "mfu": r.mfu, "memory_per_gpu_bytes": r.memory_per_gpu_bytes,
        "fits_in_memory": r.memory_per_gpu_bytes <= r.capacity_bytes,
        "time_to_train_s": r.time_to_train_s, "gpus": r.gpus,
        "breakdown": {"compute_s": bd.get("compute", 0.0),
                      "optimizer_s": bd.get("optimizer", 0.0),
                      "exposed_comm_s": {d: bd.get(d, 0.0) for d in ("tp", "pp", "dp", "cp", "ep")},
                      "pipeline_bubble_s": bd.get("pipeline_bubble", 0.0), "io_s": 0.0},
    }


def plan_json(res: PlanResult, name: str | None = None) -> dict[str, Any]:
    """The `--json` object: counts, rejections by reason, the best rows, wall time."""
    best = []
    for i, r in enumerate(res.best):
        best.append({
            "rank": i + 1, "layout": r.cand.label(), **r.cand.fields(),
            "scenario": r.scenario, "result": result_contract(r),
            "fast": {"iteration_s": r.est.iteration_s, "breakdown": r.est.breakdown},
            "agreement_pct": agreement_pct(r), "time_to_train_s": r.time_to_train_s,
            "cost_usd": r.cost_usd, "energy_kwh": r.energy_kwh,
            "memory_headroom": r.headroom, "same_as": r.same_as, "why": r.why,
        })
    return {"name": name, "objective": res.objective.value, "evaluated": res.evaluated,
            "feasible": res.feasible, "rejected": res.rejected,
            "rejected_example": res.rejected_example, "best": best,
            "ranking_wall_s": res.ranking_wall_s, "confirm_wall_s": res.confirm_wall_s,
            "candidates_per_min": 60.0 * res.evaluated / max(res.ranking_wall_s, 1e-9),
            "wall_s": res.wall_s}


def plan_table(res: PlanResult, name: str) -> Table:
    t = Table(title=f"{name}: best of {res.evaluated:,} candidates "
                    f"({res.feasible:,} feasible) by {res.objective.value}", header_style="bold")
    for c in ("#", "layout", "GPUs", "iteration", "simulated", "Δ", "MFU", "mem/GPU",
              "to train", "cost"):
        t.add_column(c, justify="left" if c == "layout" else "right", no_wrap=True)
    for i, r in enumerate(res.best):
        agr = agreement_pct(r)
        t.add_row(
            str(i + 1), r.cand.label(),
            str(r.gpus), units.format_duration(r.est.iteration_s),
            units.format_duration(r.confirmed.iteration_s) if r.confirmed else "-",
            f"{agr:+.1f}%" if agr is not None else "-", f"{100 * r.mfu:.1f}%",
            units.format_bytes(r.memory_per_gpu_bytes),
            units.format_duration(r.time_to_train_s) if r.time_to_train_s else "-",
            _money(r.cost_usd))
    return t


def _money(usd: float | None) -> str:
    if not usd:
        return "-"
    return f"${usd / 1e6:.2f}M" if usd >= 1e6 else f"${usd:,.0f}"


def plan_cmd(
    file: Path = typer.Argument(..., help="scenario YAML file with a plan: section"),
    set_: list[str] = typer.Option([], "--set", help="override a field: key.path=value"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    out: Optional[Path] = typer.Option(None, "--out", help="also write the JSON object here"),
) -> None:
    """The best layouts of a workload on a cluster: fast ranking, then full simulation."""
    from dcsim.app.cli import err, fail
    from dcsim.errors import InputError
    from dcsim.app.cli import out as console

    try:
        sc, plan, raw = load_plan(file, list(set_))
        with terminal_progress(err, "working") as progress:
            res = run_plan(sc, plan, raw, progress=progress)
    except InputError as exc:
        fail(str(exc))
    data = plan_json(res, sc.name)
    if out is not None:
        write_atomic(out, json.dumps(data, indent=2))
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
        return
    wide(console, 140).print(plan_table(res, sc.name))
    for i, r in enumerate(res.best):
        same = f" (same figures: {', '.join(r.same_as)})" if r.same_as else ""
        console.print(f"{i + 1}. {r.why}{same}", highlight=False, soft_wrap=True)
    rej = ", ".join(f"{k} {v:,}" for k, v in sorted(res.rejected.items(), key=lambda kv: -kv[1]))
    console.print(f"rejected: {rej or 'none'}")
    console.print(f"ranked {res.evaluated:,} candidates in {res.ranking_wall_s:.1f} s "
                  f"({data['candidates_per_min']:,.0f}/min); confirmed "
                  f"{min(plan.confirm, len(res.best))} by {plan.confirm_network} simulation in "
                  f"{res.confirm_wall_s:.1f} s")


def wide(console: Console, width: int = 120) -> Console:
    """A console at least `width` columns wide for tables (a pipe reports 80)."""
    return console if console.width >= width else Console(width=width)


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write to a temporary name beside the target, then rename (no half-written outputs)."""
    from dcsim.files import atomic_path

    with atomic_path(path) as tmp:
        if isinstance(text, bytes):
            tmp.write_bytes(text)
        else:
            tmp.write_text(text, encoding="utf-8")
