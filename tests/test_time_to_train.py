"""Tokens -> iterations -> wall time, with the checkpoint hook."""

import math

import pytest

from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import CHECKPOINT_BYTES_PER_PARAM, simulate
from tests.conftest import small_scenario


def test_time_to_train_is_iterations_times_iteration_plus_checkpoints():
    sc = small_scenario()
    sc["workload"]["train"] = {"tokens": "1e9", "checkpoint_every": "10 min"}
    sc["cluster"]["storage"] = [{"tier": "nfs", "read_bw": "10 GB/s", "write_bw": "5 GB/s"}]
    r = simulate(load_scenario(sc))
    iters = math.ceil(1e9 / (16 * 1024))
    assert r.iterations_to_train == iters
    train = iters * r.iteration_s
    ck = r.checkpoint
    assert ck.count == int(train // 600)
    params = 8 * (12 * 2048**2 + 2 * 2048 * 2) + 32000 * 2048 + 2048  # layers, tied table, norm
    assert ck.bytes_each == pytest.approx(CHECKPOINT_BYTES_PER_PARAM * params, rel=0.01)
    assert ck.write_s_each == pytest.approx(ck.bytes_each / 5e9)
    assert r.time_to_train_s == pytest.approx(train + ck.count * ck.write_s_each)


def test_no_storage_means_unpriced_checkpoints_said_so():
    sc = small_scenario()
    sc["workload"]["train"] = {"tokens": "1e9", "checkpoint_every": "10 min"}
    r = simulate(load_scenario(sc))
    assert r.checkpoint.write_s_each == 0 and "not priced" in r.checkpoint.note
