"""`dcsim fleet run`: the JSON contract, outputs under --out, training jobs priced by placement,
and every bad input as one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from dcsim.app.cli import app
from dcsim.app.fleet import run_fleet
from dcsim.app.fleet_outputs import _atomic

runner = CliRunner()

BASE = {
    "name": "tiny-fleet",
    "cluster": {"preset": "dgx-h100", "nodes": 8,
                "storage": [{"tier": "pfs", "read_bw": "100 GB/s", "write_bw": "50 GB/s"}]},
    "workloads": {"l8b": {"model": "llama3-8b", "seq_len": 2048,
                          "parallelism": {"tp": 2, "dp": 4}, "batch": {"global": 64}}},
    "fleet": {"horizon": "3 days", "seed": 0,
              "jobs": {"source": "list", "list": [
                  {"name": "dev", "gpus": 8, "duration": "2 h", "count": 5, "every": "1 h"},
                  {"name": "train", "gpus": 16, "workload": "l8b", "duration": "10 h"}]},
              "scheduler": {"policy": "backfill", "placement": "packed"},
              "failures": {"model": "llama3", "rate_scale": 20},
              "checkpoint": {"interval": "auto"}, "data_tier": "pfs"},
}
SUMMARY_KEYS = {"utilization", "queue_wait_s", "jct_s", "ettr", "interruptions", "gpu_hours",
                "energy_kwh", "cost_usd", "carbon_kg"}


def cli(tmp_path: Path, scenario: dict, *extra: str):
    f = tmp_path / "fleet.yaml"
    f.write_text(yaml.safe_dump(scenario))
    return runner.invoke(app, ["fleet", "run", str(f), *extra])


def test_json_contract_and_outputs(tmp_path):
    r = cli(tmp_path, BASE, "--json", "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    s = data["summary"]
    assert SUMMARY_KEYS <= set(s)
    assert set(s["queue_wait_s"]) == set(s["jct_s"]) == {"p50", "p95", "p99"}
    assert set(s["gpu_hours"]) >= {"used", "idle", "down", "lost"}
    assert s["jobs"] == {"submitted": 6, "started": 6, "completed": 6}
    out = tmp_path / "out"
    for name in ("jobs.parquet", "series.parquet", "summary.json", "timeline.json",
                 "utilization.png", "power.png", "wait_cdf.png"):
        assert (out / name).exists(), name
    jobs = pd.read_parquet(out / "jobs.parquet")
    assert {"submit_s", "start_s", "end_s", "wait_s", "run_s", "gpus", "restarts",
            "gpu_h_lost_failure", "ettr", "energy_kwh", "cost_usd"} <= set(jobs.columns)
    trace = json.loads((out / "timeline.json").read_text())
    assert any(e["ph"] == "X" for e in trace["traceEvents"])
    assert not list(out.glob(".*.tmp"))


def test_table_on_terminal(tmp_path):
    r = cli(tmp_path, BASE)
    assert r.exit_code == 0, r.output
    assert "effective training time ratio" in r.output and "GPU utilization" in r.output


def test_training_job_slower_when_spread_on_an_oversubscribed_fabric():
    """A data-parallel job over 8 servers, priced by the flow network with hashed ECMP on a
    4:1 fat-tree: one server per leaf (spread) collides on the spine, packed does not."""
    sc = json.loads(json.dumps(BASE))
    sc["cluster"]["nodes"] = 32
    sc["cluster"]["fabric"] = {"oversubscription": 4}
    sc["workloads"]["l8b"]["parallelism"] = {"tp": 1, "dp": 8, "overlap_grad_reduce": False}
    sc["run"] = {"network": "flow", "routing": "ecmp"}
    sc["fleet"]["failures"] = {"model": "none"}
    sc["fleet"]["jobs"]["list"] = [{"name": "train", "gpus": 64, "workload": "l8b",
                                    "duration": "10 h"}]
    packed = run_fleet(sc).jobs.iloc[0]
    spread = run_fleet(sc, ["fleet.scheduler.placement=spread"]).jobs.iloc[0]
    assert packed["run_s"] == pytest.approx(36000, rel=1e-6)
    assert spread["run_s"] > 1.1 * packed["run_s"]


def test_same_seed_same_summary():
    a = run_fleet(BASE).summary
    b = run_fleet(BASE).summary
    for k in ("pricing", "fleet_wall_s"):
        a.pop(k)
        b.pop(k)
    assert a == b


def test_interrupted_write_leaves_no_file(tmp_path):
    target = tmp_path / "jobs.parquet"

    def boom(p: Path) -> None:
        p.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _atomic(target, boom)
    assert not target.exists() and not list(tmp_path.iterdir())


def _set(sc: dict, path: str, value) -> dict:
    sc = json.loads(json.dumps(sc))
    node = sc
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value
    return sc


BAD = [
    ("placement", "fleet.scheduler.placement", "tetris",
     "fleet.scheduler.placement: unknown policy 'tetris'"),
    ("scheduler", "fleet.scheduler.policy", "lottery", "fleet.scheduler.policy"),
    ("source", "fleet.jobs.source", "punchcards", "fleet.jobs.source"),
    ("gpu type", "fleet.jobs.list.0.gpu_type", "B300", "asks for GPU type 'B300'"),
    ("negative rate", "fleet.failures.causes", {"faulty GPU": {"rate_per_component_day": -1}},
     "fleet.failures.causes.faulty GPU.rate_per_component_day"),
    ("unknown cause", "fleet.failures.causes", {"gremlins": {"repair": "1 h"}},
     "fleet.failures.causes: unknown cause 'gremlins'"),
    ("negative time", "fleet.failures.detection", "-5 min", "fleet.failures.detection"),
    ("negative horizon", "fleet.horizon", "-3 days", "fleet.horizon"),
    ("negative bandwidth", "cluster.storage.0.write_bw", "-1 GB/s", "cluster.storage"),
    ("too large", "fleet.jobs.list.1.gpus", 4096, "asks for 4096 GPUs but the cluster schedules 64"),
    ("workload", "fleet.jobs.list.1.workload", "gpt-17", "workload 'gpt-17': not in the scenario"),
    ("ckpt tier", "fleet.checkpoint.tier", "tape", "fleet.checkpoint.tier: 'tape'"),
    ("power cap", "fleet.power.gpu_cap_w", "0 W", "fleet.power.gpu_cap_w"),
    ("cluster cap", "fleet.power.cluster_cap_w", "1 kW", "fleet.power.cluster_cap_w"),
]


@pytest.mark.parametrize("case,path,value,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_one_line_exit_2(tmp_path, case, path, value, message):
    r = cli(tmp_path, _set(BASE, path, value), "--json")
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_bad_trace_columns_and_empty_trace(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("submit,gpus,duration_s\n0,8,60\n")
    sc = _set(BASE, "fleet.jobs", {"source": "joblog", "path": str(log)})
    r = cli(tmp_path, sc)
    assert r.exit_code == 2 and "missing column 'submit_s'" in r.output
    log.write_text("submit_s,gpus,duration_s\n")
    r = cli(tmp_path, sc)
    assert r.exit_code == 2 and "no rows" in r.output
    log.write_text("submit_s,gpus,duration_s\n0,8,60\n")
    r = cli(tmp_path, _set(BASE, "fleet.jobs", {"source": "alibaba", "path": str(log)}))
    assert r.exit_code == 2 and "alibaba trace: missing column" in r.output


def test_out_on_a_file_is_one_line(tmp_path):
    f = tmp_path / "taken"
    f.write_text("x")
    r = cli(tmp_path, BASE, "--out", str(f))
    assert r.exit_code == 2 and "--out" in r.output and "Traceback" not in r.output


def test_storage_network_caps_checkpoint_writes():
    """A tier placed on the fabric (2 servers, one 400 Gb/s NIC each: 100 GB/s) writes no faster
    than its servers' links, however fast the tier."""
    from dcsim.app.fleet_setup import layout_from_preset, load_fleet_scenario, storage_tiers

    sc, _ = load_fleet_scenario(BASE, ["cluster.storage.0.servers=2",
                                       "cluster.storage.0.write_bw=1 TB/s"])
    _, cluster = layout_from_preset(sc)
    (tier,) = storage_tiers(sc, cluster)
    assert tier.write_bw_bytes_per_s == pytest.approx(100e9)
    assert tier.read_bw_bytes_per_s == pytest.approx(100e9)  # 100 GB/s given, the same cap
    plain, _ = load_fleet_scenario(BASE, ["cluster.storage.0.write_bw=1 TB/s"])
    assert storage_tiers(plain, cluster)[0].write_bw_bytes_per_s == pytest.approx(1e12)


def test_ctrl_c_stops_cleanly_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import sys

    import dcsim.app.fleet as fleet_mod
    from dcsim.app.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fleet_mod, "run_fleet", interrupted)
    f = tmp_path / "fleet.yaml"
    f.write_text(yaml.safe_dump(BASE))
    monkeypatch.setattr(sys, "argv", ["dcsim", "fleet", "run", str(f), "--out",
                                      str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 130
    assert not (tmp_path / "out").exists()
    assert "Traceback" not in capsys.readouterr().err


def test_price_cache_across_cluster_sizes():
    """A sweep over cluster sizes prices each job shape once; results equal uncached runs."""
    cache: dict = {}
    a = run_fleet(BASE, price_cache=cache)
    b = run_fleet(BASE, ["cluster.nodes=12"], price_cache=cache)
    assert a.summary["pricing"]["shapes_reused"] == 0
    assert b.summary["pricing"]["shapes_reused"] == b.summary["pricing"]["shapes_priced"] > 0
    plain = run_fleet(BASE, ["cluster.nodes=12"])
    assert b.jobs.equals(plain.jobs)
    c = run_fleet(BASE, ["run.network=flow"], price_cache=cache)
    assert c.summary["pricing"]["shapes_reused"] == 0  # other run options: priced anew
