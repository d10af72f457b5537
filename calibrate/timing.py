"""Time a callable properly: warm-up, device synchronisation, repeats, median and spread.

On CUDA each repeat is bracketed by CUDA events (kernel time, not launch time); on CPU by
time.perf_counter. Very short ops are run several times per sample so the clock's resolution
and call overhead do not dominate.

Warm timing calls the op back to back, so its data sit in the caches. Cold timing writes a
buffer larger than the last-level cache before every call (as Triton's do_bench flushes the
L2 before each call), so the op finds its data where a training step leaves them: in memory
(calibrate/kernels.py compares both with the ops inside a real step). On the 2-core machine a
64 MiB flush already gave the full cold time of log-softmax over [512, 2048] (32 MiB half of it).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["TimingConfig", "Timing", "CacheFlush", "time_fn", "time_cold", "cache_sizes", "flush_bytes_for",
           "QUICK_TIMING", "FULL_TIMING"]


@dataclass(frozen=True)
class TimingConfig:
    """How long and how often to time one point."""

    warmup_s: float  # keep calling until this much time passed (caches, allocator, JIT warm)
    min_warmup_calls: int
    target_s: float  # total measuring time aimed at per point
    min_repeats: int
    max_repeats: int
    min_sample_s: float  # a sample shorter than this loops the op to beat timer resolution
    # Cold timing: one call per sample (a second call would find the data cached), each after a
    # flush, so the repeats are counted apart (the flush costs ~10 ms per 100 MiB on a CPU).
    cold_min_repeats: int = 7
    cold_max_repeats: int = 15


# Quick: ~0.2 s per warm point; cold points cost ~10 flushes more (256 MiB each, ~25 ms on the
# 2-core machine): the quick CPU sweep (fp32 and bf16, 420 points with the collectives) took 150 s.
QUICK_TIMING = TimingConfig(warmup_s=0.03, min_warmup_calls=2, target_s=0.15, min_repeats=5, max_repeats=30, min_sample_s=2e-4,
                            cold_min_repeats=7, cold_max_repeats=15)
# Full: more repeats for tighter p10/p90; about 1 s per point.
FULL_TIMING = TimingConfig(warmup_s=0.2, min_warmup_calls=3, target_s=0.8, min_repeats=10, max_repeats=200, min_sample_s=1e-3,
                           cold_min_repeats=15, cold_max_repeats=60)

_MiB = 1 << 20
# Bounds of the flush buffer: at least 64 MiB (the 2-core machine's cold time needed that much),
# at most 256 MiB (Triton's do_bench flushes 256 MB); in between, twice the last-level cache.
_FLUSH_MIN, _FLUSH_MAX = 64 * _MiB, 256 * _MiB


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


def cache_sizes(device: torch.device) -> tuple[int | None, int | None]:
    """(private cache per core, last-level cache) in bytes, None where unknown.

    CPU: the unified L2 and the highest level in /sys/devices/system/cpu/cpu0/cache (Linux).
    CUDA: (None, the L2 size the device reports); a GPU has no per-kernel private cache of note.
    """
    if device.type == "cuda":
        l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or None
        return None, l2
    levels: dict[int, int] = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for name in sorted(os.listdir(base)):
            if not name.startswith("index"):
                continue
            with open(f"{base}/{name}/level", encoding="ascii") as f:
                level = int(f.read().strip())
            with open(f"{base}/{name}/type", encoding="ascii") as f:
                kind = f.read().strip()
            with open(f"{base}/{name}/size", encoding="ascii") as f:
                text = f.read().strip().upper()
            if kind == "Instruction":
                continue
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            levels[level] = int(text.rstrip("KMG")) * mult
    except (OSError, ValueError):
        return None, None
    if not levels:
        return None, None
    return levels.get(2), levels[max(levels)]


def flush_bytes_for(device: torch.device) -> int:
    """Size of the flush buffer: twice the last-level cache, between 64 and 256 MiB."""
    _, llc = cache_sizes(device)
    return int(min(_FLUSH_MAX, max(_FLUSH_MIN, 2 * (llc or 0))))


class CacheFlush:
    """A buffer written in full before each cold call, evicting whatever the op touched."""

    def __init__(self, device: torch.device, nbytes: int) -> None:
        self.device = device
        self.nbytes = int(nbytes)
        self._buf = torch.empty(max(1, self.nbytes // 4), dtype=torch.float32, device=device)
        self._n = 0
        self()  # first touch (page faults) here, not in a timed sample

    def __call__(self) -> None:
        self._n += 1
        self._buf.fill_(float(self._n % 7))


def time_cold(
    fn: Callable[[], object], device: torch.device, cfg: TimingConfig, flush: CacheFlush,
    setup: Callable[[], object] | None = None,
) -> Timing:
    """Time single calls of `fn`, each after `setup()` (untimed) and a cache flush."""
    timer = _timer(device)

    def one() -> float:
        if setup is not None:
            setup()
        flush()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return timer(fn, 1)

    for _ in range(max(1, cfg.min_warmup_calls)):
        est = one()
    est = max(est, 1e-9)
    t0 = time.perf_counter()
    one()
    per_sample = max(time.perf_counter() - t0, est)  # with the flush and setup
    repeats = int(min(cfg.cold_max_repeats, max(cfg.cold_min_repeats, math.ceil(cfg.target_s / per_sample))))
    samples = np.array([one() for _ in range(repeats)])
    p10, med, p90 = np.percentile(samples, [10, 50, 90])
    return Timing(median_s=float(med), p10_s=float(p10), p90_s=float(p90), repeats=repeats)


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
