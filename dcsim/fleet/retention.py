"""Checkpoints held on the checkpoint tier against its capacity.

Each job keeps its latest committed checkpoint; a new one needs room next to it until it commits
(the old one is deleted then, as a keep-the-last-one retention does). When a write does not fit,
the checkpoints of finished jobs are deleted, oldest first; if it still does not fit, the write
is refused and counted against the job (it trains on, unprotected since its last checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CheckpointStore:
    """Bytes held per job (committed) and reserved (writes in flight) on one tier."""

    capacity_bytes: float | None
    stored: dict[int, tuple[float, float]] = field(default_factory=dict)  # job -> (bytes, time)
    reserved: dict[int, float] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    deleted: int = 0               # finished jobs' checkpoints deleted to make room
    deleted_bytes: float = 0.0
    refused: dict[int, int] = field(default_factory=dict)  # job -> writes that did not fit
    peak_bytes: float = 0.0

    @property
    def used_bytes(self) -> float:
        """Committed and reserved bytes now."""
        return sum(b for b, _ in self.stored.values()) + sum(self.reserved.values())

    def reserve(self, job: int, size: float) -> bool:
        """Room for a job's next checkpoint: True when reserved (after deleting finished jobs'
        checkpoints, oldest first, where needed), False when it cannot fit (counted)."""
        if job in self.reserved:
            return True
        if self.capacity_bytes is not None:
            old = sorted((t, j) for j, (_, t) in self.stored.items() if j in self.finished)
            while self.used_bytes + size > self.capacity_bytes and old:
                _, j = old.pop(0)
                self.deleted += 1
                self.deleted_bytes += self.stored.pop(j)[0]
            if self.used_bytes + size > self.capacity_bytes:
                self.refused[job] = self.refused.get(job, 0) + 1
                return False
        self.reserved[job] = size
        self.peak_bytes = max(self.peak_bytes, self.used_bytes)
        return True

    def release(self, job: int) -> None:
        """A write in flight was abandoned (failure, preemption): its room is free again."""
        self.reserved.pop(job, None)

    def commit(self, job: int, now: float) -> None:
        """A write ended: it replaces the job's previous checkpoint."""
        size = self.reserved.pop(job, None)
        if size is not None:
            self.stored[job] = (size, now)

    def finish(self, job: int) -> None:
        """A job ended: its checkpoints may be deleted to make room."""
        self.finished.add(job)

    def summary(self) -> dict[str, object]:
        """The tier's books for the fleet summary."""
        return {"capacity_bytes": self.capacity_bytes, "peak_used_bytes": self.peak_bytes,
                "held_at_end_bytes": self.used_bytes,
                "finished_checkpoints_deleted": self.deleted,
                "finished_checkpoint_bytes_deleted": self.deleted_bytes,
                "checkpoints_not_fit": sum(self.refused.values()),
                "jobs_with_checkpoints_not_fit": sorted(self.refused)}
