"""`dcsim capacity`: bisection on nodes over seeds, the --json contract, monotone in demand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dcsim.app.capacity_search.search import Interval, search
from dcsim.app.capacity_search.spec import CapacitySpec
from dcsim.app.cli import app

runner = CliRunner()


def capacity_data(**cap) -> dict:
    """A small demand: 300 jobs over 10 days (1-16 GPUs, median 1 h), no training jobs."""
    return {
        "name": "tiny",
        "cluster": {"preset": "dgx-h100", "nodes": 4},
        "fleet": {"horizon": "10 days", "seed": 0,
                  "jobs": {"source": "generator",
                           "generator": {"jobs": 300, "gpus": {"median": 4, "mean": 6, "max": 16},
                                         "duration": {"median": "1 h", "mean": "3 h"}}},
                  "scheduler": {"policy": "backfill", "placement": "packed"}},
        "capacity": {"slo": {"queue_wait_p95": "30 min"}, "nodes": {"min": 2, "max": 16},
                     "seeds": [0, 1], **cap},
    }


def write(tmp_path: Path, data: dict) -> Path:
    f = tmp_path / "cap.yaml"
    f.write_text(yaml.safe_dump(data))
    return f


def run_json(tmp_path: Path, data: dict, *extra: str) -> dict:
    r = runner.invoke(app, ["capacity", str(write(tmp_path, data)), "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_json_contract_and_bisection(tmp_path):
    d = run_json(tmp_path, capacity_data(), "--plot", str(tmp_path / "wait.png"))
    rec = d["recommendation"]
    assert set(rec) == {"nodes", "gpus"} and rec["gpus"] == 8 * rec["nodes"]
    for c in d["candidates"]:
        assert {"nodes", "gpus", "queue_wait_s_p95", "utilization", "cost_usd", "energy_kwh",
                "meets_slo"} <= set(c)
        w = c["queue_wait_s_p95"]
        assert w["ci_low"] <= w["mean"] <= w["ci_high"] and len(w["seeds"]) == 2
    by_nodes = {c["nodes"]: c for c in d["candidates"]}
    assert by_nodes[rec["nodes"]]["meets_slo"]
    # every smaller size tried fails: the recommendation is the smallest that meets it
    assert all(not c["meets_slo"] for n, c in by_nodes.items() if n < rec["nodes"])
    assert rec["nodes"] - 1 in by_nodes or rec["nodes"] == 2
    assert (tmp_path / "wait.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_more_demand_never_fewer_gpus(tmp_path):
    recs = []
    for growth in (0.0, 0.5, 1.0):
        d = run_json(tmp_path, capacity_data(demand={"growth_per_month": growth,
                                                     "months_ahead": 1}))
        assert d["demand_scale"] == pytest.approx(1 + growth)
        recs.append(d["recommendation"]["gpus"])
    assert recs == sorted(recs) and recs[-1] > recs[0]


def test_bisection_on_a_known_curve():
    """A fake fleet whose p95 wait falls linearly with nodes: the answer is known exactly."""
    spec = CapacitySpec.model_validate({"slo": {"queue_wait_p95": 100}, "seeds": [0, 1, 2],
                                        "nodes": {"min": 1, "max": 200}})
    calls = []

    def fake(d):
        n = d["cluster"]["nodes"]
        calls.append(n)
        return {"queue_wait_s": {"p95": max(0.0, 1000.0 - 10.0 * n)}, "utilization": 0.5,
                "cost_usd": n, "energy_kwh": n, "jobs": {"submitted": 1, "completed": 1}}

    data = {"cluster": {"preset": "dgx-h100"}, "fleet": {}}
    r = search("fake", data, spec, 8, run=fake)
    assert r.recommendation is not None and r.recommendation.nodes == 90  # 1000 - 900 = 100
    assert len(set(calls)) <= 2 + 8  # bisection, not a scan of 200 sizes


def test_interval():
    i = Interval.of([1.0, 2.0, 3.0], 0.95)
    assert i.mean == 2.0 and i.ci_low < 2.0 < i.ci_high
    assert Interval.of([5.0], 0.95).ci_high == 5.0


def test_nothing_meets(tmp_path):
    d = run_json(tmp_path, capacity_data(slo={"queue_wait_p95": "1 s"},
                                         nodes={"min": 2, "max": 3}))
    assert d["recommendation"] is None
    assert [c["meets_slo"] for c in d["candidates"]] == [False]  # the largest fails: stop


@pytest.mark.parametrize("cap,message", [
    ({"slo": {}}, "capacity.slo"),
    ({"nodes": {"min": 8, "max": 4}}, "capacity.nodes"),
    ({"seeds": 0}, "capacity.seeds"),
    ({"decide_on": "vibes"}, "capacity.decide_on"),
    ({"slo": {"queue_wait_p95": "soon"}}, "capacity.slo.queue_wait_p95"),
])
def test_bad_input_exit_2(tmp_path, cap, message):
    r = runner.invoke(app, ["capacity", str(write(tmp_path, capacity_data(**cap)))])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_growth_needs_a_generator(tmp_path):
    data = capacity_data(demand={"growth_per_month": 0.1, "months_ahead": 3})
    data["fleet"]["jobs"] = {"source": "list", "list": [{"gpus": 8, "duration": "1 h"}]}
    r = runner.invoke(app, ["capacity", str(write(tmp_path, data))])
    assert r.exit_code == 2 and "capacity.demand.growth_per_month" in r.output


def test_example_runs_table():
    root = Path(__file__).resolve().parents[1]
    r = runner.invoke(app, ["capacity", str(root / "examples/capacity/next-quarter.yaml"),
                            "--set", "capacity.seeds=[0]", "--set", "fleet.jobs.generator.jobs=300",
                            "--set", "capacity.nodes.max=80"])
    assert r.exit_code == 0, r.output
    assert "recommendation" in r.output or "no size" in r.output
