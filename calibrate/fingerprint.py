"""A few seconds of timings that tell whether a profile describes this machine.

Matching a profile by CPU name is not enough (cloud VMs call CPUs 1.6x apart "AMD EPYC"), and
old profiles recorded no more than the name. So before predicting from a profile, re-time a
handful of the profile's own kernel samples here (same shapes, same cold or warm timing, same
thread count) and compare with the times the profile stored.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from dcsim.profile import KernelSample, Profile

__all__ = ["Fingerprint", "AGREE_RATIO", "pick_samples", "fingerprint"]

# Re-timing one sample on the same machine moved it by up to 30% (README, calibration: the
# largest change re-timing a sample showed on the 2-core machines); beyond that the machine
# differs from the profile's.
AGREE_RATIO = 1.30
# The range of stored times a fingerprint sample may have (long enough to dominate timer and
# flush noise, short enough that all of them take a few seconds), with a factor 10 of slack.
_MIN_S, _MAX_S = 3e-4, 3e-2
_CLASSES = ("gemm", "attention", "norm", "elementwise")


@dataclass
class Fingerprint:
    """Stored vs re-timed kernel times of a profile, and whether they agree."""

    samples: list[dict[str, Any]] = field(default_factory=list)  # key, profile_s, here_s, ratio
    median_ratio: float = 1.0  # here / profile: 1.6 means this machine is 1.6x slower
    agrees: bool = True
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One phrase: how far this machine is from the profile."""
        def pace(r: float) -> str:
            return f"{r:.2f}x slower" if r >= 1 else f"{1 / r:.2f}x faster"
        worst = max(self.samples, key=lambda r: abs(math.log(r["ratio"])), default=None)
        tail = "" if worst is None else (
            f", {worst['key'].split('/')[1]} {pace(worst['ratio'])}")
        return (f"kernels {pace(self.median_ratio)} here (median of {len(self.samples)} "
                f"re-timed{tail}; limit {AGREE_RATIO:.2f}x)")


def pick_samples(profile: Profile) -> list[KernelSample]:
    """Per op class the fp32 forward sample in the middle of its sweep (by FLOP and bytes):
    chosen by shape, not by stored time, so the same samples are re-timed whatever the
    profile's times; one whose stored time is far outside [_MIN_S, _MAX_S] is passed over."""
    chosen = []
    for op_class in _CLASSES:
        cands = sorted((s for s in profile.kernels.get(op_class, [])  # type: ignore[call-overload]
                        if s.direction == "fwd" and s.precision == "fp32"),
                       key=lambda s: (s.flops, s.bytes_moved, s.key))
        if cands:
            mid = cands[len(cands) // 2]
            if _MIN_S / 10 <= mid.median_s <= _MAX_S * 10:
                chosen.append(mid)
    return chosen


def fingerprint(profile: Profile) -> Fingerprint:
    """Re-time pick_samples(profile) on this CPU (torch needed) and compare."""
    import time

    import torch

    from calibrate.kernels import CachePolicy, KernelPoint, measure_point
    from calibrate.timing import QUICK_TIMING

    samples = pick_samples(profile)
    if not samples:
        return Fingerprint(agrees=True)
    device = torch.device("cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(profile.metadata.threads or threads)
    t0 = time.monotonic()
    rows: list[dict[str, Any]] = []
    try:
        for s in samples:
            point = KernelPoint(s.op_class, s.variant, s.direction, s.precision,
                                tuple(s.shape.items()))
            policy = CachePolicy.for_device(device, cold=s.cache != "warm")
            here = measure_point(point, device, QUICK_TIMING, policy).median_s
            rows.append({"key": s.key, "profile_s": s.median_s, "here_s": here,
                         "ratio": here / s.median_s})
    finally:
        torch.set_num_threads(threads)
    ratio = float(statistics.median(float(r["ratio"]) for r in rows))
    # every re-timed sample within the band: a profile of another CPU can agree on average
    # and still miss GEMMs by 1.6x one way and elementwise kernels by 2x the other
    agrees = all(1 / AGREE_RATIO <= r["ratio"] <= AGREE_RATIO for r in rows)
    return Fingerprint(rows, ratio, agrees, time.monotonic() - t0)
