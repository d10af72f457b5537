"""Scenarios priced from the committed CPU profile vs the spec roofline: provenance shares."""

import pytest
from typer.testing import CliRunner

from dcsim.calibrated import load_cost_model, profiled_gpu
from dcsim.calibration_check import tiny_scenario
from dcsim.cli import app
from dcsim.scenario import load_scenario
from dcsim.simulate import simulate


class _Cfg:  # the tiny GPT's shapes without importing torch
    layers, hidden, heads, ffn_hidden, vocab, seq_len, micro_batch, precision = (
        2, 256, 4, 1024, 2048, 128, 4, "fp32")


def test_cpu_profile_prices_the_tiny_gpt_with_measured_shares():
    res = simulate(load_scenario(tiny_scenario(_Cfg, 2, "cpu-2core", "cpu-host")))
    p = res.provenance
    assert p.calibration == "cpu-2core"
    assert p.measured + p.fitted + p.spec == pytest.approx(1.0)
    assert p.measured > 0.3 and p.spec < 0.05
    spec = simulate(load_scenario(tiny_scenario(_Cfg, 2, "spec", "cpu-host")))
    assert spec.provenance.spec == pytest.approx(1.0) and spec.provenance.measured == 0.0
    assert spec.iteration_s != res.iteration_s


def test_profile_on_another_gpu_scales_spec_and_says_so():
    model = load_cost_model("cpu-2core")
    assert profiled_gpu(model.profile) == "cpu-host"
    sc = tiny_scenario(_Cfg, 8, "cpu-2core", "dgx-h100")
    sc["workload"]["precision"] = "bf16"
    res = simulate(load_scenario(sc))
    assert res.provenance.measured == 0.0 and "cpu" in res.provenance.note


@pytest.mark.parametrize("value,message", [
    ("no-such-profile", "unknown profile 'no-such-profile'"),
    ("/nonexistent/p.json", "not found"),
])
def test_bad_calibration_exits_2(tmp_path, value, message):
    import yaml
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(tiny_scenario(_Cfg, 2, "spec", "cpu-host")))
    r = CliRunner().invoke(app, ["simulate", str(f), "--calibration", value])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_corrupt_profile_exits_2(tmp_path):
    import yaml
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(tiny_scenario(_Cfg, 2, "spec", "cpu-host")))
    r = CliRunner().invoke(app, ["simulate", str(f), "--calibration", str(bad)])
    assert r.exit_code == 2 and "bad.json" in r.output
