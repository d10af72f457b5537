"""Tensor-parallel communication overlap (userbuffers): only the share Transformer Engine's
methods leave after the GEMM is exposed, and none of it without sequence parallelism."""

from __future__ import annotations

import pytest

from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import job_from_scenario, simulate
from tests.conftest import small_scenario
from workloads.tp_overlap import PIPELINE_SPLITS, exposed_fraction
from workloads.training import build_program


def _sc(overlap: bool, sp: bool = True) -> dict:
    return small_scenario(**{"workload__parallelism": {
        "tp": 4, "pp": 2, "dp": 2, "tp_comm_overlap": overlap, "sequence_parallel": sp}})


def test_exposed_fraction_follows_the_userbuffers_methods():
    # ring-exchange all-gathers and bulk backward reduce-scatters hide fully
    assert exposed_fraction("all_gather", 4, backward=False) == 0.0
    assert exposed_fraction("reduce_scatter", 4, backward=True) == 0.0
    # forward reduce-scatters: last of 4 pipeline splits, last of tp ring steps
    assert exposed_fraction("reduce_scatter", 8, backward=False) == pytest.approx(
        (1 / PIPELINE_SPLITS + 1 / 8) / 2)


def _tp_bytes(sc: dict) -> dict[str, float]:
    prog = build_program(job_from_scenario(load_scenario(sc)), fold=True)
    out = {"compute": 0.0, "comm": 0.0}
    for op in prog.ranks[0].ops:
        if op.kind == "collective" and op.category == "tp":
            out[op.stream] += op.repeat * op.collective.size_bytes
    return out


def test_overlap_keeps_the_bytes_and_moves_most_off_the_compute_stream():
    off, on = _tp_bytes(_sc(False)), _tp_bytes(_sc(True))
    assert off["comm"] == 0.0
    assert on["compute"] + on["comm"] == pytest.approx(off["compute"])
    assert 0.0 < on["compute"] < 0.25 * off["compute"]


def test_no_overlap_without_sequence_parallelism():
    assert _tp_bytes(_sc(True, sp=False))["comm"] == 0.0


def test_overlap_lies_between_blocking_and_fully_hidden():
    off = simulate(load_scenario(_sc(False)))
    on = simulate(load_scenario(_sc(True)))
    assert 0.0 < on.breakdown.exposed_comm_s["tp"] < off.breakdown.exposed_comm_s["tp"]
    assert on.iteration_s < off.iteration_s
