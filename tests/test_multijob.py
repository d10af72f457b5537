"""Several jobs on one cluster: placement, errors naming jobs[i], agreement with the single-job
path, the result record (JSON, table, trace)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.console import Console

from dcsim.app.multijob import node_sites, place_jobs, print_multijob, simulate_jobs
from dcsim.app.scenario import ScenarioError, load_scenario
from dcsim.app.simulate import build_cluster, job_from_workload, simulate
from dcsim.results import SimulationResult
from dcsim.trace import write_chrome_trace

MODEL = {"layers": 4, "hidden": 2048, "heads": 16, "ffn_hidden": 8192, "vocab": 32000}


def job(name: str, nodes: int, placement: str = "packed", tp: int = 8, pp: int = 1,
        micro_batches: int = 1) -> dict[str, Any]:
    dp = nodes * 8 // (tp * pp)
    return {"name": name, "placement": placement,
            "workload": {"model": MODEL, "seq_len": 1024,
                         "parallelism": {"tp": tp, "pp": pp, "dp": dp},
                         "batch": {"global": dp * micro_batches}}}


def scenario(jobs: list[dict[str, Any]], nodes: int = 8, network: str = "analytical",
             cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "multi", "cluster": cluster or {"preset": "dgx-h100", "nodes": nodes},
            "jobs": jobs, "run": {"network": network}}


def placements(sc: dict[str, Any]):
    s = load_scenario(sc)
    cluster = build_cluster(s)
    return place_jobs(cluster, s.jobs, [job_from_workload(j.workload) for j in s.jobs])


# --- placement ----------------------------------------------------------------------------------

def test_packed_takes_consecutive_nodes_under_the_fewest_leaves() -> None:
    # dgx-h100 1:1: a 64-port leaf has 32 NICs down, i.e. 4 DGX nodes.
    a, b = placements(scenario([job("a", 2), job("b", 4)]))
    assert a.nodes == (0, 1) and a.leaves == 1
    assert b.nodes == (4, 5, 6, 7) and b.leaves == 1  # not 2..5, which spans two leaves
    assert b.gpus == tuple(range(32, 64))  # job rank i on GPU 8 * node + local


def test_spread_alternates_leaves_and_crosses_the_spine() -> None:
    (a,) = placements(scenario([job("a", 4, "spread")]))
    assert a.nodes == (0, 4, 1, 5) and a.leaves == 2 and a.crosses_spine
    assert a.gpus[:9] == (0, 1, 2, 3, 4, 5, 6, 7, 32)


def test_spread_alternates_pods_on_three_tiers() -> None:
    # radix 16: 8 NICs (one node) per leaf, pods of 8 leaves; 32 nodes = 4 pods.
    cluster = {"preset": "dgx-h100", "nodes": 32, "fabric": {"tiers": 3, "radix": 16}}
    spread, packed = placements(scenario([job("s", 4, "spread"), job("p", 4)], cluster=cluster))
    assert spread.pods == 4 and spread.nodes == (0, 8, 16, 24)
    assert packed.pods == 1 and packed.nodes == (1, 2, 3, 4)


def test_node_sites_follow_the_fabric() -> None:
    c = build_cluster(load_scenario(scenario([job("a", 1)], nodes=8)))
    sites = node_sites(c)
    assert [len(s.leaves) for s in sites] == [1] * 8
    assert sites[0].leaves == sites[3].leaves != sites[4].leaves


# --- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("jobs, field", [
    ([job("a", 6), job("b", 4)], "jobs[1].workload.parallelism:"),
    ([job("a", 9)], "jobs[0].workload.parallelism:"),
    ([job("a", 2), job("a", 2)], "jobs[1].name:"),
    ([job("a", 2, tp=3)], "jobs[0].workload.parallelism.tp:"),
])
def test_errors_name_the_job(jobs: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        simulate(load_scenario(scenario(jobs)))
    msg = str(exc.value)
    assert msg.startswith(field) and "\n" not in msg, msg


# --- agreement with the single-job path ---------------------------------------------------------

@pytest.mark.parametrize("network", ["analytical", "flow"])
def test_one_packed_job_on_the_whole_cluster_is_the_single_job_run(network: str) -> None:
    j = job("only", 4, tp=4, pp=2, micro_batches=4)
    multi = simulate(load_scenario(scenario([j], nodes=4, network=network)))
    single = simulate(load_scenario({"cluster": {"preset": "dgx-h100", "nodes": 4},
                                     "workload": j["workload"], "run": {"network": network}}))
    assert isinstance(multi, SimulationResult) and multi.multi_job
    (r,) = multi.jobs
    assert r.iteration_s == pytest.approx(single.iteration_s, rel=1e-12)
    assert r.mfu == pytest.approx(single.mfu, rel=1e-12)
    assert r.breakdown == single.breakdown
    assert r.critical_rank == single.critical_rank


@pytest.mark.parametrize("network", ["analytical", "flow"])
def test_folded_and_unfolded_agree(network: str) -> None:
    jobs = [job("a", 2, "spread", tp=4, pp=2, micro_batches=2), job("b", 2, "spread")]
    out = []
    for fold in ("auto", "off"):
        sc = scenario(jobs, nodes=4, network=network)
        sc["run"]["fold"] = fold
        out.append([j.iteration_s for j in simulate_jobs(load_scenario(sc)).jobs])
    assert out[0] == pytest.approx(out[1], rel=1e-9)


def test_deterministic() -> None:
    sc = scenario([job("a", 2, "spread"), job("b", 2, "spread", micro_batches=3)], nodes=4,
                  network="flow")
    a, b = (simulate_jobs(load_scenario(sc)).to_dict() for _ in range(2))
    for d in (a, b):
        d.pop("wall_s")
        for j in d["jobs"]:
            j.pop("wall_s")
    assert a == b


# --- the record ---------------------------------------------------------------------------------

def test_record_json_table_and_trace(tmp_path) -> None:
    sc = scenario([job("a", 2, "spread"), job("b", 2, "packed", micro_batches=2)], nodes=4,
                  network="flow")
    r = simulate_jobs(load_scenario(sc), compare_alone=True)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["gpus"] == 32 and d["gpus_used"] == 32 and d["network"] == "flow"
    for jd, jr in zip(d["jobs"], r.jobs):
        for key in ("name", "gpus", "iteration_s", "tokens_per_s", "mfu", "breakdown",
                    "placement", "slowdown", "iterations_measured"):
            assert key in jd
        assert jd["gpus"] == 16
        assert jr.breakdown.total_s() == pytest.approx(jr.iteration_s, rel=1e-9)
        assert jr.slowdown >= 1.0 - 1e-12
    console = Console(record=True, width=160)
    print_multijob(r, console)
    text = console.export_text()
    assert "a" in text and "b" in text and "vs alone" in text and "flow network" in text
    path = tmp_path / "trace.json"
    write_chrome_trace(r, path)
    names = [e["args"]["name"] for e in json.loads(path.read_text())["traceEvents"]
             if e.get("name") == "process_name"]
    assert any(n.startswith("a: ") for n in names) and any(n.startswith("b: ") for n in names)


def test_example_loads_and_places_both_jobs_across_the_spine(root) -> None:
    sc = load_scenario(root / "examples" / "two-jobs-shared-spine.yaml")
    assert sc.run.network == "flow" and len(sc.jobs) == 2
    cluster = build_cluster(sc)
    pls = place_jobs(cluster, sc.jobs, [job_from_workload(j.workload) for j in sc.jobs])
    assert all(p.crosses_spine for p in pls)
    assert sum(len(p.gpus) for p in pls) <= cluster.n_gpus
