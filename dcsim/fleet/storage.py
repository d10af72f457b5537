"""Storage tiers as shared resources: transfers share a tier's bandwidth (processor sharing).

Every transfer in flight gets an equal share of the channel's bandwidth, capped by what its own
job can push (its NICs), the rest redistributed (water-filling): a checkpoint storm of n equal
writers on a tier of bandwidth B takes n x S / B, as shared bandwidth says. Data loading holds
the tier's read side first; a tier's time share spent serving reads (demand / read bandwidth)
is taken off its write side (one set of devices serves both).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dcsim.fleet.model import StorageTier


@dataclass
class Transfer:
    """One checkpoint write or read in flight on a channel."""
    job: int
    remaining_bytes: float
    cap_bytes_per_s: float
    rate: float = 0.0


@dataclass
class Channel:
    """One direction of one tier: transfers in flight and when the next one ends."""

    tier: StorageTier
    write: bool
    transfers: dict[int, Transfer] = field(default_factory=dict)
    t_last: float = 0.0
    load_bytes_per_s: float = 0.0   # data loading demand on the tier (reads)
    version: int = 0

    def capacity(self) -> float:
        """Bandwidth left for transfers after data loading's share of the tier."""
        t = self.tier
        if not self.write:
            return max(t.read_bw_bytes_per_s - self.load_bytes_per_s, 0.0) or 1e-9
        busy = min(1.0, self.load_bytes_per_s / t.read_bw_bytes_per_s)
        return max(t.write_bw_bytes_per_s * (1.0 - busy), 1e-9)

    def advance(self, now: float) -> None:
        """Move every transfer on by its rate up to `now`."""
        dt = now - self.t_last
        if dt > 0:
            for tr in self.transfers.values():
                tr.remaining_bytes = max(0.0, tr.remaining_bytes - tr.rate * dt)
        self.t_last = now

    def share(self) -> None:
        """Water-filling: equal shares, capped per transfer, the surplus to the others."""
        left = self.capacity()
        todo = sorted(self.transfers.values(), key=lambda t: (t.cap_bytes_per_s, t.job))
        n = len(todo)
        for i, tr in enumerate(todo):
            tr.rate = min(tr.cap_bytes_per_s, left / (n - i))
            left -= tr.rate

    def next_done(self) -> tuple[float, int] | None:
        """(seconds from now, job) of the transfer that ends first."""
        best = None
        for tr in self.transfers.values():
            t = tr.remaining_bytes / tr.rate if tr.rate > 0 else float("inf")
            if best is None or (t, tr.job) < best:
                best = (t, tr.job)
        return best
