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
from rich.console import Console
from rich.table import Table

from dcsim import units
from dcsim.cluster import Cluster

topo_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Inspect cluster topologies (presets or YAML files).")
_out = Console()
_err = Console(stderr=True)

DRAW_FULL_LIMIT = 300  # servers + switches drawn one by one up to this; aggregated beyond


def _fail(message: str) -> None:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _build(preset: str, nodes: Optional[int], fabric: dict[str, Any] | None = None) -> Cluster:
    from topologies import TopologyError, build_cluster
    try:
        return build_cluster(preset, nodes=nodes, fabric=fabric or None)
    except (TopologyError, ValueError) as exc:
        _fail(str(exc))
        raise  # unreachable


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
    }


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
    t.add_row("bisection bandwidth", units.format_bandwidth(f["bisection_bytes_per_s"]))
    t.add_row("  per GPU (half the GPUs)", units.format_bandwidth(f["bisection_per_gpu_bytes_per_s"]))
    for k, v in f["links"].items():
        t.add_row(f"{k} links", f"{v:,}")
    _out.print(t)


def _natural(s: str) -> tuple:
    import re
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


def _view(c: Cluster) -> tuple[dict, dict, dict]:
    """Nodes to draw (servers collapsed; groups collapsed when large): count, level, edges."""
    g = c.graph
    level = {"core": 3, "spine": 2, "leaf": 1}
    key: dict[Any, str] = {}
    for n, d in g.nodes(data=True):
        k = d["kind"]
        key[n] = f"server{d['server']}" if k in ("gpu", "nic", "nvswitch") else str(n)
    if len(set(key.values())) > DRAW_FULL_LIMIT:
        leaves = [n for n, d in g.nodes(data=True) if d["kind"] == "leaf"]
        chunk = max(1, int(math.ceil(len(leaves) / 16)))

        def leaf_group(leaf) -> str:
            d = g.nodes[leaf]
            return f"pod {d['pod']}" if "pod" in d else f"{d['index'] // chunk * chunk}+"

        server_group: dict[int, str] = {}
        for n, d in g.nodes(data=True):
            if d["kind"] == "nic" and d["local"] == 0:
                leaf = next(nb for nb in g[n] if g.nodes[nb]["kind"] == "leaf") if any(
                    g.nodes[nb]["kind"] == "leaf" for nb in g[n]) else None
                server_group[d["server"]] = f"servers @ leaves {leaf_group(leaf)}" if leaf else "servers"
        for n, d in g.nodes(data=True):
            k = d["kind"]
            if k in ("gpu", "nic", "nvswitch"):
                key[n] = server_group.get(d["server"], "servers")
            elif k == "leaf":
                key[n] = f"leaves {leaf_group(n)}"
            elif k == "spine":
                key[n] = f"spines pod {d['pod']}" if "pod" in d else "spines"
            elif k == "core":
                key[n] = "cores"
            elif k == "storage":
                key[n] = "storage"
    count: dict[str, int] = defaultdict(int)
    lev: dict[str, int] = {}
    for n, d in g.nodes(data=True):
        if d["kind"] in level or d["kind"] in ("storage", "nvswitch") or (
                d["kind"] == "gpu" and c.gpus_per_node == 1):
            count[key[n]] += 1
        lev[key[n]] = level.get(d["kind"], 0)
    edges: dict[tuple[str, str], float] = defaultdict(float)
    for u, v, d in g.edges(data=True):
        a, b = key[u], key[v]
        if a != b:
            edges[tuple(sorted((a, b)))] += d["bw_bytes_per_s"]
    return count, lev, edges


@topo_app.command("draw")
def draw(preset: str = typer.Argument(..., help="preset name or path to a YAML file"),
         out: Path = typer.Option(..., "--out", help="PNG file to write"),
         nodes: Optional[int] = typer.Option(None, "--nodes", help="number of nodes (servers)")) -> None:
    """Draw the fabric as layers (servers, leaves, spines, cores); aggregated when large."""
    c = _build(preset, nodes)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count, lev, edges = _view(c)
    by_level: dict[int, list[str]] = defaultdict(list)
    for n in sorted(lev, key=lambda s: (lev[s], _natural(s))):
        by_level[lev[n]].append(n)
    pos = {}
    for lv, names in by_level.items():
        for i, n in enumerate(names):
            pos[n] = ((i + 0.5) / len(names), lv)
    fig, ax = plt.subplots(figsize=(12, 6))
    top = max(edges.values()) if edges else 1.0
    for (a, b), bw in edges.items():
        (x1, y1), (x2, y2) = pos[a], pos[b]
        ax.plot([x1, x2], [y1, y2], color="0.6", lw=0.3 + 2.0 * bw / top, alpha=0.6, zorder=1)
    colors = {0: "tab:green", 1: "tab:blue", 2: "tab:orange", 3: "tab:red"}
    for n, (x, y) in pos.items():
        ax.scatter([x], [y], s=30, color=colors.get(lev[n], "k"), zorder=2)
        if len(pos) <= 60 or count[n] > 1 and len(by_level[lev[n]]) <= 40:
            label = n if count[n] <= 1 else f"{n} (x{count[n]})"
            ax.annotate(label, (x, y), fontsize=6, ha="center", va="bottom", rotation=30)
    ax.set_yticks([0, 1, 2, 3], ["servers", "leaves", "spines", "cores"])
    ax.set_xticks([])
    f = topology_facts(c)
    ax.set_title(f"{c.name}: {c.n_gpus} GPUs, {f['topology']} {f['tiers']} tier(s), bisection "
                 f"{units.format_bandwidth(f['bisection_bytes_per_s'])}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
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
    from dcsim.collectives import CollectiveCall
    from dcsim.network.analytical import analytical_time
    from topologies import TopologyError, resolve_spec

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
    try:
        spec = resolve_spec(preset)
    except (TopologyError, ValueError) as exc:
        _fail(str(exc))
    need = int(math.ceil(gpus / spec.server.gpus))
    if nodes is not None and nodes < need:
        _fail(f"--nodes {nodes} holds {nodes * spec.server.gpus} GPUs; --gpus asks for {gpus}")
    c = _build(preset, nodes or need)
    try:
        call = CollectiveCall(op, (tuple(range(gpus)),), size_bytes, algorithm)
        r = analytical_time(c, call)
        t = r.time_s
        if network == "flow":
            import simpy
            from dcsim.network.flow_backend import FlowBackend
            from dcsim.network.routing import resolve_routing
            env = simpy.Environment()
            env.run(FlowBackend(env, c, routing=resolve_routing(routing, c)).run(call))
            t = env.now
    except ValueError as exc:
        _fail(str(exc))
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
