"""ZeRO-3 / FSDP granularity as the frameworks bucket it: how many weight all-gathers one
transformer layer costs, how far ahead of the compute they may be issued (prefetch depth), and
how many layers' gradients one reduce-scatter carries.

DeepSpeed ZeRO-3 (deepspeed/runtime/zero/partitioned_param_coordinator.py at commit
03aecee816cece2b4d94af485af7bd69bd4a201a, `fetch_sub_module`): the forward/backward pre-hook of
each sub-module gathers that module's own parameters (`all_gather_coalesced` of the module's
weight and bias), waits for them, then prefetches the next parameters of the traced order until
`stage3_prefetch_bucket_size` elements are in flight, capped by `stage3_max_live_parameters`
minus those already gathered; whole parameters are taken, so at least one. A GPT layer has four
Linear modules (QKV, attention projection, MLP up and down); its norms stay resident (fewer than
`stage3_param_persistence_threshold` = 1e5 elements). Gradients are reduce-scattered in the
parameters' 16-bit type whenever `reduce_bucket_size` elements have accumulated
(deepspeed/runtime/zero/stage3.py, `__reduce_and_partition_ipg_grads`); defaults from
deepspeed/runtime/zero/config.py.

PyTorch FSDP (torch/distributed/fsdp/_runtime_utils.py at commit
3ade90a6aaa939cd6238e314c321b9f920db1471, `_pre_forward_unshard` / `_prefetch_handle`): one
flat-parameter all-gather per FSDP unit (with transformer_auto_wrap_policy, one decoder layer),
the next unit prefetched one deep (BackwardPrefetch.BACKWARD_PRE; forward by the CPU running
ahead, rate-limited to two in-flight all-gathers by _limiter_utils), and one reduce-scatter of
the unit's flat gradient after its backward (`_post_backward_hook`), in the reduce dtype (bf16).

dcsim schedules at layer granularity: a DeepSpeed module-level depth of one module becomes a
depth of one layer (in steady state the exposed time is the same when a layer's gathers and its
GEMMs scale alike; only the pipeline's fill differs), and the layer's gathers are `modules`
separate collectives so each pays its own latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class Zero3Impl(str, Enum):
    """Which framework shards the weights (ZeRO stage 3)."""

    DEEPSPEED = "deepspeed"
    FSDP = "fsdp"


# deepspeed/runtime/zero/config.py defaults (stage3_prefetch_bucket_size, stage3_max_live_parameters,
# reduce_bucket_size), in elements.
DS_PREFETCH_BUCKET_PARAMS = 50_000_000
DS_MAX_LIVE_PARAMS = 1_000_000_000
DS_REDUCE_BUCKET_PARAMS = 500_000_000
# Linear modules of one transformer layer that ZeRO-3 gathers one by one (QKV, proj, fc1, fc2).
DS_MODULES_PER_LAYER = 4
# FSDP: BackwardPrefetch.BACKWARD_PRE prefetches the next unit only.
FSDP_PREFETCH_UNITS = 1
# Bytes per gradient element on the wire: both reduce in the 16-bit parameter type.
SHARDED_GRAD_BYTES = 2


@dataclass(frozen=True)
class ShardingPlan:
    """Collectives of one layer under ZeRO-3 / FSDP."""

    gathers_per_layer: int   # all-gathers one layer's weights take (each pays its latency)
    prefetch_layers: int     # a layer's gathers may start this many layers before its compute
    reduce_layers: int       # layers whose gradients one reduce-scatter bucket carries
    reduces_per_layer: int   # reduce-scatters one layer's gradients take (buckets < one layer)


def sharding_plan(impl: Zero3Impl | str, layer_params: float) -> ShardingPlan:
    """The gather / reduce-scatter granularity for layers of `layer_params` (per TP rank)."""
    layer = max(layer_params, 1.0)
    if Zero3Impl(impl) is Zero3Impl.FSDP:
        return ShardingPlan(1, FSDP_PREFETCH_UNITS, 1, 1)
    module = layer / DS_MODULES_PER_LAYER
    # fetch_sub_module: max_params_to_prefetch = min(max_live - available, prefetch_bucket);
    # nothing is prefetched once the module being run already fills the live budget.
    budget = min(DS_MAX_LIVE_PARAMS - module, DS_PREFETCH_BUCKET_PARAMS)
    if budget <= 0:
        prefetch = 0
    else:
        ahead = max(budget, module)  # whole parameters: at least the next module's weight
        prefetch = max(1, math.floor(ahead / layer))
    if layer >= DS_REDUCE_BUCKET_PARAMS:
        return ShardingPlan(DS_MODULES_PER_LAYER, prefetch, 1,
                            math.ceil(layer / DS_REDUCE_BUCKET_PARAMS))
    return ShardingPlan(DS_MODULES_PER_LAYER, prefetch,
                        max(1, math.floor(DS_REDUCE_BUCKET_PARAMS / layer)), 1)
