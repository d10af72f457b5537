"""The CLI's error policy (dcsim/guard.py) and user-given paths (dcsim/files.py): bad input
is one line and exit 2, Ctrl-C one line and exit 130, a bug keeps its traceback and exits 1;
outputs are written whole or not at all; output for people and for diffs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dcsim.app.cli import app
from dcsim.errors import InputError, PathError, abbreviate
from dcsim.files import atomic_path, atomic_write_text
from tests.conftest import small_scenario

runner = CliRunner()


def _scenario(tmp_path: Path, **over) -> Path:
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(small_scenario(**over)))
    return f


def _one_line_exit_2(res, *words: str) -> None:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_every_domain_error_is_an_input_error() -> None:
    from calibrate.device import CalibrationInputError
    from dcsim.app.scenario import ScenarioError
    from dcsim.hardware import UnknownHardware
    from dcsim.profile import ProfileError
    from dcsim.units import UnitError
    from topologies.errors import TopologyError
    from workloads.kineto import KinetoError
    from workloads.models import ModelError
    from workloads.parallelism import ParallelismError

    from calibrate.published.common import PublishedImportError
    from dcsim.fleet.sources import SourceError
    from dcsim.limits import LimitExceeded
    from dcsim.yamlio import YamlInputError

    for cls in (CalibrationInputError, ScenarioError, UnknownHardware, ProfileError, UnitError,
                YamlInputError, LimitExceeded, SourceError, PublishedImportError,
                TopologyError, KinetoError, ModelError, ParallelismError, PathError):
        assert issubclass(cls, InputError), cls


def test_a_bug_keeps_its_traceback_and_exits_1(tmp_path, monkeypatch) -> None:
    """A ValueError from inside the simulator is a bug, not bad input: no polite line."""
    import dcsim.app.simulate

    def broken(*_a, **_k):
        return max([])  # ValueError: max() arg is an empty sequence

    monkeypatch.setattr(dcsim.app.simulate, "simulate", broken)
    res = runner.invoke(app, ["simulate", str(_scenario(tmp_path))])
    assert res.exit_code == 1
    assert isinstance(res.exception, ValueError) and "empty" in str(res.exception)
    assert "error:" not in res.stderr


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch) -> None:
    import dcsim.app.simulate

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(dcsim.app.simulate, "simulate", interrupted)
    res = runner.invoke(app, ["simulate", str(_scenario(tmp_path))])
    assert res.exit_code == 130
    assert [ln for ln in res.stderr.splitlines() if ln.strip()] == ["interrupted"]


@pytest.mark.parametrize("kind", ["directory", "binary", "missing"])
def test_scenario_paths(tmp_path, kind) -> None:
    target = {"directory": tmp_path, "missing": tmp_path / "nope.yaml",
              "binary": tmp_path / "b.yaml"}[kind]
    if kind == "binary":
        target.write_bytes(b"name: \xff\xfe\n")
    res = runner.invoke(app, ["simulate", str(target)])
    _one_line_exit_2(res, str(target), {"directory": "is a directory", "binary": "not a UTF-8",
                                        "missing": "no such file"}[kind])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_scenario(tmp_path) -> None:
    f = _scenario(tmp_path)
    f.chmod(0)
    _one_line_exit_2(runner.invoke(app, ["simulate", str(f)]), "not readable")


def test_output_paths_checked_before_the_work(tmp_path) -> None:
    sc = str(_scenario(tmp_path))
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    _one_line_exit_2(runner.invoke(app, ["simulate", sc, "--out", str(a_file)]),
                     "--out", "exists and is a file")
    _one_line_exit_2(runner.invoke(app, ["simulate", sc, "--out", str(a_file / "sub")]),
                     "--out", "is a file")
    _one_line_exit_2(runner.invoke(app, ["simulate", sc, "--trace", str(tmp_path)]),
                     "--trace", "is a directory")
    _one_line_exit_2(runner.invoke(app, ["topo", "draw", "dgx-h100", "--out",
                                         str(tmp_path / "x.txt")]),
                     "--out", "unsupported extension '.txt'")
    _one_line_exit_2(runner.invoke(app, ["topo", "draw", "dgx-h100", "--out", str(tmp_path)]),
                     "--out", "is a directory")
    _one_line_exit_2(runner.invoke(app, ["calibrate", "check", "--plot", str(tmp_path / "p.txt")]),
                     "--plot", "unsupported extension")


def test_outputs_are_written_whole_or_not_at_all(tmp_path) -> None:
    target = tmp_path / "deep" / "r.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted mid-write")
    assert not target.exists() and list(target.parent.iterdir()) == []
    atomic_write_text(target, "whole")
    assert target.read_text() == "whole" and list(target.parent.iterdir()) == [target]


def test_out_and_trace_written(tmp_path) -> None:
    res = runner.invoke(app, ["simulate", str(_scenario(tmp_path)), "--out", str(tmp_path / "o"),
                              "--trace", str(tmp_path / "t" / "trace.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "o" / "result.json").read_text())["iteration_s"] > 0
    assert json.loads((tmp_path / "t" / "trace.json").read_text())["traceEvents"]
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["trace.json"]


def test_flags_are_named_as_flags(tmp_path) -> None:
    _one_line_exit_2(runner.invoke(app, ["validate", "--network", "foo"]), "--network", "'foo'")
    assert "run.network" not in runner.invoke(app, ["validate", "--network", "foo"]).stderr
    res = runner.invoke(app, ["simulate", str(_scenario(tmp_path)), "--calibration", "nope"])
    _one_line_exit_2(res, "--calibration", "unknown profile 'nope'")
    _one_line_exit_2(runner.invoke(app, ["collective", "all_reduce", "--gpus", "abc"]),
                     "--gpus")
    _one_line_exit_2(runner.invoke(app, ["simulate", str(_scenario(tmp_path)), "--bogus"]),
                     "--bogus")


def test_profile_listing_shows_profiles_only(tmp_path) -> None:
    res = runner.invoke(app, ["simulate", str(_scenario(tmp_path)), "--calibration", "nope"])
    assert ".check" not in res.stderr
    res = runner.invoke(app, ["simulate", str(_scenario(tmp_path)), "--calibration",
                              "cpu-2core.check"])
    _one_line_exit_2(res, "saved `calibrate check` result, not a profile")
    binary = tmp_path / "p.json"
    binary.write_bytes(b"\x00\xff\xfe")
    _one_line_exit_2(runner.invoke(app, ["calibrate", "refit", str(binary)]), "not a UTF-8")


def test_calibration_without_torch_says_how_to_get_it(tmp_path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails as when not installed
    for args in (["calibrate", "run", "--quick", "--out", str(tmp_path / "p.json")],
                 ["calibrate", "check"]):
        _one_line_exit_2(runner.invoke(app, args), "torch", "pip install '.[calibrate]'")


def test_json_splits_the_run_metadata_off(tmp_path) -> None:
    sc = str(_scenario(tmp_path))
    a, b = (runner.invoke(app, ["simulate", sc, "--json", "--no-timing"]).stdout for _ in range(2))
    assert a == b  # identical runs diff clean
    assert "wall_s" not in a and "run_metadata" not in a
    timed = json.loads(runner.invoke(app, ["simulate", sc, "--json"]).stdout)
    assert "wall_s" not in timed
    assert {"wall_s", "host", "dcsim_version"} <= set(timed["run_metadata"])
    table = runner.invoke(app, ["simulate", sc, "--no-timing"]).stdout
    assert "ranks" in table and " ms │" not in table.split("simulated")[1]


def test_piped_tables_keep_their_columns() -> None:
    from dcsim.app.console import PIPE_WIDTH, stdout_console

    assert stdout_console().width == PIPE_WIDTH  # stdout is not a terminal under pytest


def test_big_fabrics_are_drawn_by_tier(tmp_path) -> None:
    from dcsim.app.topo_draw import MAX_BOXES, tier_view
    from topologies import build_cluster

    boxes, edges = tier_view(build_cluster("dgx-h100-superpod", nodes=2048))
    per_tier: dict[int, int] = {}
    for b in boxes:
        per_tier[b.level] = per_tier.get(b.level, 0) + 1
    assert max(per_tier.values()) <= MAX_BOXES and set(per_tier) == {0, 1, 2, 3}
    assert sum(b.count for b in boxes if b.kind == "server") == 2048
    out = tmp_path / "f.png"
    res = runner.invoke(app, ["topo", "draw", "dgx-h100-superpod", "--nodes", "128", "--out",
                              str(out)])
    assert res.exit_code == 0 and out.read_bytes()[:4] == b"\x89PNG"


def test_error_lines_are_short() -> None:
    from dcsim.guard import MAX_MESSAGE_CHARS, one_line

    assert len(one_line("x" * 10**6)) == MAX_MESSAGE_CHARS
    assert one_line("a\nb") == "a b"
    assert len(abbreviate(list(range(10**5)))) <= 60


def test_unpriced_checkpoints_say_why_on_the_terminal(tmp_path) -> None:
    f = _scenario(tmp_path, workload__train={"tokens": "1e12", "checkpoint_every": "30 min"})
    res = runner.invoke(app, ["simulate", str(f), "--no-timing"])
    assert res.exit_code == 0 and "checkpoint writes not priced" in res.stdout
