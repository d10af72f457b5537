"""The Megatron SC'21 validation runs each row the way the paper's artifact scripts did."""

from __future__ import annotations

import yaml

from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import job_from_workload
from dcsim.app.validate import bundled_validation_dir, megatron_runs, megatron_scenario


def _table() -> dict:
    return yaml.safe_load((bundled_validation_dir() / "megatron-sc21-table1.yaml").read_text())


def test_every_row_has_a_published_run_configuration() -> None:
    runs = megatron_runs(bundled_validation_dir())
    assert {float(r["params_b"]) for r in _table()["rows"]} == set(runs)


def test_scenarios_carry_the_script_settings() -> None:
    table, runs = _table(), megatron_runs(bundled_validation_dir())
    by_size = {float(r["params_b"]): r for r in table["rows"]}
    small = load_scenario(megatron_scenario(by_size[1.7], table, "analytical", runs[1.7]))
    job = job_from_workload(small.workload)
    assert job.micro_batch == 16 and job.micro_batches == 1      # 512 / dp 32 / mbs 16
    assert job.par.overlap_grad_reduce                           # torch DDP
    assert job.par.ddp_bucket_params == 25 * 2**20 // 2          # 25 MiB of fp16 gradients
    big = load_scenario(megatron_scenario(by_size[76.1], table, "analytical", runs[76.1]))
    job = job_from_workload(big.workload)
    # 60 layers on pp 4 = 15 per stage, 5 per virtual stage: 3 interleaved chunks.
    assert job.par.vp == 3 and job.micro_batch == 2
    assert not job.par.overlap_grad_reduce                       # Megatron LocalDDP
    trillion = load_scenario(megatron_scenario(by_size[1008.0], table, "analytical",
                                               runs[1008.0]))
    assert job_from_workload(trillion.workload).par.vp == 1
