"""`dcsim topo show|draw` and `dcsim collective`: look at a fabric, price one collective.

Mounted by dcsim/cli.py (`app.add_typer(topo_app, name="topo")`, `app.command("collective")(
collective_cmd)`). Bad input prints one line on stderr and exits 2, never a traceback.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from dcsim import units
from dcsim.app.console import stderr_console, stdout_console
from dcsim.app.rank_order import full_bisection_domains
from dcsim.files import IMAGE_SUFFIXES, atomic_path, check_output_file
from dcsim.cluster import Cluster
from dcsim.errors import InputError

topo_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Inspect cluster topologies (presets or YAML files).")
_out = stdout_console()
_err = stderr_console()


def _fail(message: str) -> None:
    raise InputError(message)


def _build(preset: str, nodes: Optional[int], fabric: dict[str, Any] | None = None) -> Cluster:
    from topologies import build_cluster
    if nodes is not None and nodes < 1:
        _fail(f"--nodes must be at least 1, got {nodes}")
    return build_cluster(preset, nodes=nodes, fabric=fabric or None)


def topology_facts(c: Cluster) -> dict[str, Any]:
    """Counts, per-tier oversubscription and bisection bandwidth of a built cluster."""
    g = c.graph
    kinds: dict[str, int] = defaultdict(int)
    for _, d in g.nodes(data=True):
        kinds[d["kind"]] += 1
    tier_bw: dict[str, float] = defaultdict(float)
    tier_links: dict[str, int] = defaultdict(int)
    for _, _, d in g.edges(data=True):
        tier_bw[d["tier"]] += d["bw_bytes_per_s"]
        tier_links[d["tier"]] += d.get("links", 1)
    summ = c.description.get("fabric_summary") or {}
    over = {}
    chain = [("leaf", "nic-leaf", "leaf-spine"), ("spine", "leaf-spine", "spine-core")]
    for name, below, above in chain:
        if tier_bw.get(below) and tier_bw.get(above):
            down = tier_bw[below] if name == "leaf" else tier_bw[below]
            over[name] = round(down / tier_bw[above], 3)
    server = c.description["server"]
    return {
        "name": c.name,
        "gpu": c.gpu_spec.name,
        "nodes": c.n_nodes,
        "gpus": c.n_gpus,
        "gpus_per_node": c.gpus_per_node,
        "nics_per_node": server["nics"],
        "nic": server["nic"],
        "topology": c.description["fabric"]["topology"],
        "tiers": summ.get("tiers", 0),
        "switches": {k: kinds.get(k, 0) for k in ("leaf", "spine", "core")},
        "nvswitch_domains": kinds.get("nvswitch", 0),
        "storage_servers": kinds.get("storage", 0),
        "links": dict(tier_links),
        "oversubscription": over,
        "bisection_bytes_per_s": summ.get("bisection_bytes_per_s", 0.0),
        "bisection_per_gpu_bytes_per_s": summ.get("bisection_bytes_per_s", 0.0) / max(c.n_gpus / 2, 1),
        "full_bisection_domains": _domain_facts(c),
    }


def _domain_facts(c: Cluster) -> dict[str, Any] | None:
    """The groups of GPUs below the lowest oversubscribed tier (what rank_order auto places
    pipelines in); None when every tier has full bisection."""
    domains = full_bisection_domains(c)
    if domains is None:
        return None
    sizes = domains.sizes()
    return {"kind": domains.name, "count": len(sizes), "tapered_tier": str(domains.tier),
            "ratio": domains.ratio, "gpus_min": min(sizes.values()), "gpus_max": max(sizes.values())}


@topo_app.command("show")
def show(preset: str = typer.Argument(..., help="preset name or path to a YAML file"),
         nodes: Optional[int] = typer.Option(None, "--nodes", help="number of nodes (servers)"),
         oversubscription: Optional[str] = typer.Option(None, help="leaf down:up, e.g. 2 or 3:1"),
         topology: Optional[str] = typer.Option(None, help="fat-tree | clos | rail-optimized"),
         as_json: bool = typer.Option(False, "--json", help="one JSON object instead of a table")) -> None:
    """Counts, bisection bandwidth and oversubscription per tier of a topology."""
    fabric = {k: v for k, v in (("oversubscription", oversubscription), ("topology", topology)) if v}
    c = _build(preset, nodes, fabric)
    f = topology_facts(c)
    if as_json:
        print(json.dumps(f))
        return
    t = Table(title=f"{f['name']}: {f['gpus']} x {f['gpu']}", header_style="bold")
    t.add_column("")
    t.add_column("value", justify="right")
    t.add_row("nodes x GPUs", f"{f['nodes']} x {f['gpus_per_node']}")
    t.add_row("NICs per node", f"{f['nics_per_node']} x {f['nic']}")
    t.add_row("fabric", f"{f['topology']}, {f['tiers']} tier(s)")
    for k, v in f["switches"].items():
        if v:
            t.add_row(f"{k} switches", str(v))
    for k, v in f["oversubscription"].items():
        t.add_row(f"{k} oversubscription (down:up)", f"{v:g}:1")
    dom = f["full_bisection_domains"]
    if dom is not None:
        span = (f"{dom['gpus_max']:,}" if dom["gpus_min"] == dom["gpus_max"]
                else f"{dom['gpus_min']:,}-{dom['gpus_max']:,}")
        t.add_row("full-bisection domains", f"{dom['count']:,} {dom['kind']}s of {span} GPUs")
    t.add_row("bisection bandwidth", units.format_bandwidth(f["bisection_bytes_per_s"]))
    t.add_row("  per GPU (half the GPUs)", units.format_bandwidth(f["bisection_per_gpu_bytes_per_s"]))
    for k, v in f["links"].items():
        t.add_row(f"{k} links", f"{v:,}")
    _out.print(t)


@topo_app.command("draw")
def draw(preset: str = typer.Argument(..., help="preset name or path to a YAML file"),
         out: Path = typer.Option(..., "--out", help="image file to write (.png, .svg, .pdf)"),
         nodes: Optional[int] = typer.Option(None, "--nodes", help="number of nodes (servers)")) -> None:
    """Draw the fabric as layers (servers, leaves, spines, cores); grouped by tier when large."""
    from dcsim.app.topo_draw import draw_fabric

    check_output_file(out, "--out", IMAGE_SUFFIXES)
    c = _build(preset, nodes)
    f = topology_facts(c)
    title = (f"{c.name}: {c.n_gpus} GPUs, {f['topology']} {f['tiers']} tier(s), bisection "
             f"{units.format_bandwidth(f['bisection_bytes_per_s'])}")
    with atomic_path(out, "--out") as tmp:
        draw_fabric(c, tmp, title, out.suffix.lower().lstrip("."))
    _out.print(f"wrote {out}")


def collective_cmd(
    op: str = typer.Argument(..., help="all_reduce | all_gather | reduce_scatter | all_to_all | broadcast | send_recv"),
    preset: str = typer.Option("dgx-h100", "--preset", help="cluster preset or YAML file"),
    gpus: int = typer.Option(8, "--gpus", help="GPUs in the group (ranks 0..N-1)"),
    size: str = typer.Option("1 GiB", "--size", help="per-rank buffer as nccl-tests defines it"),
    network: str = typer.Option("analytical", "--network", help="analytical | flow"),
    algorithm: str = typer.Option("auto", "--algorithm", help="auto | ring | tree | hierarchical | direct | nvls"),
    routing: str = typer.Option("auto", "--routing",
                                help="flow routing: auto (dmodk on InfiniBand, else ecmp) | ecmp | dmodk | spray"),
    nodes: Optional[int] = typer.Option(None, "--nodes", help="cluster size (default: just enough)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """Time and bandwidth (algbw, busbw as nccl-tests defines them) of one collective."""
    from dcsim.collectives import ALGORITHMS, OPS, CollectiveCall
    from dcsim.network.analytical import analytical_time
    from topologies import resolve_spec

    if op not in OPS:
        _fail(f"OP: got {op!r}; use one of {', '.join(OPS)}")
    if algorithm not in ALGORITHMS:
        _fail(f"--algorithm: got {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if network not in ("analytical", "flow"):
        _fail(f"--network must be analytical or flow, got {network!r}")
    if routing not in ("auto", "ecmp", "dmodk", "spray"):
        _fail(f"--routing must be auto, ecmp, dmodk or spray, got {routing!r}")
    try:
        size_bytes = units.parse_bytes(size)
    except units.UnitError as exc:
        _fail(f"--size: {exc}")
    if gpus < 1:
        _fail(f"--gpus must be >= 1, got {gpus}")
    spec = resolve_spec(preset)
    need = int(math.ceil(gpus / spec.server.gpus))
    if nodes is not None and nodes < need:
        _fail(f"--nodes {nodes} holds {nodes * spec.server.gpus} GPUs; --gpus asks for {gpus}")
    c = _build(preset, nodes or need)
    try:  # the call's own checks (op, algorithm for this op, size): input, not a bug
        call = CollectiveCall(op, (tuple(range(gpus)),), size_bytes, algorithm)
    except ValueError as exc:
        raise InputError(f"--algorithm {algorithm} / OP {op}: {exc}") from None
    try:
        r = analytical_time(c, call)
    except ValueError as exc:
        if algorithm == "auto":
            raise  # with the automatic choice a refusal is a bug, not the user's input
        raise InputError(f"--algorithm {algorithm}: {exc}") from None
    t = r.time_s
    if network == "flow":
        import simpy
        from dcsim.network.flow_backend import FlowBackend
        from dcsim.network.routing import resolve_routing
        env = simpy.Environment()
        env.run(FlowBackend(env, c, routing=resolve_routing(routing, c)).run(call))
        t = env.now
    from dcsim.collectives import bus_factor
    algbw = size_bytes / t if t > 0 else 0.0
    res = {"op": op, "preset": c.name, "gpus": gpus, "size_bytes": size_bytes, "network": network,
           "time_s": t, "algbw_GBps": algbw / 1e9, "busbw_GBps": algbw * bus_factor(op, gpus) / 1e9,
           "algorithm": r.algorithm, "protocol": r.protocol, "bottleneck": r.bottleneck}
    if as_json:
        print(json.dumps(res))
        return
    tab = Table(title=f"{op} of {units.format_bytes(size_bytes)} over {gpus} GPUs ({c.name}, {network})",
                header_style="bold")
    tab.add_column("")
    tab.add_column("value", justify="right")
    tab.add_row("time", units.format_duration(t))
    tab.add_row("algbw", f"{res['algbw_GBps']:.2f} GB/s")
    tab.add_row("busbw", f"{res['busbw_GBps']:.2f} GB/s")
    tab.add_row("algorithm / protocol", f"{r.algorithm} / {r.protocol}")
    tab.add_row("bottleneck", r.bottleneck)
    _out.print(tab)
