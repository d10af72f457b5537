"""Every parallelism end to end: communication volume per step against hand calculations,
fold vs unfold agreement, memory against the published formulas, the examples run."""

from collections import defaultdict
from pathlib import Path

import pytest

from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import job_from_scenario, simulate
from tests.conftest import small_scenario
from workloads.memory import max_in_flight, memory_footprint
from workloads.models import get_model
from workloads.parallelism import Parallelism, TrainingJob
from workloads.training import build_program, grad_reduce_bytes

ROOT = Path(__file__).resolve().parents[1]


def volumes(sc: dict) -> tuple[dict, TrainingJob]:
    """Bytes per simulated rank per iteration, by (category, op), from the generated program
    (stage 0 of a folded program; one collective call counts its per-rank buffer once)."""
    job = job_from_scenario(load_scenario(sc))
    prog = build_program(job, fold=True)
    vol: dict = defaultdict(float)
    for op in prog.ranks[0].ops:
        if op.kind == "collective":
            vol[(op.category, op.collective.op)] += op.collective.size_bytes * op.repeat
    return vol, job


def moe_model(experts=8, top_k=2):
    return {"layers": 4, "hidden": 1024, "heads": 8, "kv_heads": 8, "ffn_hidden": 4096,
            "vocab": 32000, "activation": "swiglu", "norm": "rms_norm",
            "tied_embeddings": False, "dropout": False, "experts": experts, "top_k": top_k,
            "moe_ffn_hidden": 2048}


def test_tp_volume_without_and_with_sequence_parallelism():
    # 8 layers, pp 2 -> 4 layers on stage 0; m = 16 / 2 = 8 micro-batches
    sc = small_scenario()
    vol, job = volumes(sc)
    act = job.micro_batch * job.seq_len * job.model.hidden * 2
    # per layer per micro-batch: 2 all-reduces forward + 2 backward, plus 1 for the embedding
    expected = (4 * 4 + 1) * 8 * act
    assert vol[("tp", "all_reduce")] == pytest.approx(expected)
    sc["workload"]["parallelism"]["sequence_parallel"] = True
    vol, _ = volumes(sc)
    assert vol[("tp", "all_gather")] == pytest.approx(expected)
    assert vol[("tp", "reduce_scatter")] == pytest.approx(expected)
    assert ("tp", "all_reduce") not in vol


def test_pp_volume_is_one_tp_slice_per_micro_batch_each_way():
    vol, job = volumes(small_scenario())
    act = job.micro_batch * job.seq_len * job.model.hidden * 2
    # stage 0 sends 8 activations forward (stage 1 sends 8 gradients back to it)
    assert vol[("pp", "send_recv")] == pytest.approx(8 * act / 4)


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
def test_zero_stage_volumes(zero):
    sc = small_scenario(**{"workload__parallelism": {"tp": 1, "pp": 1, "dp": 16, "zero": zero},
                           "workload__batch": {"global": 64, "micro": 1}})
    vol, job = volumes(sc)
    m = job.model
    # tied embeddings on a single stage: one table
    params = 8 * (m.attention_params() + m.dense_mlp_params()) + m.embedding_params()
    g = grad_reduce_bytes("bf16") * params
    micro = job.micro_batches
    if zero == 0:
        assert vol[("dp", "all_reduce")] == pytest.approx(g)
    elif zero == 1:
        assert vol[("dp", "reduce_scatter")] == pytest.approx(g)
        assert vol[("dp", "all_gather")] == pytest.approx(2 * params)
    elif zero == 2:  # gradients leave every micro-batch; weights gathered after the step
        assert vol[("dp", "reduce_scatter")] == pytest.approx(micro * g)
        assert vol[("dp", "all_gather")] == pytest.approx(2 * params)
    else:  # ZeRO-3: weights gathered for forward and backward of every micro-batch;
        # DeepSpeed / FSDP reduce-scatter gradients in the 16-bit parameter type
        assert vol[("dp", "reduce_scatter")] == pytest.approx(micro * 2 * params)
        assert vol[("dp", "all_gather")] == pytest.approx(2 * micro * 2 * params)


def test_cp_ring_volume():
    sc = small_scenario(**{"workload__parallelism": {"tp": 2, "pp": 1, "cp": 4, "dp": 2},
                           "workload__seq_len": 4096})
    vol, job = volumes(sc)
    m = job.model
    tokens = job.micro_batch * job.seq_len // 4
    kv = 2 * tokens * (m.kv_heads // 2) * m.head_dim * 2  # K and V of the local chunk
    # per layer: cp - 1 = 3 exchanges forward, 3 backward carrying KV and dKV (2x)
    assert vol[("cp", "send_recv")] == pytest.approx(8 * job.micro_batches * 3 * (kv + 2 * kv))


def test_ep_all_to_all_volume():
    sc = small_scenario(**{"workload__model": moe_model(),
                           "workload__parallelism": {"tp": 1, "pp": 1, "dp": 16, "ep": 8},
                           "workload__batch": {"global": 32, "micro": 1}})
    vol, job = volumes(sc)
    per = job.micro_batch * job.seq_len * 2 * 1024 * 2  # tokens x top_k x hidden x bf16
    # dispatch + combine forward and backward: 4 per MoE layer per micro-batch
    assert vol[("ep", "all_to_all")] == pytest.approx(4 * 4 * job.micro_batches * per)


CASES = {
    "interleaved": {"workload__parallelism": {"tp": 2, "pp": 2, "vp": 2, "dp": 4},
                    "workload__batch": {"global": 16, "micro": 1}},
    "zero3": {"workload__parallelism": {"tp": 2, "pp": 1, "dp": 8, "zero": 3}},
    "cp": {"workload__parallelism": {"tp": 2, "pp": 2, "cp": 2, "dp": 2}},
    "moe": {"workload__model": moe_model(),
            "workload__parallelism": {"tp": 2, "pp": 1, "dp": 8, "ep": 4}},
    "tp_overlap": {"workload__parallelism": {"tp": 4, "pp": 2, "dp": 2, "tp_comm_overlap": True,
                                             "sequence_parallel": True}},
    "blocking_p2p": {"workload__parallelism": {"tp": 4, "pp": 2, "dp": 2,
                                               "overlap_p2p_comm": False}},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_parallelism_runs_folds_and_closes_its_breakdown(name):
    sc = small_scenario(**CASES[name])
    folded = simulate(load_scenario(sc))
    assert folded.breakdown.total_s() == pytest.approx(folded.iteration_s, rel=1e-9)
    assert 0 < folded.mfu <= folded.hfu <= 1
    sc["run"]["fold"] = "off"
    unfolded = simulate(load_scenario(sc))
    assert unfolded.simulated_ranks == 16
    assert unfolded.iteration_s == pytest.approx(folded.iteration_s, rel=1e-6)


def test_interleaving_shrinks_the_bubble_and_holds_more_activations():
    base = small_scenario(**{"workload__parallelism": {"tp": 2, "pp": 4, "dp": 2},
                             "workload__batch": {"global": 16, "micro": 1}})
    inter = small_scenario(**{"workload__parallelism": {"tp": 2, "pp": 4, "vp": 2, "dp": 2},
                              "workload__batch": {"global": 16, "micro": 1}})
    a, b = simulate(load_scenario(base)), simulate(load_scenario(inter))
    assert b.breakdown.pipeline_bubble_s < a.breakdown.pipeline_bubble_s
    # Korthikanti et al. 2022 sec. 4.2.3: the first stage holds 1 + (p - 1)/(p v) times the
    # activations of plain 1F1B (p micro-batches' worth).
    job = job_from_scenario(load_scenario(inter))
    chunks = max_in_flight(job, 0)
    p, v = 4, 2
    assert chunks / v == pytest.approx(p * (1 + (p - 1) / (p * v)))


def test_tp_comm_overlap_hides_tp_time():
    off = simulate(load_scenario(small_scenario(**CASES["tp_overlap"] | {})))
    sc = small_scenario(**CASES["tp_overlap"])
    sc["workload"]["parallelism"]["tp_comm_overlap"] = False
    on_off = simulate(load_scenario(sc))
    assert off.breakdown.exposed_comm_s["tp"] < on_off.breakdown.exposed_comm_s["tp"]
    assert off.iteration_s < on_off.iteration_s


def test_moe_imbalance_slows_the_step():
    sc = small_scenario(**CASES["moe"])
    even = simulate(load_scenario(sc))
    sc["workload"]["moe_imbalance"] = 1.5
    skew = simulate(load_scenario(sc))
    assert skew.iteration_s > even.iteration_s and skew.mfu < even.mfu


def test_zero_memory_shards_states():
    m = get_model("llama3-8b")
    fp = {z: memory_footprint(TrainingJob(m, Parallelism(dp=16, zero=z), 4096, 16), 80e9)
          for z in (0, 1, 2, 3)}
    assert fp[1].optimizer_bytes == pytest.approx(fp[0].optimizer_bytes / 16)
    assert fp[2].gradients_bytes == pytest.approx(fp[0].gradients_bytes / 16)
    assert fp[3].weights_bytes == pytest.approx(fp[0].weights_bytes / 16)
    assert fp[3].total_bytes < fp[2].total_bytes < fp[1].total_bytes < fp[0].total_bytes


def test_straggler_and_degraded_link_run_unfolded_and_slow_the_job():
    base = simulate(load_scenario(small_scenario()))
    sc = small_scenario()
    sc["run"]["perturb"] = {"slow_gpus": {5: 1.5}}
    slow = simulate(load_scenario(sc))
    assert slow.simulated_ranks == 16 and slow.iteration_s > base.iteration_s
    sc = small_scenario()
    sc["run"]["perturb"] = {"degraded_links": [{"gpu": 9, "factor": 0.1}]}
    deg = simulate(load_scenario(sc))
    assert deg.simulated_ranks == 16 and deg.iteration_s > base.iteration_s


def test_uneven_stages_must_be_asked_for():
    sc = small_scenario(**{"workload__model": {"layers": 7, "hidden": 2048, "heads": 16,
                                                "ffn_hidden": 8192, "vocab": 32000}})
    with pytest.raises(ValueError, match="uneven_stages"):
        simulate(load_scenario(sc))
    sc["workload"]["parallelism"]["uneven_stages"] = True
    assert simulate(load_scenario(sc)).iteration_s > 0


FAST_EXAMPLES = ["llama3-70b-interleaved-64xh100", "llama3-8b-fsdp-16xh100",
                 "llama3-70b-cp-128k", "mixtral-8x7b-512xh100", "llama3-70b-64xh100",
                 "llama3-8b-8xa100"]


@pytest.mark.parametrize("name", FAST_EXAMPLES)
def test_examples_run(name):
    r = simulate(load_scenario(ROOT / "examples" / f"{name}.yaml"))
    assert r.fits_in_memory and 0 < r.mfu <= 1
    assert r.breakdown.total_s() == pytest.approx(r.iteration_s, rel=1e-9)
