"""A calibration check predicts with a profile of this machine, and says so when it cannot."""

from __future__ import annotations

import pytest

from calibrate.device import (CalibrationInputError, cpu_count, cpu_name, measured_here)
from dcsim.app import calibration_check
from dcsim.profile import Metadata, load_profile, save_profile


def _meta(name: str, cores: int, kind: str = "cpu") -> Metadata:
    return Metadata(device_kind=kind, device_name=name, device_count=1, host="h",
                    cpu_count=cores, threads=1, torch_version="2.13.0+cpu", backend="gloo")


def test_a_profile_matches_only_the_same_cpu_model_and_core_count() -> None:
    assert measured_here(_meta(cpu_name(), cpu_count()), "cpu")
    assert not measured_here(_meta(cpu_name() + " (another)", cpu_count()), "cpu")
    assert not measured_here(_meta(cpu_name(), cpu_count() + 2), "cpu")
    assert not measured_here(_meta(cpu_name(), cpu_count(), kind="cuda"), "cpu")


def test_auto_picks_the_committed_profile_of_this_machine_or_names_the_others(
        tmp_path, monkeypatch) -> None:
    committed = calibration_check.committed_profiles()
    assert committed and not any(p.name.endswith(".check.json") for p in committed)
    here = [p.stem for p in committed if measured_here(load_profile(p).metadata, "cpu")]
    if here:
        assert calibration_check.choose_profile("cpu") == here[0]
    # With only profiles of other machines, auto refuses in one line naming them.
    other = next(p for p in map(load_profile, committed) if p.metadata.measurement == "local")
    other.metadata.device_name = "Some Other CPU"
    path = tmp_path / "other.json"
    save_profile(other, path)
    monkeypatch.setattr(calibration_check, "committed_profiles", lambda: [path])
    with pytest.raises(CalibrationInputError, match=r"other \(Some Other CPU, \d+ cores\)"):
        calibration_check.choose_profile("cpu")
