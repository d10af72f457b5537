"""Results as flat rows and pandas frames: one row per result (or per job), the scenario's
fields as scenario.<path> columns, only the varied ones kept in a frame of many."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dcsim.app.replay import replay
from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import simulate
from dcsim.results import JobResult, SimulationResult, flatten, to_frame
from tests.conftest import small_scenario

TRACE = Path(__file__).parent / "fixtures" / "kineto_tinygpt_ddp2.json"
MODEL = {"layers": 4, "hidden": 2048, "heads": 16, "ffn_hidden": 8192, "vocab": 32000}


def _scalar(v: object) -> bool:
    return v is None or isinstance(v, (bool, int, float, str, tuple))


@pytest.fixture(scope="module")
def single() -> SimulationResult:
    return simulate(load_scenario(small_scenario()))


@pytest.fixture(scope="module")
def multi() -> SimulationResult:
    jobs = [{"name": n, "placement": "packed",
             "workload": {"model": MODEL, "seq_len": 1024, "parallelism": {"tp": 8, "dp": 1},
                          "batch": {"global": 1}}} for n in ("a", "b")]
    return simulate(load_scenario({"name": "two", "cluster": {"preset": "dgx-h100", "nodes": 2},
                                   "jobs": jobs}))


def test_simulate_returns_one_result_type_for_one_job_and_many(single, multi) -> None:
    for r, n in ((single, 1), (multi, 2)):
        assert isinstance(r, SimulationResult) and len(r.jobs) == n
        assert all(isinstance(j, JobResult) for j in r.jobs)
    assert not single.multi_job and multi.multi_job
    assert single.iteration_s == single.jobs[0].iteration_s  # a single job's figures read through
    assert single.breakdown is single.jobs[0].breakdown
    with pytest.raises(AttributeError, match="2 jobs"):
        _ = multi.iteration_s
    with pytest.raises(AttributeError, match="jobs"):
        single.iteration_s = 1.0  # read-through only: the figure lives on the job
    assert multi.job("b") is multi.jobs[1]


def test_a_record_is_one_flat_row_of_scenario_fields_and_figures(single) -> None:
    row = single.to_record()
    assert all(_scalar(v) for v in row.values()), {k: v for k, v in row.items() if not _scalar(v)}
    assert row["iteration_s"] == single.iteration_s and row["mfu"] == single.mfu
    assert row["breakdown.exposed_comm_s.tp"] == single.breakdown.exposed_comm_s["tp"]
    assert row["breakdown.compute_s"] == single.breakdown.compute_s
    assert row["provenance.spec"] == single.provenance.spec
    assert row["scenario.workload.parallelism.tp"] == 4  # the path --set takes
    assert row["scenario.cluster.preset"] == "dgx-h100"
    assert row["gpus"] == 16 and row["events"] == single.events


def test_a_frame_of_many_keeps_the_varied_scenario_fields(single) -> None:
    other = simulate(load_scenario(small_scenario(workload__parallelism={"tp": 2, "pp": 2,
                                                                           "dp": 4})))
    frame = to_frame([single, other])
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2
    varied = sorted(c for c in frame.columns if c.startswith("scenario."))
    assert varied == ["scenario.workload.parallelism.dp", "scenario.workload.parallelism.tp"]
    assert list(frame["scenario.workload.parallelism.tp"]) == [4, 2]
    assert list(frame["iteration_s"]) == [single.iteration_s, other.iteration_s]
    everything = to_frame([single, other], varied_only=False)
    assert "scenario.cluster.preset" in everything.columns
    alone = to_frame([single])  # one row: nothing varies, every field is kept
    assert "scenario.cluster.preset" in alone.columns and len(alone) == 1


def test_multi_job_rows_one_per_run_or_one_per_job(multi) -> None:
    row = multi.to_record()
    assert all(_scalar(v) for v in row.values())
    assert row["jobs"] == 2 and row["job.a.iteration_s"] == multi.job("a").iteration_s
    assert row["job.b.placement.leaves"] == multi.job("b").placement["leaves"]
    frame = to_frame([multi], per_job=True)
    assert list(frame["name"]) == ["a", "b"] and list(frame["scenario_name"]) == ["two", "two"]
    assert list(frame["iteration_s"]) == [j.iteration_s for j in multi.jobs]


def test_the_json_contract_is_unchanged_by_the_shared_type(single, multi) -> None:
    d = single.to_dict()
    assert "jobs" not in d and d["iteration_s"] == single.iteration_s
    assert "placement" not in d and d["timing"] is None
    m = multi.to_dict()
    assert [j["name"] for j in m["jobs"]] == ["a", "b"] and m["gpus_used"] == 16
    assert m["jobs"][0]["placement"]["policy"] == "packed"


def test_a_replay_has_a_flat_row_too() -> None:
    r = replay(TRACE, calibration="spec")
    row = r.to_record()
    assert all(_scalar(v) for v in row.values())
    assert row["step_s"] == r.step_s and row["breakdown.compute_s"] == r.breakdown["compute_s"]
    assert row["collectives"] == len(r.collectives)
    assert len(to_frame([r, r])) == 2


def test_flatten_dots_nested_records() -> None:
    assert flatten({"a": {"b": 1, "c": [{"d": 2}, {"d": 3}]}, "e": [1, 2], "f": {}, "g": []}) == {
        "a.b": 1, "a.c.0.d": 2, "a.c.1.d": 3, "e": (1, 2), "f": None, "g": None}
