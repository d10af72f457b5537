"""`dcsim fleet pack`: the JSON contract, same seed same result, and one clear line (exit 2) for
every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from dcsim.app.fleet_pack import pack_cmd
from dcsim.fleet.packing import policy_names

NODE_HEADER = "sn,cpu_milli,memory_mib,gpu,model\n"
POD_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,creation_time\n"


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("pack")(pack_cmd)

    @app.callback()
    def _group() -> None:
        """fleet"""

    return app


def write_cluster(tmp: Path, pods: int = 160) -> tuple[Path, Path]:
    """A small openb-like node list (8-GPU G2 and 2-GPU T4) and pod list with every pod kind."""
    nodes = tmp / "nodes.csv"
    nodes.write_text(NODE_HEADER + "".join(
        f"node-{i},{96000 if i % 2 else 104000},{393216 if i % 2 else 524288},"
        f"{8 if i % 2 else 2},{'G2' if i % 2 else 'T4'}\n" for i in range(12)))
    rng = np.random.default_rng(7)
    rows = []
    for i in range(pods):
        kind = rng.integers(5)
        gpus, milli = [(0, 0), (1, int(rng.choice([250, 460, 500]))), (1, 1000), (2, 1000),
                       (8, 1000)][kind]
        spec = "T4" if kind == 1 and i % 7 == 0 else ""
        rows.append(f"pod-{i},{int(rng.integers(1, 16)) * 1000},{int(rng.integers(1, 32)) * 1024},"
                    f"{gpus},{milli},{spec},{int(rng.integers(0, 10**6))}\n")
    trace = tmp / "pods.csv"
    trace.write_text(POD_HEADER + "".join(rows))
    return trace, nodes


def run(args: list[str]):
    return CliRunner().invoke(_app(), ["pack", *args])


@pytest.mark.parametrize("policy", policy_names())
def test_json_contract(tmp_path: Path, policy: str) -> None:
    trace, nodes = write_cluster(tmp_path)
    r = run(["--trace", str(trace), "--nodes", str(nodes), "--policy", policy, "--seed", "3",
             "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["policy"] == policy and out["seed"] == 3
    keys = [str(x) for x in range(131)]
    for name in ("allocation_pct_by_arrived_pct", "fragmentation_pct_by_arrived_pct",
                 "fragmentation_gpus_by_arrived_pct"):
        assert list(out[name]) == keys
    alloc = [out["allocation_pct_by_arrived_pct"][k] for k in keys]
    assert alloc[0] == 0.0
    assert all(b >= a for a, b in zip(alloc, alloc[1:], strict=False)), "no departures: never decreases"
    assert all(a <= int(k) + 1e-9 for a, k in zip(alloc, range(131), strict=True)), "allocated <= arrived"
    assert 0 < alloc[-1] <= 100
    assert all(0 <= v <= 100 for v in out["fragmentation_pct_by_arrived_pct"].values())
    assert 0 < out["pods_placed"] <= out["pods_arrived"]


def test_same_seed_same_result(tmp_path: Path) -> None:
    trace, nodes = write_cluster(tmp_path)
    args = ["--trace", str(trace), "--nodes", str(nodes), "--policy", "fgd", "--json"]
    first, again = run([*args, "--seed", "5"]), run([*args, "--seed", "5"])
    other = run([*args, "--seed", "6"])
    assert first.stdout == again.stdout
    assert json.loads(first.stdout) != json.loads(other.stdout)


def test_table_on_the_terminal(tmp_path: Path) -> None:
    trace, nodes = write_cluster(tmp_path)
    r = run(["--trace", str(trace), "--nodes", str(nodes), "--policy", "best-fit"])
    assert r.exit_code == 0 and "GPU allocated" in r.stdout and "130%" in r.stdout


def _bad(tmp_path: Path, edit_trace: str | None = None, edit_nodes: str | None = None,
         policy: str = "fgd") -> str:
    trace, nodes = write_cluster(tmp_path)
    if edit_trace is not None:
        trace.write_text(edit_trace)
    if edit_nodes is not None:
        nodes.write_text(edit_nodes)
    r = run(["--trace", str(trace), "--nodes", str(nodes), "--policy", policy])
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and "Traceback" not in r.output
    return r.output


@pytest.mark.parametrize("edit_trace, edit_nodes, policy, says", [
    (None, None, "tetris", "--policy: unknown 'tetris'"),
    ("name,cpu_milli,memory_mib,num_gpu\np,1,1,1\n", None, "fgd", "missing column 'gpu_milli'"),
    (POD_HEADER, None, "fgd", "has no rows"),
    ("", None, "fgd", "not a readable CSV"),
    (POD_HEADER + "p,-5,1,1,500,,0\n", None, "fgd", "column 'cpu_milli' row 1"),
    (POD_HEADER + "p,5,1,1,1500,,0\n", None, "fgd", "column 'gpu_milli' row 1"),
    (POD_HEADER + "p,5,1,1,0,,0\n", None, "fgd", "when num_gpu > 0"),
    (POD_HEADER + "p,5,1,1,500,A100,0\n", None, "fgd", "unknown GPU type 'A100'"),
    (POD_HEADER + "p,5,1,0,0,,0\n", None, "fgd", "no pod asks for a GPU"),
    (None, "sn,cpu_milli,memory_mib,model\nn,1,1,G2\n", "fgd", "nodes: missing column 'gpu'"),
    (None, NODE_HEADER + "n,1000,1024,x,G2\n", "fgd", "column 'gpu' row 1"),
])
def test_bad_input_one_line_exit_2(tmp_path: Path, edit_trace: str | None,
                                   edit_nodes: str | None, policy: str, says: str) -> None:
    assert says in _bad(tmp_path, edit_trace, edit_nodes, policy)


def test_missing_file(tmp_path: Path) -> None:
    trace, nodes = write_cluster(tmp_path)
    r = run(["--trace", str(tmp_path / "nope.csv"), "--nodes", str(nodes)])
    assert r.exit_code == 2 and "trace: no such file" in r.output


def test_ctrl_c_prints_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt mid-run exits 130 with one line on stderr and no partial JSON on stdout."""
    import dcsim.app.fleet_pack as module

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "run_pack", interrupted)
    trace, nodes = write_cluster(tmp_path)
    r = run(["--trace", str(trace), "--nodes", str(nodes), "--json"])
    assert r.exit_code == 130
    assert r.stdout == "" and "interrupted" in r.stderr


def test_mounted_as_dcsim_fleet_pack(tmp_path: Path) -> None:
    """The real front door: `dcsim fleet pack` is this command."""
    from dcsim.app.cli import app

    trace, nodes = write_cluster(tmp_path)
    r = CliRunner().invoke(app, ["fleet", "pack", "--trace", str(trace), "--nodes", str(nodes),
                                 "--policy", "gpu-packing", "--seed", "9", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["policy"] == "gpu-packing"
