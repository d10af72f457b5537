"""The fast model of `dcsim plan`: one iteration's time without the event engine.

It replays the same 1F1B / interleaved schedule the engine runs, at the granularity of one
(phase, chunk, micro-batch) block per stage instead of one op, with the same kernels
(workloads/kernels.py via the program generator), the same collective groups and sizes, and
the closed-form network (`dcsim.collectives.analytical_time`). Streams behave as in the engine:
a block starts when its stage's compute stream is free, its pipeline input has arrived (the
sender's p2p stream) and, under ZeRO-3, its weights are gathered (the comm stream, in program
order); gradient buckets are reduced on the comm stream as the last backward frees them.
Prices repeat across candidates (kernel tuples, collective calls, groups of a layout), so they
are cached in `FastModel`. Not modelled: comm-stream queueing of TP-overlap and context-
parallel ring transfers (taken inline), and contention between different calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dcsim.cluster import Cluster
from dcsim.collectives import CollectiveCall
from dcsim.network.analytical import analytical_time
from dcsim.costs import CostModel
from dcsim.program import Kernel
from workloads.grad_sync import (DDP_BUCKET_PARAMS, PARAM_GATHER_BYTES, GradientSync,
                                 chunk_layers_of, grad_reduce_bytes)
from workloads.kernels import (edge_kernels, fp8_amax_kernels, grad_accumulate_kernel,
                               layer_kernels, local_tokens, optimizer_step_kernels)
from workloads.layout import (ChunkLayers, chunk_layers, dense_params_per_rank,
                              expert_params_per_rank)
from workloads.parallelism import RankOrder, TrainingJob
from workloads.schedule import pipeline_order
from workloads.rank_groups import RankGroups, Slot
from dcsim.app.rank_order import choose_rank_order, full_bisection_domains, with_rank_order
from workloads.training import build_program


class Shapes(RankGroups, GradientSync):
    """What the program generator derives from a job, through the workloads' public parts:
    kernels (workloads.kernels), groups (RankGroups), embedding weights per chunk
    (GradientSync.edge_params), message sizes."""

    def __init__(self, job: TrainingJob) -> None:
        RankGroups.__init__(self, job, None)
        self.dense = layer_kernels(job)
        self.moe = layer_kernels(job, moe=True) if job.model.is_moe else None
        self.ek = edge_kernels(job)
        self.tokens = local_tokens(job)
        self.act_msg = self.tokens * job.model.hidden * job.act_bytes

    def grad_acc(self, kind: str) -> tuple[Kernel, ...]:
        """Without gradient-accumulation fusion, the add of one layer's weight gradients."""
        if self.par.gradient_accumulation_fusion:
            return ()
        one = chunk_layers_of(kind, 1)
        params = dense_params_per_rank(self.job, one) + expert_params_per_rank(self.job, one)
        return (grad_accumulate_kernel(params, self.job.precision),)

    def next_position(self, stage: int, c: int, forward: bool = True) -> tuple[int, int] | None:
        """The (stage, chunk) after this one in the forward direction (the pipeline's ring
        of stages, chunk by chunk)."""
        if stage < self.par.pp - 1:
            return stage + 1, c
        return (0, c + 1) if c < self.par.vp - 1 else None

    def prev_position(self, stage: int, c: int, forward: bool = True) -> tuple[int, int] | None:
        """The (stage, chunk) before this one in the forward direction."""
        if stage > 0:
            return stage - 1, c
        return (self.par.pp - 1, c - 1) if c > 0 else None


def engine_only(job: TrainingJob) -> bool:
    """Layouts the block replay does not reproduce yet: ZeRO-3 / FSDP (per-layer gathers at
    the framework's prefetch depth, workloads/sharded_step.py) and userbuffers TP overlap
    (workloads/tp_overlap.py). They are priced by the engine itself (analytical network)."""
    p = job.par
    return (p.zero >= 3 and p.dp * p.cp > 1) or (p.tp_comm_overlap and p.sequence_parallel
                                                  and p.tp > 1)


@dataclass
class FastEstimate:
    """The fast model's iteration time and where the critical stage spent it."""

    iteration_s: float
    breakdown: dict[str, float]  # compute, optimizer, tp, pp, dp, cp, ep, pipeline_bubble
    critical_stage: int


@dataclass
class _Stage:
    """Running clocks of one stage's three streams."""

    compute: float = 0.0
    comm: float = 0.0
    p2p: float = 0.0
    last_reduce: float = 0.0
    wait_bubble: float = 0.0
    wait_pp: float = 0.0
    wait_dp: float = 0.0
    cats: dict[str, float] = field(default_factory=dict)

    def add(self, cat: str, dt: float) -> None:
        if dt > 0:
            self.cats[cat] = self.cats.get(cat, 0.0) + dt


class FastModel:
    """Prices candidates of one cluster and cost model, caching what repeats."""

    def __init__(self, cluster: Cluster, costs: CostModel) -> None:
        self.cluster, self.costs = cluster, costs
        self._kernels: dict[tuple[Kernel, ...], float] = {}
        self._colls: dict[tuple[Any, ...], float] = {}
        self._gens: dict[tuple[int, ...], Shapes] = {}
        self._orders: dict[tuple[Any, ...], list[list[tuple[int, int, int]]]] = {}
        self._domains = full_bisection_domains(cluster)

    # -- cached prices ------------------------------------------------------------------
    def ktime(self, kernels: tuple[Kernel, ...]) -> float:
        """Seconds of a kernel tuple run back to back."""
        t = self._kernels.get(kernels)
        if t is None:
            gpu = self.cluster.gpu_spec
            t = self._kernels[kernels] = sum(self.costs.kernel_time(k, gpu).time_s
                                             for k in kernels)
        return t

    def ctime(self, op: str, groups_of: str, layout: tuple[int, ...], stage: int, size: float,
              *extra: int) -> float:
        """Seconds of one collective call of a layout's groups (measured if the profile has it)."""
        key = (op, groups_of, layout, stage, size, extra)
        t = self._colls.get(key)
        if t is None:
            gen = self._gens[layout]
            method = getattr(gen, groups_of)
            groups = method(Slot(stage, None, None, None), *extra)
            n = max(len(g) for g in groups)
            measured = self.costs.collective_time(op, n, size, self.cluster.gpu_spec)
            t = (measured.time_s if measured else
                 analytical_time(self.cluster, CollectiveCall(op, groups, float(size))).time_s)
            self._colls[key] = t
        return t

    def schedule(self, pp: int, vp: int, m: int, reduce_every: bool, gen: Shapes,
                 first_gathers: bool = False) -> list[list[tuple[int, int, int]]]:
        """Per stage, its blocks in the order it runs them, as (block index, index of the
        block whose send it waits for or -1, block type). Types: forward of chunk c = c;
        backward of chunk c = vp + 4c + 2 (later micro-batch) + (gradients reduced); the first
        forward of chunk c when it gathers the step's weights = 5 vp + c."""
        key = (pp, vp, m, reduce_every, first_gathers)
        got = self._orders.get(key)
        if got is not None:
            return got
        orders = [pipeline_order(s, pp, vp, m) for s in range(pp)]
        index: dict[tuple[str, int, int, int], int] = {}
        for s, order in enumerate(orders):
            for phase, c, j in order:
                index[(phase, s, c, j)] = len(index)
        sched = []
        for s, order in enumerate(orders):
            seen: dict[int, int] = {}
            seen_f: set[int] = set()
            rows = []
            for phase, c, j in order:
                if phase == "F":
                    prev = gen.prev_position(s, c, True)
                    recv = index[("F", prev[0], prev[1], j)] if prev is not None else -1
                    typ = 5 * vp + c if first_gathers and c not in seen_f else c
                    seen_f.add(c)
                else:
                    nb = seen.get(c, 0)
                    seen[c] = nb + 1
                    nxt = gen.next_position(s, c, True)
                    last = s == pp - 1 and c == vp - 1
                    recv = index[("B", nxt[0], nxt[1], j)] if nxt is not None and not last else -1
                    typ = vp + 4 * c + 2 * (nb > 0) + (nb == m - 1 or reduce_every)
                rows.append((index[(phase, s, c, j)], recv, typ))
            sched.append(rows)
        self._orders[key] = sched
        return sched

    def generator(self, job: TrainingJob) -> tuple[Shapes, tuple[int, ...]]:
        """The job's shapes (kernels, message sizes) and its layout key; group tuples are
        memoized per layout, so the first Shapes of a layout keeps them for the others."""
        p = job.par
        layout = (p.tp, p.pp, p.dp, p.cp, p.ep, list(RankOrder).index(p.rank_order))
        gen = Shapes(job)
        self._gens.setdefault(layout, gen)  # ctime builds a layout's groups on its first Shapes
        return gen, layout

    # -- the model ----------------------------------------------------------------------
    def estimate(self, job: TrainingJob) -> FastEstimate:
        """Iteration time of a (validated) job on this model's cluster (in the rank order
        `auto` resolves to there)."""
        job = with_rank_order(job, choose_rank_order(job, self._domains).order)
        if engine_only(job):
            return self.engine_estimate(job)
        return _Run(self, job).run()

    def engine_estimate(self, job: TrainingJob) -> FastEstimate:
        """The engine's own iteration (folded program, analytical network)."""
        from dcsim.engine import Engine
        timing = Engine(build_program(job, fold=True), self.cluster, self.costs,
                        network="analytical").run()
        cats = {str(k): v for k, v in timing.breakdown.items()}
        return FastEstimate(timing.iteration_s, cats, timing.critical_rank)


class _Run:
    """One candidate's block-level replay."""

    def __init__(self, fm: FastModel, job: TrainingJob) -> None:
        self.fm, self.job, self.p = fm, job, job.par
        self.gen, self.layout = fm.generator(job)
        p = self.p
        self.m = job.micro_batches
        self.tp_ops = (("all_gather", "reduce_scatter") if p.sequence_parallel
                       else ("all_reduce",)) if p.tp > 1 else ()
        self.stages = [_Stage() for _ in range(p.pp)]
        self.sent: dict[tuple[str, int, int, int], tuple[float, float]] = {}
        self.gbytes = grad_reduce_bytes(job.precision)
        bucket = p.ddp_bucket_params or max(DDP_BUCKET_PARAMS, 1_000_000 * p.dp)
        self.per_bucket = max(1, int(bucket // max(job.model.layer_params() / p.tp, 1)))
        self._seg: dict[tuple[Any, ...], Steps] = {}
        self._chunks: dict[tuple[int, int], ChunkLayers] = {}
        self.deferred_of: dict[tuple[int, int, str], float] = {}  # (stage, chunk, which)
        self.deferred: list[float] = []

    def chunk(self, s: int, c: int) -> ChunkLayers:
        got = self._chunks.get((s, c))
        if got is None:
            got = self._chunks[(s, c)] = chunk_layers(self.job, s, c)
        return got

    def tp_time(self, stage: int, count: int) -> float:
        t = 0.0
        for op in self.tp_ops:
            t += self.fm.ctime(op, "tp_groups", self.layout, stage, self.gen.act_msg) * count
        return t

    def layers(self, stage: int, kind: str, n: int, ph: str, which: str = "first") -> Steps:
        """The steps of n layers of one kind in one phase ('forward', 'recompute',
        'backward'), as `Shapes.layers` emits them."""
        key = (stage, kind, n, ph, which)
        got = self._seg.get(key)
        if got is not None:
            return got
        p, gen, fm, m = self.p, self.gen, self.fm, self.job.model
        lk = gen.dense if kind == "dense" else gen.moe
        assert lk is not None  # MoE layers exist only in a MoE model, which has its kernels
        kernels = getattr(lk, ph)
        if ph == "backward" and which == "later":
            kernels = kernels + gen.grad_acc(kind)
        steps: Steps = []
        if not kernels:
            self._seg[key] = steps
            return steps
        attn = lk.attn_backward if ph == "backward" else lk.attn_forward
        if p.cp > 1 and attn and all(any(a is k for k in kernels) for a in attn):
            rest = tuple(k for k in kernels if not any(k is a for a in attn))
            size = 2 * gen.tokens * max(1, m.kv_heads // p.tp) * m.head_dim \
                * self.job.act_bytes * (2 if ph == "backward" else 1)
            ring = n * (p.cp - 1) * fm.ctime("send_recv", "pairs", self.layout, stage, size,
                                             stage, 1)
            steps += [(COMPUTE, n * fm.ktime(rest), 0.0, "compute"), (SYNC, ring, 0.0, "cp")]
            last: float = n * fm.ktime(attn)
        else:
            last = n * fm.ktime(kernels)
        tp_count = 0 if ph == "recompute" and p.recompute != "full" else 2 * n
        tp = self.tp_time(stage, tp_count) if tp_count else 0.0
        if p.tp_comm_overlap and tp:
            steps.append((BESIDE, last, tp, "tp"))
        else:
            steps.append((COMPUTE, last, 0.0, "compute"))
            if tp:
                steps.append((COMPUTE, tp, 0.0, "tp"))
        if kind == "moe" and p.ep > 1 and (ph != "recompute" or p.recompute == "full"):
            a2a_bytes = gen.tokens * m.top_k * m.hidden * self.job.act_bytes \
                / (p.tp if p.sequence_parallel else 1)
            a2a = 2 * n * fm.ctime("all_to_all", "ep_groups", self.layout, stage, a2a_bytes)
            steps.append((COMPUTE, a2a, 0.0, "ep"))
        self._seg[key] = steps
        return steps

    # -- per-block steps (the same for every micro-batch) --------------------------------
    def _forward(self, s: int, c: int, gathers: bool = False) -> Steps:
        """A forward block; `gathers`: the chunk's first forward under overlap_param_gather,
        whose layers wait bucket by bucket for the step's updated weights."""
        gen, fm, p, job = self.gen, self.fm, self.p, self.job
        cl = self.chunk(s, c)
        steps: Steps = []
        if s == 0 and c == 0:
            steps.append((COMPUTE, fm.ktime(gen.ek.embed_fwd), 0.0, "compute"))
            tp = self.tp_time(s, 1)
            if tp:  # with tp_comm_overlap it starts at once and the next op waits for it
                steps.append((SYNC if p.tp_comm_overlap else COMPUTE, tp, 0.0, "tp"))
        if gathers:  # as GradientSync.forward_with_gathers
            extra = gen.edge_params(s, c)
            for kind, n_kind in (("dense", cl.dense), ("moe", cl.moe)):
                k = 0
                while k < n_kind:
                    n = min(self.per_bucket, n_kind - k)
                    part = ChunkLayers(dense=n if kind == "dense" else 0,
                                       moe=n if kind == "moe" else 0)
                    params = (dense_params_per_rank(job, part) + expert_params_per_rank(job, part)
                              + extra)
                    extra = 0.0
                    steps.append((PREFETCH, fm.ctime("all_gather", "dp_groups", self.layout, s,
                                                     params * PARAM_GATHER_BYTES), 0.0, "dp"))
                    steps += self.layers(s, kind, n, "forward")
                    k += n
        else:
            for kind, n in (("dense", cl.dense), ("moe", cl.moe)):
                if n:
                    steps += self.layers(s, kind, n, "forward")
        amax = fp8_amax_kernels(job, cl.total)
        if amax:
            steps.append((COMPUTE, fm.ktime(amax), 0.0, "compute"))
        if s == p.pp - 1 and c == p.vp - 1:
            steps.append((COMPUTE, fm.ktime(gen.ek.head_fwd), 0.0, "compute"))
        return steps

    def _backward(self, s: int, c: int, which: str, buckets: bool) -> Steps:
        """A backward block; when its gradients are reduced, the bucket reductions go to the
        comm stream as the layers that fill them finish."""
        gen, fm, p, job = self.gen, self.fm, self.p, self.job
        cl = self.chunk(s, c)
        first = s == 0 and c == 0
        steps: Steps = []
        for kind, n in (("dense", cl.dense), ("moe", cl.moe)):
            if n:
                steps += self.layers(s, kind, n, "recompute")
        if s == p.pp - 1 and c == p.vp - 1:
            steps.append((COMPUTE, fm.ktime(gen.ek.head_bwd), 0.0, "compute"))
            tp = self.tp_time(s, 1)
            if tp:
                steps.append((SYNC if p.tp_comm_overlap else COMPUTE, tp, 0.0, "tp"))
        if not buckets:
            for kind, n in (("moe", cl.moe), ("dense", cl.dense)):
                if n:
                    steps += self.layers(s, kind, n, "backward", which)
            if first:
                steps.append((COMPUTE, fm.ktime(gen.ek.embed_bwd), 0.0, "compute"))
            return steps + self._amax(cl)
        op = "reduce_scatter" if p.zero >= 1 else "all_reduce"
        pend_d = pend_e = 0.0
        done, total = 0, cl.total
        for kind, n_kind in (("moe", cl.moe), ("dense", cl.dense)):
            k = 0
            while k < n_kind:
                n = min(self.per_bucket, n_kind - k)
                steps += self.layers(s, kind, n, "backward", which)
                k += n
                done += n
                part = ChunkLayers(dense=n if kind == "dense" else 0, moe=n if kind == "moe" else 0)
                pend_d += dense_params_per_rank(job, part)
                pend_e += expert_params_per_rank(job, part)
                if done == total and first:
                    steps.append((COMPUTE, fm.ktime(gen.ek.embed_bwd), 0.0, "compute"))
                if done == total:
                    pend_d += gen.edge_params(s, c)
                if done == total and not p.overlap_grad_reduce and p.zero < 2:
                    # reduced after the pipeline drains (GradientSync.reduce_after_drain)
                    self.deferred_of[(s, c, which)] = self._reduce_time(s, op, pend_d, pend_e)
                    pend_d = pend_e = 0.0
                if (p.overlap_grad_reduce or done == total) and (pend_d or pend_e):
                    if pend_d and p.dp * p.cp > 1:
                        steps.append((ASYNC, fm.ctime(op, "dp_groups", self.layout, s,
                                                      pend_d * self.gbytes), 0.0, "dp"))
                    if pend_e and p.dp // p.ep * p.cp > 1:
                        steps.append((ASYNC, fm.ctime(op, "expert_dp_groups", self.layout, s,
                                                      pend_e * self.gbytes), 0.0, "dp"))
                    pend_d = pend_e = 0.0
        return steps + self._amax(cl)

    def _amax(self, cl: ChunkLayers) -> Steps:
        """fp8: the amax / scale update as the chunk's autocast exits."""
        amax = fp8_amax_kernels(self.job, cl.total)
        return [(COMPUTE, self.fm.ktime(amax), 0.0, "compute")] if amax else []

    def _reduce_time(self, s: int, op: str, dense: float, expert: float) -> float:
        """Seconds of one chunk's gradient reduction (dense, then expert) on the comm stream."""
        p, fm, t = self.p, self.fm, 0.0
        if dense and p.dp * p.cp > 1:
            t += fm.ctime(op, "dp_groups", self.layout, s, dense * self.gbytes)
        if expert and p.dp // p.ep * p.cp > 1:
            t += fm.ctime(op, "expert_dp_groups", self.layout, s, expert * self.gbytes)
        return t

    def _gather(self, s: int, c: int) -> float:
        """ZeRO-3: seconds to gather one chunk's weights before it runs (0 otherwise)."""
        p, gen = self.p, self.gen
        if p.zero < 3 or p.dp * p.cp == 1:
            return 0.0
        cl = self.chunk(s, c)
        params = (dense_params_per_rank(self.job, cl) + expert_params_per_rank(self.job, cl)
                  + gen.edge_params(s, c))
        return self.fm.ctime("all_gather", "dp_groups", self.layout, s,
                             params * PARAM_GATHER_BYTES)

    def _send(self, s: int, to: tuple[int, int] | None) -> float | None:
        if to is None:
            return None
        return self.fm.ctime("send_recv", "pairs", self.layout, s, self.gen.act_msg / self.p.tp,
                             to[0])

    # -- the replay -------------------------------------------------------------------
    def run(self) -> FastEstimate:
        p, gen = self.p, self.gen
        pp, vp = p.pp, p.vp
        overlap_gather = p.zero in (1, 2) and p.overlap_param_gather and p.dp * p.cp > 1
        sched = self.fm.schedule(pp, vp, self.m, p.zero >= 2, gen, overlap_gather)
        tables = []
        for s in range(pp):
            blk: list[Block] = [_compile(self._forward(s, c)) for c in range(vp)]
            snd: list[float | None] = [self._send(s, None if (s == pp - 1 and c == vp - 1)
                                                  else gen.next_position(s, c, True))
                                       for c in range(vp)]
            gat = [self._gather(s, c) for c in range(vp)]
            for c in range(vp):
                for w in ("first", "later"):
                    for bk in (False, True):
                        blk.append(_compile(self._backward(s, c, w, bk)))
                        snd.append(self._send(s, gen.prev_position(s, c, True)))
                        gat.append(gat[c])
            for c in range(vp):  # first forwards that gather the step's weights
                blk.append(_compile(self._forward(s, c, gathers=True)) if overlap_gather
                           else blk[c])
                snd.append(snd[c])
                gat.append(gat[c])
            tables.append((blk, snd, gat))
        # each chunk's final backward defers its reduction (one per chunk and stage)
        final = "first" if self.m == 1 else "later"
        self.deferred = [sum(self.deferred_of.get((s, c, final), 0.0) for c in range(vp))
                         for s in range(pp)]
        self.replay(sched, tables)
        self.finish()
        return self.result()

    def replay(self, sched: list[list[tuple[int, int, int]]], tables: list[Any]) -> None:
        """Advance every stage through its blocks, in an order that respects the sends."""
        p = self.p
        total = sum(len(b) for b in sched)
        sent0: list[float] = [0.0] * total
        sent1: list[float | None] = [None] * total
        overlap = p.overlap_p2p_comm
        pos = [0] * p.pp
        all_counts = [[0] * len(tables[s][0]) for s in range(p.pp)]
        remaining = total
        while remaining:
            progressed = False
            for s in range(p.pp):
                blocks, st, i = sched[s], self.stages[s], pos[s]
                blk, snds, gats = tables[s]
                counts = all_counts[s]
                n_blocks = len(blocks)
                comp = st.compute
                while i < n_blocks:
                    me, ri, typ = blocks[i]
                    ready = comp
                    if ri >= 0:
                        r1 = sent1[ri]
                        if r1 is None:
                            break
                    else:
                        r1 = 0.0
                    gat = gats[typ]
                    gather_end = 0.0
                    if gat:
                        st.comm += gat
                        gather_end = st.comm
                    if r1 > ready and r1 > gather_end:
                        cut = min(max(sent0[ri], ready), r1)
                        st.wait_bubble += cut - ready
                        st.wait_pp += r1 - cut
                        ready = r1
                    elif gather_end > ready:
                        st.wait_dp += gather_end - ready
                        ready = gather_end
                    dur, _cats, reduces, steps = blk[typ]
                    if steps is None:
                        counts[typ] += 1
                        for off, d in reduces:
                            c0 = ready + off
                            st.comm = (st.comm if st.comm > c0 else c0) + d
                            st.last_reduce = st.comm
                        comp = ready + dur
                    else:
                        comp = _run_steps(st, ready, steps)
                    snd = snds[typ]
                    if snd is not None:
                        sent0[me] = comp
                        if overlap:
                            start = st.p2p if st.p2p > comp else comp
                            st.p2p = start + snd
                            sent1[me] = st.p2p
                        else:
                            comp += snd
                            st.wait_pp += snd
                            st.p2p = comp
                            sent1[me] = comp
                    i += 1
                st.compute = comp
                if i != pos[s]:
                    remaining -= i - pos[s]
                    progressed = True
                pos[s] = i
            if not progressed:
                raise RuntimeError("fast model: the schedule deadlocked")
        for s, counts in enumerate(all_counts):
            st, blk = self.stages[s], tables[s][0]
            for typ, n in enumerate(counts):
                if n:
                    for k, v in blk[typ][1].items():
                        st.add(k, v * n)

    def finish(self) -> None:
        """Tied-embedding sync, optimizer, ZeRO-1/2 parameter gather on every stage."""
        p, job, fm, gen, m = self.p, self.job, self.fm, self.gen, job_model(self.job)
        for st, secs in zip(self.stages, self.deferred, strict=True):
            if secs:  # reduced after the drain: they wait for the stage's last compute
                st.comm = max(st.comm, st.compute) + secs
                st.last_reduce = st.comm
        tied_end = None
        if m.tied_embeddings and p.pp > 1:
            a, b = self.stages[0], self.stages[-1]
            start = max(max(a.comm, a.last_reduce, a.compute if not a.last_reduce else 0.0),
                        max(b.comm, b.last_reduce, b.compute if not b.last_reduce else 0.0))
            size = m.embedding_params() / p.tp * self.gbytes
            tied_end = start + fm.ctime("all_reduce", "pairs", self.layout, 0, size, p.pp - 1)
            a.comm = b.comm = tied_end
        for s, st in enumerate(self.stages):
            dense = sum(dense_params_per_rank(job, chunk_layers(job, s, c)) + gen.edge_params(s, c)
                        for c in range(p.vp))
            expert = sum(expert_params_per_rank(job, chunk_layers(job, s, c)) for c in range(p.vp))
            shard = (dense / (p.dp * p.cp) + expert / max(1, p.dp // p.ep)) if p.zero >= 1 \
                else dense + expert
            deps = st.last_reduce
            if tied_end is not None and s in (0, p.pp - 1):
                deps = max(deps, tied_end)
            if deps > st.compute:
                st.add("dp", deps - st.compute)
                st.compute = deps
            o = fm.ktime(optimizer_step_kernels(shard, job.precision))
            st.compute += o
            st.add("optimizer", o)
            if p.zero in (1, 2) and p.dp * p.cp > 1 and not p.overlap_param_gather:
                g = fm.ctime("all_gather", "dp_groups", self.layout, s,
                             (dense + expert) * PARAM_GATHER_BYTES)
                st.compute += g
                st.add("dp", g)

    def result(self) -> FastEstimate:
        for st in self.stages:
            st.add("pipeline_bubble", st.wait_bubble)
            st.add("pp", st.wait_pp)
            st.add("dp", st.wait_dp)
        ends = [max(st.compute, st.comm, st.p2p) for st in self.stages]
        it = max(ends)
        crit = max(range(len(self.stages)), key=lambda i: (self.stages[i].compute, -i))
        st = self.stages[crit]
        cats = dict(st.cats)
        # whatever the critical stage's compute stream did not account for (a trailing comm)
        rest = it - sum(cats.values())
        if rest > 1e-12 * it:
            cats["dp"] = cats.get("dp", 0.0) + rest
        return FastEstimate(it, cats, crit)


def job_model(job: TrainingJob):
    return job.model


# Step kinds of a block: compute-stream time; a comm-stream op the compute waits for (context-
# parallel ring); a comm-stream op it does not wait for (a gradient bucket); a comm-stream op
# beside a compute op that the next op waits for (tp_comm_overlap).
# A prefetch is a comm-stream op with no dependency that the next compute op waits for (the
# distributed optimizer's parameter gathers under overlap_param_gather).
COMPUTE, SYNC, ASYNC, BESIDE, PREFETCH = 0, 1, 2, 3, 4
Steps = list[tuple[int, float, float, str]]
Block = tuple[float, dict[str, float], list[tuple[float, float]], Any]


def _compile(steps: Steps) -> Block:
    """A block as (duration, categories, [(offset, bucket seconds)], None) when only the
    compute stream decides its length; else (0, {}, [], steps) to replay step by step."""
    if any(k in (SYNC, BESIDE, PREFETCH) for k, _a, _b, _c in steps):
        return 0.0, {}, [], tuple(steps)
    t = 0.0
    cats: dict[str, float] = {}
    reduces: list[tuple[float, float]] = []
    for k, a, _b, cat in steps:
        if k == COMPUTE:
            t += a
            if a:
                cats[cat] = cats.get(cat, 0.0) + a
        else:
            reduces.append((t, a))
    return t, cats, reduces, None


def _run_steps(st: _Stage, t: float, steps: Any) -> float:
    """Replay a block whose length depends on the comm stream; returns its end."""
    for k, a, b, cat in steps:
        if k == COMPUTE:
            t += a
            st.add(cat, a)
        elif k == SYNC:
            start = st.comm if st.comm > t else t
            st.comm = start + a
            st.add(cat, st.comm - t)
            t = st.comm
        elif k == ASYNC:
            st.comm = (st.comm if st.comm > t else t) + a
            st.last_reduce = st.comm
        elif k == PREFETCH:
            st.comm += a
            if st.comm > t:
                st.add(cat, st.comm - t)
                t = st.comm
        else:  # BESIDE: compute a, comm b beside it
            start = st.comm if st.comm > t else t
            st.comm = start + b
            end = max(t + a, st.comm)
            st.add("compute", a)
            st.add(cat, end - t - a)
            t = end
    return t
