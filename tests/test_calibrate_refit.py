"""`dcsim calibrate refit`: fits stored samples again; the committed CPU profile carries this
version's fits (roofline attention, two-regime streaming ops) and their held-out error."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from calibrate.fit import refit_profile
from dcsim.profile import (
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    KernelSample,
    Metadata,
    Profile,
    ProfileError,
    RooflineCurve,
    load_profile,
    save_profile,
)

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "calibrate" / "profiles" / "cpu-2core.json"


def _close(a: Any, b: Any, path: str = "") -> None:
    """Equal structures, floats to 1e-6 relative (fits are deterministic up to BLAS rounding)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-15), (path, a, b)
    else:
        assert a == b, (path, a, b)


def _v1_profile(tmp_path: Path) -> Path:
    """A small profile as the schema-1 runner wrote it: samples and a saturating fit."""
    prof = Profile(metadata=Metadata(device_kind="cpu", device_name="x", device_count=1, host="h", cpu_count=2,
                                     threads=1, torch_version="t", schema_version=1))
    for i, (b, h, s) in enumerate([(1, 4, 64), (1, 4, 128), (4, 4, 128), (2, 8, 256), (4, 8, 256), (1, 8, 512),
                                   (1, 8, 1024)]):
        f, by = 4.0 * b * h * s * s * 64, 16.0 * b * h * s * 64
        t = 1.5e-4 + f / 1.8e11 + by / 3e9
        prof.add_kernel(KernelSample(key=f"a{i}", op_class="attention", direction="fwd", precision="fp32",
                                     variant="sdpa_causal", shape={"b": b, "h": h, "s": s, "d": 64}, flops=f,
                                     bytes_moved=by, median_s=t, p10_s=t, p90_s=t, repeats=7))
    path = tmp_path / "v1.json"
    save_profile(prof, path)
    data = json.loads(path.read_text())
    assert data["metadata"]["schema_version"] == 1
    return path


def test_schema_1_profiles_are_still_read_and_newer_ones_refused_clearly(tmp_path: Path) -> None:
    assert SCHEMA_VERSION == 3 and {1, 2} <= set(READABLE_SCHEMA_VERSIONS)
    assert load_profile(_v1_profile(tmp_path)).metadata.schema_version == 1
    data = json.loads(COMMITTED.read_text())
    data["metadata"]["schema_version"] = SCHEMA_VERSION + 1
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match=r"schema_version' is 4, this dcsim reads 1, 2, 3 \(a newer dcsim"):
        load_profile(newer)


def test_refit_cli_fits_stored_samples_and_leaves_them_alone(tmp_path: Path) -> None:
    from dcsim.app.cli import app

    src = _v1_profile(tmp_path)
    out = tmp_path / "refit.json"
    r = CliRunner().invoke(app, ["calibrate", "refit", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    before, after = load_profile(src), load_profile(out)
    assert after.metadata.schema_version == SCHEMA_VERSION
    assert after.kernels == before.kernels and after.collectives == before.collectives
    (fit,) = after.compute_fits
    assert isinstance(fit.curve, RooflineCurve)
    assert fit.quality.heldout_median_rel_err is not None and fit.quality.heldout_median_rel_err < 1e-6
    # in place by default
    r = CliRunner().invoke(app, ["calibrate", "refit", str(src)])
    assert r.exit_code == 0, r.output
    assert load_profile(src).compute_fits == after.compute_fits


def test_refit_cli_bad_profile_is_one_line(tmp_path: Path) -> None:
    from calibrate.cli import app

    r = CliRunner().invoke(app, ["refit", str(tmp_path / "none.json")])
    assert r.exit_code == 2 and "no such file" in r.output and "Traceback" not in r.output


def test_committed_profile_carries_this_versions_fits() -> None:
    committed = load_profile(COMMITTED)
    assert committed.metadata.schema_version == SCHEMA_VERSION
    again = refit_profile(load_profile(COMMITTED))
    _close(committed.model_dump()["compute_fits"], again.model_dump()["compute_fits"])
    _close(committed.model_dump()["collective_fits"], again.model_dump()["collective_fits"])


def test_committed_fp32_fits_predict_held_out_samples_within_10_percent() -> None:
    # Issue 5's bar, for the precision the CPU check trains in. Pooled fits (variant None over
    # several variants: layer_norm and rms_norm differ 3x at equal counts) are the fallback for
    # unlisted variants and are not held to it; bf16 is reported, see README.
    prof = load_profile(COMMITTED)
    pooled = {oc for oc, ss in prof.kernels.items() if len({s.variant for s in ss}) > 1}
    for f in prof.compute_fits:
        if f.precision != "fp32" or (f.variant is None and f.op_class in pooled):
            continue
        q = f.quality
        assert q.heldout_median_rel_err is not None and q.heldout_median_rel_err <= 0.10, (f.op_class, f.direction, f.variant)
        assert q.insample_max_rel_err <= 0.3, (f.op_class, f.direction, f.variant)


def test_committed_attention_fit_tells_sequence_lengths_apart() -> None:
    prof = load_profile(COMMITTED)
    fit = prof.compute_fit("attention", "fp32", "fwd")
    assert fit is not None and isinstance(fit.curve, RooflineCurve)
    # 8 heads of 512 tokens and 32 heads of 256: the same FLOPs, twice the bytes for the second.
    f = 4.0 * 8 * 512 * 512 * 64
    long_seq, short_seq = prof.op_time("attention", "fp32", f, 16.0 * 8 * 512 * 64), prof.op_time(
        "attention", "fp32", f, 16.0 * 32 * 256 * 64)
    assert long_seq is not None and short_seq is not None
    assert long_seq.provenance == short_seq.provenance == "measured"  # both shapes were sampled
    for shape in [(2, 8, 384), (2, 8, 640)]:  # shapes not sampled
        b, h, s = shape
        est = prof.op_time("attention", "fp32", 4.0 * b * h * s * s * 64, 16.0 * b * h * s * 64)
        assert est is not None and est.provenance == "fitted" and not est.extrapolated
    # a head dimension (FLOP per byte) beyond the measured ones is flagged as extrapolated
    est = prof.op_time("attention", "fp32", 4.0 * 8 * 128 * 128 * 512, 16.0 * 8 * 128 * 8)
    assert est is not None and est.extrapolated
    # predictions are within the fit's own held-out error of the samples they were fitted to
    samples = [s for s in prof.kernels["attention"] if s.precision == "fp32" and s.direction == "fwd"]
    errs = [abs(fit.time(s.flops, s.bytes_moved) - s.median_s) / s.median_s for s in samples]
    assert float(np.median(errs)) <= fit.quality.heldout_median_rel_err + 1e-9  # type: ignore[operator]
