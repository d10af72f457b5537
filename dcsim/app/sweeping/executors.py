"""Where sweep points run: this process, a local process pool, or a Ray cluster. Each yields
rows as points finish (in any order); the rows are the same whichever runs them."""

from __future__ import annotations

from dcsim.errors import InputError

from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from enum import Enum
from typing import Any, Iterator

from dcsim.app.sweeping.grid import Point, RunKind
from dcsim.app.sweeping.runner import run_point


class Executor(str, Enum):
    LOCAL = "local"
    RAY = "ray"


def run_all(points: list[Point], kind: RunKind, data: dict[str, Any], base_dir: str,
            version: str, executor: Executor, jobs: int,
            address: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows of `points` as they finish."""
    if executor is Executor.RAY:
        yield from _ray(points, kind, data, base_dir, version, address)
    elif jobs <= 1:
        for p in points:
            yield run_point(kind, data, base_dir, p, version)
    else:
        yield from _pool(points, kind, data, base_dir, version, jobs)


def _pool(points: list[Point], kind: RunKind, data: dict[str, Any], base_dir: str,
          version: str, jobs: int) -> Iterator[dict[str, Any]]:
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending = {pool.submit(run_point, kind, data, base_dir, p, version) for p in points}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
        finally:
            for f in pending:  # interrupted: drop what has not started
                f.cancel()


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _ray(points: list[Point], kind: RunKind, data: dict[str, Any], base_dir: str,
         version: str, address: str | None) -> Iterator[dict[str, Any]]:
    """Each point a Ray task: on a local Ray started for the run, or on the cluster at
    `address` (whose workers must have dcsim installed)."""
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray: Ray is not installed (pip install '.[ray]')") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    try:
        task = ray.remote(run_point)
        pending = [task.remote(kind, data, base_dir, p, version) for p in points]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()
