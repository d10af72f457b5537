"""Data loading per iteration: prefetched in parallel with the step; io_s is what it exposes."""

import pytest

from dcsim.app.scenario import ScenarioError, load_scenario
from dcsim.app.simulate import simulate
from tests.conftest import small_scenario


def _run(read_bw: str, **data):
    sc = small_scenario()
    sc["cluster"]["storage"] = [{"tier": "nfs", "read_bw": read_bw, "write_bw": "5 GB/s"}]
    if data:
        sc["workload"]["data"] = data
    return simulate(load_scenario(sc))


def test_fast_storage_hides_data_loading():
    base = simulate(load_scenario(small_scenario()))
    r = _run("100 GB/s")
    assert r.breakdown.io_s == 0.0
    assert r.iteration_s == base.iteration_s


def test_slow_storage_exposes_its_read_time():
    base = simulate(load_scenario(small_scenario()))
    sc = small_scenario()
    batch, seq = sc["workload"]["batch"]["global"], sc["workload"]["seq_len"]
    read_bw = 1e6  # 1 MB/s: far slower than any step
    r = _run("1 MB/s")
    # vocabulary 32,000 < 65,500: Megatron stores uint16 ids, 2 bytes a token
    load_s = batch * (seq + 1) * 2 / read_bw
    assert r.iteration_s == pytest.approx(max(base.iteration_s, load_s))
    assert r.breakdown.io_s == pytest.approx(load_s - base.iteration_s)
    assert r.breakdown.total_s() == pytest.approx(r.iteration_s)
    assert r.tokens_per_s == pytest.approx(batch * seq / r.iteration_s)


def test_bytes_per_token_from_the_scenario():
    r2, r8 = _run("1 MB/s"), _run("1 MB/s", bytes_per_token=8)
    assert r8.iteration_s > 3.9 * r2.iteration_s


def test_unknown_data_tier_is_one_line():
    with pytest.raises(ScenarioError, match=r"workload\.data\.tier: .*not a cluster\.storage"):
        _run("1 GB/s", tier="lustre")
