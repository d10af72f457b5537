"""Overlap as the frameworks do it (issue 11 item 4): parameter gather under the next forward,
LocalDDP's reduction after the pipeline drains."""

from __future__ import annotations

from pathlib import Path

from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import simulate
from workloads.models import get_model
from workloads.parallelism import Parallelism, TrainingJob
from workloads.training import build_program

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "llama3-70b-64xh100.yaml"


def test_overlapped_param_gather_hides_under_the_forward() -> None:
    off = simulate(load_scenario(EXAMPLE, ["workload.parallelism.overlap_param_gather=false"]))
    on = simulate(load_scenario(EXAMPLE, ["workload.parallelism.overlap_param_gather=true"]))
    assert on.breakdown.exposed_comm_s["dp"] < 0.5 * off.breakdown.exposed_comm_s["dp"]
    assert on.iteration_s < off.iteration_s


def test_param_gather_is_bucketed_and_precedes_each_buckets_first_forward() -> None:
    job = TrainingJob(model=get_model("llama3-8b"), seq_len=2048, global_batch=8, micro_batch=1,
                      par=Parallelism(tp=2, pp=2, dp=2, zero=1, overlap_param_gather=True,
                                      ddp_bucket_params=500_000_000))
    ops = build_program(job).ranks[0].ops
    gathers = [o for o in ops if o.label.endswith("param_all_gather")]
    assert len(gathers) > 1 and all(o.stream == "comm" for o in gathers)
    assert not any(o.label == "params/all_gather" for o in ops)  # no blocking gather at the end
    for g in gathers:  # the layers of its bucket wait for it
        nxt = next(o for o in ops if o.id > g.id and o.kind == "compute")
        assert g.id in nxt.deps


def test_local_ddp_with_interleaving_reduces_after_the_drain() -> None:
    job = TrainingJob(model=get_model("llama3-8b"), seq_len=2048, global_batch=16, micro_batch=1,
                      par=Parallelism(tp=2, pp=2, dp=2, vp=2, overlap_grad_reduce=False))
    ops = build_program(job).ranks[0].ops
    last_backward = max(o.id for o in ops if o.kind == "compute" and o.category == "compute")
    grads = [o for o in ops if "/grads" in o.label]
    assert len(grads) == 2  # one per chunk, LocalDDP over its contiguous buffer
    assert all(o.id > last_backward for o in grads)
