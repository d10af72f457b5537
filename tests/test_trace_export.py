"""Timeline out: the Chrome trace of a simulated iteration is valid and adds up to the breakdown."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dcsim.app.cli import app
from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import job_from_scenario, simulate
from dcsim.trace import chrome_trace, write_chrome_trace
from tests.conftest import small_scenario
from workloads.training import build_program

REL = 1e-6


def _run(sc: dict, path: Path, with_program: bool = True) -> tuple[dict, object]:
    scenario = load_scenario(sc)
    result = simulate(scenario)
    program = None
    if with_program:  # the same program simulate() built (deterministic op ids)
        program = build_program(job_from_scenario(scenario), fold=sc["run"]["fold"] != "off")
    write_chrome_trace(result, path, program)
    return json.loads(path.read_text()), result


def _check_format(doc: dict) -> None:
    assert isinstance(doc["traceEvents"], list) and doc["traceEvents"]
    for e in doc["traceEvents"]:
        assert e["ph"] in ("X", "M", "i")
        assert "pid" in e and "tid" in e and "name" in e
        if e["ph"] == "X":
            assert isinstance(e["ts"], (int, float)) and isinstance(e["dur"], (int, float))
            assert e["ts"] >= 0 and e["dur"] >= 0 and math.isfinite(e["ts"] + e["dur"])
            assert isinstance(e["args"], dict)


def _tracks(doc: dict, pid: int) -> dict[str, int]:
    return {e["args"]["name"]: e["tid"] for e in doc["traceEvents"]
            if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] == pid}


def _check_adds_up(doc: dict, result) -> None:
    """Busy slices of the critical rank's compute track + its attributed idle gaps = the
    iteration; per category they are the breakdown."""
    crit = result.critical_rank
    tracks = _tracks(doc, crit)
    busy = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] == crit
            and e["tid"] == tracks["compute"]]
    idle = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] == crit
            and e["tid"] == tracks.get("compute idle (attributed)")]
    busy_s = sum(e["dur"] for e in busy) / 1e6
    idle_s = sum(e["dur"] for e in idle) / 1e6
    it = result.iteration_s
    assert busy_s + idle_s == pytest.approx(it, rel=REL)
    # the waiting categories of the breakdown are exactly the idle slices
    bd = result.timing.breakdown
    assert sum(bd.values()) == pytest.approx(it, rel=REL)
    per_cat: dict[str, float] = {}
    for e in busy:
        per_cat[e["args"]["category"]] = per_cat.get(e["args"]["category"], 0.0) + e["dur"] / 1e6
    for e in idle:
        per_cat[e["args"]["category"]] = per_cat.get(e["args"]["category"], 0.0) + e["dur"] / 1e6
    assert set(per_cat) <= set(bd) | {c for c, v in per_cat.items() if v == 0}
    for cat, v in bd.items():
        assert per_cat.get(cat, 0.0) == pytest.approx(v, rel=REL, abs=1e-12), cat
    assert idle_s == pytest.approx(sum(bd.values()) - busy_s, rel=REL, abs=1e-12)


def test_small_scenario_trace_is_valid_and_adds_up(tmp_path):
    doc, result = _run(small_scenario(), tmp_path / "t.json")
    _check_format(doc)
    _check_adds_up(doc, result)
    names = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"]
             if e["ph"] == "M" and e["name"] == "process_name"}
    assert names == {0: "rank 0 (stage 0, x8) [critical]", 8: "rank 8 (stage 1, x8)"}
    assert doc["otherData"]["critical_rank"] == result.critical_rank == 0
    assert doc["otherData"]["iteration_s"] == result.iteration_s
    assert set(_tracks(doc, 0)) == {"compute", "compute idle (attributed)", "comm", "p2p"}


def test_slices_carry_the_op_facts(tmp_path):
    doc, result = _run(small_scenario(), tmp_path / "t.json")
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X" and not e["args"].get("waiting")]
    assert len(xs) == len(result.timing.timings)
    colls = [e for e in xs if e["args"]["kind"] == "collective"]
    comp = [e for e in xs if e["args"]["kind"] == "compute"]
    assert colls and comp
    for e in colls:
        a = e["args"]
        assert a["collective"] in ("all_reduce", "all_gather", "reduce_scatter", "send_recv")
        assert a["size_bytes"] > 0 and a["group_size"] >= 2 and a["groups"] >= 1
        assert a["category"] in ("tp", "pp", "dp") and a["repeat"] >= 1
    assert {e["args"]["category"] for e in comp} == {"compute", "optimizer"}
    assert all(e["args"]["kernels"] >= 1 for e in comp)
    # the DP gradient all-reduce of a folded stage covers every TP slice: tp groups of dp ranks
    grads = [e["args"] for e in colls if "/grads" in e["args"]["label"]]
    assert grads and all(a["group_size"] == 2 and a["groups"] == 4 for a in grads)


def test_unfolded_and_cpu_runs_add_up(tmp_path):
    doc, result = _run(small_scenario(run__fold="off"), tmp_path / "u.json")
    _check_format(doc)
    _check_adds_up(doc, result)
    assert len({e["pid"] for e in doc["traceEvents"] if e["ph"] == "X"}) == 16
    # cpu-host cannot overlap communication: collectives sit on the compute track
    cpu = small_scenario(cluster={"preset": "cpu-host", "nodes": 1},
                         workload__model={"layers": 2, "hidden": 128, "heads": 2,
                                          "ffn_hidden": 512, "vocab": 512},
                         workload__seq_len=64, workload__precision="fp32",
                         workload__parallelism={"dp": 2}, workload__batch={"global": 2, "micro": 1})
    doc, result = _run(cpu, tmp_path / "c.json")
    _check_adds_up(doc, result)
    assert set(_tracks(doc, result.critical_rank)) <= {"compute", "compute idle (attributed)"}


def test_cli_writes_the_trace(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(small_scenario()))
    out = tmp_path / "sub" / "timeline.json"
    res = CliRunner().invoke(app, ["simulate", str(f), "--json", "--trace", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    _check_format(doc)
    assert any(e["ph"] == "M" and "[critical]" in e["args"].get("name", "")
               for e in doc["traceEvents"])
    assert json.loads(res.stdout)["iteration_s"] == doc["otherData"]["iteration_s"]


def test_chrome_trace_needs_only_the_timing(tmp_path):
    result = simulate(load_scenario(small_scenario()))
    doc = chrome_trace(result.timing)  # no program: ranks are named by number
    names = [e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "process_name"]
    assert names == ["rank 0 [critical]", "rank 8"]
