"""Program generation: one training iteration of a TP x CP x PP x DP (x EP) job.

Folded (the default): one simulated rank per pipeline stage stands for its tp x cp x dp peers;
its collectives carry the groups of every replica, so the network still sees all the traffic.
Unfolded: every GPU rank is simulated and collectives rendezvous across rank programs.
The pipeline runs 1F1B, or Megatron's interleaved 1F1B with vp chunks per stage.
"""

from __future__ import annotations

from typing import Sequence

from dcsim.collectives import CollectiveCall
from dcsim.program import (CATEGORY_OF, STREAM_OF, Kernel, Op, OpKind, Program, ProgramBuilder,
                           RankProgram, Rendezvous, Stream)
from workloads.grad_sync import DDP_BUCKET_PARAMS, chunk_layers_of, grad_reduce_bytes
from workloads.kernels import edge_kernels, fp8_amax_kernels, grad_accumulate_kernel, layer_kernels, local_tokens
from workloads.layout import chunk_layers, dense_params_per_rank, expert_params_per_rank
from workloads.parallelism import TrainingJob
from workloads.rank_groups import RankGroups, Slot
from workloads.sharded_step import ShardedLayers
from workloads.tp_overlap import exposed_fraction
from workloads.schedule import one_f_one_b, pipeline_order

__all__ = ["build_program", "one_f_one_b", "grad_reduce_bytes", "DDP_BUCKET_PARAMS"]


class _Generator(RankGroups, ShardedLayers):
    """Builds the per-rank programs of one iteration of one job.

    One instance per job: `rank_program(slot)` emits a slot's ops in schedule order (the
    pipeline order of its stage: forward and backward of each chunk and micro-batch, with their
    TP / CP / EP communication beside the layers, pipeline sends, and the gradient reduction and
    optimizer of GradientSync); `resolve()` then links every receive to its sender's op. Groups
    and placement come from RankGroups. Op ids are global (`first_op_id` lets several jobs share
    a simulation); `carry` holds ops the next compute op must also wait for (TP overlap, CP ring).
    """

    def __init__(self, job: TrainingJob, fold: bool, rank_map: Sequence[int] | None = None,
                 first_op_id: int = 0) -> None:
        RankGroups.__init__(self, job, rank_map)
        self.fold = fold
        self.first_op_id = first_op_id
        self.b = ProgramBuilder(first_op_id)
        self.dense = layer_kernels(job)
        self.moe = layer_kernels(job, moe=True) if job.model.is_moe else None
        self.ek = edge_kernels(job)
        self.m = job.micro_batches
        mdl = job.model
        self.tokens = local_tokens(job)
        self.act_msg = self.tokens * mdl.hidden * job.act_bytes
        self.sends: dict[tuple, int] = {}
        self.pending: list[tuple[Op, tuple]] = []
        self.carry: list[int] = []  # deps the next compute op must also wait for
        self.deferred: list[tuple[str, float, float]] = []  # gradients reduced after the drain
        self._calls: dict[tuple, CollectiveCall] = {}  # identical calls share one record

    # -- op helpers ------------------------------------------------------------------------
    def compute(self, rp: RankProgram, label: str, kernels: tuple[Kernel, ...], repeat: int = 1,
                category: str = "compute", deps: tuple[int, ...] = ()) -> Op:
        deps = deps + tuple(self.carry)
        self.carry = []
        return self.b.add(rp, kind=OpKind.COMPUTE, stream=Stream.COMPUTE,
                          category=CATEGORY_OF[category], label=label, kernels=kernels,
                          repeat=repeat, deps=deps)

    def coll(self, rp: RankProgram, stream: str, category: str, label: str, op: str,
             groups: tuple[tuple[int, ...], ...], size: float, repeat: int = 1,
             deps: tuple[int, ...] = (), rendezvous: tuple | None = None,
             participants: int = 1) -> Op:
        if stream == "compute":
            deps = deps + tuple(self.carry)
            self.carry = []
        # Keys carry the program's first op id so several jobs in one simulation never meet.
        meet = (Rendezvous((self.first_op_id, *rendezvous), participants)
                if rendezvous and participants > 1 else None)
        key = (op, id(groups), float(size))
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = CollectiveCall(op, groups, float(size))
        return self.b.add(rp, kind=OpKind.COLLECTIVE, stream=STREAM_OF[stream],
                          category=CATEGORY_OF[category], label=label, collective=call,
                          repeat=repeat, deps=deps, rendezvous=meet)

    def last_compute(self, rp: RankProgram) -> int | None:
        return next((o.id for o in reversed(rp.ops) if o.stream == "compute"), None)

    def tp_comm(self, rp: RankProgram, s: Slot, label: str, count: int,
                beside: int | None = None, backward: bool = False) -> None:
        """`count` TP collectives of one activation: blocking on the compute stream, or with
        tp_comm_overlap (userbuffers, which need sequence parallelism) running beside the
        compute op `beside` (starting with it: what comes after waits for both), less the
        share userbuffers leave exposed after the GEMM (workloads/tp_overlap.py)."""
        p = self.par
        if p.tp == 1 or count == 0:
            return
        ops = ("all_gather", "reduce_scatter") if p.sequence_parallel else ("all_reduce",)
        overlap = p.tp_comm_overlap and p.sequence_parallel
        for name in ops:
            rv = ("tp", label, name, s.stage, s.dp, s.cp) if s.tp is not None else None
            exposed = exposed_fraction(name, p.tp, backward) if overlap else 1.0
            if overlap and exposed < 1.0:
                start = self._deps_of(rp, beside)
                op = self.coll(rp, "comm", "tp", f"{label}/{name}", name, self.tp_groups(s),
                               self.act_msg * (1.0 - exposed), repeat=count, rendezvous=rv,
                               participants=p.tp, deps=start)
                self.carry.append(op.id)
            if exposed > 0.0:
                rv_x = (*rv, "exposed") if rv is not None and overlap else rv
                self.coll(rp, "compute", "tp", f"{label}/{name}", name, self.tp_groups(s),
                          self.act_msg * exposed, repeat=count, rendezvous=rv_x, participants=p.tp)

    def _deps_of(self, rp: RankProgram, op_id: int | None) -> tuple[int, ...]:
        """What op `op_id` waited for: the compute op before it on its rank (and its deps)."""
        if op_id is None:
            return ()
        ops = rp.ops
        idx = next(i for i in range(len(ops) - 1, -1, -1) if ops[i].id == op_id)
        prev = next((o.id for o in reversed(ops[:idx]) if o.stream == "compute"), None)
        return tuple(ops[idx].deps) + ((prev,) if prev is not None else ())

    def ep_comm(self, rp: RankProgram, s: Slot, label: str, count: int) -> None:
        """MoE token dispatch and combine: all-to-all within the EP group, blocking."""
        p, m = self.par, self.job.model
        if p.ep == 1 or count == 0:
            return
        size = self.tokens * m.top_k * m.hidden * self.job.act_bytes / (p.tp if p.sequence_parallel else 1)
        rv = ("ep", label, s.stage, s.dp // p.ep if s.dp is not None else None, s.cp, s.tp) \
            if s.dp is not None else None
        self.coll(rp, "compute", "ep", f"{label}/all_to_all", "all_to_all", self.ep_groups(s),
                  size, repeat=count, rendezvous=rv, participants=p.ep)

    def layers(self, rp: RankProgram, s: Slot, label: str, which: str, n_dense: int,
               n_moe: int, kernels_of: str) -> None:
        """Dense and MoE layers of one chunk in one phase, with their TP/CP/EP communication.

        kernels_of: 'forward' | 'backward' | 'recompute' (attribute of LayerKernels).
        """
        p = self.par
        for kind, n in (("dense", n_dense), ("moe", n_moe)):
            if n == 0:
                continue
            lk = self.dense if kind == "dense" else self.moe
            assert lk is not None  # n_moe > 0 only for a MoE model
            kernels = getattr(lk, kernels_of)
            if kernels_of == "backward" and which == "later":
                kernels = kernels + self._grad_acc(kind)
            if not kernels:
                continue
            attn = lk.attn_backward if kernels_of == "backward" else lk.attn_forward
            if p.cp > 1 and attn and all(any(a is k for k in kernels) for a in attn):
                rest = tuple(k for k in kernels if not any(k is a for a in attn))
                self.compute(rp, f"{label}/{kind}", rest, repeat=n)
                self.cp_ring(rp, s, f"{label}/{kind}", n, kernels_of == "backward")
                self.compute(rp, f"{label}/{kind}/attention", attn, repeat=n)
            else:
                self.compute(rp, f"{label}/{kind}", kernels, repeat=n)
            tp_count = 0 if kernels_of == "recompute" and p.recompute != "full" else 2 * n
            self.tp_comm(rp, s, f"{label}/{kind}", tp_count, beside=self.last_compute(rp),
                         backward=kernels_of == "backward")
            if kind == "moe" and (kernels_of != "recompute" or p.recompute == "full"):
                self.ep_comm(rp, s, f"{label}/{kind}", 2 * n)

    def cp_ring(self, rp: RankProgram, s: Slot, label: str, n: int, backward: bool) -> None:
        """Ring attention (context parallelism): cp - 1 KV-block exchanges per layer, beside
        the attention compute; backward also returns the KV gradients (twice the bytes)."""
        p, m, e = self.par, self.job.model, self.job.act_bytes
        kv_local = max(1, m.kv_heads // p.tp) * m.head_dim
        size = 2 * self.tokens * kv_local * e * (2 if backward else 1)
        before = self.last_compute(rp)
        op = self.coll(rp, "comm", "cp", f"{label}/kv_ring", "send_recv", self.pairs(s, s.stage, 1),
                       size, repeat=n * (p.cp - 1), deps=(before,) if before is not None else ())
        self.carry.append(op.id)

    def _grad_acc(self, kind: str) -> tuple[Kernel, ...]:
        """Without gradient-accumulation fusion: add this micro-batch's weight grads of one
        layer into the accumulated ones."""
        if self.par.gradient_accumulation_fusion:
            return ()
        one = chunk_layers_of(kind, 1)
        params = dense_params_per_rank(self.job, one) + expert_params_per_rank(self.job, one)
        return (grad_accumulate_kernel(params, self.job.precision),)

    # -- the schedule ------------------------------------------------------------------
    def rank_program(self, s: Slot) -> RankProgram:
        p = self.par
        first_stage, last_stage = s.stage == 0, s.stage == p.pp - 1
        rank = self.gpu(s.stage, s.dp or 0, s.tp or 0, s.cp or 0)
        mult = ((p.dp if s.dp is None else 1) * (p.tp if s.tp is None else 1)
                * (p.cp if s.cp is None else 1))
        rp = RankProgram(rank=rank, multiplicity=mult, meta={"stage": s.stage})
        reduce_ops: list[int] = []
        gathered: set[int] = set()  # chunks whose updated weights were gathered (overlap_param_gather)
        seen_b: dict[int, int] = {}
        for phase, c, j in pipeline_order(s.stage, p.pp, p.vp, self.m):
            first = first_stage and c == 0          # holds the embedding
            last = last_stage and c == p.vp - 1     # holds the output head
            cl = chunk_layers(self.job, s.stage, c)
            start = len(rp.ops)
            tag = f"{phase}{j}" + (f"c{c}" if p.vp > 1 else "")
            sharded = self.sharded()
            edge = self.edge_params(s.stage, c)
            if sharded and edge:  # the embedding / head weights, gathered with the chunk
                self._gather(rp, s, f"{tag}/edge_all_gather", ("gather", tag), edge)
            overlap_gather = (p.zero in (1, 2) and p.overlap_param_gather and p.dp * p.cp > 1
                              and phase == "F" and c not in gathered)
            if phase == "F":
                if first:
                    self.compute(rp, f"{tag}/embed", self.ek.embed_fwd)
                    self.tp_comm(rp, s, f"{tag}/embed", 1)
                if sharded:
                    self.sharded_layers(rp, s, tag, False, "first", cl, 0.0, False)
                elif overlap_gather:
                    gathered.add(c)
                    self.forward_with_gathers(rp, s, c, tag, cl)
                else:
                    self.layers(rp, s, tag, "first", cl.dense, cl.moe, "forward")
                self.fp8_amax(rp, tag, cl.total)
                if last:
                    self.compute(rp, f"{tag}/head", self.ek.head_fwd)
                prev = self.prev_position(s.stage, c, forward=True)
                if prev is not None:
                    self.pending.append((rp.ops[start], ("F", *prev, s.dp, s.cp, s.tp, j)))
                if not last:
                    self.send(rp, s, "F", c, j, self.next_position(s.stage, c, True))
            else:
                if self.dense.recompute and not sharded:
                    self.layers(rp, s, f"{tag}/recompute", "first", cl.dense, cl.moe, "recompute")
                if last:
                    self.compute(rp, f"{tag}/head", self.ek.head_bwd)
                    self.tp_comm(rp, s, f"{tag}/head", 1)
                n_b = seen_b.get(c, 0)
                seen_b[c] = n_b + 1
                final = n_b == self.m - 1
                which = "first" if n_b == 0 else "later"
                if sharded:
                    reduce_ops += self.sharded_layers(rp, s, tag, True, which, cl, edge, first)
                elif final or p.zero >= 2:
                    reduce_ops += self.backward_with_buckets(rp, s, c, tag, which, cl, first)
                else:
                    self.layers(rp, s, tag, which, cl.dense, cl.moe, "backward")
                    if first:
                        self.compute(rp, f"{tag}/embed", self.ek.embed_bwd)
                self.fp8_amax(rp, tag, cl.total)
                nxt = self.next_position(s.stage, c, forward=True)
                if nxt is not None and not last:
                    self.pending.append((rp.ops[start], ("B", *nxt, s.dp, s.cp, s.tp, j)))
                prev = self.prev_position(s.stage, c, forward=True)
                if prev is not None:
                    self.send(rp, s, "B", c, j, prev)
        reduce_ops += self.reduce_after_drain(rp, s)
        reduce_ops += self.tied_embedding_sync(rp, s, reduce_ops)
        self.optimizer(rp, s, tuple(reduce_ops))
        return rp

    def fp8_amax(self, rp: RankProgram, tag: str, layers: int) -> None:
        """fp8 (Transformer Engine): the amax / scale update as the chunk's autocast exits."""
        kernels = fp8_amax_kernels(self.job, layers)
        if kernels:
            self.compute(rp, f"{tag}/fp8_amax", kernels)

    def next_position(self, stage: int, c: int, forward: bool) -> tuple[int, int] | None:
        """The (stage, chunk) that runs after this one in the forward direction."""
        p = self.par
        if stage < p.pp - 1:
            return stage + 1, c
        return (0, c + 1) if c < p.vp - 1 else None

    def prev_position(self, stage: int, c: int, forward: bool) -> tuple[int, int] | None:
        p = self.par
        if stage > 0:
            return stage - 1, c
        return (p.pp - 1, c - 1) if c > 0 else None

    def send(self, rp: RankProgram, s: Slot, phase: str, c: int, j: int,
             to: tuple[int, int] | None) -> None:
        """Activations (F) or their gradients (B) to the neighbour stage, one TP slice each
        (Megatron's scatter/gather optimisation, Narayanan et al. 2021 sec. 4.1)."""
        if to is None:
            return
        stream = "p2p" if self.par.overlap_p2p_comm else "compute"
        before = self.last_compute(rp)
        op = self.coll(rp, stream, "pp", f"{phase}{j}c{c}/send", "send_recv",
                       self.pairs(s, to[0]), self.act_msg / self.par.tp,
                       deps=(before,) if before is not None else ())
        self.sends[(phase, s.stage, c, s.dp, s.cp, s.tp, j)] = op.id

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
        slots = [Slot(i, None, None, None) for i in range(p.pp)]
    else:
        slots = [Slot(i, d, c, t) for i in range(p.pp) for d in range(p.dp)
                 for c in range(p.cp) for t in range(p.tp)]
    ranks = [g.rank_program(s) for s in slots]
    g.resolve()
    return Program(ranks=ranks, folded=fold,
                   meta={"micro_batches": job.micro_batches, "stages": p.pp,
                         "next_op_id": g.b.next_id})
