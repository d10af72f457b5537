"""Where the shipped calibration profiles live, and loading one by name for the front door."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dcsim.calibrated import CalibratedCostModel
from dcsim.calibrated import load_cost_model as _load_from


def profiles_dir() -> Path:
    """calibrate/profiles: the profiles measured so far (and their saved check results)."""
    return Path(str(resources.files("calibrate").joinpath("profiles")))


def committed_profiles() -> list[Path]:
    """The profiles shipped in calibrate/profiles (not the saved check results beside them)."""
    return sorted(p for p in profiles_dir().glob("*.json") if not p.name.endswith(".check.json"))


def load_cost_model(name: str) -> CalibratedCostModel:
    """`run.calibration: NAME | PATH` -> a cost model from a shipped profile or a file."""
    return _load_from(name, profiles_dir())
