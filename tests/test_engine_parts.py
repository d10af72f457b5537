"""The engine's parts, each through its public interface: pricing (typed caches, provenance),
attribution (the gap rule), observers (progress), and the typed op fields the engine reads
(recorded durations, rendezvous, lanes) instead of meta keys."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from dcsim.attribution import attribute_gap, on_compute_stream
from dcsim.costs import Cost, SpecRoofline
from dcsim.engine import Engine
from dcsim.hardware import GPUSpec
from dcsim.observers import REPORTS_PER_RUN, OpProgress
from dcsim.pricing import Pricing
from dcsim.program import (Category, Kernel, Op, OpKind, Program, ProgramBuilder, RankProgram,
                           Recorded, Rendezvous, Stream)
from dcsim.collectives import CollectiveCall
from topologies import build_cluster

GEMM = Kernel("gemm", 2e12, 1e9, "bf16", "gemm")


@dataclass
class Counting:
    """A spec roofline that counts the kernels it was asked to price."""

    name: str = "counting"
    asked: list[Kernel] = field(default_factory=list)

    def kernel_time(self, kernel: Kernel, gpu: GPUSpec) -> Cost:
        self.asked.append(kernel)
        return SpecRoofline().kernel_time(kernel, gpu)

    def collective_time(self, op: str, world_size: int, size_bytes: float,
                        gpu: GPUSpec) -> Cost | None:
        return None


def _op(i: int, category: Category = Category.COMPUTE, deps: tuple[int, ...] = (),
        stream: Stream = Stream.COMPUTE) -> Op:
    return Op(i, OpKind.COMPUTE, stream, category, f"op{i}", deps)


def test_enums_compare_print_and_serialize_as_their_values() -> None:
    assert Category.DP == "dp" and {"dp": 1}[Category.DP] == 1
    assert f"wait: {Category.PIPELINE_BUBBLE}" == "wait: pipeline_bubble"
    assert json.dumps({Category.TP: [OpKind.COMPUTE, Stream.P2P]}) == '{"tp": ["compute", "p2p"]}'


def test_pricing_prices_a_shared_kernel_tuple_once_and_tallies_every_gpu() -> None:
    cluster = build_cluster("dgx-h100", nodes=1)
    costs = Counting()
    pricing = Pricing(cluster, costs)
    kernels = (GEMM, GEMM)
    ops = [Op(i, OpKind.COMPUTE, Stream.COMPUTE, Category.COMPUTE, "x", kernels=kernels)
           for i in range(3)]
    times = [pricing.compute_time(op, multiplicity=4) for op in ops]
    assert len(costs.asked) == 1  # one kernel class, one tuple: priced once
    one = SpecRoofline().kernel_time(GEMM, cluster.gpu_spec).time_s
    assert times == [2 * one] * 3
    assert pricing.provenance_s["spec"] == pytest.approx(3 * 4 * 2 * one)
    assert set(pricing.kernel_costs) == {GEMM}


def test_a_recorded_duration_is_taken_as_it_is() -> None:
    pricing = Pricing(build_cluster("cpu-host", nodes=1), Counting())
    op = Op(0, OpKind.COMPUTE, Stream.COMPUTE, Category.COMPUTE, "rec", repeat=3,
            recorded=Recorded(0.5, "measured", kernels=7))
    assert pricing.compute_time(op, multiplicity=2) == 1.5
    assert pricing.provenance_s["measured"] == 3.0 and pricing.extrapolated_s == 0.0


def test_a_gap_before_a_pipeline_receive_splits_into_bubble_and_exposed_pp() -> None:
    # op 0 (the sender's compute) ends at 2; op 1 (the transfer, pp) runs 2..3; op 2 waits.
    ops = {0: _op(0), 1: _op(1, Category.PP, deps=(0,), stream=Stream.P2P), 2: _op(2, deps=(1,))}
    times = {0: (0.0, 2.0), 1: (2.0, 3.0), 2: (3.0, 4.0)}
    got: list[tuple[Category, float]] = []
    attribute_gap(ops[2], 0.5, 3.0, times, ops, lambda c, dt: got.append((c, dt)))
    assert got == [(Category.PIPELINE_BUBBLE, 1.5), (Category.PP, 1.0)]
    got.clear()  # no dependency ended in the gap: waiting for peers, charged to the op itself
    attribute_gap(_op(3, Category.DP), 0.0, 1.0, times, ops, lambda c, dt: got.append((c, dt)))
    assert got == [(Category.DP, 1.0)]


def test_the_compute_stream_is_the_main_one_unless_nothing_overlaps() -> None:
    side = Op(0, OpKind.COMPUTE, Stream.SIDE, Category.COMPUTE, "k", lane="7")
    assert side.stream_name == "stream:7" and not on_compute_stream(side, True)
    assert on_compute_stream(side, False) and on_compute_stream(_op(1), True)


def test_the_engine_reads_typed_fields_rendezvous_recorded_and_lanes() -> None:
    """Two simulated ranks meet at a collective: it starts when the later one arrives; the
    compute is recorded (no pricing); no op has a meta dict."""
    cluster = build_cluster("dgx-h100", nodes=1)
    b = ProgramBuilder()
    ranks = [RankProgram(rank=r, multiplicity=1) for r in range(2)]
    call = CollectiveCall("all_reduce", ((0, 1),), 2**20)
    for r, rp in enumerate(ranks):
        c = b.add(rp, kind=OpKind.COMPUTE, stream=Stream.COMPUTE, category=Category.COMPUTE,
                  label="fwd", recorded=Recorded(1e-3 * (r + 1)))
        ar = b.add(rp, kind=OpKind.COLLECTIVE, stream=Stream.COMM, lane="1",
                   category=Category.DP, label="ar", deps=(c.id,), collective=call,
                   rendezvous=Rendezvous(("ar",), 2))
        b.add(rp, kind=OpKind.COMPUTE, stream=Stream.COMPUTE, category=Category.OPTIMIZER,
              label="step", deps=(ar.id,), recorded=Recorded(0.0))
    costs = Counting()
    timing = Engine(Program(ranks=ranks, folded=False), cluster, costs).run()
    assert costs.asked == []  # recorded compute is never priced
    ar = [t for t in timing.timings if t.op.label == "ar"]
    assert [t.start_s for t in ar] == [2e-3, 2e-3]  # both start when the last one arrived
    assert ar[0].end_s == ar[1].end_s > 2e-3
    assert all(t.op.meta is None for t in timing.timings)
    assert timing.provenance_s["measured"] == pytest.approx(3e-3)
    # rank 0 (first to end) waited 1 ms for rank 1, then for the all-reduce: exposed dp
    assert timing.critical_rank == 0
    assert timing.breakdown == pytest.approx({Category.COMPUTE: 1e-3,
                                              Category.DP: timing.iteration_s - 1e-3})


def test_progress_is_heard_about_reports_per_run_times() -> None:
    heard: list[tuple[int, int]] = []
    p = OpProgress(lambda d, t: heard.append((d, t)), total_ops=10_000)
    for done in range(1, 10_001):
        if done % p.every == 0:
            p.report(done)
    assert len(heard) == REPORTS_PER_RUN and heard[-1] == (10_000, 10_000)


def test_the_engine_and_its_parts_read_typed_op_fields_not_meta() -> None:
    """What the engine reads from an op is a typed field: no `.meta` in its modules."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for rel in ("dcsim/engine.py", "dcsim/pricing.py", "dcsim/attribution.py"):
        tree = ast.parse((root / rel).read_text())
        metas = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                 and n.attr == "meta"]
        assert not metas, f"{rel} reads .meta at lines {metas}"
