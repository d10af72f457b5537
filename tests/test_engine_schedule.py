"""The engine: 1F1B bubble from the simulation, breakdown closure, folding, determinism."""

import pytest

from dcsim.costs import SpecRoofline
from dcsim.engine import Engine
from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import build_cluster, job_from_scenario, simulate
from tests.conftest import small_scenario
from workloads.training import build_program, one_f_one_b


def test_one_f_one_b_order():
    assert one_f_one_b(0, 4, 4)[:4] == [("F", 0), ("F", 1), ("F", 2), ("F", 3)]
    last = one_f_one_b(3, 4, 4)
    assert last == [("F", 0), ("B", 0), ("F", 1), ("B", 1), ("F", 2), ("B", 2), ("F", 3), ("B", 3)]
    for st in range(4):
        order = one_f_one_b(st, 4, 6)
        assert sorted(order) == sorted([("F", j) for j in range(6)] + [("B", j) for j in range(6)])


@pytest.mark.parametrize("pp,m", [(2, 4), (4, 8), (8, 16), (8, 64)])
def test_bubble_matches_closed_form_for_uniform_stages(pp, m):
    # Uniform stages: a tiny vocabulary, no TP/DP, so only the layers cost time.
    sc = small_scenario(**{
        "cluster__nodes": 1,
        "workload__model": {"layers": 4 * pp, "hidden": 4096, "heads": 32,
                            "ffn_hidden": 16384, "vocab": 8, "tied_embeddings": False},
        "workload__parallelism": {"tp": 1, "pp": pp, "dp": 8 // pp},
        "workload__batch": {"global": m * (8 // pp), "micro": 1},
    })
    res = simulate(load_scenario(sc))
    b = res.breakdown
    steady = res.iteration_s - b.optimizer_s - sum(b.exposed_comm_s.values())
    expected = (pp - 1) / (m + pp - 1)
    assert b.pipeline_bubble_s / steady == pytest.approx(expected, rel=0.03)


def test_breakdown_adds_up_to_iteration():
    for sc in (small_scenario(), small_scenario(workload__parallelism={"tp": 2, "pp": 4, "dp": 2,
                                                                        "zero": 1,
                                                                        "sequence_parallel": True,
                                                                        "recompute": "full"})):
        res = simulate(load_scenario(sc))
        assert res.breakdown.total_s() == pytest.approx(res.iteration_s, rel=1e-9)
        assert 0 < res.mfu <= res.hfu <= 1


def test_fold_and_unfold_agree_on_symmetric_cases():
    base = small_scenario()
    folded = simulate(load_scenario(base))
    base["run"]["fold"] = "off"
    unfolded = simulate(load_scenario(base))
    assert unfolded.simulated_ranks == 16 and folded.simulated_ranks == 2
    assert unfolded.iteration_s == pytest.approx(folded.iteration_s, rel=1e-9)


def test_deterministic():
    a = simulate(load_scenario(small_scenario()))
    b = simulate(load_scenario(small_scenario()))
    assert a.iteration_s == b.iteration_s and a.breakdown == b.breakdown


def test_dp_overlap_hides_gradient_reduction():
    sc = small_scenario(**{"workload__parallelism": {"tp": 1, "pp": 1, "dp": 16},
                           "workload__batch": {"global": 64, "micro": 1}})
    job = job_from_scenario(load_scenario(sc))
    cluster = build_cluster(load_scenario(sc))
    prog = build_program(job, fold=True)
    t = Engine(prog, cluster, SpecRoofline()).run()
    dp_ops = [x for x in t.timings if x.op.category == "dp"]
    total_dp = sum(x.end_s - x.start_s for x in dp_ops)
    # Some reduction runs while the last backward still computes: exposed < total.
    assert t.breakdown.get("dp", 0.0) < total_dp


def test_more_micro_batches_shrink_the_bubble_share():
    shares = []
    for m in (4, 16, 64):
        sc = small_scenario(**{"workload__batch": {"global": 2 * m, "micro": 1}})
        r = simulate(load_scenario(sc))
        shares.append(r.breakdown.pipeline_bubble_s / r.iteration_s)
    assert shares[0] > shares[1] > shares[2]
