"""A calibration check predicts with a profile of this machine, and says so when it cannot."""

from __future__ import annotations

import pytest

from calibrate.device import (CalibrationInputError, cpu_count, cpu_identity, cpu_name,
                              measured_here, mismatch)
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


def test_a_cpu_of_the_same_name_but_another_family_or_cache_is_another_machine() -> None:
    here = cpu_identity()
    meta = _meta(cpu_name(), cpu_count())
    meta.cpu = dict(here)
    assert measured_here(meta, "cpu")
    for key, other in (("family", (here["family"] or 0) + 1), ("l3_bytes", 1 << 20),
                       ("isa", ["avx"])):
        meta.cpu = {**here, key: other}
        assert not measured_here(meta, "cpu")
        assert any(key.split("_")[0] in why or "instruction" in why
                   for why in mismatch(meta, "cpu"))


def test_fingerprint_timings_catch_a_profile_of_a_slower_or_faster_machine() -> None:
    """A profile whose kernel times are 3x this machine's (or a third) is refused by the
    fingerprint, whatever its metadata says."""
    pytest.importorskip("torch")
    from calibrate.fingerprint import fingerprint, pick_samples

    base = next(p for p in map(load_profile, calibration_check.committed_profiles())
                if p.metadata.measurement == "local" and p.metadata.device_kind == "cpu")
    picked = {s.key for s in pick_samples(base)}
    assert picked
    for factor in (3.0, 1 / 3.0):
        prof = base.model_copy(deep=True)
        here = fingerprint(prof)  # this machine's times for the same samples
        for samples in prof.kernels.values():
            for s in samples:
                row = next((r for r in here.samples if r["key"] == s.key), None)
                if row is not None:
                    s.median_s = row["here_s"] * factor
        fp = fingerprint(prof)
        assert not fp.agrees
        assert ("faster" if factor > 1 else "slower") in fp.describe()


def test_auto_picks_the_committed_profile_of_this_machine_or_names_the_others(
        tmp_path, monkeypatch) -> None:
    committed = calibration_check.committed_profiles()
    assert committed and not any(p.name.endswith(".check.json") for p in committed)
    # With only profiles of other machines, auto refuses in one line naming them and saying
    # how to measure this one.
    other = next(p for p in map(load_profile, committed) if p.metadata.measurement == "local")
    other.metadata.device_name = "Some Other CPU"
    path = tmp_path / "other.json"
    save_profile(other, path)
    monkeypatch.setattr(calibration_check, "committed_profiles", lambda: [path])
    with pytest.raises(CalibrationInputError,
                       match=r"dcsim calibrate run --quick.*other: device 'Some Other CPU'"):
        calibration_check.choose_profile("cpu")
