"""One sweep point, run in whatever process the executor gives it: resolve, run, flatten."""

from __future__ import annotations

from dcsim.errors import InputError

import copy
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

from dcsim.app.scenario import read_yaml_file, set_path
from dcsim.app.sweeping.grid import Point, RunKind, run_key

# Columns every row has, beside the varied fields and the figures.
META = ("point", "key", "status", "error", "dcsim_version", "wall_s")


def base_data(path: str | Path) -> dict[str, Any]:
    data = read_yaml_file(Path(path), "scenario file")
    if not isinstance(data, dict):
        raise InputError(f"{path}: a scenario is a mapping")
    return data


def resolve(kind: RunKind, data: dict[str, Any], point: Point) -> dict[str, Any]:
    """The point's scenario, every default filled in (what its key hashes)."""
    d = copy.deepcopy(data)
    for a in point.overrides():
        set_path(d, a)
    if kind is RunKind.SIMULATE:
        from dcsim.app.scenario import load_scenario
        return load_scenario(d).resolved()
    if kind is RunKind.PLAN:
        from dcsim.app.planning.spec import load_plan
        sc, plan, _raw = load_plan(d)
        return {**sc.resolved(), "plan": plan.model_dump(mode="json")}
    return d  # fleet: its loader resolves at run time; the raw data with the point's fields


def keyed(kind: RunKind, data: dict[str, Any], point: Point, version: str) -> Point:
    """The point with its key (a point whose scenario does not even load keys on its fields)."""
    try:
        resolved = resolve(kind, data, point)
    except Exception:  # noqa: BLE001 - a bad point is recorded, not fatal
        resolved = {"unresolved": point.fields}
    return Point(point.index, point.fields, run_key(kind, resolved, version))


def run_point(kind: RunKind, data: dict[str, Any], base_dir: str, point: Point,
              version: str) -> dict[str, Any]:
    """Run one point; a row (never an exception: a failure is a row with its error)."""
    t0 = time.perf_counter()
    row: dict[str, Any] = {"point": point.index, "key": point.key, "status": "ok", "error": None,
                           "dcsim_version": version}
    try:
        d = copy.deepcopy(data)
        for a in point.overrides():
            set_path(d, a)
        figures = _RUN[kind](d, base_dir)
    except Exception as exc:  # noqa: BLE001 - recorded with the point, the sweep goes on
        row.update(status="failed", error=_one_line(exc))
        figures = {}
    row["wall_s"] = time.perf_counter() - t0
    return {**row, **{f"field.{k}": _cell(v) for k, v in point.fields.items()}, **figures}


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    text = f"{type(exc).__name__}: {msg[0] if msg else ''}"
    if not isinstance(exc, ValueError) and where is not None:  # a bug, not bad input: say where
        text += f" ({Path(where.filename).name}:{where.lineno})"
    return text


def _cell(v: Any) -> Any:
    """A Parquet-friendly cell: nested values as their YAML text."""
    return v if isinstance(v, (int, float, str, bool)) or v is None else \
        yaml.safe_dump(v, default_flow_style=True).strip()


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested record as dotted columns (what `dcsim.results.to_record` does once merged)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, (list, tuple)):
        return {prefix: _cell(list(value))}
    return {prefix: value}


def _simulate(d: dict[str, Any], base_dir: str) -> dict[str, Any]:
    from dcsim.app.scenario import load_scenario
    from dcsim.app.simulate import simulate
    r = simulate(load_scenario(d))
    to_record = getattr(r, "to_record", None)
    if to_record is not None:  # the engine's flat row: keep the figures, not scenario.*
        rec = to_record()
        return {k: _cell(v) for k, v in rec.items() if not k.startswith("scenario.")
                and not k.startswith("cluster.")}
    rec = r.to_dict()
    for k in ("scenario", "cluster", "timing"):
        rec.pop(k, None)
    return flat(rec)


def _plan(d: dict[str, Any], base_dir: str) -> dict[str, Any]:
    from dcsim.app.planning.search import agreement_pct, run_plan
    from dcsim.app.planning.spec import load_plan
    sc, plan, raw = load_plan(d)
    res = run_plan(sc, plan, raw)
    row: dict[str, Any] = {"evaluated": res.evaluated, "feasible": res.feasible,
                           "ranking_wall_s": res.ranking_wall_s}
    if res.best:
        b = res.best[0]
        row.update({f"best.{k}": v for k, v in b.cand.fields().items()})
        row.update({"best.iteration_s": (b.confirmed or b.est).iteration_s,
                    "best.fast_iteration_s": b.est.iteration_s,
                    "best.agreement_pct": agreement_pct(b), "best.mfu": b.mfu,
                    "best.time_to_train_s": b.time_to_train_s, "best.cost_usd": b.cost_usd,
                    "best.energy_kwh": b.energy_kwh, "best.why": b.why})
    return row


def _fleet(d: dict[str, Any], base_dir: str) -> dict[str, Any]:
    from dcsim.app.fleet import run_fleet  # the fleet simulator (dcsim fleet run)
    return flat(run_fleet(d).summary)


_RUN = {RunKind.SIMULATE: _simulate, RunKind.PLAN: _plan, RunKind.FLEET: _fleet}
