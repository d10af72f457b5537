"""Trace in, CPU side: how a collective's consumer is found when DDP's buffer shapes do not say
(explicit waits, the idle gap it ended in, in-order completion, the end of the step)."""

from __future__ import annotations

import pytest

from dcsim.engine import Engine
from dcsim.app.replay import OnDevice, RecordedCollectives
from topologies import build_cluster
from workloads.kineto import parse_step, to_program

MAIN, GLOO = 1, 2


def cpu_trace(ops: list[tuple], execs: list[tuple], step: tuple = (0.0, 1000.0)) -> dict:
    """ops: (name, ts, dur, input dims) on the main thread; execs: (name, ts, dur, dims) on
    gloo's thread."""
    ev = [{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#3", "pid": 9,
           "tid": MAIN, "ts": step[0], "dur": step[1], "args": {}}]
    for tid, rows in ((MAIN, ops), (GLOO, execs)):
        for name, ts, dur, dims in rows:
            ev.append({"ph": "X", "cat": "cpu_op" if tid == MAIN else "user_annotation",
                       "name": name, "pid": 9, "tid": tid, "ts": ts, "dur": dur,
                       "args": {"Input Dims": dims, "Input type": ["float"]}})
    return {"distributedInfo": {"backend": "gloo", "rank": 0, "world_size": 2},
            "traceEvents": ev}


def test_explicit_wait_blocks_inside_itself():
    s = parse_step(cpu_trace(
        [("aten::mm", 10, 90, [[8, 8]]), ("_c10d_functional::all_reduce", 100, 20, [[1000]]),
         ("aten::mm", 130, 170, [[8, 8]]), ("_c10d_functional::wait_tensor", 300, 200, [[7]]),
         ("aten::add", 510, 90, [[8]])],
        [("gloo:all_reduce", 125, 355, [[1000]])]))
    (c,) = s.collectives
    assert (c.consumer_rule, c.size_bytes, c.group_size) == ("explicit wait", 4000.0, 2)
    wait = next(i for i in s.items if i.name.endswith("wait_tensor"))
    assert c.index in wait.deps
    assert wait.busy_us == pytest.approx(20.0) and wait.wait_us == pytest.approx(180.0)


def test_idle_gap_in_order_and_step_end():
    s = parse_step(cpu_trace(
        [("aten::mm", 0, 100, [[8, 8]]), ("c10d::allreduce_", 100, 10, [[[500]]]),
         ("aten::mm", 110, 100, [[8, 8]]), ("c10d::allreduce_", 210, 10, [[[600]]]),
         ("aten::mm", 220, 80, [[8, 8]]),
         ("aten::add", 2700, 50, [[8]]),                     # resumed when the second ended
         ("c10d::allreduce_", 2750, 10, [[[700]]])],         # nothing waits for this one
        [("gloo:all_reduce", 105, 300, [[500]]), ("gloo:all_reduce", 405, 2290, [[600]]),
         ("gloo:all_reduce", 2765, 200, [[700]])], step=(0.0, 3000.0)))
    rules = [c.consumer_rule for c in s.collectives]
    assert rules == ["in order", "idle gap", "step end"]
    add = next(i for i in s.items if i.name == "aten::add")
    assert add.wait_us == pytest.approx(2395.0) and add.host_us == pytest.approx(5.0)
    end = s.items[-1]
    assert end.name == "step end" and s.collectives[-1].index in end.deps
    # every microsecond of the window is busy, host or waiting
    comp = [i for i in s.items if i.kind == "compute"]
    assert sum(i.busy_us + i.host_us + i.wait_us for i in comp) == pytest.approx(3000.0)


def test_replay_waits_for_the_collective_nobody_waited_for():
    data = cpu_trace([("aten::mm", 0, 100, [[8, 8]]), ("c10d::allreduce_", 100, 10, [[[700]]])],
                     [("gloo:all_reduce", 105, 500, [[700]])], step=(0.0, 110.0))
    s = parse_step(data)
    cluster = build_cluster("dgx-h100")  # overlaps comm: the step end still waits for it
    table = {("all_reduce", 2, 2800.0): [500e-6]}
    timing = Engine(to_program(s), cluster, OnDevice(RecordedCollectives(table), True)).run()
    # issued as the enqueue op began (right after the mm): 100 us + 500 us, as recorded
    assert timing.iteration_s == pytest.approx(100e-6 + 500e-6)


def test_barrier_blocks_the_next_op():
    s = parse_step(cpu_trace(
        [("c10d::barrier", 0, 20, [[1], []]), ("aten::mm", 300, 100, [[8, 8]])],
        [("gloo:barrier", 5, 280, [])], step=(0.0, 400.0)))
    (c,) = s.collectives
    assert (c.op, c.consumer_rule, c.label) == ("all_reduce", "blocking", "step/barrier")
    mm = s.items[-1]
    assert c.index in mm.deps and mm.wait_us == pytest.approx(265.0)
