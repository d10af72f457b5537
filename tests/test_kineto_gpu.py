"""Trace in, GPU side: kernels per CUDA stream, an NCCL all-reduce with its message size and
group from the kernel's args, and the cudaStreamWaitEvent syncs on both sides of it.

The trace is built here (no GPU on the development machines) in the layout Kineto writes:
kernels on pid = device, tid = stream, linked to their cudaLaunchKernel by `correlation`;
NCCL kernels carry record_param_comms' args (Collective name, In/Out msg nelems, Group size,
dtype); cudaStreamWaitEvent carries `wait_on_stream`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcsim.app.replay import replay
from workloads.kineto import parse_step, to_program

COMPUTE, NCCL = 7, 20
NELEMS = 1 << 20  # bf16 -> 2 MiB


def gpu_trace(waits: bool = True, wait_on_stream: bool = True) -> dict:
    """Step: gemm, gemm | all-reduce of the grads beside an elementwise kernel | optimizer
    (waits for the all-reduce). Times in us."""
    ev: list[dict] = [{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#5",
                       "pid": 100, "tid": 100, "ts": 0.0, "dur": 2000.0, "args": {}}]

    def launch(corr: int, ts: float) -> None:
        ev.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 100,
                   "tid": 100, "ts": ts, "dur": 4.0, "args": {"correlation": corr,
                                                              "External id": corr + 1000}})

    def kernel(corr: int, name: str, stream: int, ts: float, dur: float, **args) -> None:
        ev.append({"ph": "X", "cat": "kernel", "name": name, "pid": 0, "tid": stream,
                   "ts": ts, "dur": dur, "args": {"correlation": corr, "stream": stream,
                                                  "device": 0, "External id": corr + 1000,
                                                  **args}})

    def wait(ts: float, on: int) -> None:
        if waits:
            ev.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaStreamWaitEvent",
                       "pid": 100, "tid": 100, "ts": ts, "dur": 2.0,
                       "args": {"wait_on_stream": on} if wait_on_stream else {}})

    launch(1, 10)
    kernel(1, "sm90_xmma_gemm_bf16bf16_bf16f32(...)", COMPUTE, 100, 300)
    launch(2, 20)
    kernel(2, "sm90_xmma_gemm_bf16bf16_bf16f32(...)", COMPUTE, 400, 300)
    wait(25, COMPUTE)  # the NCCL stream waits for the grads
    launch(3, 30)
    kernel(3, "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)",
           NCCL, 700, 500, **{"Collective name": "allreduce", "In msg nelems": NELEMS,
                              "Out msg nelems": NELEMS, "Group size": 8, "dtype": "BFloat16",
                              "Process Group Name": "0"})
    launch(4, 40)
    kernel(4, "vectorized_elementwise_kernel<4, ...>(...)", COMPUTE, 700, 200)
    wait(45, NCCL)  # the optimizer waits for the all-reduce
    launch(5, 50)
    kernel(5, "multi_tensor_apply_kernel<...>(...)", COMPUTE, 1200, 300)
    return {"schemaVersion": 1, "deviceProperties": [{"id": 0, "name": "NVIDIA H100 80GB HBM3"}],
            "distributedInfo": {"backend": "nccl", "rank": 0, "world_size": 8,
                                "pg_config": [{"pg_name": "0", "pg_desc": "default_pg",
                                               "pg_size": 8, "ranks": list(range(8))}]},
            "traceEvents": ev}


def test_gpu_kernels_streams_and_the_nccl_call():
    s = parse_step(gpu_trace())
    assert (s.kind, s.device, s.world_size) == ("gpu", "h100-sxm", 8)
    assert [i.stream for i in s.items] == ["compute", "compute", "comm", "compute", "compute"]
    (c,) = s.collectives
    assert (c.op, c.size_bytes, c.group_size, c.category) == ("all_reduce", 2 * NELEMS, 8, "dp")
    assert c.deps == [1] and c.consumer_rule == "cudaStreamWaitEvent"
    opt = s.items[4]
    assert c.index in opt.deps
    assert (opt.wait_us, opt.host_us) == (300.0, 0.0)  # idle only because of the all-reduce
    assert s.recorded_step_s == pytest.approx(1400e-6)


@pytest.mark.parametrize("wait_on_stream", [True, False])
def test_sync_found_with_or_without_wait_on_stream(wait_on_stream):
    s = parse_step(gpu_trace(wait_on_stream=wait_on_stream))
    assert s.items[2].deps == [1] and 2 in s.items[4].deps


def test_without_wait_events_the_idle_gap_names_the_consumer():
    s = parse_step(gpu_trace(waits=False))
    c = s.collectives[0]
    assert c.consumer_rule == "idle gap" and c.index in s.items[4].deps
    assert 1 in c.deps  # the compute launched before it


def test_gpu_replay_recorded_and_priced(tmp_path: Path):
    f = tmp_path / "gpu.json"
    f.write_text(json.dumps(gpu_trace()))
    own = replay(f, preset="dgx-h100", dp=8, calibration="recorded")
    assert own.step_s == pytest.approx(1400e-6, rel=1e-6)  # its own timeline
    priced = replay(f, preset="dgx-h100", dp=8, calibration="spec")
    ar = priced.collectives[0]["replayed_s"]
    assert 0 < ar < 500e-6  # 2 MiB over NVLink
    # the optimizer waits for the all-reduce only while it is slower than the elementwise op
    assert priced.step_s == pytest.approx(600e-6 + max(200e-6, ar) + 300e-6, rel=1e-6)
    bigger = replay(f, preset="dgx-h100", nodes=4, dp=32, calibration="spec")
    assert bigger.collectives[0]["replayed_s"] > ar
    prog = to_program(parse_step(gpu_trace()), compute_scale=0.5)
    durs = [o.recorded.duration_s for o in prog.ranks[0].ops if o.kind == "compute"]
    assert durs == pytest.approx([150e-6, 150e-6, 100e-6, 150e-6])
