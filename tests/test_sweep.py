"""`dcsim sweep`: grid expansion, one row per point, resume by key, failures recorded, executors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from dcsim.app.cli import app
from dcsim.app.sweeping import grid as grid_mod
from dcsim.app.sweeping.executors import Executor, ray_available
from dcsim.app.sweeping.grid import load_grid
from dcsim.app.sweeping.sweep import run_sweep
from tests.conftest import small_scenario

runner = CliRunner()


def files(tmp_path: Path, grid: dict) -> tuple[Path, Path, Path]:
    sc = tmp_path / "s.yaml"
    sc.write_text(yaml.safe_dump(small_scenario()))
    g = tmp_path / "grid.yaml"
    g.write_text(yaml.safe_dump(grid, sort_keys=False))
    return sc, g, tmp_path / "out" / "rows.parquet"


GRID = {"grid": {"workload.parallelism.tp": [2, 4], "workload.batch.micro": [1, 2]},
        "points": [{"workload.parallelism.pp": 2}, {"workload.parallelism.pp": 1}]}


def test_grid_is_points_times_product(tmp_path):
    _, g, _ = files(tmp_path, GRID)
    grid = load_grid(g)
    assert len(grid.points) == 2 * 2 * 2
    assert grid.varied == ["workload.parallelism.tp", "workload.batch.micro",
                           "workload.parallelism.pp"]
    assert {tuple(sorted(p.fields.items())) for p in grid.points}.__len__() == 8


def test_rows_failures_and_resume(tmp_path):
    # dp stays 2 from the base scenario: tp 4 x pp 1 x dp 2 = 8 != 16 GPUs fails validation
    sc, g, out = files(tmp_path, GRID)
    first = run_sweep(sc, g, out)
    assert (first.points, first.skipped, first.ran) == (8, 0, 8)
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 8
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed and all("16 GPUs" in r["error"] for r in failed)
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["iteration_s"] > 0 for r in ok)
    # the varied fields are the first columns after the bookkeeping ones
    cols = pq.read_table(out).column_names
    assert cols[:7] == ["point", "key", "status", "error", "field.workload.parallelism.tp",
                        "field.workload.batch.micro", "field.workload.parallelism.pp"]
    # rerun: nothing to do
    again = run_sweep(sc, g, out)
    assert (again.skipped, again.ran) == (8, 0)
    # an interrupted sweep: drop three rows, rerun, only those three run
    table = pq.read_table(out)
    pq.write_table(table.slice(0, 5), out)
    resumed = run_sweep(sc, g, out)
    assert (resumed.skipped, resumed.ran) == (5, 3)
    after = pq.read_table(out).to_pylist()
    assert sorted(r["key"] for r in after) == sorted(r["key"] for r in rows)
    assert {r["key"]: r.get("iteration_s") for r in after} == \
        {r["key"]: r.get("iteration_s") for r in rows}
    # --retry-failed runs the failures again (and only them)
    retry = run_sweep(sc, g, out, retry_failed=True)
    assert retry.ran == len(failed)


def test_new_version_reruns(tmp_path, monkeypatch):
    sc, g, out = files(tmp_path, {"grid": {"workload.batch.micro": [1, 2]}})
    run_sweep(sc, g, out)
    monkeypatch.setattr("dcsim.app.sweeping.sweep.dcsim_version", lambda: "9.9.9")
    assert run_sweep(sc, g, out).ran == 2  # another dcsim version: another key
    assert grid_mod.dcsim_version() != "9.9.9"


def test_pool_gives_the_same_rows(tmp_path):
    sc, g, out = files(tmp_path, {"grid": {"workload.batch.micro": [1, 2, 4]}})
    run_sweep(sc, g, out, jobs=1)
    one = {r["key"]: r["iteration_s"] for r in pq.read_table(out).to_pylist()}
    out2 = tmp_path / "two.parquet"
    run_sweep(sc, g, out2, jobs=2)
    two = {r["key"]: r["iteration_s"] for r in pq.read_table(out2).to_pylist()}
    assert one == two


@pytest.mark.skipif(not ray_available(), reason="Ray is not installed (pip install '.[ray]')")
def test_ray_gives_the_same_rows(tmp_path):
    sc, g, out = files(tmp_path, {"grid": {"workload.batch.micro": [1, 2]}})
    run_sweep(sc, g, out)
    local = {r["key"]: r["iteration_s"] for r in pq.read_table(out).to_pylist()}
    out2 = tmp_path / "ray.parquet"
    run_sweep(sc, g, out2, executor=Executor.RAY)
    ray_rows = {r["key"]: r["iteration_s"] for r in pq.read_table(out2).to_pylist()}
    assert local == ray_rows


def test_cli_json_and_plan_kind(tmp_path):
    data = small_scenario()
    data["plan"] = {"search": {"tp": [1, 2, 4], "pp": [1, 2]}, "confirm": 0, "top": 1}
    sc = tmp_path / "p.yaml"
    sc.write_text(yaml.safe_dump(data))
    g = tmp_path / "g.yaml"
    g.write_text(yaml.safe_dump({"kind": "plan", "grid": {"workload.batch.global": [16, 32]}}))
    out = tmp_path / "plan.parquet"
    r = runner.invoke(app, ["sweep", str(sc), "--grid", str(g), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ran"] == 2
    rows = pq.read_table(out).to_pylist()
    assert all(row["status"] == "ok" and row["best.iteration_s"] > 0 for row in rows)


@pytest.mark.parametrize("grid,message", [
    ({"grid": {"workload.batch.micro": 3}}, "grid.grid.workload.batch.micro"),
    ({"kind": "dream", "grid": {"a": [1]}}, "grid.kind"),
    ({"colour": 1, "grid": {"a": [1]}}, "grid.colour: unknown key"),
    ({"nothing": 1}, "a mapping with grid:"),
])
def test_bad_grid_is_one_line_exit_2(tmp_path, grid, message):
    sc, g, out = files(tmp_path, grid)
    r = runner.invoke(app, ["sweep", str(sc), "--grid", str(g), "--out", str(out)])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_bad_jobs_and_missing_files_exit_2(tmp_path):
    sc, g, out = files(tmp_path, {"grid": {"workload.batch.micro": [1]}})
    r = runner.invoke(app, ["sweep", str(sc), "--grid", str(g), "--out", str(out), "--jobs", "0"])
    assert r.exit_code == 2 and "--jobs" in r.output
    r = runner.invoke(app, ["sweep", str(sc), "--grid", str(tmp_path / "no.yaml"), "--out", str(out)])
    assert r.exit_code == 2 and "no such grid file" in r.output
