"""Where the shipped calibration profiles live, and loading one by name for the front door."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from dcsim.calibrated import CalibratedCostModel, profile_path, resolve_cost_model
from dcsim.calibrated import load_cost_model as _load_from
from dcsim.costs import CostModel, SpecRoofline
from dcsim.files import read_input_text
from dcsim.hardware import GPUSpec
from dcsim.profile import ProfileError


def profiles_dir() -> Path:
    """calibrate/profiles: the profiles measured so far (and their saved check results)."""
    return Path(str(resources.files("calibrate").joinpath("profiles")))


def committed_profiles() -> list[Path]:
    """The profiles shipped in calibrate/profiles (not the saved check results beside them)."""
    return sorted(p for p in profiles_dir().glob("*.json") if not p.name.endswith(".check.json"))


def resolve_profile(name: str, where: str = "run.calibration") -> Path:
    """The profile file NAME (a shipped profile) or PATH names; a ProfileError naming `where`
    (the scenario field or the CLI flag) for a check result, a directory, an unreadable or
    non-UTF-8 file, or an unknown name (listing the shipped profiles, profiles only)."""
    stem = name.removesuffix(".json")
    if stem.endswith(".check") and not Path(name).exists():
        known = ", ".join(p.stem for p in committed_profiles())
        raise ProfileError(f"{where}: {name!r} is a saved `calibrate check` result, not a "
                           f"profile; profiles: spec, {known}")
    try:
        path = profile_path(name, profiles_dir())
    except ProfileError as exc:
        raise ProfileError(str(exc).replace("run.calibration", where, 1)) from None
    read_input_text(path, where)
    return path


def load_cost_model(name: str, where: str = "run.calibration") -> CalibratedCostModel:
    """`run.calibration: NAME | PATH` (or a flag, `where`) -> a cost model from a shipped
    profile or a file."""
    return _load_from(str(resolve_profile(name, where)), profiles_dir())


@lru_cache(maxsize=8)
def _cached(path: str, mtime_ns: int, folder: str) -> CalibratedCostModel:
    """A profile read once per file version (a published one holds thousands of samples, and
    a sweep or `dcsim validate` prices many scenarios with it)."""
    return _load_from(path, Path(folder))


def _load(name: str, folder: Path) -> CalibratedCostModel:
    p = Path(name)
    if not p.exists():
        return _load_from(name, folder)  # a name: the folder's file, or the one-line error
    return _cached(str(p.resolve()), p.stat().st_mtime_ns, str(folder))


def resolve(name: str, gpu: GPUSpec | None) -> CostModel:
    """`run.calibration` for a cluster of `gpu`: auto | spec | a profile name | a path."""
    if name == "spec" or (name == "auto" and gpu is None):
        return SpecRoofline()
    if name == "auto":
        assert gpu is not None
        return resolve_cost_model(name, gpu, profiles_dir(), _load)
    return _load(str(resolve_profile(name)), profiles_dir())
