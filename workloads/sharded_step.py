"""ZeRO-3 / FSDP layers of one chunk, layer by layer: each layer's weights gathered in the
framework's granularity no earlier than its prefetch depth allows, its gradients reduce-scattered
in the framework's buckets (workloads/sharding.py says which and why)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcsim.program import RankProgram
from workloads.grad_sync import GradientSync, chunk_layers_of
from workloads.layout import ChunkLayers, dense_params_per_rank, expert_params_per_rank
from workloads.rank_groups import Slot
from workloads.sharding import SHARDED_GRAD_BYTES, ShardingPlan, sharding_plan


class ShardedLayers(GradientSync):
    """Mixin of the program generator: the weight-sharded (ZeRO-3 / FSDP) side of a chunk."""

    if TYPE_CHECKING:  # provided by the generator
        from workloads.kernels import LayerKernels
        dense: LayerKernels

    def sharded(self) -> bool:
        """Whether weights are sharded over data-parallel ranks (ZeRO-3 / FSDP with dp > 1)."""
        return self.par.zero >= 3 and self.par.dp * self.par.cp > 1

    def layer_plan(self, kind: str) -> tuple[float, float, ShardingPlan]:
        """Dense and expert weights (per rank) of one layer of `kind`, and its sharding plan."""
        one = chunk_layers_of(kind, 1)
        dense = dense_params_per_rank(self.job, one)
        expert = expert_params_per_rank(self.job, one)
        return dense, expert, sharding_plan(self.par.zero3_impl, dense + expert)

    def _layer_gather(self, rp: RankProgram, s: Slot, tag: str, k: int, kind: str,
                      deps: tuple[int, ...]) -> int:
        """The all-gathers of layer k's weights on the comm stream, after `deps`."""
        dense, expert, plan = self.layer_plan(kind)
        n = plan.gathers_per_layer
        rv = ("zgather", tag, k, s.stage, s.tp) if s.dp is not None else None
        op = self.coll(rp, "comm", "dp", f"{tag}/{kind}{k}/param_all_gather", "all_gather",
                       self.dp_groups(s), (dense + expert) * 2 / n, repeat=n, deps=deps,
                       rendezvous=rv, participants=self.par.dp * self.par.cp)
        return op.id

    def sharded_layers(self, rp: RankProgram, s: Slot, tag: str, backward: bool, which: str,
                       cl: ChunkLayers, last_chunk_edge: float, embed_bwd: bool) -> list[int]:
        """One chunk's layers in one phase under ZeRO-3 / FSDP. Layer k's gathers may start
        once layer k - depth has started (the framework prefetches `depth` ahead); its compute
        waits for them. Backward recomputes each layer beside its backward (the checkpoint
        sits inside the FSDP unit / module hooks) and reduce-scatters gradients in the plan's
        buckets; `last_chunk_edge` embedding weights join the last bucket, after the embedding's
        backward when `embed_bwd`. Returns the
        reduce-scatter op ids."""
        kinds = ["dense"] * cl.dense + ["moe"] * cl.moe
        if backward:
            kinds.reverse()
        if not kinds:
            return []
        started = [self.last_compute(rp)]  # started[k]: the op layer k's start follows
        gathers: dict[int, int] = {}
        depth = self.layer_plan(kinds[0])[2].prefetch_layers
        for k in range(min(depth, len(kinds))):  # issued ahead of the chunk: no wait
            gathers[k] = self._layer_gather(rp, s, tag, k, kinds[k], ())
        ids: list[int] = []
        pending = [0.0, 0.0, 0]  # dense, expert, layers
        phase = "backward" if backward else "forward"
        for k, kind in enumerate(kinds):
            dense, expert, plan = self.layer_plan(kind)
            nxt = k + plan.prefetch_layers
            if plan.prefetch_layers and nxt < len(kinds):
                before = started[k]
                gathers[nxt] = self._layer_gather(rp, s, tag, nxt, kinds[nxt],
                                                  (before,) if before is not None else ())
            if k not in gathers:  # no prefetch: gathered when the layer starts
                before = started[k]
                gathers[k] = self._layer_gather(rp, s, tag, k, kind,
                                                (before,) if before is not None else ())
            self.carry.append(gathers.pop(k))
            n_dense, n_moe = (1, 0) if kind == "dense" else (0, 1)
            label = f"{tag}/{kind}{k}"
            if backward and self.dense.recompute:
                self.layers(rp, s, f"{label}/recompute", "first", n_dense, n_moe, "recompute")
            self.layers(rp, s, label, which, n_dense, n_moe, phase)
            started.append(self.last_compute(rp))
            if not backward:
                continue
            pending[0] += dense
            pending[1] += expert
            pending[2] += 1
            final = k == len(kinds) - 1
            if pending[2] >= plan.reduce_layers or final:
                if final:
                    pending[0] += last_chunk_edge
                    if embed_bwd:
                        self.compute(rp, f"{tag}/embed", self.ek.embed_bwd)
                ids += self.reduce(rp, s, tag, "reduce_scatter", pending[0], pending[1],
                                   SHARDED_GRAD_BYTES, len(ids), splits=plan.reduces_per_layer)
                pending = [0.0, 0.0, 0]
        return ids
