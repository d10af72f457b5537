"""Every bad input: one clear line naming the field, exit code 2, no traceback."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dcsim.app.cli import app
from tests.conftest import small_scenario

runner = CliRunner()


def run_cli(tmp_path: Path, scenario: dict, *extra: str):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(scenario))
    return runner.invoke(app, ["simulate", str(f), "--json", *extra])


CASES = [
    ("unknown key", dict(workload__colour="red"), "workload.colour: unknown key"),
    ("wrong unit", dict(workload__train={"tokens": "1e9", "checkpoint_every": "30 parsecs"}),
     "expected a duration"),
    ("gpu count", dict(workload__parallelism={"tp": 4, "pp": 2, "dp": 4}),
     "tp x pp x dp x cp = 4x2x4x1 = 32 but the cluster has 16 GPUs"),
    ("heads vs tp", dict(workload__model={"layers": 8, "hidden": 2040, "heads": 12,
                                           "ffn_hidden": 8192, "vocab": 32000},
                         workload__parallelism={"tp": 8, "pp": 2, "dp": 1}),
     "heads=12 is not divisible by tp=8"),
    ("layers vs pp", dict(workload__model={"layers": 7, "hidden": 2048, "heads": 16,
                                            "ffn_hidden": 8192, "vocab": 32000}),
     "layers=7 is not divisible by pp x vp = 2"),
    ("batch", dict(workload__batch={"global": 15, "micro": 1}),
     "workload.batch.global: 15 is not divisible by micro x dp"),
    ("preset", dict(cluster__preset="dgx-z9000"), "unknown preset 'dgx-z9000'"),
    ("model", dict(workload__model="gpt-17"), "workload.model: unknown model 'gpt-17'"),
    ("precision", dict(workload__precision="fp4"), "workload.precision"),
    ("recompute", dict(workload__parallelism={"tp": 4, "pp": 2, "dp": 2, "recompute": "some"}),
     "workload.parallelism.recompute"),
    ("routing", dict(run={"network": "flow", "routing": "adaptive"}), "run.routing"),
]


@pytest.mark.parametrize("name,over,message", CASES, ids=[c[0] for c in CASES])
def test_bad_scenario_exits_2_with_one_line(tmp_path, name, over, message):
    res = run_cli(tmp_path, small_scenario(**over))
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert message in text
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) <= 2  # one line (rich may wrap once)


def test_set_override_is_applied_and_validated(tmp_path):
    res = run_cli(tmp_path, small_scenario(), "--set", "workload.parallelism.tp=3")
    assert res.exit_code == 2 and "tp" in res.output
    ok = run_cli(tmp_path, small_scenario(), "--set", "workload.batch.global=32")
    assert ok.exit_code == 0, ok.output


def test_set_indexes_lists_and_says_what_is_wrong(tmp_path):
    from dcsim.app.scenario import ScenarioError, load_scenario

    two = {"name": "two", "cluster": {"preset": "dgx-h100", "nodes": 4},
           "jobs": [{"name": "a", "workload": small_scenario()["workload"]},
                    {"name": "b", "workload": small_scenario()["workload"]}],
           "run": {"network": "analytical"}}
    sc = load_scenario(two, ["jobs.1.placement=spread", "jobs[0].workload.batch.global=32"])
    assert [j.placement for j in sc.jobs] == ["packed", "spread"]
    assert sc.jobs[0].workload.batch.global_ == 32
    assert two["jobs"][1].get("placement") is None  # the caller's data is left alone
    for bad, message in [("jobs.2.placement=spread", "jobs has 2 entries (0..1)"),
                         ("jobs.x.placement=spread", "jobs is a list; index it by number"),
                         ("name.x=1", "name is not a mapping"),
                         ("run..network=flow", "empty key")]:
        with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_scenario(two, [bad])
    res = runner.invoke(app, ["simulate", "--json", "--set", "jobs.3.placement=spread",
                              str(_write(tmp_path, two))])
    assert res.exit_code == 2 and "jobs has 2 entries" in " ".join(res.output.split())


def _write(tmp_path: Path, scenario: dict) -> Path:
    f = tmp_path / "two.yaml"
    f.write_text(yaml.safe_dump(scenario))
    return f


def test_missing_file_and_bad_yaml(tmp_path):
    res = runner.invoke(app, ["simulate", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "nope.yaml: no such file" in res.output
    f = tmp_path / "bad.yaml"
    f.write_text("cluster: [unclosed\n")
    res = runner.invoke(app, ["simulate", str(f)])
    assert res.exit_code == 2 and "not valid YAML" in res.output


def test_yaml_off_means_off(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(small_scenario()).replace("fold: auto", "fold: off"))
    assert "fold: off" in f.read_text()
    from dcsim.app.scenario import load_scenario
    assert load_scenario(f).run.fold == "off"
    assert load_scenario(f, ["run.fold=off"]).run.fold == "off"


@pytest.mark.parametrize("args", [
    ["plan", "{bin}"],
    ["capacity", "{bin}"],
    ["sweep", "{ok}", "--grid", "{bin}", "--out", "{tmp}/s.parquet"],
    ["sweep", "{bin}", "--grid", "{grid}", "--out", "{tmp}/s.parquet"],
    ["report", "{bin}", "--history", "{tmp}/h.duckdb", "--out", "{tmp}/r.html"],
    ["collective", "all_reduce", "--preset", "{bin}"],
], ids=["plan", "capacity", "sweep-grid", "sweep-scenario", "report", "collective-preset"])
def test_a_binary_input_file_is_one_line_and_exit_2(tmp_path, args):
    """Every command that reads a YAML file refuses one that is not UTF-8 text (a fuzzing
    campaign found `collective --preset` and `plan` raising UnicodeDecodeError)."""
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name: x\n")
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(small_scenario()))
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"grid": {"workload.batch.micro": [1]}}))
    argv = [a.format(bin=binary, ok=ok, grid=grid, tmp=tmp_path) for a in args]
    res = runner.invoke(app, argv)
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "binary.yaml" in lines[0] and "UTF-8" in lines[0], res.stderr
    assert "Traceback" not in res.output
