"""Pipeline schedules: the order of (phase, virtual chunk, micro-batch) on one stage.

1F1B (PipeDream-Flush; Narayanan et al. 2021 fig. 4) and Megatron-LM's interleaved 1F1B with
`vp` model chunks per stage (same paper, fig. 4 bottom; the order of
megatron/core/pipeline_parallel/schedules.py, forward_backward_pipelining_with_interleaving).
"""

from __future__ import annotations


def one_f_one_b(stage: int, stages: int, micro: int) -> list[tuple[str, int]]:
    """The 1F1B order of (phase, micro-batch) on one stage."""
    return [(ph, j) for ph, _c, j in pipeline_order(stage, stages, 1, micro)]


def pipeline_order(stage: int, stages: int, vp: int, micro: int) -> list[tuple[str, int, int]]:
    """(phase 'F'|'B', chunk, micro-batch) in the order one stage runs them."""
    if vp == 1:
        warm = min(stages - stage - 1, micro)
        order = [("F", 0, j) for j in range(warm)]
        for k in range(micro - warm):
            order += [("F", 0, warm + k), ("B", 0, k)]
        return order + [("B", 0, j) for j in range(micro - warm, micro)]
    total = micro * vp
    group = stages * vp

    def chunk(k: int, forward: bool) -> int:
        c = (k % group) // stages
        return c if forward else vp - 1 - c

    def mb(k: int) -> int:
        return (k // group) * stages + k % stages

    if micro == stages:
        warm = total
    else:
        warm = min((stages - stage - 1) * 2 + (vp - 1) * stages, total)
    order = [("F", chunk(k, True), mb(k)) for k in range(warm)]
    for k in range(total - warm):
        order += [("F", chunk(warm + k, True), mb(warm + k)), ("B", chunk(k, False), mb(k))]
    order += [("B", chunk(k, False), mb(k)) for k in range(total - warm, total)]
    return order
