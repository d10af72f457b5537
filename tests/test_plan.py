"""`dcsim plan`: the ranked table, the --json contract, rejections, confirmation, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dcsim.app.cli import app
from dcsim.app.planning.search import candidates, run_plan
from dcsim.app.planning.spec import load_plan
from tests.conftest import ROOT, small_scenario

runner = CliRunner()


def small_plan(**plan) -> dict:
    sc = small_scenario()
    sc["plan"] = {"objective": "time_to_train",
                  "search": {"tp": [1, 2, 4, 8], "pp": [1, 2, 4], "zero": [0, 1, 3],
                             "micro": [1, 2], "recompute": ["none", "full"]},
                  "top": 4, "confirm": 2, **plan}
    return sc


def write(tmp_path: Path, data: dict) -> Path:
    f = tmp_path / "plan.yaml"
    f.write_text(yaml.safe_dump(data))
    return f


def test_plan_json_contract(tmp_path):
    r = runner.invoke(app, ["plan", str(write(tmp_path, small_plan())), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["evaluated"] == 4 * 3 * 3 * 2 * 2
    assert d["feasible"] + sum(d["rejected"].values()) == d["evaluated"]
    # tp=8 does not divide 16 heads? it does; pp=4 over 8 layers works; tp 8 x pp 4 > 16 GPUs
    assert d["rejected"].get("workload.parallelism", 0) > 0
    assert d["wall_s"] > 0 and len(d["best"]) == 4
    times = [b["fast"]["iteration_s"] for b in d["best"][2:]]
    assert times == sorted(times)
    for b in d["best"]:
        assert {"scenario", "result", "why"} <= set(b)
        assert b["scenario"]["workload"]["parallelism"]["tp"] == b["tp"]
        assert b["result"]["iteration_s"] > 0 and "breakdown" in b["result"]
        assert b["why"]
    confirmed = [b for b in d["best"] if b["result"]["source"] == "simulate"]
    assert len(confirmed) == 2
    for b in confirmed:  # the confirmed ones carry both figures, within 2%
        assert abs(b["agreement_pct"]) < 2.0
        assert b["scenario"]["run"]["network"] == "flow"
    assert d["best"][0]["why"].startswith("best:")


def test_best_is_best_and_rejections_use_the_shared_rules(tmp_path):
    sc, plan, raw = load_plan(write(tmp_path, small_plan(confirm=0)))
    res = run_plan(sc, plan, raw)
    assert res.best[0].score <= min(r.score for r in res.best[1:])
    # every rejection reason comes from validate_job's fields, memory, or a constraint
    for reason in res.rejected:
        assert reason.startswith(("workload.", "memory", "plan.constraints"))


def test_memory_and_deadline_constraints_reject(tmp_path):
    data = small_plan(constraints={"deadline": "1 s"}, confirm=0)
    d = json.loads(runner.invoke(app, ["plan", str(write(tmp_path, data)), "--json"]).stdout)
    assert d["feasible"] == 0 and d["best"] == []
    assert d["rejected"]["plan.constraints.deadline"] > 0


def test_vp_without_pp_is_not_a_separate_candidate(tmp_path):
    sc, plan, _ = load_plan(write(tmp_path, small_plan(search={"pp": [1, 2], "vp": [1, 2]})))
    got = [c for c, _ in candidates(sc, plan, lambda preset, nodes: 16)]
    assert not any(c.vp > 1 and c.pp == 1 for c in got)


def test_plan_table_and_example_runs():
    r = runner.invoke(app, ["plan", str(ROOT / "examples/plan/llama3-8b-32xh100-cost.yaml")])
    assert r.exit_code == 0, r.output
    assert "best:" in r.output and "rejected:" in r.output and "candidates" in r.output


@pytest.mark.parametrize("plan,message", [
    ({"objective": "fastest"}, "plan.objective"),
    ({"search": {"tp": [0]}}, "plan.search.tp"),
    ({"search": {"zero": [5]}}, "plan.search.zero"),
    ({"objective": "cost"}, "plan.prices.gpu_hour_usd"),
    ({"constraints": {"deadline": "soon"}}, "plan.constraints.deadline"),
    ({"colour": 1}, "plan.colour: unknown key"),
])
def test_bad_plan_input_is_one_line_exit_2(tmp_path, plan, message):
    data = small_scenario()
    data["plan"] = plan
    r = runner.invoke(app, ["plan", str(write(tmp_path, data))])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_missing_file_exit_2(tmp_path):
    r = runner.invoke(app, ["plan", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2 and "no such plan file" in r.output


def test_search_over_sizes_and_presets(tmp_path):
    data = small_plan(search={"tp": [2, 4], "pp": [1, 2], "nodes": {"from": 1, "to": 2},
                              "preset": ["dgx-h100", "dgx-a100"]}, confirm=1, top=50)
    data["workload"]["batch"]["global"] = 32
    d = json.loads(runner.invoke(app, ["plan", str(write(tmp_path, data)), "--json"]).stdout)
    seen = {(b["preset"], b["nodes"]) for b in d["best"]}
    assert seen == {("dgx-h100", 1), ("dgx-h100", 2), ("dgx-a100", 1), ("dgx-a100", 2)}
    for b in d["best"]:
        assert b["scenario"]["cluster"]["preset"] == b["preset"]
        assert b["result"]["gpus"] == 8 * b["nodes"]
    # H100s train this faster than A100s of the same count
    fastest = {}
    for b in d["best"]:
        key = (b["preset"], b["nodes"])
        fastest[key] = min(fastest.get(key, 1e9), b["fast"]["iteration_s"])
    assert fastest[("dgx-h100", 2)] < fastest[("dgx-a100", 2)]


def test_inline_cluster_and_overridden_gpu(tmp_path):
    """A cluster described inline (no preset), or a preset with another GPU, plans as it is."""
    data = small_plan(search={"tp": [2, 4], "pp": [1, 2]}, confirm=1, top=2)
    data["cluster"] = {"gpu": "h100-sxm", "gpus_per_node": 8, "nvlink": "nvlink4",
                       "nics_per_node": 8, "nic": "ib-ndr-400", "host_link": "pcie5", "nodes": 2,
                       "fabric": {"topology": "fat-tree", "oversubscription": 1,
                                  "link": "ib-ndr-400", "radix": 64}}
    d = json.loads(runner.invoke(app, ["plan", str(write(tmp_path, data)), "--json"]).stdout)
    assert d["best"][0]["preset"] is None and d["best"][0]["result"]["gpus"] == 16
    data["cluster"] = {"preset": "dgx-h100", "nodes": 2, "gpu": "h200-sxm"}
    h200 = json.loads(runner.invoke(app, ["plan", str(write(tmp_path, data)), "--json"]).stdout)
    assert h200["best"][0]["scenario"]["cluster"]["gpu"] == "h200-sxm"
    # the same layout on faster memory is no slower
    assert h200["best"][0]["fast"]["iteration_s"] <= d["best"][0]["fast"]["iteration_s"]
