"""A sweep's grid file: which scenario fields vary over which values, and the points it makes."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from dcsim.app.scenario import ScenarioError, read_yaml_file


class RunKind(str, Enum):
    """What each point runs."""

    SIMULATE = "simulate"
    FLEET = "fleet"
    PLAN = "plan"


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its index, the fields it sets, and the hash that names its run."""

    index: int
    fields: dict[str, Any]
    key: str = ""

    def overrides(self) -> list[str]:
        """As `--set` assignments (values as YAML, so lists and mappings survive)."""
        return [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                for k, v in self.fields.items()]


@dataclass(frozen=True)
class Grid:
    kind: RunKind
    points: list[Point]
    varied: list[str]  # the field paths, in column order


def load_grid(path: str | Path) -> Grid:
    """Read a grid file: `grid:` (every combination of its fields' values) and/or `points:`
    (listed combinations; with `grid:` too, each point is combined with every grid one)."""
    p = Path(path)
    data = read_yaml_file(p, "grid file", "--grid: ")
    if not isinstance(data, dict) or not ({"grid", "points"} & set(data)):
        raise ScenarioError(f"--grid: {p}: a mapping with grid: {{field: [values]}} and/or "
                            "points: [{field: value}]")
    unknown = set(data) - {"grid", "points", "kind"}
    if unknown:
        raise ScenarioError(f"grid.{sorted(unknown)[0]}: unknown key (allowed: kind, grid, points)")
    try:
        kind = RunKind(data.get("kind", "simulate"))
    except ValueError:
        raise ScenarioError(f"grid.kind: {data.get('kind')!r} is not one of "
                            f"{', '.join(k.value for k in RunKind)}") from None
    axes = data.get("grid") or {}
    if not isinstance(axes, dict):
        raise ScenarioError("grid.grid: a mapping of field path -> list of values")
    for k, v in axes.items():
        if not isinstance(v, list) or not v:
            raise ScenarioError(f"grid.grid.{k}: a non-empty list of values")
    listed = data.get("points") or [{}]
    if not isinstance(listed, list) or not all(isinstance(x, dict) for x in listed):
        raise ScenarioError("grid.points: a list of mappings {field path: value}")
    combos = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    varied: list[str] = list(axes)
    for x in listed:
        varied += [k for k in x if k not in varied]
    points = [Point(i, {**pt, **combo}) for i, (pt, combo)
              in enumerate(itertools.product(listed, combos))]
    return Grid(kind, points, varied)


def run_key(kind: RunKind, resolved: dict[str, Any], version: str) -> str:
    """The name of a run: a hash of what it runs (kind + fully resolved scenario) and the
    dcsim version that runs it. Equal keys give equal results (the simulator is deterministic)."""
    blob = json.dumps({"kind": kind.value, "scenario": resolved, "dcsim": version},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def dcsim_version() -> str:
    """The installed dcsim's version (the key of what computed a result)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("dcsim")
    except PackageNotFoundError:
        return "unknown"
