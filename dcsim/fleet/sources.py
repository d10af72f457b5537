"""Job sources: jobs written in the scenario, a generator, the Alibaba GPU v2023 pod list, a
generic job log (CSV or Parquet), Philly's run times.

Generic job log columns (one row per job; times in seconds):
  submit_s   (required) submission time, >= 0
  gpus       (required) whole GPUs, >= 0
  duration_s run time at nominal speed, > 0 (required unless `workload` names a training workload)
  workload   optional: a key of the scenario's `workloads:` (a training job priced by the simulator)
  priority   optional integer (default 0); user, name, gpu_type optional text
Alibaba pod list (openb_pod_list_*.csv, Weng et al. ATC'23): submit = creation_time, run time =
deletion_time - scheduled_time (deletion - creation for pods never scheduled), num_gpu whole GPUs,
gpu_milli the share of one GPU, gpu_spec allowed types ("|"-separated), cpu_milli, memory_mib.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from dcsim.fleet.config import Distribution, GeneratorSpec, JobSourceSpec, SourceKind
from dcsim.fleet.model import FleetJob
from dcsim.errors import InputError


class SourceError(InputError):
    """A trace or job list the fleet cannot use; str() names the field or column."""


def load_jobs(spec: JobSourceSpec, horizon_s: float, seed: int,
              base: Path | None = None) -> list[FleetJob]:
    """The jobs of a scenario, sorted by submission time, ids 0..n-1."""
    if spec.source == SourceKind.LIST:
        jobs = _listed(spec)
    elif spec.source == SourceKind.GENERATOR:
        jobs = generate(spec.generator, horizon_s, seed)
    elif spec.source == SourceKind.PHILLY:
        runtimes = _read(_path(spec, base), "fleet.jobs.path")["runtime"].to_numpy(float)
        runtimes = runtimes[runtimes > 0]
        jobs = generate(spec.generator, horizon_s, seed, empirical_s=runtimes)
    elif spec.source == SourceKind.ALIBABA:
        jobs = alibaba(_read(_path(spec, base), "fleet.jobs.path"))
    else:
        jobs = joblog(_read(_path(spec, base), "fleet.jobs.path"))
    if spec.limit:
        jobs = jobs[:spec.limit]
    if not jobs:
        raise SourceError("fleet.jobs: the job source gave no jobs (empty trace?)")
    for j in jobs:
        j.work_s *= spec.time_scale
    jobs.sort(key=lambda j: (j.submit_s, j.id))
    for i, j in enumerate(jobs):
        j.id = i
    return jobs


def _path(spec: JobSourceSpec, base: Path | None) -> Path:
    if not spec.path:
        raise SourceError(f"fleet.jobs.path: required for source {spec.source.value}")
    p = Path(spec.path)
    if not p.is_absolute() and base is not None and not p.exists():
        p = base / p
    if not p.exists():
        raise SourceError(f"fleet.jobs.path: {spec.path}: no such file")
    return p


def _read(path: Path, field: str) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise SourceError(f"{field}: {path} is not a readable CSV/Parquet file ({exc})") from None
    if df.empty:
        raise SourceError(f"{field}: {path} has no rows (an empty trace)")
    return df


def _listed(spec: JobSourceSpec) -> list[FleetJob]:
    jobs: list[FleetJob] = []
    for i, lj in enumerate(spec.items):
        if lj.duration is None and lj.workload is None:
            raise SourceError(f"fleet.jobs.list[{i}]: give duration or workload")
        for k in range(lj.count):
            name = lj.name or f"job{i}"
            jobs.append(FleetJob(
                id=len(jobs), name=name if lj.count == 1 else f"{name}-{k}",
                submit_s=lj.submit + k * lj.every, gpus=lj.gpus,
                work_s=lj.duration if lj.duration is not None else math.nan,
                priority=lj.priority, user=lj.user, workload=lj.workload,
                gpu_types=(lj.gpu_type,) if lj.gpu_type else ()))
    return jobs


JOBLOG_REQUIRED = ("submit_s", "gpus")


def joblog(df: pd.DataFrame) -> list[FleetJob]:
    """Jobs from a generic log (columns in the module docstring)."""
    for c in JOBLOG_REQUIRED:
        if c not in df.columns:
            raise SourceError(f"job log: missing column {c!r} (required: submit_s, gpus, and "
                              "duration_s or workload)")
    if "duration_s" not in df.columns and "workload" not in df.columns:
        raise SourceError("job log: missing column 'duration_s' (or 'workload')")
    for c in ("submit_s", "gpus", "duration_s", "priority"):
        if c in df.columns and not pd.api.types.is_numeric_dtype(df[c]):
            raise SourceError(f"job log: column {c!r} must be numeric")
    if (df["submit_s"] < 0).any() or df["submit_s"].isna().any():
        raise SourceError("job log: column 'submit_s' must be >= 0 on every row")
    if (df["gpus"] < 0).any() or df["gpus"].isna().any():
        raise SourceError("job log: column 'gpus' must be >= 0 on every row")
    dur = df["duration_s"] if "duration_s" in df.columns else pd.Series(np.nan, index=df.index)
    wl = df["workload"] if "workload" in df.columns else pd.Series(None, index=df.index)
    bad = (dur.isna() | (dur <= 0)) & wl.isna()
    if bad.any():
        raise SourceError(f"job log: column 'duration_s' must be > 0 (row {int(np.flatnonzero(bad)[0])})")
    jobs: list[FleetJob] = []
    for i, d in enumerate(df.to_dict("records")):
        w = d.get("workload")
        jobs.append(FleetJob(
            id=i, name=str(d.get("name", f"job{i}")), submit_s=float(d["submit_s"]),
            gpus=int(d["gpus"]), work_s=float(d["duration_s"]) if "duration_s" in d else math.nan,
            priority=int(d.get("priority", 0) or 0), user=str(d.get("user", "") or ""),
            workload=str(w) if isinstance(w, str) else None,
            gpu_types=(str(d["gpu_type"]),) if isinstance(d.get("gpu_type"), str) else ()))
    return jobs


ALIBABA_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli",
                   "creation_time", "deletion_time", "scheduled_time")  # gpu_spec optional


def alibaba(df: pd.DataFrame) -> list[FleetJob]:
    """Pods of the Alibaba GPU v2023 trace (see the module docstring)."""
    missing = [c for c in ALIBABA_COLUMNS if c not in df.columns]
    if missing:
        raise SourceError(f"alibaba trace: missing column {missing[0]!r} (this source needs "
                          f"{', '.join(ALIBABA_COLUMNS)}; the multigpu50 list has no times)")
    start = df["scheduled_time"].where(df["scheduled_time"].notna(), df["creation_time"])
    run = (df["deletion_time"] - start).to_numpy(float)
    jobs: list[FleetJob] = []
    for i, r in enumerate(df.to_dict("records")):
        if not run[i] > 0:
            continue
        spec = r.get("gpu_spec", "")
        spec = spec if isinstance(spec, str) else ""
        gpus = int(r["num_gpu"])
        jobs.append(FleetJob(
            id=i, name=str(r["name"]), submit_s=float(r["creation_time"]), gpus=gpus,
            work_s=float(run[i]), gpu_milli=int(r["gpu_milli"]) if gpus == 1 else 1000,
            gpu_types=tuple(t for t in spec.split("|") if t), cpu_milli=float(r["cpu_milli"]),
            memory_mib=float(r["memory_mib"]), user=str(r.get("qos", ""))))
    return jobs


def lognormal_params(d: Distribution) -> tuple[float, float]:
    """(mu, sigma) of the lognormal with this median and mean (mean >= median)."""
    if d.median is None or d.mean is None:
        raise SourceError("fleet.jobs.generator: a distribution needs median and mean")
    if d.mean < d.median:
        raise SourceError(f"fleet.jobs.generator: mean {d.mean} < median {d.median}; "
                          "a lognormal's mean is at least its median")
    return math.log(d.median), math.sqrt(2 * math.log(d.mean / d.median))


# Share of jobs at the median size. ASSUMED shape: every AcmeTrace cluster's median job is its
# smallest common size (1 GPU; 0.5 on PAI), so a point mass of 60% there keeps the median exact;
# the other 40% spread over the larger powers of two.
MEDIAN_MASS = 0.6


def gpu_sizes(d: Distribution) -> tuple[np.ndarray, np.ndarray]:
    """Job sizes median x 2^k (k >= 0, up to max): 60% at the median, the rest with P(k)
    proportional to q^k (k >= 1), q solved so the mean matches."""
    if d.values is not None:
        w = np.asarray(d.weights if d.weights is not None else [1.0] * len(d.values), float)
        return np.asarray(d.values, float), w / w.sum()
    med = d.median or 1.0
    mean = d.mean or med
    top = d.max or med * 1024
    sizes = med * 2.0 ** np.arange(int(math.log2(top / med)) + 1)
    if len(sizes) == 1 or mean <= med:
        return sizes[:1], np.ones(1)
    tail = sizes[1:]

    def probs(q: float) -> np.ndarray:
        w = q ** np.arange(len(tail))
        return np.concatenate([[MEDIAN_MASS], (1 - MEDIAN_MASS) * w / w.sum()])

    lo, hi = 1e-6, 16.0   # the mean rises with q
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float((sizes * probs(mid)).sum()) < mean else (lo, mid)
    return sizes, probs(lo)


def generate(g: GeneratorSpec, horizon_s: float, seed: int,
             empirical_s: np.ndarray | None = None) -> list[FleetJob]:
    """Poisson arrivals; sizes and run times drawn as the spec says (run times from
    `empirical_s` when given: Philly)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    rate = (g.arrival_rate_per_h / 3600) if g.arrival_rate_per_h else g.jobs / horizon_s
    submit = np.cumsum(rng.exponential(1 / rate, g.jobs))
    sizes, p = gpu_sizes(g.gpus)
    gpus = rng.choice(sizes, size=g.jobs, p=p)
    if empirical_s is not None:
        dur = rng.choice(empirical_s, size=g.jobs)
    else:
        mu, sigma = lognormal_params(g.duration)
        dur = rng.lognormal(mu, sigma, g.jobs)
        if g.duration.max:
            dur = np.minimum(dur, g.duration.max)
    train = rng.random(g.jobs) < g.training_share
    prio = rng.integers(0, g.priority_levels, g.jobs)
    jobs = []
    for i in range(g.jobs):
        n = float(gpus[i])
        wl = None
        if train[i] and n >= g.training_min_gpus and g.training_workloads:
            wl = g.training_workloads[int(rng.integers(len(g.training_workloads)))]
        whole = max(int(round(n)), 1)
        jobs.append(FleetJob(id=i, name=f"gen{i}", submit_s=float(submit[i]), gpus=whole,
                             gpu_milli=int(round(n * 1000)) if n < 1 else 1000,
                             work_s=float(dur[i]), priority=int(prio[i]), workload=wl))
    return jobs
