"""`calibrate run`: bad input exits 2 with one clear line; a tiny real run measures, fits, resumes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from calibrate.cli import app
from calibrate.device import cpu_count
from dcsim.profile import load_profile

REPO = Path(__file__).resolve().parents[1]


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["run", *args])


def _assert_one_line_error(result, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert "\n" not in err and err.startswith("error: "), err
    assert "Traceback" not in result.output
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--device", "tpu"], ["--device", "cpu, cuda", "tpu"]),
        (["--world-size", "4096"], ["--world-size 4096", "CPU core"]),
        (["--world-size", "0"], ["--world-size"]),
        (["--threads", "999"], ["--threads"]),
        (["--precisions", "fp16"], ["fp16", "fp32 or bf16"]),
        (["--precisions", "fp64"], ["--precisions", "fp64"]),
        (["--ops", "gemm,matmul"], ["--ops", "matmul"]),
        (["--cache", "lukewarm"], ["--cache", "cold or warm"]),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], needles: list[str], tmp_path: Path) -> None:
    _assert_one_line_error(_invoke(*args, "--out", str(tmp_path / "p.json")), *needles)
    assert not (tmp_path / "p.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_exits_2(tmp_path: Path) -> None:
    _assert_one_line_error(_invoke("--device", "cuda", "--out", str(tmp_path / "p.json")), "no CUDA GPU")


def test_unreadable_out_file_is_not_clobbered(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    out.write_text("{not json")
    _assert_one_line_error(_invoke("--ops", "gemm", "--world-size", "1", "--out", str(out)), "cannot be resumed")
    assert out.read_text() == "{not json"


def test_real_process_bad_device_exit_code_and_stderr() -> None:
    r = subprocess.run([sys.executable, "-m", "calibrate.cli", "run", "--device", "tpu"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --device must be one of: cpu, cuda (got 'tpu')"


def test_tiny_real_measurement_and_resume(tmp_path: Path) -> None:
    """Two GEMM shapes (fwd+bwd) and two all-reduce sizes over 2 spawned gloo ranks, then a resume."""
    out = tmp_path / "tiny.json"
    args = ["--quick", "--ops", "gemm,all_reduce", "--max-points", "2", "--no-progress", "--out", str(out)]
    r = _invoke(*args)
    assert r.exit_code == 0, r.output
    p = load_profile(out)
    assert p.metadata.complete and p.metadata.threads >= 1 and p.metadata.backend == "gloo"
    assert len(p.kernels["gemm"]) == 4
    assert {s.direction for s in p.kernels["gemm"]} == {"fwd", "bwd"}
    assert len(p.collectives["all_reduce"]) == 2
    assert all(s.p10_s <= s.median_s <= s.p90_s for s in p.kernels["gemm"] + p.collectives["all_reduce"])
    est = p.op_time("gemm", "fp32", 1e8, 0)
    assert est is not None and est.time_s > 0
    assert p.collective_time("all_reduce", 2, 4096) is not None

    # An interrupted run: drop one GEMM sample and the fits; the rerun measures only that one.
    data = json.loads(out.read_text())
    data["kernels"]["gemm"] = data["kernels"]["gemm"][:3]
    data["compute_fits"], data["collective_fits"] = [], []
    data["metadata"]["complete"] = False
    out.write_text(json.dumps(data))
    r = _invoke(*args)
    assert r.exit_code == 0, r.output
    assert "measured 1 point(s), kept 5" in " ".join(r.stderr.split())
    p = load_profile(out)
    assert p.metadata.complete and len(p.kernels["gemm"]) == 4 and p.compute_fits


@pytest.mark.skipif(cpu_count() < 2, reason="needs 2 cores to ask for 2 threads")
def test_resume_refuses_a_profile_of_another_setup(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    r = _invoke("--quick", "--ops", "softmax", "--max-points", "1", "--world-size", "1", "--threads", "1",
                "--no-progress", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert len(load_profile(out).kernels["softmax"]) == 2
    _assert_one_line_error(
        _invoke("--quick", "--ops", "softmax", "--world-size", "1", "--threads", "2", "--out", str(out)), "threads=1"
    )


def test_interrupted_run_keeps_what_it_measured_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import calibrate.kernels as kernels

    real = kernels.measure_point
    calls = {"n": 0}

    def flaky(*a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(kernels, "measure_point", flaky)
    out = tmp_path / "p.json"
    args = ["--quick", "--ops", "softmax", "--max-points", "2", "--world-size", "1", "--no-progress", "--out", str(out)]
    r = _invoke(*args)
    assert r.exit_code == 130 and "rerun the same command to resume" in r.stderr
    p = load_profile(out)
    assert len(p.kernels["softmax"]) == 2 and not p.metadata.complete and not p.compute_fits

    monkeypatch.setattr(kernels, "measure_point", real)
    r = _invoke(*args)
    assert r.exit_code == 0, r.output
    assert "measured 2 point(s), kept 2" in " ".join(r.stderr.split())
    assert load_profile(out).metadata.complete


def test_failed_collective_ranks_exit_1_and_keep_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import calibrate.collectives as coll
    from dcsim.profile import CollectiveSample

    def broken(points, world_size, backend, threads, cfg, emit, **kw):  # type: ignore[no-untyped-def]
        p = points[0]
        emit(CollectiveSample(key=p.key, op=p.op, world_size=world_size, size_bytes=p.size_bytes, backend=backend,
                              median_s=1e-3, p10_s=1e-3, p90_s=1e-3, repeats=3))
        raise coll.CollectiveRunError("rank 1 exited with code 1 without a report")

    monkeypatch.setattr(coll, "run_spawned", broken)
    out = tmp_path / "p.json"
    r = _invoke("--quick", "--ops", "all_reduce", "--max-points", "3", "--world-size", "2", "--no-progress", "--out", str(out))
    assert r.exit_code == 1
    assert "rank 1 exited" in r.stderr and "Traceback" not in r.output
    p = load_profile(out)
    assert len(p.collectives["all_reduce"]) == 1 and not p.metadata.complete


def test_resume_refuses_mixing_cold_and_warm_timings(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    r = _invoke("--quick", "--ops", "softmax", "--max-points", "1", "--world-size", "1", "--cache", "warm",
                "--no-progress", "--out", str(out))
    assert r.exit_code == 0, r.output
    p = load_profile(out)
    assert p.metadata.cache_flush_bytes == 0 and {s.cache for s in p.kernels["softmax"]} == {"warm"}
    _assert_one_line_error(_invoke("--quick", "--ops", "softmax", "--world-size", "1", "--out", str(out)),
                           "timed warm", "--cache")


def test_framework_overhead_is_one_point_measured_once(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    args = ["--quick", "--ops", "framework", "--world-size", "1", "--no-progress", "--out", str(out)]
    r = _invoke(*args)
    assert r.exit_code == 0, r.output
    assert "measured 1 point(s), kept 0" in " ".join(r.stderr.split())
    fw = load_profile(out).framework
    assert fw is not None and fw.step_bwd_s > 0
    r = _invoke(*args)
    assert r.exit_code == 0 and "measured 0 point(s), kept 1" in " ".join(r.stderr.split())
