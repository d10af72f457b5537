"""Program generation: one training iteration of a TP x PP x DP job under the 1F1B schedule.

Folded (the default): one simulated rank per pipeline stage stands for its tp x dp peers; its
collectives carry the groups of every replica, so the network still sees all the traffic.
Unfolded: every GPU rank is simulated and collectives rendezvous across rank programs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from dcsim.collectives import CollectiveCall
from dcsim.program import Kernel, Op, Program, ProgramBuilder, RankProgram
from workloads.kernels import (edge_kernels, grad_accumulate_kernel, layer_kernels,
                               optimizer_kernel)
from workloads.memory import stage_embedding_params
from workloads.parallelism import TrainingJob

# Megatron-LM DDP bucket: max(40M, 1M x dp) parameters (megatron/core/distributed/
# distributed_data_parallel.py, bucket_size default).
DDP_BUCKET_PARAMS = 40_000_000


def grad_reduce_bytes(precision: str) -> int:
    """Bytes per gradient element on the wire: Megatron keeps fp32 main grads with bf16
    (accumulate_allreduce_grads_in_fp32 is forced for bf16) and reduces fp16 grads as fp16."""
    return 2 if precision == "fp16" else 4


def one_f_one_b(stage: int, stages: int, micro: int) -> list[tuple[str, int]]:
    """The 1F1B order of (phase, micro-batch) on one stage (Narayanan et al. 2021, fig. 4)."""
    warm = min(stages - stage - 1, micro)
    order = [("F", j) for j in range(warm)]
    for k in range(micro - warm):
        order += [("F", warm + k), ("B", k)]
    order += [("B", j) for j in range(micro - warm, micro)]
    return order


@dataclass(frozen=True)
class _Slot:
    """One simulated rank: its stage, and (unfolded) its dp and tp index."""

    stage: int
    dp: int | None  # None: folded over every data-parallel replica
    tp: int | None  # None: folded over every tensor-parallel rank


class _Generator:
    def __init__(self, job: TrainingJob, fold: bool, rank_map: Sequence[int] | None = None,
                 first_op_id: int = 0) -> None:
        self.job, self.fold = job, fold
        self.par = job.par
        self.rank_map = rank_map
        self.first_op_id = first_op_id
        self.b = ProgramBuilder(first_op_id)
        self.lk = layer_kernels(job)
        self.backward_later = self.lk.backward  # backward of micro-batches after the first
        if not job.par.gradient_accumulation_fusion:
            acc = grad_accumulate_kernel(job.model.layer_params() / job.par.tp, job.precision)
            self.backward_later = self.lk.backward + (acc,)
        self.ek = edge_kernels(job)
        self.L = job.layers_per_stage()
        self.m = job.micro_batches
        mdl = job.model
        self.act_msg = job.micro_batch * job.seq_len * mdl.hidden * job.act_bytes
        self.sends: dict[tuple, int] = {}      # (phase, stage, dp, tp, j) -> p2p op id
        self.pending: list[tuple[Op, tuple]] = []  # ops waiting for a send id

    # -- groups ------------------------------------------------------------------------
    def gpu(self, pp_i: int, dp_i: int, tp_i: int) -> int:
        """The cluster GPU rank of a job rank (through the placement map when there is one)."""
        r = self.par.rank(pp_i, dp_i, tp_i)
        return self.rank_map[r] if self.rank_map is not None else r

    def _dp_idx(self, s: _Slot) -> range:
        return range(self.par.dp) if s.dp is None else range(s.dp, s.dp + 1)

    def _tp_idx(self, s: _Slot) -> range:
        return range(self.par.tp) if s.tp is None else range(s.tp, s.tp + 1)

    def tp_groups(self, s: _Slot) -> tuple[tuple[int, ...], ...]:
        p = self.par
        return tuple(tuple(self.gpu(s.stage, d, t) for t in range(p.tp)) for d in self._dp_idx(s))

    def dp_groups(self, s: _Slot) -> tuple[tuple[int, ...], ...]:
        p = self.par
        return tuple(tuple(self.gpu(s.stage, d, t) for d in range(p.dp)) for t in self._tp_idx(s))

    def pair_groups(self, s: _Slot, other: int) -> tuple[tuple[int, ...], ...]:
        p = self.par
        return tuple((self.gpu(s.stage, d, t), self.gpu(other, d, t))
                     for d in self._dp_idx(s) for t in self._tp_idx(s))

    # -- op helpers --------------------------------------------------------------------
    def compute(self, rp: RankProgram, label: str, kernels: tuple[Kernel, ...], repeat: int = 1,
                category: str = "compute", deps: tuple[int, ...] = ()) -> Op:
        return self.b.add(rp, kind="compute", stream="compute", category=category, label=label,
                          kernels=kernels, repeat=repeat, deps=deps)

    def coll(self, rp: RankProgram, stream: str, category: str, label: str, op: str,
             groups: tuple[tuple[int, ...], ...], size: float, repeat: int = 1,
             deps: tuple[int, ...] = (), rendezvous: tuple | None = None,
             participants: int = 1) -> Op:
        # Keys carry the program's first op id so several jobs in one simulation never meet.
        meta = ({"rendezvous": (self.first_op_id, *rendezvous), "participants": participants}
                if rendezvous else {})
        return self.b.add(rp, kind="collective", stream=stream, category=category, label=label,
                          collective=CollectiveCall(op, groups, float(size)), repeat=repeat,
                          deps=deps, meta=meta)

    def tp_comm(self, rp: RankProgram, s: _Slot, label: str, count: int, seq: list[int]) -> None:
        """`count` TP collectives of one activation, blocking on the compute stream."""
        if self.par.tp == 1 or count == 0:
            return
        groups = self.tp_groups(s)
        ops = (("all_gather", "reduce_scatter") if self.par.sequence_parallel
               else ("all_reduce",))
        for name in ops:
            seq[0] += 1
            rv = ("tp", s.stage, s.dp, seq[0]) if s.tp is not None else None
            self.coll(rp, "compute", "tp", f"{label}/{name}", name, groups, self.act_msg,
                      repeat=count, rendezvous=rv, participants=self.par.tp)

    # -- the schedule ------------------------------------------------------------------
    def rank_program(self, s: _Slot) -> RankProgram:
        p, L = self.par, self.L
        first, last = s.stage == 0, s.stage == p.pp - 1
        rank = self.gpu(s.stage, s.dp or 0, s.tp or 0)
        mult = (p.dp if s.dp is None else 1) * (p.tp if s.tp is None else 1)
        rp = RankProgram(rank=rank, multiplicity=mult, meta={"stage": s.stage})
        seq = [0]
        recompute_tp = 2 * L if p.recompute == "full" else 0
        dp_ops: list[int] = []
        for phase, j in one_f_one_b(s.stage, p.pp, self.m):
            start = len(rp.ops)
            if phase == "F":
                if first:
                    self.compute(rp, f"F{j}/embed", self.ek.embed_fwd)
                    self.tp_comm(rp, s, f"F{j}/embed", 1, seq)
                self.compute(rp, f"F{j}/layers", self.lk.forward, repeat=L)
                self.tp_comm(rp, s, f"F{j}/layers", 2 * L, seq)
                if last:
                    self.compute(rp, f"F{j}/head", self.ek.head_fwd)
                if not first:
                    self.pending.append((rp.ops[start], ("F", s.stage - 1, s.dp, s.tp, j)))
                if not last:
                    self.send(rp, s, "F", j, s.stage + 1)
            else:
                if self.lk.recompute:
                    self.compute(rp, f"B{j}/recompute", self.lk.recompute, repeat=L)
                    self.tp_comm(rp, s, f"B{j}/recompute", recompute_tp, seq)
                if last:
                    self.compute(rp, f"B{j}/head", self.ek.head_bwd)
                    self.tp_comm(rp, s, f"B{j}/head", 1, seq)
                if j == self.m - 1:
                    dp_ops += self.backward_with_buckets(rp, s, j, seq)
                else:
                    kernels = self.lk.backward if j == 0 else self.backward_later
                    self.compute(rp, f"B{j}/layers", kernels, repeat=L)
                    self.tp_comm(rp, s, f"B{j}/layers", 2 * L, seq)
                    if first:
                        self.compute(rp, f"B{j}/embed", self.ek.embed_bwd)
                if not last:
                    self.pending.append((rp.ops[start], ("B", s.stage + 1, s.dp, s.tp, j)))
                if not first:
                    self.send(rp, s, "B", j, s.stage - 1)
        dp_ops += self.tied_embedding_sync(rp, s, dp_ops)
        self.optimizer(rp, s, tuple(dp_ops))
        return rp

    def send(self, rp: RankProgram, s: _Slot, phase: str, j: int, to: int) -> None:
        """Activations (F) or their gradients (B) to the neighbour stage, one TP slice each
        (Megatron's scatter/gather optimisation, Narayanan et al. 2021 sec. 4.1)."""
        last_compute = next(o for o in reversed(rp.ops) if o.stream == "compute")
        op = self.coll(rp, "p2p", "pp", f"{phase}{j}/send", "send_recv",
                       self.pair_groups(s, to), self.act_msg / self.par.tp,
                       deps=(last_compute.id,))
        self.sends[(phase, s.stage, s.dp, s.tp, j)] = op.id

    def backward_with_buckets(self, rp: RankProgram, s: _Slot, j: int, seq: list[int]) -> list[int]:
        """The last micro-batch's backward, with gradient buckets reduced as they fill
        (Megatron's overlap_grad_reduce)."""
        p, L = self.par, self.L
        layer_params = self.job.model.layer_params() / p.tp
        per_bucket = max(1, min(L, int(max(DDP_BUCKET_PARAMS, 1_000_000 * p.dp) // layer_params)))
        gbytes = grad_reduce_bytes(self.job.precision)
        edge_params = stage_embedding_params(self.job, s.stage) / p.tp
        op_name = "reduce_scatter" if p.zero >= 1 else "all_reduce"
        ids: list[int] = []
        done = 0
        bucket = 0
        while done < L:
            n = min(per_bucket, L - done)
            kernels = self.lk.backward if j == 0 else self.backward_later
            self.compute(rp, f"B{j}/layers[{done}:{done + n}]", kernels, repeat=n)
            self.tp_comm(rp, s, f"B{j}/layers[{done}:{done + n}]", 2 * n, seq)
            done += n
            params = n * layer_params if p.overlap_grad_reduce else done * layer_params
            if done == L and s.stage == 0:
                self.compute(rp, f"B{j}/embed", self.ek.embed_bwd)
            if done == L:
                params += edge_params
            if p.dp > 1 and (p.overlap_grad_reduce or done == L):
                bucket += 1
                rv = ("dp", s.stage, s.tp, bucket) if s.dp is not None else None
                op = self.coll(rp, "comm", "dp", f"grads/bucket{bucket}", op_name,
                               self.dp_groups(s), params * gbytes, deps=(rp.ops[-1].id,),
                               rendezvous=rv, participants=p.dp)
                ids.append(op.id)
        return ids

    def tied_embedding_sync(self, rp: RankProgram, s: _Slot, after: list[int]) -> list[int]:
        """All-reduce of the tied word-embedding grads between the first and last stage."""
        p, mdl = self.par, self.job.model
        if not mdl.tied_embeddings or p.pp == 1 or s.stage not in (0, p.pp - 1):
            return []
        other = p.pp - 1 if s.stage == 0 else 0
        groups = tuple(tuple(sorted(g)) for g in self.pair_groups(s, other))
        size = mdl.embedding_params() / p.tp * grad_reduce_bytes(self.job.precision)
        rv = ("embed", s.dp, s.tp)
        deps = (after[-1],) if after else (rp.ops[-1].id,)
        op = self.coll(rp, "comm", "dp", "grads/tied_embedding", "all_reduce", groups, size,
                       deps=deps, rendezvous=rv, participants=2)
        return [op.id]

    def optimizer(self, rp: RankProgram, s: _Slot, deps: tuple[int, ...]) -> None:
        p = self.par
        params = (self.L * self.job.model.layer_params()
                  + stage_embedding_params(self.job, s.stage)) / p.tp
        shard = params / p.dp if p.zero >= 1 else params
        self.compute(rp, "optimizer", (optimizer_kernel(shard, self.job.precision),),
                     category="optimizer", deps=deps)
        if p.zero >= 1 and p.dp > 1:
            rv = ("dp", s.stage, s.tp, "params") if s.dp is not None else None
            self.coll(rp, "compute", "dp", "params/all_gather", "all_gather", self.dp_groups(s),
                      params * 2, rendezvous=rv, participants=p.dp)

    def resolve(self) -> None:
        for op, k in self.pending:
            op.deps = op.deps + (self.sends[k],)


def build_program(job: TrainingJob, fold: bool = True, rank_map: Sequence[int] | None = None,
                  first_op_id: int = 0) -> Program:
    """The per-rank Program of one iteration (folded: one rank per pipeline stage).

    rank_map places the job on a cluster: job rank i runs on cluster GPU rank_map[i] (default:
    the identity). first_op_id lets several jobs' programs share one simulation.
    """
    g = _Generator(job, fold, rank_map, first_op_id)
    p = job.par
    if fold:
        slots = [_Slot(i, None, None) for i in range(p.pp)]
    else:
        slots = [_Slot(i, d, t) for i in range(p.pp) for d in range(p.dp) for t in range(p.tp)]
    ranks = [g.rank_program(s) for s in slots]
    g.resolve()
    return Program(ranks=ranks, folded=fold,
                   meta={"micro_batches": job.micro_batches, "stages": p.pp,
                         "next_op_id": g.b.next_id})


ProgramFactory = Callable[[TrainingJob, bool], Program]
