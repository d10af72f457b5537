"""Network speed benchmark: prints one JSON line.

- maxmin_permutation_k48_s: max-min solve of a random permutation (one flow per NIC) on a
  k=48 three-tier fat-tree (27,648 hosts), hashed ECMP paths; target <= 0.5 s.
- flow_allreduce_1gib_1024gpu_s: a 1 GiB all-reduce over 1,024 H100 GPUs (128 DGX nodes),
  flow-level (FlowBackend), wall time including routing; target <= 1 s.
- analytical_calls_per_s: memoized analytical pricing of mixed calls (planning speed).
"""

from __future__ import annotations

import gc
import json
import time

import numpy as np
import simpy

from dcsim.collectives import CollectiveCall
from dcsim.network.analytical import analytical_time
from dcsim.network.compiled import compile_network
from dcsim.network.flow_backend import FlowBackend
from dcsim.network.maxmin import max_min_rates
from dcsim.network.routing import Router
from topologies import build_cluster


def bench_permutation() -> dict:
    k = 48
    t0 = time.perf_counter()
    preset = {"gpu": "h100-sxm", "gpus_per_node": 1, "nics_per_node": 1, "nic": "ib-ndr-400",
              "fabric": {"topology": "fat-tree", "k": k, "tiers": 3}}
    c = build_cluster(preset, nodes=k ** 3 // 4)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    net = compile_network(c)
    t_compile = time.perf_counter() - t0
    n = c.n_gpus
    perm = np.random.default_rng(0).permutation(n)
    src = np.flatnonzero(perm != np.arange(n))  # a host never sends to itself
    t0 = time.perf_counter()
    inc = Router(net, seed=0).incidence(src, perm[src])
    t_route = time.perf_counter() - t0
    t0 = time.perf_counter()
    rates = max_min_rates(inc, net.goodput)
    t_solve = time.perf_counter() - t0
    return {"flows": int(len(src)), "maxmin_permutation_k48_s": round(t_solve, 4),
            "route_permutation_k48_s": round(t_route, 4), "build_k48_s": round(t_build, 3),
            "compile_k48_s": round(t_compile, 3),
            "permutation_mean_rate_GBps": round(float(rates.mean()) / 1e9, 3)}


def bench_allreduce() -> dict:
    c = build_cluster("dgx-h100", nodes=128)
    call = CollectiveCall("all_reduce", (tuple(range(1024)),), 2 ** 30, "ring")
    t0 = time.perf_counter()
    env = simpy.Environment()
    fb = FlowBackend(env, c)
    env.run(fb.run(call))
    wall = time.perf_counter() - t0
    a = analytical_time(c, call)
    return {"flow_allreduce_1gib_1024gpu_s": round(wall, 4), "flow_allreduce_sim_time_s": env.now,
            "analytical_allreduce_sim_time_s": a.time_s}


def bench_analytical() -> dict:
    c = build_cluster("dgx-h100", nodes=128)
    calls = []
    for tp in (2, 4, 8):
        calls.append(CollectiveCall("all_reduce", tuple(tuple(range(i, i + tp)) for i in range(0, 1024, tp)), 1))
    calls.append(CollectiveCall("all_reduce", tuple(tuple(range(j, 1024, 8)) for j in range(8)), 1))
    calls.append(CollectiveCall("all_gather", tuple(tuple(range(j, 1024, 64)) for j in range(64)), 1))
    t0 = time.perf_counter()
    for call in calls:
        analytical_time(c, call)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = 0
    for size in np.logspace(3, 10, 400):
        for call in calls:
            analytical_time(c, CollectiveCall(call.op, call.groups, float(size)))
            n += 1
    rate = n / (time.perf_counter() - t0)
    return {"analytical_first_calls_s": round(first, 3), "analytical_calls_per_s": round(rate)}


def main() -> None:
    out = {"benchmark": "network"}
    for case in (bench_permutation, bench_allreduce, bench_analytical):
        # the garbage of the case before (the k=48 fabric: ~60,000 objects in cycles) is collected
        # here, not by a full collection that happens to fall inside the next case's timing
        gc.collect()
        out.update(case())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
