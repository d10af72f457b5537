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
from dcsim.collectives import CollectiveCall, analytical_time
from dcsim.costs import CostModel
from dcsim.program import Kernel
from workloads.kernels import optimizer_kernel
from workloads.layout import (ChunkLayers, chunk_layers, dense_params_per_rank,
                              expert_params_per_rank)
from workloads.parallelism import TrainingJob
from workloads.schedule import pipeline_order
from workloads.training import (DDP_BUCKET_PARAMS, PARAM_GATHER_BYTES, _Generator, _Slot,
                                grad_reduce_bytes)


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
        self._gens: dict[tuple[int, ...], _Generator] = {}
        self._orders: dict[tuple[int, int, int, int], list[tuple[str, int, int]]] = {}

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
            groups = method(_Slot(stage, None, None, None), *extra)
            n = max(len(g) for g in groups)
            measured = self.costs.collective_time(op, n, size, self.cluster.gpu_spec)
            t = (measured.time_s if measured else
                 analytical_time(self.cluster, CollectiveCall(op, groups, float(size))).time_s)
            self._colls[key] = t
        return t

    def order(self, stage: int, pp: int, vp: int, m: int) -> list[tuple[str, int, int]]:
        key = (stage, pp, vp, m)
        got = self._orders.get(key)
        if got is None:
            got = self._orders[key] = pipeline_order(stage, pp, vp, m)
        return got

    def generator(self, job: TrainingJob) -> tuple[_Generator, tuple[int, ...]]:
        """The program generator of this job (kernels, message sizes) and its layout key; group
        tuples are memoized per layout, so the first generator of a layout keeps them."""
        p = job.par
        layout = (p.tp, p.pp, p.dp, p.cp, p.ep)
        gen = _Generator(job, fold=True)
        first = self._gens.setdefault(layout, gen)
        gen.__dict__["_groups"] = first.__dict__.setdefault("_groups", {})
        return gen, layout

    # -- the model ----------------------------------------------------------------------
    def estimate(self, job: TrainingJob) -> FastEstimate:
        """Iteration time of a (validated) job on this model's cluster."""
        return _Run(self, job).run()


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
        self._seg: dict[tuple[Any, ...], tuple[float, dict[str, float]]] = {}

    def tp_time(self, stage: int, count: int) -> float:
        t = 0.0
        for op in self.tp_ops:
            t += self.fm.ctime(op, "tp_groups", self.layout, stage, self.gen.act_msg) * count
        return t

    def layers(self, stage: int, kind: str, n: int, ph: str,
               which: str = "first") -> tuple[float, dict[str, float]]:
        """Seconds and categories of n layers of one kind in one phase ('forward', 'recompute',
        'backward'), as `_Generator.layers` emits them."""
        key = (stage, kind, n, ph, which)
        got = self._seg.get(key)
        if got is not None:
            return got
        p, gen, fm, m = self.p, self.gen, self.fm, self.job.model
        lk = gen.dense if kind == "dense" else gen.moe
        cats: dict[str, float] = {}
        kernels = getattr(lk, ph)
        if ph == "backward" and which == "later":
            kernels = kernels + gen._grad_acc(kind)
        if not kernels:
            self._seg[key] = (0.0, cats)
            return 0.0, cats
        comp = n * fm.ktime(kernels)
        cats["compute"] = comp
        attn = lk.attn_backward if ph == "backward" else lk.attn_forward
        if p.cp > 1 and attn and all(any(a is k for k in kernels) for a in attn):
            size = 2 * gen.tokens * max(1, m.kv_heads // p.tp) * m.head_dim \
                * self.job.act_bytes * (2 if ph == "backward" else 1)
            cats["cp"] = n * (p.cp - 1) * fm.ctime("send_recv", "pairs", self.layout, stage,
                                                   size, stage, 1)
        tp_count = 0 if ph == "recompute" and p.recompute != "full" else 2 * n
        tp = self.tp_time(stage, tp_count) if tp_count else 0.0
        cats["tp"] = max(0.0, tp - comp) if p.tp_comm_overlap else tp
        if kind == "moe" and p.ep > 1 and (ph != "recompute" or p.recompute == "full"):
            size = gen.tokens * m.top_k * m.hidden * self.job.act_bytes \
                / (p.tp if p.sequence_parallel else 1)
            cats["ep"] = 2 * n * fm.ctime("all_to_all", "ep_groups", self.layout, stage, size)
        got = self._seg[key] = (sum(cats.values()), cats)
        return got

    # -- per-block prices (the same for every micro-batch) -------------------------------
    def _forward(self, s: int, c: int) -> tuple[float, dict[str, float]]:
        gen, fm, p = self.gen, self.fm, self.p
        cl = chunk_layers(self.job, s, c)
        cats: dict[str, float] = {}
        if s == 0 and c == 0:
            _acc(cats, {"compute": fm.ktime(gen.ek.embed_fwd), "tp": self.tp_time(s, 1)})
        for kind, n in (("dense", cl.dense), ("moe", cl.moe)):
            if n:
                _acc(cats, self.layers(s, kind, n, "forward")[1])
        if s == p.pp - 1 and c == p.vp - 1:
            _acc(cats, {"compute": fm.ktime(gen.ek.head_fwd)})
        return sum(cats.values()), cats

    def _backward(self, s: int, c: int, which: str,
                  buckets: bool) -> tuple[float, dict[str, float], list[tuple[float, float]]]:
        """A backward block: its time, categories and (when its gradients are reduced) the
        comm-stream reductions as (offset from the block start, seconds)."""
        gen, fm, p, job = self.gen, self.fm, self.p, self.job
        cl = chunk_layers(job, s, c)
        first = s == 0 and c == 0
        cats: dict[str, float] = {}
        for kind, n in (("dense", cl.dense), ("moe", cl.moe)):
            if n:
                _acc(cats, self.layers(s, kind, n, "recompute")[1])
        if s == p.pp - 1 and c == p.vp - 1:
            _acc(cats, {"compute": fm.ktime(gen.ek.head_bwd), "tp": self.tp_time(s, 1)})
        reduces: list[tuple[float, float]] = []
        if not buckets:
            for kind, n in (("moe", cl.moe), ("dense", cl.dense)):
                if n:
                    _acc(cats, self.layers(s, kind, n, "backward", which)[1])
            if first:
                _acc(cats, {"compute": fm.ktime(gen.ek.embed_bwd)})
            return sum(cats.values()), cats, reduces
        op = "reduce_scatter" if p.zero >= 1 else "all_reduce"
        t = sum(cats.values())
        pend_d = pend_e = 0.0
        done, total = 0, cl.total
        for kind, n_kind in (("moe", cl.moe), ("dense", cl.dense)):
            k = 0
            while k < n_kind:
                n = min(self.per_bucket, n_kind - k)
                d, lc = self.layers(s, kind, n, "backward", which)
                _acc(cats, lc)
                t += d
                k += n
                done += n
                part = ChunkLayers(dense=n if kind == "dense" else 0, moe=n if kind == "moe" else 0)
                pend_d += dense_params_per_rank(job, part)
                pend_e += expert_params_per_rank(job, part)
                if done == total and first:
                    e = fm.ktime(gen.ek.embed_bwd)
                    _acc(cats, {"compute": e})
                    t += e
                if done == total:
                    pend_d += gen.edge_params(s, c)
                if (p.overlap_grad_reduce or done == total) and (pend_d or pend_e):
                    if pend_d and p.dp * p.cp > 1:
                        reduces.append((t, fm.ctime(op, "dp_groups", self.layout, s,
                                                    pend_d * self.gbytes)))
                    if pend_e and p.dp // p.ep * p.cp > 1:
                        reduces.append((t, fm.ctime(op, "expert_dp_groups", self.layout, s,
                                                    pend_e * self.gbytes)))
                    pend_d = pend_e = 0.0
        return t, cats, reduces

    def _gather(self, s: int, c: int) -> float:
        """ZeRO-3: seconds to gather one chunk's weights before it runs (0 otherwise)."""
        p, gen = self.p, self.gen
        if p.zero < 3 or p.dp * p.cp == 1:
            return 0.0
        cl = chunk_layers(self.job, s, c)
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
        pp, vp, m = p.pp, p.vp, self.m
        # per stage: the blocks in schedule order as (key, recv key, block, send secs)
        plans = []
        for s in range(pp):
            fw = [self._forward(s, c) for c in range(vp)]
            bw = {(c, w, bk): self._backward(s, c, w, bk) for c in range(vp)
                  for w in ("first", "later") for bk in (False, True)}
            gat = [self._gather(s, c) for c in range(vp)]
            send_f = [self._send(s, None if (s == pp - 1 and c == vp - 1)
                                 else gen.next_position(s, c, True)) for c in range(vp)]
            send_b = [self._send(s, gen.prev_position(s, c, True)) for c in range(vp)]
            seen: dict[int, int] = {}
            blocks = []
            for phase, c, j in self.fm.order(s, pp, vp, m):
                if phase == "F":
                    prev = gen.prev_position(s, c, True)
                    recv = ("F", prev[0], prev[1], j) if prev is not None else None
                    blk = (fw[c][0], fw[c][1], ())
                    snd = send_f[c]
                else:
                    nb = seen.get(c, 0)
                    seen[c] = nb + 1
                    nxt = gen.next_position(s, c, True)
                    last = s == pp - 1 and c == vp - 1
                    recv = ("B", nxt[0], nxt[1], j) if nxt is not None and not last else None
                    blk = bw[(c, "first" if nb == 0 else "later", nb == m - 1 or p.zero >= 2)]
                    snd = send_b[c]
                blocks.append(((phase, s, c, j), recv, blk, snd, gat[c]))
            plans.append(blocks)
        self.replay(plans)
        self.finish()
        return self.result()

    def replay(self, plans: list[list[Any]]) -> None:
        """Advance every stage through its blocks, in an order that respects the sends."""
        p = self.p
        sent = self.sent
        overlap = p.overlap_p2p_comm
        pos = [0] * p.pp
        remaining = sum(len(b) for b in plans)
        while remaining:
            progressed = False
            for s in range(p.pp):
                blocks, st, i = plans[s], self.stages[s], pos[s]
                counts: dict[int, list[Any]] = {}
                while i < len(blocks):
                    key, recv, blk, snd, gat = blocks[i]
                    r = None
                    if recv is not None:
                        r = sent.get(recv)
                        if r is None:
                            break
                    ready = st.compute
                    gather_end = 0.0
                    if gat:
                        st.comm += gat
                        gather_end = st.comm
                    if r is not None and r[1] > max(ready, gather_end):
                        cut = min(max(r[0], ready), r[1])
                        st.wait_bubble += cut - ready
                        st.wait_pp += r[1] - cut
                        ready = r[1]
                    elif gather_end > ready:
                        st.wait_dp += gather_end - ready
                        ready = gather_end
                    dur, cats, reduces = blk
                    ent = counts.get(id(cats))
                    if ent is None:
                        counts[id(cats)] = [cats, 1]
                    else:
                        ent[1] += 1
                    for off, d in reduces:
                        st.comm = max(st.comm, ready + off) + d
                        st.last_reduce = st.comm
                    t = ready + dur
                    st.compute = t
                    if snd is not None:
                        if overlap:
                            start = st.p2p if st.p2p > t else t
                            st.p2p = start + snd
                            sent[key] = (t, st.p2p)
                        else:
                            st.compute = t + snd
                            st.wait_pp += snd
                            st.p2p = st.compute
                            sent[key] = (t, st.compute)
                    i += 1
                    remaining -= 1
                    progressed = True
                for cats, n in counts.values():
                    for k, v in cats.items():
                        st.add(k, v * n)
                pos[s] = i
            if not progressed:
                raise RuntimeError("fast model: the schedule deadlocked")

    def finish(self) -> None:
        """Tied-embedding sync, optimizer, ZeRO-1/2 parameter gather on every stage."""
        p, job, fm, gen, m = self.p, self.job, self.fm, self.gen, job_model(self.job)
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
            o = fm.ktime((optimizer_kernel(shard, job.precision),))
            st.compute += o
            st.add("optimizer", o)
            if p.zero in (1, 2) and p.dp * p.cp > 1:
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


def _acc(into: dict[str, float], add: dict[str, float]) -> None:
    for k, v in add.items():
        if v:
            into[k] = into.get(k, 0.0) + v
