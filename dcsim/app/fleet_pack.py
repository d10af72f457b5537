"""`dcsim fleet pack`: the ATC'23 GPU-fragmentation experiment (workload inflation) on a trace.

    dcsim fleet pack --trace openb_pod_list_default.csv --nodes openb_node_list_gpu_node.csv \\
        --policy fgd --seed 42 [--json]

`pack_cmd` is a plain typer command function; `dcsim/app/fleet.py` mounts it on the fleet group.
Bad input exits 2 with one line naming the field; Ctrl-C exits 130 and prints nothing on stdout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

from dcsim.app.console import terminal_progress
from dcsim.errors import InputError
from dcsim.fleet.packing import PackResult, policy_names, read_nodes, read_pods, run_pack

_POINTS = ("25", "50", "75", "90", "100", "110", "120", "130")


def _fail(message: str, code: int = 2) -> NoReturn:
    """One red line on stderr and the exit code (2: the user's input is wrong)."""
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _table(r: PackResult) -> Table:
    """Allocation and fragmentation at a few arrived loads, for the terminal."""
    t = Table(title=f"{r.policy.value}, seed {r.seed}: {r.nodes} nodes, {r.gpus} GPUs, "
                    f"{r.pods_placed:,} of {r.pods_arrived:,} pods placed", header_style="bold")
    for col in ("arrived GPU request", "GPU allocated", "fragmentation", "fragmented GPUs"):
        t.add_column(col, justify="right")
    for x in _POINTS:
        t.add_row(f"{x}%", f"{r.allocation_pct_by_arrived_pct[x]:.2f}%",
                  f"{r.fragmentation_pct_by_arrived_pct[x]:.2f}%",
                  f"{r.fragmentation_gpus_by_arrived_pct[x]:.1f}")
    return t


def pack_cmd(
    trace: Path = typer.Option(..., "--trace", help="pod list CSV (openb_pod_list_*.csv)"),
    nodes: Path = typer.Option(..., "--nodes", help="node list CSV (openb_node_list_*.csv)"),
    policy: str = typer.Option("fgd", "--policy",
                               help=f"placement policy: {', '.join(policy_names())}"),
    seed: int = typer.Option(42, "--seed", help="seed of the pod draw and of tie-breaks"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """GPU allocation and fragmentation as the load grows to 130% (Weng et al., ATC'23)."""
    if policy not in policy_names():
        _fail(f"--policy: unknown {policy!r}; one of {', '.join(policy_names())}")
    try:
        node_list = read_nodes(nodes)
        pods = read_pods(trace, {n.gpu_model for n in node_list})
        with terminal_progress(Console(stderr=True), "packing", "pods") as progress:
            result = run_pack(node_list, pods, policy, seed, progress=progress)
    except (InputError, FileNotFoundError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _fail("interrupted; nothing written", code=130)
    if json_out:
        typer.echo(json.dumps(result.to_json_dict()))
    else:
        Console().print(_table(result))

