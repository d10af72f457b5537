"""Run a grid: key every point, skip those the output file already has, run the rest, and keep
the Parquet file current as rows come in (so an interrupted sweep resumes where it stopped)."""

from __future__ import annotations

from dcsim.errors import InputError

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dcsim.app.sweeping.executors import Executor, run_all
from dcsim.app.sweeping.grid import Point, dcsim_version, load_grid
from dcsim.app.sweeping.runner import base_data, keyed
from dcsim.app.sweeping.store import read_rows, write_rows

FLUSH_EVERY_S = 2.0


@dataclass
class SweepSummary:
    points: int
    skipped: int   # already in the output file (same scenario, same dcsim version)
    ran: int
    failed: int    # of those run
    out: str
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_sweep(file: Path, grid_file: Path, out: Path, jobs: int = 1,
              executor: Executor = Executor.LOCAL, address: str | None = None,
              retry_failed: bool = False,
              progress: Callable[[int, int], None] | None = None) -> SweepSummary:
    """Every point of the grid once; rows in `out`."""
    t0 = time.perf_counter()
    if not file.exists():
        raise InputError(f"{file}: no such scenario file")
    if jobs < 1:
        raise InputError(f"--jobs: must be >= 1, got {jobs}")
    grid = load_grid(grid_file)
    data = base_data(file)
    version = dcsim_version()
    points = [keyed(grid.kind, data, p, version) for p in grid.points]
    old = read_rows(out)
    keep = {r["key"] for r in old if r.get("status") == "ok" or not retry_failed}
    rows = [r for r in old if r["key"] in keep]
    todo: list[Point] = []
    seen = set(keep)
    for p in points:
        if p.key not in seen:
            todo.append(p)
            seen.add(p.key)
    skipped = sum(1 for p in points if p.key in keep)
    first = ["point", "key", "status", "error", *[f"field.{k}" for k in grid.varied]]
    ran = failed = 0
    last = time.perf_counter()
    try:
        for row in run_all(todo, grid.kind, data, str(file.parent), version, executor, jobs,
                           address):
            rows.append(row)
            ran += 1
            failed += row["status"] != "ok"
            if progress is not None:
                progress(ran, len(todo))
            if time.perf_counter() - last > FLUSH_EVERY_S:
                write_rows(out, rows, first)
                last = time.perf_counter()
    finally:
        if ran or not out.exists():
            rows.sort(key=lambda r: (r.get("point", 0), r["key"]))
            write_rows(out, rows, first)
    return SweepSummary(len(points), skipped, ran, failed, str(out), time.perf_counter() - t0)
