"""Gradient and parameter synchronisation of one rank: bucketed reduction during the backward
pass, tied-embedding sync, ZeRO / FSDP parameter gathers, and the optimizer step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcsim.program import Kernel, Op, RankProgram
from workloads.kernels import EdgeKernels, optimizer_step_kernels
from workloads.layout import ChunkLayers, chunk_layers, dense_params_per_rank, expert_params_per_rank
from workloads.parallelism import Parallelism, TrainingJob
from workloads.rank_groups import Slot

# Megatron-LM DDP bucket: max(40M, 1M x dp) parameters (megatron/core/distributed/
# distributed_data_parallel.py, bucket_size default).
DDP_BUCKET_PARAMS = 40_000_000
# Parameters are gathered in bf16/fp16 (2 bytes) under ZeRO-1/2/3 and FSDP.
PARAM_GATHER_BYTES = 2


def grad_reduce_bytes(precision: str) -> int:
    """Bytes per gradient element on the wire: Megatron keeps fp32 main grads with bf16
    (accumulate_allreduce_grads_in_fp32 is forced for bf16) and reduces fp16 grads as fp16."""
    return 2 if precision == "fp16" else 4



def chunk_layers_of(kind: str, n: int) -> ChunkLayers:
    """A ChunkLayers of n layers of one kind (for parameter counts of a bucket)."""
    return ChunkLayers(dense=n if kind == "dense" else 0, moe=n if kind == "moe" else 0)


class GradientSync:
    """Mixin of the program generator: the data-parallel side of a rank's iteration."""

    if TYPE_CHECKING:  # provided by the generator and RankGroups
        job: TrainingJob
        par: Parallelism
        ek: EdgeKernels

        def compute(self, rp: RankProgram, label: str, kernels: tuple[Kernel, ...], repeat: int = 1,
                    category: str = "compute", deps: tuple[int, ...] = ()) -> Op: ...
        def coll(self, rp: RankProgram, stream: str, category: str, label: str, op: str,
                 groups: tuple[tuple[int, ...], ...], size: float, repeat: int = 1,
                 deps: tuple[int, ...] = (), rendezvous: tuple | None = None,
                 participants: int = 1) -> Op: ...
        def last_compute(self, rp: RankProgram) -> int | None: ...
        def layers(self, rp: RankProgram, s: Slot, label: str, which: str, n_dense: int,
                   n_moe: int, kernels_of: str) -> None: ...
        def dp_groups(self, s: Slot) -> tuple[tuple[int, ...], ...]: ...
        def expert_dp_groups(self, s: Slot) -> tuple[tuple[int, ...], ...]: ...
        def pairs(self, s: Slot, other_stage: int, cp_shift: int = 0) -> tuple[tuple[int, ...], ...]: ...
        carry: list[int]
        deferred: list[tuple[str, float, float]]  # chunk gradients to reduce after the drain

    def edge_params(self, stage: int, c: int) -> float:
        """Embedding weights (per TP rank) held by this (stage, chunk): the input table on the
        first chunk of stage 0, the output head on the last chunk of the last stage."""
        p, m = self.par, self.job.model
        n = m.embedding_params() if stage == 0 and c == 0 else 0
        if stage == p.pp - 1 and c == p.vp - 1 and (not m.tied_embeddings or p.pp > 1):
            n += m.embedding_params()
        return n / p.tp

    def _gather(self, rp: RankProgram, s: Slot, label: str, key: tuple, params: float) -> None:
        """One all-gather of `params` weights on the comm stream; the next compute waits for it."""
        rv = (*key, s.stage, s.tp) if s.dp is not None else None
        op = self.coll(rp, "comm", "dp", label, "all_gather", self.dp_groups(s),
                       params * PARAM_GATHER_BYTES, rendezvous=rv,
                       participants=self.par.dp * self.par.cp)
        self.carry.append(op.id)

    def forward_with_gathers(self, rp: RankProgram, s: Slot, c: int, tag: str,
                             cl: ChunkLayers) -> None:
        """The first forward of a chunk under the distributed optimizer with
        overlap_param_gather: the step's updated weights arrive bucket by bucket on the comm
        stream and each bucket's layers wait for their bucket only. Megatron-Core dispatches the
        buckets' all-gathers in order and a module's forward pre-hook waits for its own bucket
        (megatron/core/distributed/distributed_data_parallel.py, _make_forward_pre_hook;
        buckets of DDP_BUCKET_PARAMS). The gathers are the previous optimizer step's, so they
        start with the iteration; the embedding's share rides in the first bucket."""
        p, job = self.par, self.job
        per_bucket = max(1, int(self.bucket_params() // max(job.model.layer_params() / p.tp, 1)))
        extra = self.edge_params(s.stage, c)
        for kind, n_kind in (("dense", cl.dense), ("moe", cl.moe)):
            k = 0
            while k < n_kind:
                n = min(per_bucket, n_kind - k)
                part = chunk_layers_of(kind, n)
                params = dense_params_per_rank(job, part) + expert_params_per_rank(job, part) + extra
                extra = 0.0
                label = f"{tag}/{kind}[{k}:{k + n}]"
                self._gather(rp, s, f"{label}/param_all_gather", ("pgather", tag, kind, k), params)
                self.layers(rp, s, label, "first", n if kind == "dense" else 0,
                            n if kind == "moe" else 0, "forward")
                k += n

    def bucket_params(self) -> float:
        """Parameters per DDP bucket (--ddp-bucket-size; default max(40M, 1M x dp))."""
        p = self.par
        return p.ddp_bucket_params or max(DDP_BUCKET_PARAMS, 1_000_000 * p.dp)

    def backward_with_buckets(self, rp: RankProgram, s: Slot, c: int, tag: str, which: str,
                              cl, first: bool) -> list[int]:
        """A backward whose gradients are reduced: buckets start as they fill when
        overlap_grad_reduce (Megatron), else after the pipeline drains (reduce_after_drain)."""
        p, job = self.par, self.job
        layer_params = job.model.layer_params() / p.tp
        per_bucket = max(1, int(self.bucket_params() // max(layer_params, 1)))
        gbytes = grad_reduce_bytes(job.precision)
        op_name = "reduce_scatter" if p.zero >= 1 else "all_reduce"
        ids: list[int] = []
        # Backward runs the MoE layers (later in the model) first, then the dense ones.
        blocks = [("moe", cl.moe), ("dense", cl.dense)]
        pending_dense = pending_expert = 0.0
        done = 0
        total = cl.total
        for kind, n_kind in blocks:
            k = 0
            while k < n_kind:
                n = min(per_bucket, n_kind - k)
                label = f"{tag}/{kind}[{k}:{k + n}]"
                self.layers(rp, s, label, which, n if kind == "dense" else 0,
                            n if kind == "moe" else 0, "backward")
                k += n
                done += n
                part = chunk_layers_of(kind, n)
                pending_dense += dense_params_per_rank(job, part)
                pending_expert += expert_params_per_rank(job, part)
                if done == total and first:
                    self.compute(rp, f"{tag}/embed", self.ek.embed_bwd)
                if done == total:
                    pending_dense += self.edge_params(s.stage, c)
                if done == total and not p.overlap_grad_reduce and p.zero < 2:
                    self.deferred.append((tag, pending_dense, pending_expert))
                    pending_dense = pending_expert = 0.0
                if (p.overlap_grad_reduce or done == total) and (pending_dense or pending_expert):
                    ids += self.reduce(rp, s, tag, op_name, pending_dense, pending_expert, gbytes,
                                       len(ids))
                    pending_dense = pending_expert = 0.0
        return ids

    def reduce_after_drain(self, rp: RankProgram, s: Slot) -> list[int]:
        """Without overlap_grad_reduce, every model chunk's gradients are reduced after the
        whole pipeline schedule returns, one collective per chunk: Megatron-LM 2021
        (megatron/training.py train_step: forward_backward_func(...) and only then
        `model_module.allreduce_gradients()` for each chunk, LocalDDP over its contiguous
        buffer), so with interleaving no chunk's reduction starts before the last backward."""
        p, job = self.par, self.job
        op_name = "reduce_scatter" if p.zero >= 1 else "all_reduce"
        ids: list[int] = []
        for tag, dense, expert in self.deferred:
            ids += self.reduce(rp, s, tag, op_name, dense, expert, grad_reduce_bytes(job.precision),
                               len(ids))
        self.deferred = []
        return ids

    def reduce(self, rp: RankProgram, s: Slot, tag: str, op_name: str, dense: float,
               expert: float, gbytes: int, n: int, splits: int = 1) -> list[int]:
        """Reduce `dense` and `expert` gradients over their data-parallel groups after the
        last compute, as `splits` equal collectives (buckets smaller than the gradients)."""
        p = self.par
        before = self.last_compute(rp)
        deps = (before,) if before is not None else ()
        ids = []
        if dense and p.dp * p.cp > 1:
            rv: tuple | None = ("grads", tag, n, s.stage, s.tp) if s.dp is not None else None
            ids.append(self.coll(rp, "comm", "dp", f"{tag}/grads{n}", op_name, self.dp_groups(s),
                                 dense * gbytes / splits, repeat=splits, deps=deps, rendezvous=rv,
                                 participants=p.dp * p.cp).id)
        expert_replicas = p.dp // p.ep * p.cp
        if expert and expert_replicas > 1:
            rv = ("egrads", tag, n, s.stage, s.tp, s.dp % p.ep if s.dp is not None else None) \
                if s.dp is not None else None
            ids.append(self.coll(rp, "comm", "dp", f"{tag}/expert_grads{n}", op_name,
                                 self.expert_dp_groups(s), expert * gbytes / splits,
                                 repeat=splits, deps=deps,
                                 rendezvous=rv, participants=expert_replicas).id)
        return ids

    def tied_embedding_sync(self, rp: RankProgram, s: Slot, after: list[int]) -> list[int]:
        """All-reduce of the tied word-embedding grads between the first and last stage."""
        p, mdl = self.par, self.job.model
        if not mdl.tied_embeddings or p.pp == 1 or s.stage not in (0, p.pp - 1):
            return []
        other = p.pp - 1 if s.stage == 0 else 0
        groups = tuple(tuple(sorted(g)) for g in self.pairs(s, other))
        size = mdl.embedding_params() / p.tp * grad_reduce_bytes(self.job.precision)
        rv = ("embed", s.dp, s.cp, s.tp)
        last = self.last_compute(rp)
        deps = (after[-1],) if after else ((last,) if last is not None else ())
        op = self.coll(rp, "comm", "dp", "grads/tied_embedding", "all_reduce", groups, size,
                       deps=deps, rendezvous=rv, participants=2)
        return [op.id]

    def optimizer(self, rp: RankProgram, s: Slot, deps: tuple[int, ...]) -> None:
        p, job = self.par, self.job
        dense = sum(dense_params_per_rank(job, chunk_layers(job, s.stage, c))
                    + self.edge_params(s.stage, c) for c in range(p.vp))
        expert = sum(expert_params_per_rank(job, chunk_layers(job, s.stage, c))
                     for c in range(p.vp))
        shard = (dense / (p.dp * p.cp) + expert / max(1, p.dp // p.ep)) if p.zero >= 1 \
            else dense + expert
        self.compute(rp, "optimizer", optimizer_step_kernels(shard, job.precision),
                     category="optimizer", deps=deps)
        if p.zero in (1, 2) and p.dp * p.cp > 1 and not p.overlap_param_gather:
            rv = ("params", s.stage, s.tp) if s.dp is not None else None
            self.coll(rp, "compute", "dp", "params/all_gather", "all_gather", self.dp_groups(s),
                      (dense + expert) * PARAM_GATHER_BYTES, rendezvous=rv,
                      participants=p.dp * p.cp)
