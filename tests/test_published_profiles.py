"""Published kernel measurements (Vidur, EleutherAI) as calibration profiles, and using them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from calibrate.fit import fit_gemm_table
from calibrate.published import PublishedImportError, import_published
from calibrate.published import eleutherai, vidur
from dcsim.app.profiles import load_cost_model, profiles_dir, resolve
from dcsim.calibrated import (CalibratedCostModel, NearestDeviceCostModel, shipped_for,
                              transposed_gemms)
from dcsim.costs import SpecRoofline
from dcsim.hardware import gpu
from dcsim.profile import GemmTableCurve, load_profile
from dcsim.program import Kernel
from workloads.kernels import gemm

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kernels"
needs_data = pytest.mark.skipif(not (DATA / "vidur").is_dir(), reason="../shared/data/kernels absent")


def test_eleutherai_lines_become_gemms_in_our_convention() -> None:
    """mm (M x N) @ (N x K): inner N; linear with b rows of m; bmm B x M x N x K."""
    text = ("Throughput (in TFLOP/s) for 32x4096x64: 0.500\n"
            "Throughput (in TFLOP/s) for mlp_h_to_4h (4x2304x9216, b=2048): 219.556\n"
            "Throughput (in TFLOP/s) for attention_key_query_prob (512x2048x96x2048): 95.0\n"
            "Elapsed time for 32x4096x64: 0.000\n")
    mm, lin, bmm = eleutherai.parse(text, "t")
    assert mm.shape == {"m": 32, "n": 64, "k": 4096}
    assert lin.shape == {"m": 8192, "n": 9216, "k": 2304}
    assert bmm.shape == {"batch": 512, "m": 2048, "n": 2048, "k": 96} and bmm.variant == "bmm"
    assert lin.median_s == pytest.approx(2 * 8192 * 9216 * 2304 / 219.556e12, rel=1e-4)


def test_vidur_row_counts_gemms_and_streams_as_the_profile_conventions() -> None:
    row = {"num_tokens": "1024", "num_tensor_parallel_workers": "2", "n_embd": "4096",
           "n_expanded_embd": "11008", "n_head": "32", "n_kv_head": "8", "use_gated_mlp": "True"}
    for op in ("attn_pre_proj", "mlp_up_proj", "input_layernorm", "add"):
        row |= {f"time_stats.{op}.median": "0.5", f"time_stats.{op}.min": "0.4", f"time_stats.{op}.max": "0.7"}
    got = {s.key.rsplit("/", 1)[1]: s for s in vidur.row_samples(row, "m")}
    assert got["attn_pre_proj"].shape == {"m": 1024, "n": (32 + 16) * 128 // 2, "k": 4096}
    assert got["mlp_up_proj"].shape == {"m": 1024, "n": 11008, "k": 4096}
    assert got["input_layernorm"].variant == "rms_norm" and got["add"].variant == "add"
    assert got["add"].bytes_moved == 3 * 1024 * 4096 * 2 and got["add"].median_s == 5e-4
    assert vidur.keep_tokens(4096, 512) and vidur.keep_tokens(64, 512) and not vidur.keep_tokens(4064, 512)


def test_gemm_table_answers_a_measured_shape_and_interpolates_between_shapes() -> None:
    shapes = np.array([[1, m, n, 4096] for m in (1024, 2048, 4096) for n in (4096, 8192)])
    rates = np.array([100e12, 150e12, 120e12, 180e12, 140e12, 200e12])
    flops = 2.0 * shapes.prod(axis=1)
    curve = fit_gemm_table(shapes, flops, flops / rates)
    t, far = curve.table().time(flops[3], {"m": 2048, "n": 8192, "k": 4096})
    assert t == pytest.approx(flops[3] / 180e12, rel=1e-3) and not far
    f = 2.0 * 3072 * 6144 * 4096
    t, far = curve.table().time(f, {"m": 3072, "n": 6144, "k": 4096})
    assert 100e12 < f / t < 200e12 and not far
    t, far = curve.table().time(2.0 * 65536 * 8192 * 4096, {"m": 65536, "n": 8192, "k": 4096})
    assert far  # beyond the measured box: the edge's rate, flagged
    _, far = curve.table().time(f, {"m": 3072, "n": 6001, "k": 4096})
    assert far  # an odd n: no measured shape of that alignment
    assert isinstance(GemmTableCurve.model_validate(curve.model_dump()), GemmTableCurve)


def test_backward_gemm_runs_its_dgrad_and_wgrad_shapes() -> None:
    dgrad, wgrad = transposed_gemms({"m": 8, "n": 3, "k": 5})
    assert dgrad == {"m": 8, "n": 5, "k": 3} and wgrad == {"m": 5, "n": 3, "k": 8}
    assert transposed_gemms({"batch": 4, "m": 8, "n": 3, "k": 5})[0]["batch"] == 4


@needs_data
def test_import_writes_samples_fits_provenance_and_licence(tmp_path: Path) -> None:
    src = DATA / "eleutherai-cookbook"
    small = tmp_path / "eleutherai-cookbook"  # the real files, cut short (a fast test)
    for rel in ("LICENSE", "gemm_data/mm/m_sweep/a100.out", "transformer_data/h_sweep.out"):
        (small / rel).parent.mkdir(parents=True, exist_ok=True)
        lines = (src / rel).read_text(errors="replace").splitlines()
        (small / rel).write_text("\n".join(lines if rel == "LICENSE" else lines[:1500]) + "\n")
    out = tmp_path / "p" / "a100.json"
    prof = import_published("eleutherai", small, "a100", out)
    again = load_profile(out)
    assert again.metadata.measurement == "published" and again.metadata.schema_version == 3
    (src,) = again.metadata.sources
    assert src.dataset == "eleutherai-cookbook" and src.commit.startswith("fb3e361") and src.licence == "Apache-2.0"
    assert (out.parent / "licences" / "eleutherai-cookbook-LICENSE").exists()
    fit = prof.compute_fit("gemm", "fp16", "fwd", "mm")
    assert fit is not None and fit.curve.kind == "gemm_table" and fit.quality.heldout == "10-fold"
    assert fit.quality.heldout_median_rel_err is not None and fit.quality.heldout_median_rel_err < 0.1
    with pytest.raises(PublishedImportError, match="--device"):
        import_published("eleutherai", DATA / "eleutherai-cookbook", "h100", tmp_path / "x.json")
    with pytest.raises(PublishedImportError, match="SOURCE"):
        import_published("nope", DATA / "vidur", "a100", tmp_path / "y.json")


def test_shipped_profiles_say_whose_measurement_they_are() -> None:
    for name, datasets in (("a100-sxm-80gb", {"vidur", "eleutherai-cookbook"}), ("h100-sxm", {"vidur"})):
        prof = load_cost_model(name).profile
        assert prof.metadata.measurement == "published"
        assert {s.dataset for s in prof.metadata.sources} == datasets
        for s in prof.metadata.sources:
            assert s.licence_file and (profiles_dir() / s.licence_file).exists()


def test_auto_picks_the_profile_of_the_gpu_else_the_nearest_else_spec() -> None:
    a100, h100, h200 = gpu("a100-sxm-80gb"), gpu("h100-sxm"), gpu("h200-sxm")
    assert shipped_for("a100-sxm-80gb", profiles_dir()).stem == "a100-sxm-80gb"
    m = resolve("auto", a100)
    assert isinstance(m, CalibratedCostModel) and m.name == "a100-sxm-80gb" and "published" in m.note
    assert resolve("auto", h100).name == "h100-sxm"
    near = resolve("auto", h200)
    assert isinstance(near, NearestDeviceCostModel) and "h100-sxm" in near.name
    k = gemm("g", 8192, 8192, 8192, 2, "bf16")
    assert near.kernel_time(k, h200).provenance == "spec"
    assert isinstance(resolve("auto", gpu("cpu-host")), (CalibratedCostModel, SpecRoofline))
    assert isinstance(resolve("spec", a100), SpecRoofline)


def test_a100_prices_gemms_fitted_and_uncovered_kernels_at_scaled_spec() -> None:
    a100 = gpu("a100-sxm-80gb")
    m = resolve("auto", a100)
    k = gemm("mlp_up", 32768, 9216, 2304, 2, "fp16")
    fwd = m.kernel_time(k, a100)
    bwd = m.kernel_time(Kernel("gemm", 2 * k.flops, 2 * k.bytes_moved, "fp16", "mlp_up_bwd", k.shape), a100)
    assert fwd.provenance in ("measured", "fitted") and bwd.provenance == "fitted"
    rate = k.flops / fwd.time_s
    assert 0.55 * 312e12 < rate < 0.85 * 312e12  # published A100 GEMMs: 64-76% of peak here
    flash = Kernel("attention", 1e12, 1e8, "bf16", "flash_attn_bwd")
    assert m.kernel_time(flash, a100).provenance == "spec"
    bf16 = m.kernel_time(gemm("mlp_up", 32768, 9216, 2304, 2, "bf16"), a100)
    assert bf16.time_s == pytest.approx(fwd.time_s)  # same tensor-core rate (datasheet)


def test_a100_and_h100_scenarios_are_mostly_measured_or_fitted() -> None:
    from dcsim.app.scenario import load_scenario
    from dcsim.app.simulate import simulate

    root = Path(__file__).resolve().parents[1] / "examples"
    for f in ("llama3-8b-8xa100.yaml", "llama3-70b-64xh100.yaml"):
        r = simulate(load_scenario(root / f, ["run.calibration=auto"]))
        p = r.provenance
        assert p.calibration in ("a100-sxm-80gb", "h100-sxm"), (f, r.name)
        assert p.measured + p.fitted >= 0.5 and "published measurement" in p.note
        assert math.isfinite(r.iteration_s)


def test_a_local_measurement_outranks_a_published_one(tmp_path: Path) -> None:
    from dcsim.profile import save_profile

    published = load_cost_model("h100-sxm").profile
    save_profile(published, tmp_path / "a-published.json", indent=None)
    local = published.model_copy(deep=True)
    local.metadata.measurement = "local"
    local.metadata.sources = []
    save_profile(local, tmp_path / "z-local.json", indent=None)
    assert shipped_for("h100-sxm", tmp_path).name == "z-local.json"
    assert shipped_for("a100-sxm-80gb", tmp_path) is None
