"""`topo show|draw` and `collective`: output, JSON, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dcsim.app.cli import app  # the real front door, with its error policy (dcsim/guard.py)

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, list(args))


def test_show_table_and_json():
    r = _run("topo", "show", "dgx-h100", "--nodes", "32")
    assert r.exit_code == 0 and "bisection" in r.output and "leaf switches" in r.output
    r = _run("topo", "show", "dgx-h100-superpod", "--nodes", "2048", "--json")
    f = json.loads(r.output)
    assert f["gpus"] == 16384 and f["tiers"] == 3 and f["oversubscription"]["leaf"] == 1.0


def test_show_file(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("gpu: a100-sxm-80gb\nnic: ib-hdr-200\nhost_link: pcie4\nnodes: 2\n")
    r = _run("topo", "show", str(p), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["gpus"] == 16


def test_draw_writes_png(tmp_path):
    out = tmp_path / "f.png"
    r = _run("topo", "draw", "dgx-h100", "--nodes", "8", "--out", str(out))
    assert r.exit_code == 0 and out.stat().st_size > 1000


def test_collective_json():
    r = _run("collective", "all_reduce", "--preset", "dgx-h100", "--gpus", "8", "--size", "1 GiB", "--json")
    assert r.exit_code == 0
    d = json.loads(r.output)
    assert d["busbw_GBps"] == pytest.approx(d["algbw_GBps"] * 2 * 7 / 8)
    assert d["time_s"] > 0
    r = _run("collective", "all_gather", "--gpus", "16", "--size", "64MiB", "--network", "flow", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["network"] == "flow"


@pytest.mark.parametrize("args, words", [
    (("collective", "all_reduce", "--preset", "dgx-zzz"), "unknown preset"),
    (("collective", "all_reduce", "--size", "lots"), "--size"),
    (("collective", "allreduce"), "OP: got 'allreduce'; use one of all_reduce"),
    (("collective", "all_reduce", "--network", "packet"), "--network"),
    (("topo", "show", "dgx-h100", "--nodes", "0"), "nodes"),
    (("topo", "show", "nope"), "unknown preset"),
])
def test_bad_input_one_line_exit_2(args, words):
    r = _run(*args)
    assert r.exit_code == 2
    assert words in r.output
    assert "Traceback" not in r.output and r.output.strip().count("\n") == 0


def test_k_odd_is_a_clear_error(tmp_path):
    p = tmp_path / "ft.yaml"
    p.write_text("gpu: h100-sxm\ngpus_per_node: 1\nfabric: {topology: fat-tree, k: 7, tiers: 3}\n")
    r = _run("topo", "show", str(p))
    assert r.exit_code == 2 and "fabric.k" in r.output and "even" in r.output
