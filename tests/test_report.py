"""`dcsim report`: history in DuckDB, what changed and why, --fail-on, escaping, inputs."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from dcsim.app.cli import app
from dcsim.app.reporting.build import build_report
from dcsim.app.reporting.changes import Watch
from tests.conftest import small_scenario

runner = CliRunner()


def scenario_file(tmp_path: Path, name: str = "small", **over) -> Path:
    f = tmp_path / f"{abs(hash(name))}.yaml"
    data = small_scenario(**over)
    data["name"] = name
    f.write_text(yaml.safe_dump(data))
    return f


def report(tmp_path: Path, *files: Path, extra: tuple[str, ...] = ()):
    return runner.invoke(app, ["report", *map(str, files), "--history",
                               str(tmp_path / "h.duckdb"), "--out", str(tmp_path / "r.html"),
                               "--json", *extra])


def test_history_and_what_changed(tmp_path):
    f = scenario_file(tmp_path)
    r1 = report(tmp_path, f)
    assert r1.exit_code == 0, r1.output
    d1 = json.loads(r1.stdout)
    assert d1["run_id"] == 1 and d1["entries"][0]["since_last_run"] is None
    # the same scenario again: nothing moved, and the report says why that is expected
    d2 = json.loads(report(tmp_path, f).stdout)
    e = d2["entries"][0]
    assert all(v["delta_pct"] in (None, 0.0) for v in e["since_last_run"]["figures"].values())
    assert "deterministic" in e["why"][0]
    # another layout: the figures move and the reason names the fields
    f.write_text(yaml.safe_dump({**yaml.safe_load(f.read_text()), "workload": {
        **yaml.safe_load(f.read_text())["workload"], "parallelism": {"tp": 2, "pp": 2, "dp": 4}}}))
    d3 = json.loads(report(tmp_path, f).stdout)
    e = d3["entries"][0]
    assert e["since_last_run"]["figures"]["iteration_s"]["delta_pct"] != 0
    assert "workload.parallelism.tp: 4 -> 2" in e["why"][0]
    con = duckdb.connect(str(tmp_path / "h.duckdb"))
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 3
    assert con.execute("SELECT count(DISTINCT scenario_hash) FROM entries").fetchone()[0] == 2
    assert con.execute("SELECT count(DISTINCT dcsim_version) FROM runs").fetchone()[0] == 1
    html = (tmp_path / "r.html").read_text()
    assert "What changed since the last run" in html and "data:image/png;base64," in html
    assert "<script" not in html.lower() and "http" not in html  # self-contained


def test_calibration_change_is_named(tmp_path):
    f = scenario_file(tmp_path)
    report(tmp_path, f)
    d = json.loads(report(tmp_path, f, extra=()).stdout)
    assert d["run_id"] == 2
    data = yaml.safe_load(f.read_text())
    data["run"]["calibration"] = "cpu-2core"
    f.write_text(yaml.safe_dump(data))
    d = json.loads(report(tmp_path, f).stdout)
    before = d["entries"][0]
    assert any(w.startswith("calibration ") and w.endswith(" -> cpu-2core") for w in before["why"])


def test_fail_on_regression_exits_1(tmp_path):
    f = scenario_file(tmp_path)
    assert report(tmp_path, f, extra=("--fail-on", "iteration_s:+5%")).exit_code == 0
    data = yaml.safe_load(f.read_text())
    data["workload"]["parallelism"]["recompute"] = "full"  # slower: the forward runs twice
    f.write_text(yaml.safe_dump(data))
    r = report(tmp_path, f, extra=("--fail-on", "iteration_s:+5%", "--fail-on", "mfu:-50%"))
    assert r.exit_code == 1
    d = json.loads(r.stdout)
    assert [b["figure"] for b in d["breaches"]] == ["iteration_s"]
    assert "regression" in r.output
    assert "class='bad'" in (tmp_path / "r.html").read_text()


def test_user_text_is_escaped(tmp_path):
    f = scenario_file(tmp_path, name="<script>alert(1)</script>")
    r = report(tmp_path, f)
    assert r.exit_code == 0, r.output
    html = (tmp_path / "r.html").read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_json_inputs_and_plan_entries(tmp_path):
    sim = runner.invoke(app, ["simulate", str(scenario_file(tmp_path)), "--json"])
    (tmp_path / "sim.json").write_text(sim.stdout)
    data = small_scenario()
    data["name"] = "small-plan"
    data["plan"] = {"search": {"tp": [1, 2, 4], "pp": [1, 2]}, "confirm": 1, "top": 3}
    pf = tmp_path / "plan.yaml"
    pf.write_text(yaml.safe_dump(data))
    r = report(tmp_path, tmp_path / "sim.json", pf)
    assert r.exit_code == 0, r.output
    kinds = {e["kind"]: e for e in json.loads(r.stdout)["entries"]}
    assert set(kinds) == {"simulate", "plan"}
    assert kinds["plan"]["figures"]["best_iteration_s"] > 0


def test_watch_parse():
    assert Watch.parse("iteration_s:+5%") == Watch("iteration_s", 5.0)
    assert Watch.parse("mfu: -2.5 %") == Watch("mfu", -2.5)


@pytest.mark.parametrize("args,message", [
    (("--fail-on", "iteration_s>5"), "--fail-on"),
])
def test_bad_input_exit_2(tmp_path, args, message):
    r = report(tmp_path, scenario_file(tmp_path), extra=args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_missing_and_bad_inputs_exit_2(tmp_path):
    r = report(tmp_path, tmp_path / "nope.yaml")
    assert r.exit_code == 2 and "no such file" in r.output
    (tmp_path / "x.json").write_text("{\"a\": 1}")
    r = report(tmp_path, tmp_path / "x.json")
    assert r.exit_code == 2 and "not the --json output" in r.output


def test_fixed_clock_for_scheduled_runs(tmp_path):
    f = scenario_file(tmp_path)
    t = datetime(2026, 1, 5, 6, 0)
    res = build_report([f], tmp_path / "h.duckdb", [], now=t)
    assert "2026-01-05 06:00 UTC" in res.html


def test_fleet_and_capacity_entries(tmp_path):
    fleet = {"name": "tiny-fleet", "cluster": {"preset": "dgx-h100", "nodes": 8},
             "fleet": {"horizon": "5 days", "seed": 0, "jobs": {
                 "source": "generator", "generator": {
                     "jobs": 100, "gpus": {"median": 4, "mean": 6, "max": 16},
                     "duration": {"median": "1 h", "mean": "3 h"}}}}}
    ff = tmp_path / "fleet.yaml"
    ff.write_text(yaml.safe_dump(fleet))
    cap = {**fleet, "name": "tiny-capacity",
           "capacity": {"slo": {"queue_wait_p95": "30 min"}, "nodes": {"min": 2, "max": 8},
                        "seeds": [0]}}
    cf = tmp_path / "cap.yaml"
    cf.write_text(yaml.safe_dump(cap))
    cap_json = runner.invoke(app, ["capacity", str(cf), "--json"])
    assert cap_json.exit_code == 0, cap_json.output
    (tmp_path / "cap.json").write_text(cap_json.stdout)
    for _ in range(2):
        r = report(tmp_path, tmp_path / "cap.json", ff)
        assert r.exit_code == 0, r.output
    entries = {e["name"]: e for e in json.loads(r.stdout)["entries"]}
    assert set(entries) == {"tiny-capacity", "tiny-fleet"}  # names kept, from the inputs
    assert entries["tiny-capacity"]["figures"]["recommended_gpus"] > 0
    fleet_figs = entries["tiny-fleet"]["figures"]
    assert "queue_wait_s.p95" in fleet_figs and not any("wall_s" in f for f in fleet_figs)
    assert (tmp_path / "r.html").read_text().count("data:image/png") >= 3  # plots of both
    # the same inputs twice: nothing moved (run times of dcsim itself are not figures)
    assert all("deterministic" in e["why"][0] for e in entries.values())
