"""Observers of a running simulation: what the engine tells the outside while it runs.

Today one: progress, a `callback(done_ops, total_ops)` heard about REPORTS_PER_RUN times per
run and once at the end (the CLI draws a rich progress bar with it on a terminal). The trace
export (dcsim.trace) observes the finished run's timings instead.
"""

from __future__ import annotations

from typing import Callable

ProgressCallback = Callable[[int, int], None]
REPORTS_PER_RUN = 200  # often enough for a smooth bar, rare enough to cost nothing


class OpProgress:
    """Counts finished ops for a progress callback; the engine calls `report` when
    `done % every == 0` (checked inline: a method call per op would cost time)."""

    def __init__(self, callback: ProgressCallback, total_ops: int) -> None:
        self.callback, self.total_ops = callback, total_ops
        self.every = max(1, total_ops // REPORTS_PER_RUN)

    def report(self, done_ops: int) -> None:
        """Tell the callback how many ops have finished."""
        self.callback(done_ops, self.total_ops)
