"""torch.distributed collective benchmarks: gloo on CPU processes over loopback, NCCL on GPUs.

Either the tool starts the ranks itself (`run_spawned`, torch.multiprocessing spawn, file://
rendezvous so no port can race) or it runs inside ranks started by torchrun (`run_in_group`,
after `init_from_env`). Every rank runs the same loop; decisions that change how many calls a
rank makes (repeats, calls per sample) are agreed by an all-reduce first, so no rank hangs.
Sizes follow nccl-tests (see dcsim.profile); times are of the slowest rank.
"""

from __future__ import annotations

import math
import multiprocessing.queues
import os
import queue as queue_mod
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from calibrate.device import join_process_group
from dcsim.profile import CollectiveSample, Unsupported
from dcsim.vocabulary import COLLECTIVE_OPS, ELEMENT_BYTES

__all__ = [
    "CollectivePoint",
    "CollectiveTiming",
    "QUICK_COLLECTIVE_TIMING",
    "FULL_COLLECTIVE_TIMING",
    "plan_collectives",
    "run_in_group",
    "run_spawned",
    "init_from_env",
    "torchrun_env",
    "CollectiveRunError",
]

OPS: tuple[str, ...] = COLLECTIVE_OPS
KiB, MiB = 1 << 10, 1 << 20
# Message sizes: 1 KiB .. 256 MiB in factors of 2 (nccl-tests' usual `-b 1K -e 256M -f 2` sweep,
# sized to fit a CPU host's memory per rank); quick stops at 16 MiB, where gloo on loopback is
# already bandwidth-bound (DESIGN.md section 4: ~1.5 GB/s above 1 MB).
FULL_SIZES: tuple[int, ...] = tuple(KiB * 2**i for i in range(19))  # 1 KiB .. 256 MiB
QUICK_SIZES: tuple[int, ...] = tuple(KiB * 2**i for i in range(15))  # 1 KiB .. 16 MiB
_ELEMENT_BYTES = ELEMENT_BYTES["fp32"]  # buffers are fp32; time depends on bytes only (no fp32 vs bf16 kernels in gloo's reductions of note)


class CollectiveRunError(RuntimeError):
    """The spawned ranks failed or stopped answering; the message has the first rank's error."""


@dataclass(frozen=True)
class CollectiveTiming:
    """How long to time one collective point."""

    warmup_calls: int
    target_s: float  # total measuring time aimed at per point
    min_repeats: int
    max_repeats: int
    min_sample_s: float  # loop the op inside a sample until a sample lasts about this long
    pg_timeout_s: float  # process-group timeout: a stuck collective fails instead of hanging


# Quick: up to ~0.4 s per point; 90 points per world size took ~20 s plus ~3 s of rank start-up
# (2-core machine, gloo, 2 ranks). Medians of fewer samples scattered ~15% between sizes there.
QUICK_COLLECTIVE_TIMING = CollectiveTiming(warmup_calls=3, target_s=0.4, min_repeats=9, max_repeats=60, min_sample_s=1e-3, pg_timeout_s=120)
FULL_COLLECTIVE_TIMING = CollectiveTiming(warmup_calls=5, target_s=1.0, min_repeats=10, max_repeats=100, min_sample_s=5e-3, pg_timeout_s=600)


@dataclass(frozen=True)
class CollectivePoint:
    """One collective at one requested size (bytes, nccl-tests convention) and world size."""

    op: str
    size_bytes: int
    world_size: int
    backend: str

    @property
    def key(self) -> str:
        return f"collective/{self.backend}/{self.op}/ws={self.world_size}/bytes={self.size_bytes}"


def plan_collectives(
    backend: str, quick: bool, world_sizes: Iterable[int], ops: Iterable[str] | None = None,
    max_points: int | None = None,
) -> list[CollectivePoint]:
    """The collective sweep: every op x size x world size (world size 1 has nothing to measure)."""
    sizes = QUICK_SIZES if quick else FULL_SIZES
    if max_points is not None:
        sizes = sizes[:max_points]
    wanted = [o for o in OPS if ops is None or o in set(ops)]
    return [CollectivePoint(op, s, n, backend) for n in world_sizes if n >= 2 for op in wanted for s in sizes]


def _numel(p: CollectivePoint) -> int:
    """fp32 elements of the full buffer, rounded up so it splits evenly over the ranks."""
    n = max(1, p.size_bytes // _ELEMENT_BYTES)
    return int(math.ceil(n / p.world_size) * p.world_size)


def _make_op(p: CollectivePoint, rank: int, device: torch.device) -> Callable[[], None]:
    """A zero-argument callable doing one `p.op` on preallocated buffers."""
    n, ws = _numel(p), p.world_size
    full = torch.ones(n, device=device)
    part = torch.ones(n // ws, device=device)
    if p.op == "all_reduce":
        return lambda: dist.all_reduce(full)
    if p.op == "all_gather":
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        return lambda: gather(full, part)
    if p.op == "reduce_scatter":
        scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
        return lambda: scatter(part, full)
    if p.op == "all_to_all":
        out = torch.empty_like(full)
        return lambda: dist.all_to_all_single(out, full)
    if p.op == "broadcast":
        return lambda: dist.broadcast(full, src=0)
    if p.op == "send_recv":
        # Ping-pong between rank pairs (0,1), (2,3), ...; a sample is one round trip, halved later.
        peer = rank ^ 1
        first_send = rank % 2 == 0

        def ping_pong() -> None:
            if peer >= ws:
                return  # odd world size: the last rank has no partner
            if first_send:
                dist.send(full, peer)
                dist.recv(full, peer)
            else:
                dist.recv(full, peer)
                dist.send(full, peer)

        return ping_pong
    raise ValueError(f"unknown collective {p.op!r}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _agree_max(values: list[float], device: torch.device) -> list[float]:
    """Element-wise maximum over ranks (so all ranks take the same decisions / slowest times)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.cpu().tolist()


def _measure(p: CollectivePoint, rank: int, device: torch.device, cfg: CollectiveTiming) -> CollectiveSample:
    fn = _make_op(p, rank, device)
    _sync(device)
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(cfg.warmup_calls):
        fn()
    _sync(device)
    est = (time.perf_counter() - t0) / cfg.warmup_calls
    est = max(_agree_max([est], device)[0], 1e-7)
    inner = max(1, math.ceil(cfg.min_sample_s / est))
    repeats = int(min(cfg.max_repeats, max(cfg.min_repeats, math.ceil(cfg.target_s / (est * inner)))))
    local: list[float] = []
    for _ in range(repeats):
        dist.barrier()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        _sync(device)
        local.append((time.perf_counter() - t0) / inner)
    slowest = sorted(_agree_max(local, device))
    if p.op == "send_recv":
        slowest = [s / 2 for s in slowest]  # one way = half a round trip
    q = torch.tensor(slowest, dtype=torch.float64)
    p10, med, p90 = (float(v) for v in torch.quantile(q, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)))
    return CollectiveSample(
        key=p.key, op=p.op, world_size=p.world_size, size_bytes=float(_numel(p) * _ELEMENT_BYTES),  # type: ignore[arg-type]
        backend=p.backend, median_s=med, p10_s=p10, p90_s=p90, repeats=repeats,  # type: ignore[arg-type]
    )


Emit = Callable[[CollectiveSample | Unsupported], None]


def run_in_group(points: list[CollectivePoint], device: torch.device, cfg: CollectiveTiming, emit: Emit) -> None:
    """Measure `points` inside an initialised process group; rank 0 emits each result.

    An op the backend rejects is reported as Unsupported and the sweep goes on (a backend
    rejects on every rank alike, before any traffic, so the ranks stay in step).
    """
    rank = dist.get_rank()
    refused: set[str] = set()
    for p in points:
        if p.op in refused:
            continue
        try:
            sample = _measure(p, rank, device, cfg)
        except (RuntimeError, NotImplementedError, ValueError) as e:
            if "timed out" in str(e).lower() or "timeout" in str(e).lower():
                raise
            refused.add(p.op)
            if rank == 0:
                reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
                emit(Unsupported(what=f"collective/{p.backend}/{p.op}/ws={p.world_size}", reason=reason))
            continue
        if rank == 0:
            emit(sample)


def torchrun_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when started by torchrun (RANK and WORLD_SIZE set), else None."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))
    return None


def init_from_env(backend: str, timeout_s: float) -> torch.device:
    """Join the torchrun process group (env:// rendezvous); returns this rank's device."""
    env = torchrun_env()
    if env is None:
        raise CollectiveRunError("not started by torchrun: RANK and WORLD_SIZE are not set")
    _, _, local_rank = env
    if backend == "gloo":
        if os.environ.get("LOCAL_WORLD_SIZE") == os.environ["WORLD_SIZE"]:
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # all ranks on this host: loopback
        device = torch.device("cpu")
    else:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    dist.init_process_group(backend, init_method="env://", timeout=timedelta(seconds=timeout_s))
    return device


def _spawn_worker(
    rank: int, world_size: int, init_file: str, backend: str, threads: int,
    points: list[CollectivePoint], cfg: CollectiveTiming, out: "queue_mod.Queue[tuple]",
) -> None:
    """Entry point of one spawned rank: join the group, run the sweep, report through `out`."""
    try:
        device = join_process_group(rank, world_size, init_file, backend, threads, cfg.pg_timeout_s)
        try:
            run_in_group(points, device, cfg, lambda r: out.put(("result", type(r).__name__, r.model_dump())))
        finally:
            dist.destroy_process_group()
        out.put(("done", rank))
    except BaseException:  # report, then exit non-zero; the parent turns it into one error
        out.put(("error", rank, traceback.format_exc(limit=4)))
        raise SystemExit(1) from None


def run_spawned(
    points: list[CollectivePoint], world_size: int, backend: str, threads: int, cfg: CollectiveTiming,
    emit: Emit, start_timeout_s: float = 120.0,
) -> None:
    """Start `world_size` local ranks, measure `points` (all of this world size), emit each result.

    Raises CollectiveRunError if a rank fails or the ranks stop answering; results emitted before
    that are kept by the caller (the runner saves each one as it arrives).
    """
    if not points:
        return
    if any(p.world_size != world_size for p in points):
        raise ValueError("run_spawned needs points of one world size")
    ctx = torch.multiprocessing.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="dcsim-rdv-") as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        procs = [
            ctx.Process(target=_spawn_worker, args=(r, world_size, init_file, backend, threads, points, cfg, out), daemon=True)
            for r in range(world_size)
        ]
        for proc in procs:
            proc.start()
        try:
            _pump(out, procs, emit, idle_timeout_s=max(start_timeout_s, cfg.pg_timeout_s))
        finally:
            for proc in procs:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=5)


def _pump(out: "multiprocessing.queues.Queue[tuple]", procs: list, emit: Emit, idle_timeout_s: float) -> None:
    """Forward results from the ranks to `emit` until every rank is done (or one fails)."""
    done: set[int] = set()
    last = time.monotonic()
    while len(done) < len(procs):
        try:
            msg = out.get(timeout=0.5)
        except queue_mod.Empty:
            dead = [i for i, p in enumerate(procs) if not p.is_alive() and i not in done and p.exitcode not in (None, 0)]
            if dead:
                raise CollectiveRunError(f"rank {dead[0]} exited with code {procs[dead[0]].exitcode} without a report") from None
            if time.monotonic() - last > idle_timeout_s:
                raise CollectiveRunError(f"ranks sent nothing for {idle_timeout_s:.0f} s; gave up") from None
            continue
        last = time.monotonic()
        if msg[0] == "result":
            _, kind, data = msg
            emit(CollectiveSample.model_validate(data) if kind == "CollectiveSample" else Unsupported.model_validate(data))
        elif msg[0] == "done":
            done.add(msg[1])
        elif msg[0] == "error":
            lines = [ln for ln in msg[2].strip().splitlines() if ln.strip()]
            raise CollectiveRunError(f"rank {msg[1]} failed: {lines[-1] if lines else 'unknown error'}")
