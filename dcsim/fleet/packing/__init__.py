"""GPU-sharing placement and the ATC'23 fragmentation experiment (Weng et al., USENIX ATC'23).

The pieces the fleet scheduler uses for pods that share GPUs:

    workload = TargetWorkload.from_pods(trace_pods, max_gpus=8)   # what fragmentation is against
    cluster = ClusterState(nodes, workload)                       # free CPU/memory/milli-GPU
    policy = make_policy("fgd")                                   # or random, best-fit, ...
    placement = policy.place(cluster, pod, rng)                   # None when no node fits
    cluster.release(placement)                                    # when the pod leaves

`run_pack` is the paper's workload-inflation experiment (`dcsim fleet pack`).
"""

from dcsim.fleet.packing.cluster import ClusterState
from dcsim.fleet.packing.fragmentation import TargetWorkload
from dcsim.fleet.packing.inflation import PackResult, run_pack
from dcsim.fleet.packing.policies import PlacementPolicy
from dcsim.fleet.packing.records import GPU_MILLI, NodeSpec, Placement, PodRequest, PolicyName
from dcsim.fleet.packing.registry import POLICIES, make_policy, policy_names
from dcsim.fleet.packing.traces import read_nodes, read_pods

__all__ = ["ClusterState", "GPU_MILLI", "NodeSpec", "POLICIES", "PackResult", "Placement",
           "PlacementPolicy", "PodRequest", "PolicyName", "TargetWorkload", "make_policy",
           "policy_names", "read_nodes", "read_pods", "run_pack"]
