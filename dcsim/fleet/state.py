"""The life of one job in the fleet: where it is, how far it got, and its books."""

from __future__ import annotations

from dataclasses import dataclass, field

from dcsim.fleet.model import FleetJob, JobSpeed, Phase
from dcsim.fleet.pool import Allocation


@dataclass
class JobState:
    """Progress is in nominal seconds of work; wall-clock books are in seconds and GPU-seconds."""

    job: FleetJob
    interval_work_s: float = float("inf")   # work between checkpoints
    alloc: Allocation | None = None
    phase: Phase | None = None
    speed: JobSpeed = field(default_factory=JobSpeed)
    rate_now: float = 0.0            # work per wall second now (0 unless running)
    t_last: float = 0.0
    version: int = 0
    queued_since: float | None = None
    leaving: bool = False            # preempted: writing its last checkpoint before it leaves
    # progress
    work_done: float = 0.0
    work_ckpt: float = 0.0           # progress the last committed checkpoint holds
    next_ckpt_work: float = float("inf")
    snapshot_work: float | None = None   # an async checkpoint draining in the background
    snapshot_productive: float = 0.0
    # books
    first_start: float | None = None
    end: float | None = None
    started_at: float = 0.0          # this placement's start
    wait_s: float = 0.0
    held_gpu_s: float = 0.0
    productive_s: float = 0.0        # wall seconds of progress (rolled back when lost)
    productive_at_ckpt: float = 0.0
    run_wall_s: float = 0.0          # wall seconds running, kept or not (for power)
    ckpt_gpu_s: float = 0.0          # blocking checkpoint time x GPUs
    restart_gpu_s: float = 0.0       # detection, start-up, read-back x GPUs
    lost_gpu_s: dict[str, float] = field(default_factory=dict)  # rework by reason
    restarts: int = 0
    preemptions: int = 0
    checkpoints: int = 0
    interruptions: dict[str, int] = field(default_factory=dict)

    @property
    def gpus(self) -> float:
        return self.job.gpu_amount

    def advance(self, now: float) -> None:
        """Bring progress up to `now` at the current rate."""
        dt = now - self.t_last
        if dt > 0 and self.phase is not None:
            if self.rate_now > 0:
                self.work_done = min(self.job.work_s, self.work_done + self.rate_now * dt)
                self.productive_s += dt
                self.run_wall_s += dt
            elif self.phase == Phase.CHECKPOINTING:
                self.ckpt_gpu_s += dt * self.gpus
            elif self.phase in (Phase.STARTING, Phase.DETECTING):
                self.restart_gpu_s += dt * self.gpus
        self.t_last = now

    def roll_back(self, reason: str) -> None:
        """Lose the work since the last committed checkpoint."""
        lost = self.productive_s - self.productive_at_ckpt
        if lost > 0:
            self.lost_gpu_s[reason] = self.lost_gpu_s.get(reason, 0.0) + lost * self.gpus
        self.productive_s = self.productive_at_ckpt
        self.work_done = self.work_ckpt
        self.snapshot_work = None
