"""Measured collective times count only on the device that measured them."""

from __future__ import annotations

import pytest

from dcsim.app.profiles import load_cost_model
from dcsim.collectives import CollectiveCall
from dcsim.network.analytical import analytical_time
from dcsim.costs import SpecRoofline
from dcsim.pricing import Pricing
from dcsim.hardware import gpu as load_gpu
from topologies import build_cluster


def test_a_cpu_profile_answers_gloo_times_only_for_the_cpu_host() -> None:
    model = load_cost_model("cpu-2core")
    on_cpu = model.collective_time("all_reduce", 2, 2**20, load_gpu("cpu-host"))
    assert on_cpu is not None and on_cpu.time_s > 0
    assert model.collective_time("all_reduce", 2, 2**20, load_gpu("h100-sxm")) is None


def test_an_h100_engine_with_a_cpu_profile_prices_collectives_by_its_network() -> None:
    """A DGX H100 all-reduce takes the same time whichever profile prices the kernels: the CPU
    profile's gloo loopback times are not NCCL over NVLink."""
    cluster = build_cluster("dgx-h100", nodes=1)
    call = CollectiveCall("all_reduce", ((0, 1),), 2**20)
    spec = Pricing(cluster, SpecRoofline()).collective_once(call)
    cpu = Pricing(cluster, load_cost_model("cpu-2core")).collective_once(call)
    assert cpu == spec == pytest.approx(analytical_time(cluster, call).time_s)
    # on the host it measured, the profile's own time is used
    host = build_cluster("cpu-host", nodes=1)
    measured = load_cost_model("cpu-2core").collective_time("all_reduce", 2, 2**20, host.gpu_spec)
    on_host = Pricing(host, load_cost_model("cpu-2core")).collective_once(
        CollectiveCall("all_reduce", ((0, 1),), 2**20))
    assert on_host == pytest.approx(measured.time_s)
