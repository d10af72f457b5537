"""Time a callable properly: warm-up, device synchronisation, repeats, median and spread.

On CUDA each repeat is bracketed by CUDA events (kernel time, not launch time); on CPU by
time.perf_counter. Very short ops are run several times per sample so the clock's resolution
and call overhead do not dominate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["TimingConfig", "Timing", "time_fn", "QUICK_TIMING", "FULL_TIMING"]


@dataclass(frozen=True)
class TimingConfig:
    """How long and how often to time one point."""

    warmup_s: float  # keep calling until this much time passed (caches, allocator, JIT warm)
    min_warmup_calls: int
    target_s: float  # total measuring time aimed at per point
    min_repeats: int
    max_repeats: int
    min_sample_s: float  # a sample shorter than this loops the op to beat timer resolution


# Quick: ~0.2 s per point keeps ~90 kernel points near 30 s on a 2-core machine (measured).
QUICK_TIMING = TimingConfig(warmup_s=0.03, min_warmup_calls=2, target_s=0.15, min_repeats=5, max_repeats=30, min_sample_s=2e-4)
# Full: more repeats for tighter p10/p90; about 1 s per point.
FULL_TIMING = TimingConfig(warmup_s=0.2, min_warmup_calls=3, target_s=0.8, min_repeats=10, max_repeats=200, min_sample_s=1e-3)


@dataclass(frozen=True)
class Timing:
    """Per-call seconds: median and 10th/90th percentiles over `repeats` samples."""

    median_s: float
    p10_s: float
    p90_s: float
    repeats: int


def _timer(device: torch.device) -> Callable[[Callable[[], object], int], float]:
    """A function (fn, calls) -> seconds for `calls` back-to-back calls of fn on `device`."""
    if device.type == "cuda":

        def run_cuda(fn: Callable[[], object], calls: int) -> float:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3  # elapsed_time is in milliseconds

        return run_cuda

    def run_cpu(fn: Callable[[], object], calls: int) -> float:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        return time.perf_counter() - t0

    return run_cpu


def time_fn(fn: Callable[[], object], device: torch.device, cfg: TimingConfig) -> Timing:
    """Warm up `fn`, then time it; returns per-call statistics."""
    timer = _timer(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    est = timer(fn, 1)
    spent, calls = est, 1
    while spent < cfg.warmup_s or calls < cfg.min_warmup_calls:
        dt = timer(fn, 1)
        est = min(est, dt)
        spent += dt
        calls += 1
    est = max(est, 1e-9)
    inner = max(1, math.ceil(cfg.min_sample_s / est))
    repeats = int(min(cfg.max_repeats, max(cfg.min_repeats, math.ceil(cfg.target_s / (est * inner)))))
    samples = np.array([timer(fn, inner) / inner for _ in range(repeats)])
    p10, med, p90 = np.percentile(samples, [10, 50, 90])
    return Timing(median_s=float(med), p10_s=float(p10), p90_s=float(p90), repeats=repeats)
