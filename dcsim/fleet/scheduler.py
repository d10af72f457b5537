"""Schedulers: FIFO, EASY backfill, priority with preemption. Every one gang-schedules (a job
starts on all of its GPUs at once or waits) and asks the placement policy for nodes.

- fifo: jobs start in submission order; the first that does not fit blocks the rest.
- backfill: EASY (Lifka 1995; Mu'alem & Feitelson, IEEE TPDS 2001): the head gets a reservation
  at the time enough GPUs free up (from running jobs' expected ends); a later job may start now
  if it fits and ends before that time or uses only GPUs the head will not need. Run-time
  estimates are exact (the simulator knows each job's remaining work at its nominal speed).
- priority: highest priority first (then submission); a job that does not fit preempts running
  jobs of lower priority (lowest first, most recently started first) when that frees enough GPUs.
  A preempted job loses its work since its last checkpoint and requeues at once.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from dcsim.fleet.config import SchedulerKind, SchedulerSpec
from dcsim.fleet.model import FleetJob

if TYPE_CHECKING:
    from dcsim.fleet.sim import FleetSim


class Scheduler:
    """The queue and one scheduling pass by the policy."""
    def __init__(self, spec: SchedulerSpec, sim: "FleetSim"):
        self.spec = spec
        self.sim = sim
        self.queue: list[tuple[tuple[float, ...], int]] = []
        self.seen: tuple[int, int] | None = None  # (pool version, queue version) of the last pass
        self.queue_version = 0

    def key(self, job: FleetJob) -> tuple[float, ...]:
        """Queue order."""
        if self.spec.policy == SchedulerKind.PRIORITY:
            return (-job.priority, job.submit_s, job.id)
        return (job.submit_s, job.id)

    def enqueue(self, jid: int) -> None:
        """Queue a job (arrival, requeue after failure or preemption)."""
        s = self.sim.states[jid]
        s.queued_since = self.sim.now
        self.queue_version += 1
        bisect.insort(self.queue, (self.key(s.job), jid))

    def run_pass(self) -> None:
        """Start what can start now, by the policy."""
        sim = self.sim
        state = (sim.pool.version, self.queue_version)
        if state == self.seen:  # nothing freed, nothing new: the last pass's answer stands
            return
        failed: set[tuple] = set()
        i = 0
        while i < len(self.queue):
            jid = self.queue[i][1]
            job = sim.states[jid].job
            alloc = self._try(job, failed)
            if alloc is not None:
                self.queue.pop(i)
                sim.start(jid, alloc)
                continue
            if self.spec.policy == SchedulerKind.PRIORITY and self._preempt_for(job):
                alloc = self._try(job, set())
                if alloc is not None:
                    self.queue.pop(i)
                    sim.start(jid, alloc)
                    continue
            if self.spec.policy == SchedulerKind.BACKFILL:
                self._backfill(i, job, failed)
            break
        self.seen = (sim.pool.version, self.queue_version)

    def _try(self, job: FleetJob, failed: set[tuple]):
        """A placement for the job, remembering shapes that did not fit in this pass."""
        pool = self.sim.pool
        shape = (job.gpus, job.gpu_milli, job.gpu_types, job.cpu_milli, job.memory_mib)
        if shape in failed or job.gpu_amount > pool.free_whole_gpus() + 1 - job.gpu_milli / 1000:
            failed.add(shape)
            return None
        alloc = self.sim.placement.place(pool, job)
        if alloc is None:
            failed.add(shape)
        return alloc

    def _backfill(self, head_at: int, head: FleetJob, failed: set[tuple]) -> None:
        """EASY: start later jobs that do not delay the head's reservation."""
        sim = self.sim
        now = sim.now
        free_now = sim.pool.free_whole_gpus() + 1
        if not any(sim.states[q[1]].job.gpu_amount <= free_now
                   for q in self.queue[head_at + 1:head_at + 1 + self.spec.backfill_depth]):
            return
        ends = sorted((self._expected_end(j), sim.states[j].gpus) for j in sim.running)
        free = float(sim.pool.free_whole_gpus())
        shadow, extra = float("inf"), 0.0
        for t, g in ends:
            free += g
            if free >= head.gpus:
                shadow, extra = t, free - head.gpus
                break
        i = head_at + 1
        looked = 0
        while i < len(self.queue) and looked < self.spec.backfill_depth:
            looked += 1
            jid = self.queue[i][1]
            job = sim.states[jid].job
            fits_time = now + self._estimate(jid) <= shadow
            if fits_time or job.gpu_amount <= extra:
                alloc = self._try(job, failed)
                if alloc is not None:
                    self.queue.pop(i)
                    sim.start(jid, alloc)
                    if not fits_time:
                        extra -= job.gpu_amount
                    continue
            i += 1

    def _estimate(self, jid: int) -> float:
        """Run time left of a queued job at nominal speed."""
        s = self.sim.states[jid]
        return (s.job.work_s - s.work_done) + (self.sim.spec.failures.startup if s.restarts else 0)

    def _expected_end(self, jid: int) -> float:
        """When a running job should end."""
        s = self.sim.states[jid]
        rate = s.speed.rate or 1.0
        return self.sim.now + (s.job.work_s - s.work_done) / rate

    def _preempt_for(self, job: FleetJob) -> bool:
        """Preempt lower-priority jobs until `job` could fit by GPU count; False if it cannot."""
        sim = self.sim
        victims = sorted((sim.states[j] for j in sim.running
                          if sim.states[j].job.priority < job.priority
                          and not sim.states[j].leaving),
                         key=lambda s: (s.job.priority, -s.started_at, s.job.id))
        # GPUs of jobs already leaving (writing their last checkpoint) count as free
        free = float(sim.pool.free_whole_gpus()) + sum(
            sim.states[j].gpus for j in sim.running if sim.states[j].leaving)
        need = job.gpu_amount
        chosen = []
        for v in victims:
            if free >= need:
                break
            chosen.append(v)
            free += v.gpus
        if free < need or not chosen:
            return False
        for v in chosen:
            sim.preempt(v.job.id)
            if sim.placement.place(sim.pool, job) is not None:
                break
        return True
