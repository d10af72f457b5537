"""`dcsim sweep FILE --grid GRID.yaml --out results.parquet`: every point of a grid, resumable."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from dcsim.app.console import terminal_progress
from dcsim.app.sweeping.executors import Executor


def sweep_cmd(
    file: Path = typer.Argument(..., help="the base scenario (or plan / fleet) YAML file"),
    grid: Path = typer.Option(..., "--grid", help="grid YAML: grid: {field: [values]} and/or "
                              "points: [{field: value}], kind: simulate | fleet | plan"),
    out: Path = typer.Option(..., "--out", help="Parquet file of rows (resumed if it exists)"),
    jobs: int = typer.Option(1, "--jobs", help="local worker processes"),
    executor: Executor = typer.Option(Executor.LOCAL, "--executor", help="local | ray"),
    address: Optional[str] = typer.Option(None, "--address",
                                          help="a Ray cluster to use (default: a local Ray)"),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="run again the points that failed last time"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON summary object"),
) -> None:
    """Run every point of a grid of scenario fields; one row per point in a Parquet file."""
    from dcsim.app.cli import err, fail
    from dcsim.errors import InputError
    from dcsim.app.cli import out as console
    from dcsim.app.sweeping.sweep import run_sweep

    try:
        with terminal_progress(err, "sweep", "points") as progress:
            s = run_sweep(file, grid, out, jobs, executor, address, retry_failed, progress)
    except InputError as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(s.to_dict()) + "\n")
        return
    console.print(f"{s.points} points: {s.skipped} already in {s.out}, ran {s.ran} "
                  f"({s.failed} failed) in {s.wall_s:.1f} s", highlight=False)
