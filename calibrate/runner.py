"""Orchestrate one calibration run: plan, measure (saving after every point), fit, save.

An interrupted run keeps every point it measured in the output file; running the same command
with the same --out resumes, skipping the points already there. Kernels are timed in this
process; collectives in ranks spawned here, or in the ranks torchrun started.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from calibrate import collectives as coll
from calibrate import kernels
from calibrate.device import (
    CalibrationInputError,
    check_device,
    check_world_size,
    cpu_count,
    default_profile_name,
    metadata_for,
)
from calibrate.fit import fit_profile
from calibrate.timing import FULL_TIMING, QUICK_TIMING
from dcsim.profile import (
    COLLECTIVES,
    OP_CLASSES,
    PRECISIONS,
    CollectiveSample,
    Profile,
    ProfileError,
    Unsupported,
    load_profile,
    save_profile,
)

__all__ = ["RunConfig", "Plan", "RunSummary", "resolve", "run_calibration", "FRAMEWORK"]

# The --ops name of the framework-overhead measurement (one point).
FRAMEWORK = "framework"

# Precisions measured by default. CPU: fp32 (and bf16 in a full run); never fp16, which has no
# fast CPU path (DESIGN.md section 4: 0.4-2.7 GFLOP/s, one 2048^3 matmul took 43 s). GPU: the
# training precisions plus fp32 as a reference.
_DEFAULT_PRECISIONS = {("cpu", True): ("fp32",), ("cpu", False): ("fp32", "bf16"), ("cuda", True): ("bf16",),
                       ("cuda", False): ("bf16", "fp16", "fp32")}


@dataclass(frozen=True)
class RunConfig:
    """What the user asked for (CLI options, unvalidated)."""

    device: str = "cpu"
    quick: bool = False
    out: Path | None = None
    world_size: int | None = None
    threads: int | None = None
    precisions: tuple[str, ...] | None = None
    ops: tuple[str, ...] | None = None  # op classes, collective names and/or "framework"; None = all
    max_points: int | None = None  # per op class / per collective, to keep tests tiny
    progress: bool = True
    cache: str = "cold"  # cold: flush the caches before each kernel call; warm: back to back


@dataclass(frozen=True)
class Plan:
    """A validated run: what will be measured, where, with how many threads."""

    device: str
    quick: bool
    out: Path
    world_size: int
    world_sizes: tuple[int, ...]
    threads: int
    collective_threads: int
    precisions: tuple[str, ...]
    op_classes: tuple[str, ...]
    collectives: tuple[str, ...]
    framework: bool  # measure the per-kernel framework overhead (dcsim.profile.FrameworkOverhead)
    cold: bool  # time kernels cold (caches flushed before each call)
    max_points: int | None
    torchrun: tuple[int, int, int] | None  # (rank, world size, local rank) under torchrun


@dataclass
class RunSummary:
    """What a run did: the profile, where it went, counts, failures, wall time."""

    profile: Profile
    out: Path
    measured: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    primary: bool = True  # False on torchrun ranks other than 0 (they measure, rank 0 writes)


def _split_names(names: tuple[str, ...] | None, allowed: tuple[str, ...], option: str) -> None:
    for n in names or ():
        if n not in allowed:
            raise CalibrationInputError(f"{option}: unknown name {n!r}; allowed: {', '.join(allowed)}")


def resolve(cfg: RunConfig) -> Plan:
    """Validate a request against this machine; CalibrationInputError says what is wrong."""
    check_device(cfg.device)
    env = coll.torchrun_env()
    cores = cpu_count()
    if env is not None:
        world_size = env[1]
        check_world_size(cfg.device, int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))
    else:
        default_ws = min(2, cores) if cfg.device == "cpu" else max(1, torch.cuda.device_count())
        world_size = cfg.world_size if cfg.world_size is not None else default_ws
        check_world_size(cfg.device, world_size)
    local_ranks = min(world_size, cores) if env is None else world_size
    if cfg.threads is not None and not 1 <= cfg.threads <= cores:
        raise CalibrationInputError(f"--threads must be between 1 and {cores} on this machine (got {cfg.threads})")
    # One core per rank: a profile describes one rank's device as a data-parallel job on this
    # machine runs it (DESIGN.md section 4: 2 threads collapse when another process holds a core).
    per_rank = max(1, cores // max(1, local_ranks))
    threads = cfg.threads if cfg.threads is not None else (per_rank if cfg.device == "cpu" else 1)
    precisions = cfg.precisions or _DEFAULT_PRECISIONS[(cfg.device, cfg.quick)]
    _split_names(precisions, PRECISIONS, "--precisions")
    if cfg.device == "cpu" and "fp16" in precisions:
        raise CalibrationInputError("--precisions fp16 on cpu: torch has no fast CPU fp16 path (minutes per GEMM); use fp32 or bf16")
    names = cfg.ops
    _split_names(names, OP_CLASSES + COLLECTIVES + (FRAMEWORK, "none"), "--ops")
    op_classes = tuple(o for o in OP_CLASSES if names is None or o in names)
    collectives = tuple(c for c in COLLECTIVES if names is None or c in names)
    framework = names is None or FRAMEWORK in names
    if cfg.cache not in ("cold", "warm"):
        raise CalibrationInputError(f"--cache must be cold or warm (got {cfg.cache!r})")
    if cfg.max_points is not None and cfg.max_points < 1:
        raise CalibrationInputError(f"--max-points must be at least 1 (got {cfg.max_points})")
    if cfg.out is None:
        out = Path(__file__).resolve().parent / "profiles" / default_profile_name(cfg.device, world_size, cfg.quick)
    else:
        out = Path(cfg.out)
    if out.exists() and out.is_dir():
        raise CalibrationInputError(f"--out {out}: is a directory; give a file name")
    world_sizes = tuple(range(2, world_size + 1)) if env is None else (world_size,)
    return Plan(
        device=cfg.device, quick=cfg.quick, out=out, world_size=world_size, world_sizes=world_sizes,
        threads=threads, collective_threads=per_rank if cfg.device == "cpu" else 1, precisions=tuple(precisions),
        op_classes=op_classes, collectives=collectives, framework=framework, cold=cfg.cache == "cold",
        max_points=cfg.max_points, torchrun=env,
    )


def _start_profile(plan: Plan) -> tuple[Profile, str | None]:
    """The profile to add to: the one at --out (resume) or a fresh one; and the resume time."""
    meta = metadata_for(plan.device, plan.threads, plan.collective_threads, plan.quick)
    if not plan.out.exists():
        return Profile(metadata=meta), None
    try:
        old = load_profile(plan.out)
    except ProfileError as e:
        raise CalibrationInputError(f"--out {plan.out} exists but cannot be resumed ({e}); move it away or pick another --out") from None
    o = old.metadata
    for fld in ("device_kind", "device_name", "threads", "torch_version"):
        if getattr(o, fld) != getattr(meta, fld):
            raise CalibrationInputError(
                f"--out {plan.out} was measured with {fld}={getattr(o, fld)!r}, this run has {getattr(meta, fld)!r}; "
                "pick another --out"
            )
    was_cold = (old.metadata.cache_flush_bytes or 0) > 0  # profiles before the field: warm
    if any(old.kernels.values()) and was_cold != plan.cold:
        was = "cold" if was_cold else "warm"
        raise CalibrationInputError(
            f"--out {plan.out} was timed {was}, this run times {'cold' if plan.cold else 'warm'}; "
            "pick another --out (or the same --cache)"
        )
    old.metadata.quick = plan.quick
    old.metadata.complete = False
    return old, meta.created


def _note_unsupported(profile: Profile, u: Unsupported) -> None:
    if all(x.what != u.what for x in profile.unsupported):
        profile.unsupported.append(u)


def run_calibration(cfg: RunConfig, console: Console | None = None) -> RunSummary:
    """Measure, fit and save a profile as `cfg` asks; returns what was done.

    Raises CalibrationInputError for requests this machine cannot serve (before measuring).
    """
    plan = resolve(cfg)
    console = console or Console(stderr=True)
    t_start = time.perf_counter()
    prev_threads = torch.get_num_threads()
    try:
        return _run(plan, cfg.progress, console, t_start)
    finally:
        torch.set_num_threads(prev_threads)


def _run(plan: Plan, show: bool, console: Console, t_start: float) -> RunSummary:
    rank0 = plan.torchrun is None or plan.torchrun[0] == 0
    if rank0:
        profile, resumed = _start_profile(plan)
    else:
        profile, resumed = Profile(metadata=metadata_for(plan.device, plan.threads, plan.collective_threads, plan.quick)), None
    summary = RunSummary(profile=profile, out=plan.out, primary=rank0)
    done = profile.measured_keys()

    kpoints, kskipped = kernels.plan_points(plan.device, plan.quick, plan.precisions, plan.op_classes, plan.max_points)
    if plan.device == "cpu" and "fp16" not in plan.precisions:
        kskipped.append(Unsupported(what="kernels/fp16", reason="not measured on CPU: torch has no fast CPU fp16 path (DESIGN.md section 4)"))
    backend = "nccl" if plan.device == "cuda" else "gloo"
    cpoints = coll.plan_collectives(backend, plan.quick, plan.world_sizes, plan.collectives, plan.max_points)
    if plan.torchrun is not None and plan.torchrun[0] != 0:
        kpoints = []  # under torchrun only rank 0 times kernels
    for u in kskipped:
        _note_unsupported(profile, u)
    k_todo = [p for p in kpoints if p.key not in done]
    c_todo = [p for p in cpoints if p.key not in done]
    want_fw = plan.framework and rank0
    fw_todo = want_fw and profile.framework is None
    summary.skipped = (len(kpoints) - len(k_todo)) + (len(cpoints) - len(c_todo)) + int(want_fw and not fw_todo)
    if resumed and (k_todo or c_todo or fw_todo):
        profile.metadata.notes.append(
            f"resumed {resumed}: {len(k_todo) + len(c_todo) + int(fw_todo)} point(s) measured then")

    def save() -> None:
        if rank0:
            save_profile(profile, plan.out)

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[point]}"))
    with Progress(*columns, console=console, disable=not (show and rank0), transient=False) as bar:
        task = bar.add_task("calibrating", total=len(k_todo) + len(c_todo) + int(fw_todo), point="")
        if plan.torchrun is not None:
            _collectives_torchrun(plan, c_todo, profile, summary, save, bar, task)
        if fw_todo:
            _framework(plan, profile, summary, save, bar, task)
        _kernels(plan, k_todo, profile, summary, save, bar, task)
        if plan.torchrun is None:
            _collectives_spawned(plan, c_todo, profile, summary, save, bar, task)

    if not rank0:
        return summary
    compute_fits, collective_fits = fit_profile(profile)
    profile.set_fits(compute_fits, collective_fits)
    profile.metadata.complete = not summary.failures
    summary.elapsed_s = time.perf_counter() - t_start
    save()
    return summary


Save = Callable[[], None]


def _compute_device(plan: Plan) -> torch.device:
    """The device kernels are timed on, set up as a training rank would be (threads, no TF32)."""
    torch.set_num_threads(plan.threads)
    if plan.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, not TF32
        torch.backends.cudnn.allow_tf32 = False
        return torch.device("cuda", 0)
    return torch.device("cpu")


def _framework(plan: Plan, profile: Profile, summary: RunSummary, save: Save, bar: Progress, task: TaskID) -> None:
    """Measure the per-kernel framework overhead (one point)."""
    bar.update(task, point="framework overhead")
    device = _compute_device(plan)
    try:
        profile.framework = kernels.measure_framework(device, QUICK_TIMING if plan.quick else FULL_TIMING)
    except (RuntimeError, NotImplementedError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        _note_unsupported(profile, Unsupported(what="framework", reason=reason))
    else:
        summary.measured += 1
    save()
    bar.advance(task)


def _kernels(
    plan: Plan, todo: list[kernels.KernelPoint], profile: Profile, summary: RunSummary, save: Save,
    bar: Progress, task: TaskID,
) -> None:
    """Time kernel points in this process, saving after each."""
    if not todo:
        return
    device = _compute_device(plan)
    timing = QUICK_TIMING if plan.quick else FULL_TIMING
    policy = kernels.CachePolicy.for_device(device, cold=plan.cold)
    md = profile.metadata
    flush = policy.flush.nbytes if policy.flush else 0
    if md.cache_flush_bytes is not None and md.cache_flush_bytes != flush:
        md.notes.append(f"cache flush changed on resume: {md.cache_flush_bytes} -> {flush} bytes")
    md.cache_flush_bytes = flush
    for p in todo:
        bar.update(task, point=p.key)
        try:
            sample = kernels.measure_point(p, device, timing, policy)
        except (RuntimeError, NotImplementedError) as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            _note_unsupported(profile, Unsupported(what=p.key, reason=reason))
        else:
            profile.add_kernel(sample)
            summary.measured += 1
        finally:
            if plan.device == "cuda":
                torch.cuda.empty_cache()
        save()
        bar.advance(task)


def _collect(profile: Profile, summary: RunSummary, save: Save, bar: Progress, task: TaskID) -> coll.Emit:
    """The callback that files one collective result (or refusal) and saves."""

    def emit(r: CollectiveSample | Unsupported) -> None:
        if isinstance(r, CollectiveSample):
            profile.add_collective(r)
            summary.measured += 1
            bar.update(task, point=r.key)
        else:
            _note_unsupported(profile, r)
        save()
        bar.advance(task)

    return emit


def _collectives_spawned(
    plan: Plan, todo: list[coll.CollectivePoint], profile: Profile, summary: RunSummary, save: Save,
    bar: Progress, task: TaskID,
) -> None:
    """Start local ranks per world size and time the collectives."""
    timing = coll.QUICK_COLLECTIVE_TIMING if plan.quick else coll.FULL_COLLECTIVE_TIMING
    backend = "nccl" if plan.device == "cuda" else "gloo"
    emit = _collect(profile, summary, save, bar, task)
    for n in plan.world_sizes:
        points = [p for p in todo if p.world_size == n]
        if not points:
            continue
        bar.update(task, point=f"starting {n} {backend} ranks")
        try:
            coll.run_spawned(points, n, backend, plan.collective_threads, timing, emit)
        except coll.CollectiveRunError as e:
            msg = f"collectives at world size {n}: {e}"
            summary.failures.append(msg)
            profile.metadata.notes.append(msg)
            save()


def _collectives_torchrun(
    plan: Plan, todo: list[coll.CollectivePoint], profile: Profile, summary: RunSummary, save: Save,
    bar: Progress, task: TaskID,
) -> None:
    """Time the collectives inside the ranks torchrun started (every rank runs this)."""
    import torch.distributed as dist

    timing = coll.QUICK_COLLECTIVE_TIMING if plan.quick else coll.FULL_COLLECTIVE_TIMING
    backend = "nccl" if plan.device == "cuda" else "gloo"
    torch.set_num_threads(plan.collective_threads)
    device = coll.init_from_env(backend, timing.pg_timeout_s)
    try:
        # Every rank must run the same points: rank 0's resume state decides (broadcast it).
        keys = [[p.key for p in todo]]
        dist.broadcast_object_list(keys, src=0)
        wanted = set(keys[0])
        points = [p for p in todo if p.key in wanted]
        coll.run_in_group(points, device, timing, _collect(profile, summary, save, bar, task))
    finally:
        dist.destroy_process_group()
