"""Tensor-parallel communication overlap as Transformer Engine's userbuffers run it
(Megatron-Core / NeMo `tp_comm_overlap`): which part of each TP collective stays exposed.

The methods come from NeMo's tuned per-layer configs (nemo/collections/llm/recipes/
tp_overlap_configs/userbuffers.py, mirrored in Megatron-Bridge src/megatron/bridge/training/
comm_overlap.py at commit aae82005904475c0eeb5054ee5e9f78ffb6c5c76; e.g. the GPT-3 175B H100
preset userbuffers_bf16_h100_h12288_tp4_mbs1_seqlen2048):
- forward all-gathers before QKV and MLP-up (qkv_fprop, fc1_fprop) and backward all-gathers of
  the row-parallel dgrads (proj_dgrad, fc2_dgrad) are ring exchanges: the GEMM is split into
  tp chunks, the first on the local shard, each next chunk's shard arriving while the previous
  chunk computes, so nothing is exposed beyond what the GEMM cannot cover;
- the forward reduce-scatter after the attention projection is a pipelined overlap in
  num_splits = 4 chunks (proj_fprop PipelineOverlapCfg(num_splits=4)): the last chunk's
  reduce-scatter runs after the GEMM, exposed; after MLP-down it is a ring exchange (fc2_fprop)
  whose last of tp steps is exposed;
- backward reduce-scatters of the column-parallel dgrads are bulk overlaps beside the wgrad
  GEMM (qkv_dgrad / fc1_dgrad BulkOverlapCfg): hidden up to that GEMM's length.
Userbuffers need sequence parallelism: Megatron-Bridge turns tp_comm_overlap off without it
(comm_overlap.py, `elif not model_cfg.sequence_parallel`), and so does dcsim.

Not modelled: the SMs the pipelined reduce-scatter takes from its GEMM (num_sm = 24 of 132 on
H100 with set_sm_margin) and the split GEMMs' lower efficiency.
"""

from __future__ import annotations

# proj_fprop PipelineOverlapCfg(num_splits=4) in the NeMo / Megatron-Bridge presets.
PIPELINE_SPLITS = 4


def exposed_fraction(op: str, tp: int, backward: bool) -> float:
    """Share of one TP collective's bytes that runs after its GEMM (exposed) under userbuffers;
    the rest runs beside the GEMM. The layer's two forward reduce-scatters are the pipelined
    one (1/PIPELINE_SPLITS exposed) and the ring exchange (1/tp): their mean per call."""
    if op != "reduce_scatter" or backward or tp <= 1:
        return 0.0
    return (1.0 / PIPELINE_SPLITS + 1.0 / tp) / 2.0
