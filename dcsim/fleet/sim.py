"""The fleet simulation: an event heap over months; jobs advance by their priced rate between
events (never iteration by iteration).

Events: arrivals, a job's next milestone (start-up done, checkpoint due, completion, failure
noticed), storage transfers ending, component failures and repairs, the horizon. After all
events of one instant, one scheduling pass runs and the books (GPU-seconds used / idle / down,
energy) are integrated up to it.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Callable

import numpy as np

from dcsim.errors import InputError
from dcsim.fleet.checkpoint import young_interval_s
from dcsim.fleet.config import FleetSpec
from dcsim.fleet.failures import Cause, Component, causes_for, mttf_s
from dcsim.fleet.model import FleetJob, FleetLayout, Phase, SpeedFn, StorageTier, nominal_speed
from dcsim.fleet.placement import get_placement, placement_info
from dcsim.fleet.pool import NodePool
from dcsim.fleet.power import PowerModel
from dcsim.fleet.retention import CheckpointStore
from dcsim.fleet.scheduler import Scheduler
from dcsim.fleet.state import JobState
from dcsim.fleet.storage import Channel, Transfer


class Ev(IntEnum):
    """Event kinds on the heap (ties at one instant break by push order)."""
    ARRIVE = 0
    JOB = 1
    REQUEUE = 2
    IO = 3
    FAIL = 4
    REPAIR = 5


@dataclass
class Books:
    """Cluster integrals up to t_last (GPU-seconds, joules) and the event series."""

    t_last: float = 0.0
    used_gpu_s: float = 0.0
    down_gpu_s: float = 0.0
    it_energy_j: float = 0.0
    series: list[tuple[float, float, int, int, float, float]] = field(default_factory=list)


class FleetSim:
    """One fleet run. `speed(job, placement)` prices training jobs (the front door's)."""

    def __init__(self, spec: FleetSpec, layout: FleetLayout, jobs: list[FleetJob],
                 tiers: list[StorageTier], speed: SpeedFn = nominal_speed,
                 progress: Callable[[float, float], None] | None = None):
        self.spec, self.layout, self.jobs = spec, layout, jobs
        seeds = np.random.SeedSequence(spec.seed).spawn(2)
        self.rng_fail = np.random.default_rng(seeds[0])
        self.pool = NodePool(layout, spec.failures.spare_nodes)
        self.placement = get_placement(spec.scheduler.placement, np.random.default_rng(seeds[1]))
        self.speed = speed
        self.progress = progress
        self.power = PowerModel.from_spec(spec.power, layout.gpu_name, layout.n_gpus,
                                          layout.fabric_switches)
        self.causes = causes_for(spec.failures)
        self.tiers = {t.name: t for t in tiers}
        ck = spec.checkpoint.tier or (tiers[0].name if tiers else None)
        self.ckpt_tier = ck
        if ck is not None and ck not in self.tiers:
            raise InputError(f"fleet.checkpoint.tier: {ck!r} is not a cluster.storage tier "
                             f"({', '.join(self.tiers) or 'none given'})")
        if spec.data_tier is not None and spec.data_tier not in self.tiers:
            raise InputError(f"fleet.data_tier: {spec.data_tier!r} is not a cluster.storage tier "
                             f"({', '.join(self.tiers) or 'none given'})")
        self.store = CheckpointStore(self.tiers[ck].capacity_bytes if ck is not None else None)
        self.writes = {n: Channel(t, write=True) for n, t in self.tiers.items()}
        self.reads = {n: Channel(t, write=False) for n, t in self.tiers.items()}
        self.load_factor = 1.0
        self.placement.bind(self.pool, jobs)
        self.states = [JobState(j) for j in jobs]
        self.load_dirty = False
        self.read_demand = 0.0          # data loading of the running jobs at nominal speed
        self.running: set[int] = set()
        self.scheduler = Scheduler(spec.scheduler, self)
        self.heap: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        self.now = 0.0
        self.books = Books()
        self.busy_w = 0.0          # power of busy GPUs now
        self.busy_gpus = 0.0
        self.interruptions: dict[str, int] = {}
        self.failures_total: dict[str, int] = {}
        self.segments: list[tuple[int, float, float, np.ndarray]] = []

    # --- the heap ----------------------------------------------------------------------------
    def push(self, t: float, kind: Ev, a: int = 0, b: int = 0) -> None:
        """Schedule an event."""
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, int(kind), a, b))

    def run(self) -> None:
        """Simulate up to the horizon and close the books."""
        horizon = self.spec.horizon
        for j in self.jobs:
            self.push(j.submit_s, Ev.ARRIVE, j.id)
        for i, c in enumerate(self.causes):
            self._next_failure(i, c)
        handlers = {Ev.ARRIVE: self._arrive, Ev.JOB: self._milestone, Ev.REQUEUE: self._requeue,
                    Ev.IO: self._io_done, Ev.FAIL: self._fail, Ev.REPAIR: self._repair}
        while self.heap and self.heap[0][0] <= horizon:
            t = self.heap[0][0]
            self._integrate(t)
            self.now = t
            while self.heap and self.heap[0][0] == t:
                _, _, kind, a, b = heapq.heappop(self.heap)
                handlers[Ev(kind)](a, b)
            self._flush()
            if self.progress is not None:
                self.progress(t, horizon)
        self.now = horizon
        self._integrate(horizon)
        for i in sorted(self.running):
            s = self.states[i]
            s.advance(horizon)
            s.held_gpu_s += s.gpus * (horizon - s.started_at)
            if s.alloc is not None:
                self.segments.append((i, s.started_at, horizon, s.alloc.nodes))
        for s in self.states:
            if s.queued_since is not None:
                s.wait_s += horizon - s.queued_since

    def _flush(self) -> None:
        """After the events of one instant: schedule, re-rate data loading, record the state."""
        self.scheduler.run_pass()
        self._update_load()
        self._record(self.now)

    def _state_row(self, now: float) -> tuple[float, float, int, int, float, float]:
        """The cluster's state now as a series row."""
        pool = self.pool
        down_free, up_gpus = pool.down_books()
        it_w = self.power.it_w(up_gpus, self.busy_w, self.busy_gpus)
        return (now, pool.allocated_gpus, len(self.running), len(self.scheduler.queue),
                down_free, it_w)

    def _integrate(self, now: float) -> None:
        """Book the state held since the last instant up to `now` (before its events)."""
        b = self.books
        dt = now - b.t_last
        if dt > 0 and b.series:  # the state since the last instant is its recorded row
            _, alloc, _, _, down_free, it_w = b.series[-1]
            b.used_gpu_s += alloc * dt
            b.down_gpu_s += down_free * dt
            b.it_energy_j += it_w * dt
        b.t_last = now

    def _record(self, now: float) -> None:
        """Append the state to the series when it changed."""
        row = self._state_row(now)
        series = self.books.series
        if not series or series[-1][1:] != row[1:]:
            series.append(row)

    # --- jobs --------------------------------------------------------------------------------
    def _arrive(self, jid: int, _: int) -> None:
        self.scheduler.enqueue(jid)

    def _requeue(self, jid: int, _: int) -> None:
        self.scheduler.enqueue(jid)

    def start(self, jid: int, alloc) -> None:
        """Place a job (the scheduler's call) and begin its start-up."""
        s = self.states[jid]
        self.pool.take(alloc)
        s.alloc = alloc
        self.running.add(jid)
        if s.queued_since is not None:
            s.wait_s += self.now - s.queued_since
            s.queued_since = None
        if s.first_start is None:
            s.first_start = self.now
        s.started_at = self.now
        s.t_last = self.now
        s.speed = self.power.capped(self.speed(s.job, placement_info(self.pool, alloc))
                                    if s.job.training else
                                    nominal_speed(s.job, placement_info(self.pool, alloc)))
        if s.job.checkpoint_bytes > 0 and self.ckpt_tier is not None:
            s.interval_work_s = self._interval(s) * s.speed.rate
        if s.job.training:
            s.phase = Phase.STARTING
            self._set_rate(s, 0.0)
            self._arm(s, self.now + (self.spec.failures.startup if s.restarts or
                                     s.preemptions else 0.0))
        else:
            self._run(s)

    def _interval(self, s: JobState) -> float:
        """Work between checkpoints for a job on its placement (fixed, or Young's optimum)."""
        iv = self.spec.checkpoint.interval
        if iv is None:
            return float("inf")
        if iv != "auto":
            return float(iv)
        m = mttf_s(self.causes, len(s.alloc.nodes) if s.alloc else 1,
                   self.layout.max_gpus_per_node)
        return young_interval_s(max(self._write_s(s), 1e-3), m) if math.isfinite(m) else \
            float("inf")

    def _tier(self) -> str:
        assert self.ckpt_tier is not None
        return self.ckpt_tier

    def _write_cap(self, s: JobState) -> float:
        """How fast a job's writers can push a checkpoint (their NICs)."""
        per_gpu = self.spec.checkpoint.per_gpu_write_bw or self.layout.nic_bw_bytes_per_s
        return max(s.job.checkpoint_writers or s.job.gpus, 1) * per_gpu

    def _write_s(self, s: JobState) -> float:
        """Uncontended checkpoint write time of a job."""
        t = self.tiers[self.ckpt_tier] if self.ckpt_tier else None
        if t is None:
            return 0.0
        return s.job.checkpoint_bytes / min(t.write_bw_bytes_per_s, self._write_cap(s))

    def _arm(self, s: JobState, t: float) -> None:
        """(Re)schedule a job's next milestone."""
        s.version += 1
        self.push(t, Ev.JOB, s.job.id, s.version)

    def _set_rate(self, s: JobState, rate: float) -> None:
        """Change a job's progress rate and the books that follow it (power, data demand)."""
        busy_before = s.rate_now > 0
        if s.job.read_bytes_per_s and busy_before != (rate > 0):
            self.load_dirty = True
            self.read_demand += (1 if rate > 0 else -1) * s.job.read_bytes_per_s * s.speed.rate
        s.rate_now = rate
        w = s.gpus * self.power.busy_gpu_w(s.speed.compute_share)
        if busy_before and rate == 0:
            self.busy_w -= w
            self.busy_gpus -= s.gpus
        elif not busy_before and rate > 0:
            self.busy_w += w
            self.busy_gpus += s.gpus

    def _run(self, s: JobState) -> None:
        """(Re)enter the running phase and arm the next milestone."""
        s.phase = Phase.RUNNING
        if s.next_ckpt_work <= s.work_done or not math.isfinite(s.next_ckpt_work):
            s.next_ckpt_work = s.work_done + s.interval_work_s
        self._set_rate(s, s.speed.rate * (self.load_factor if s.job.read_bytes_per_s else 1.0))
        self._arm_running(s)

    def _arm_running(self, s: JobState) -> None:
        """Milestone of a running job: its next checkpoint or its end."""
        target = min(s.job.work_s, s.next_ckpt_work)
        self._arm(s, self.now + max(target - s.work_done, 0.0) / s.rate_now)

    def _milestone(self, jid: int, version: int) -> None:
        """A job reached its milestone: start-up done, failure noticed, checkpoint due or end."""
        s = self.states[jid]
        if version != s.version:
            return
        s.advance(self.now)
        if s.phase == Phase.DETECTING:
            self._release(s)
            s.restarts += 1
            self.push(self.now + self.spec.failures.requeue, Ev.REQUEUE, jid)
        elif s.phase == Phase.STARTING:
            if s.work_ckpt > 0 and self.ckpt_tier is not None and s.snapshot_work is None:
                s.snapshot_work = -1.0  # marks "reading back"
                self._transfer(self.reads[self._tier()], s)
            else:
                self._run(s)
        elif s.phase == Phase.CHECKPOINTING:  # async snapshot copied to host memory
            s.snapshot_work, s.snapshot_productive = s.work_done, s.productive_s
            self._transfer(self.writes[self._tier()], s)
            self._run(s)
        elif s.work_done >= s.job.work_s - 1e-6:
            s.end = self.now
            self._release(s)
            self.store.finish(jid)
        else:
            self._checkpoint(s)

    def _checkpoint(self, s: JobState) -> None:
        """Begin a checkpoint (blocking write, or async host copy)."""
        s.next_ckpt_work = s.work_done + s.interval_work_s
        if s.snapshot_work is not None:  # the previous async one still drains: skip this one
            self._arm_running(s)
            return
        if not self.store.reserve(s.job.id, s.job.checkpoint_bytes):  # no room: trains on
            self._arm_running(s)
            return
        self._set_rate(s, 0.0)
        s.phase = Phase.CHECKPOINTING
        if self.spec.checkpoint.asynchronous:
            copy_s = s.job.checkpoint_bytes / (max(s.job.gpus, 1) * self.spec.checkpoint.host_copy_bw)
            self._arm(s, self.now + copy_s)
            return
        s.snapshot_work, s.snapshot_productive = s.work_done, s.productive_s
        s.version += 1  # no milestone while writing: the transfer's end resumes it
        self._transfer(self.writes[self._tier()], s)

    def _transfer(self, ch: Channel, s: JobState) -> None:
        """Start a job's transfer on a storage channel."""
        ch.advance(self.now)
        ch.transfers[s.job.id] = Transfer(s.job.id, s.job.checkpoint_bytes, self._write_cap(s))
        self._reshare(ch)

    def _reshare(self, ch: Channel) -> None:
        """Share a channel anew and schedule its next end."""
        ch.share()
        ch.version += 1
        nxt = ch.next_done()
        if nxt is not None:
            key = list(self.tiers).index(ch.tier.name) * 2 + int(ch.write)
            self.push(self.now + nxt[0], Ev.IO, key, ch.version)

    def _io_done(self, key: int, version: int) -> None:
        """Transfers that ended: commit checkpoints, finish read-backs."""
        name = list(self.tiers)[key // 2]
        ch = self.writes[name] if key % 2 else self.reads[name]
        if version != ch.version:
            return
        ch.advance(self.now)
        done = [j for j, tr in ch.transfers.items() if tr.remaining_bytes <= 1e-6 * max(
            1.0, self.states[j].job.checkpoint_bytes)]
        for jid in sorted(done):
            del ch.transfers[jid]
            s = self.states[jid]
            s.advance(self.now)
            if ch.write:
                self.store.commit(jid, self.now)
                s.work_ckpt, s.productive_at_ckpt = s.snapshot_work or 0.0, s.snapshot_productive
                s.snapshot_work = None
                s.checkpoints += 1
                if s.leaving:
                    self._leave(s)
                elif s.phase == Phase.CHECKPOINTING:
                    self._run(s)
            else:
                s.snapshot_work = None
                self._run(s)
        self._reshare(ch)

    def _release(self, s: JobState) -> None:
        """A job gives its nodes back."""
        a = s.alloc
        if a is None:
            return
        self._set_rate(s, 0.0)
        self.pool.give_back(a)
        self.running.discard(s.job.id)
        s.held_gpu_s += s.gpus * (self.now - s.started_at)
        self.segments.append((s.job.id, s.started_at, self.now, a.nodes))
        s.alloc, s.phase = None, None
        s.version += 1

    def _drop_transfers(self, s: JobState) -> None:
        """Cancel a job's transfers in flight (a write's room on the tier is freed)."""
        self.store.release(s.job.id)
        for ch in (*self.writes.values(), *self.reads.values()):
            if s.job.id in ch.transfers:
                ch.advance(self.now)
                del ch.transfers[s.job.id]
                self._reshare(ch)

    def interrupt(self, jid: int, reason: str, detection_s: float) -> None:
        """Stop a job: its work since the last checkpoint is lost; after `detection_s` it
        releases its nodes and requeues (a preemption: at once)."""
        s = self.states[jid]
        if s.phase in (None, Phase.DETECTING):
            return
        s.leaving = False
        s.advance(self.now)
        self._drop_transfers(s)
        s.roll_back(reason)
        self._set_rate(s, 0.0)
        s.phase = Phase.DETECTING
        if reason != "preemption":
            self._arm(s, self.now + detection_s)
        else:
            self._release(s)
            s.preemptions += 1
            self.scheduler.enqueue(jid)

    def preempt(self, jid: int) -> None:
        """Make room for a higher priority: a running training job checkpoints first (when the
        scenario says so), anything else stops and loses its work since its last checkpoint."""
        s = self.states[jid]
        can_save = (self.spec.scheduler.preemption == "checkpoint" and self.ckpt_tier is not None
                    and s.job.checkpoint_bytes > 0
                    and s.phase in (Phase.RUNNING, Phase.CHECKPOINTING))
        if not can_save:
            self.interrupt(jid, "preemption", 0.0)
            return
        s.leaving = True
        if s.phase == Phase.CHECKPOINTING and jid in self.writes[self._tier()].transfers \
                and s.snapshot_work is not None and s.rate_now == 0:
            return  # a blocking write is under way: leave when it ends
        s.advance(self.now)
        self._drop_transfers(s)  # an async drain in flight is superseded by this write
        if not self.store.reserve(jid, s.job.checkpoint_bytes):
            s.leaving = False
            self.interrupt(jid, "preemption", 0.0)
            return
        self._set_rate(s, 0.0)
        s.phase = Phase.CHECKPOINTING
        s.snapshot_work, s.snapshot_productive = s.work_done, s.productive_s
        s.version += 1
        self._transfer(self.writes[self._tier()], s)

    def _leave(self, s: JobState) -> None:
        """A preempted job's last checkpoint is written: it leaves and requeues."""
        s.leaving = False
        self._release(s)
        s.preemptions += 1
        self.scheduler.enqueue(s.job.id)

    # --- data loading ------------------------------------------------------------------------
    def _update_load(self) -> None:
        """Re-rate data loading when the readers changed."""
        tier = self.spec.data_tier
        if tier is None or not self.load_dirty:
            return
        self.load_dirty = False
        demand = self.read_demand if self.read_demand > 1.0 else 0.0  # (float residue)
        bw = self.tiers[tier].read_bw_bytes_per_s
        factor = min(1.0, bw / demand) if demand > 0 else 1.0
        for ch in (self.writes[tier], self.reads[tier]):
            if ch.load_bytes_per_s != min(demand, bw):
                ch.advance(self.now)
                ch.load_bytes_per_s = min(demand, bw)
                if ch.transfers:
                    self._reshare(ch)
        if factor == self.load_factor:
            return
        self.load_factor = factor
        for j in sorted(self.running):
            s = self.states[j]
            if s.phase == Phase.RUNNING and s.job.read_bytes_per_s > 0:
                s.advance(self.now)
                self._set_rate(s, s.speed.rate * factor)
                self._arm_running(s)

    # --- failures ----------------------------------------------------------------------------
    def _components(self, c: Cause) -> int:
        lay = self.layout
        return {Component.GPU: lay.n_gpus, Component.NIC: lay.n_gpus, Component.HOST: lay.n_nodes,
                Component.SOFTWARE: lay.n_nodes, Component.SWITCH: lay.switches}[c.component]

    def _next_failure(self, i: int, c: Cause) -> None:
        rate = c.rate_per_component_s * self._components(c)
        if rate > 0:
            self.push(self.now + self.rng_fail.exponential(1.0 / rate), Ev.FAIL, i)

    def _fail(self, i: int, _: int) -> None:
        """A component fails: stop the jobs on it, take it out for repair."""
        c = self.causes[i]
        lay = self.layout
        if c.component in (Component.GPU, Component.NIC):
            g = int(self.rng_fail.integers(lay.n_gpus))
            nodes = [int(np.searchsorted(np.cumsum(lay.gpus), g, side="right"))]
        elif c.component == Component.SWITCH:
            nodes = [int(n) for n in lay.switch_nodes[int(self.rng_fail.integers(lay.switches))]]
        else:
            nodes = [int(self.rng_fail.integers(lay.n_nodes))]
        self._next_failure(i, c)
        if not any(self.pool.up[n] for n in nodes):
            return
        self.failures_total[c.name] = self.failures_total.get(c.name, 0) + 1
        hit = [j for j in sorted(self.running)
               if np.isin(self.states[j].alloc.nodes, nodes).any()]  # type: ignore[union-attr]
        for j in hit:
            s = self.states[j]
            if s.phase not in (None, Phase.DETECTING):
                self.interruptions[c.name] = self.interruptions.get(c.name, 0) + 1
                s.interruptions[c.name] = s.interruptions.get(c.name, 0) + 1
                self.interrupt(j, "failure", self.spec.failures.detection)
        if c.repair_s > 0:
            for n in nodes:
                if self.pool.up[n]:
                    self.pool.fail(n)
                    self.push(self.now + c.repair_s, Ev.REPAIR, n)

    def _repair(self, node: int, _: int) -> None:
        """A repaired node returns."""
        self.pool.repair(node)
