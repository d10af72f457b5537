"""`dcsim topo draw`: a fabric as layers (servers, leaves, spines, cores) in a PNG.

Small fabrics (up to DETAIL_LIMIT servers and switches) are drawn switch by switch. Larger ones
are drawn by tier: servers grouped by the leaves they plug into (a scalable unit of a
rail-optimized superpod, the servers under one leaf of a fat-tree), leaves by the server group
they serve, spines and cores by the groups below them; at most MAX_BOXES boxes per tier, each
labelled with its count, and one line per pair of boxes labelled with the bandwidth between
them. A 2,048-node fabric reads the same as a 64-node one.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcsim import units
from dcsim.cluster import Cluster

__all__ = ["DETAIL_LIMIT", "MAX_BOXES", "Box", "tier_view", "detail_view", "draw_fabric"]

DETAIL_LIMIT = 48  # servers + switches drawn one by one up to this many
MAX_BOXES = 8      # boxes per tier in the aggregated view
_LEVEL = {"server": 0, "storage": 0, "leaf": 1, "spine": 2, "core": 3}
_TIER_NAMES = ("servers", "leaves", "spines", "cores")


@dataclass
class Box:
    """One drawn item: a server, a switch, or a group of them."""

    name: str
    level: int
    members: list[Any] = field(default_factory=list)
    kind: str = "server"

    @property
    def count(self) -> int:
        return len(self.members)


def _natural(s: str) -> tuple:
    return tuple((0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", s))


def _owner(g: Any, n: Any) -> tuple[str, Any]:
    """(kind, id) of the drawn unit a graph node belongs to: a server holds its GPUs, NICs and
    NVSwitch; a switch or storage server is its own."""
    d = g.nodes[n]
    if d["kind"] in ("gpu", "nic", "nvswitch"):
        return "server", d["server"]
    return d["kind"], n


def _units(c: Cluster) -> dict[tuple[str, Any], list[Any]]:
    """Each drawn unit and its graph nodes."""
    out: dict[tuple[str, Any], list[Any]] = defaultdict(list)
    for n in c.graph.nodes:
        out[_owner(c.graph, n)].append(n)
    return out


def _unit_edges(c: Cluster) -> dict[tuple[Any, Any], float]:
    """Bandwidth between drawn units (links inside a server left out)."""
    g = c.graph
    bw: dict[tuple[Any, Any], float] = defaultdict(float)
    for u, v, d in g.edges(data=True):
        a, b = _owner(g, u), _owner(g, v)
        if a != b:
            bw[(a, b) if str(a) <= str(b) else (b, a)] += d["bw_bytes_per_s"]
    return bw


def detail_view(c: Cluster) -> tuple[list[Box], dict[tuple[str, str], float]]:
    """Every server and switch its own box."""
    boxes = []
    for (kind, ident) in sorted(_units(c), key=lambda u: (u[0], _natural(str(u[1])))):
        name = f"server {ident}" if kind == "server" else str(ident)
        boxes.append(Box(name, _LEVEL.get(kind, 0), [ident], kind))
    name_of = {(bx.kind, bx.members[0]): bx.name for bx in boxes}
    edges = {(name_of[a], name_of[b]): bw for (a, b), bw in _unit_edges(c).items()}
    return boxes, edges


def _cap(groups: list[list[Any]]) -> list[list[Any]]:
    """Merge consecutive groups so that at most MAX_BOXES remain."""
    if len(groups) <= MAX_BOXES:
        return groups
    per = -(-len(groups) // MAX_BOXES)
    return [sum(groups[i:i + per], []) for i in range(0, len(groups), per)]


def _group_by(items: list[Any], key: Any) -> list[list[Any]]:
    """Items with equal keys together, groups in order of first appearance."""
    groups: dict[Any, list[Any]] = {}
    for it in items:
        groups.setdefault(key(it), []).append(it)
    return list(groups.values())


def tier_view(c: Cluster) -> tuple[list[Box], dict[tuple[str, str], float]]:
    """Servers, leaves, spines and cores grouped by what they connect to (see module doc)."""
    unit_bw = _unit_edges(c)
    nbrs: dict[Any, dict[Any, float]] = defaultdict(dict)
    for (a, b), bw in unit_bw.items():
        nbrs[a][b] = nbrs[a].get(b, 0.0) + bw
        nbrs[b][a] = nbrs[b].get(a, 0.0) + bw
    by_kind: dict[str, list[Any]] = defaultdict(list)
    for u in sorted(_units(c), key=lambda u: _natural(str(u[1]))):
        by_kind[u[0]].append(u)
    box_of: dict[Any, str] = {}
    boxes: list[Box] = []

    def add(kind: str, groups: list[list[Any]], label: str) -> None:
        for i, grp in enumerate(_cap(groups)):
            name = f"{label} {i}" if len(groups) > 1 else label
            boxes.append(Box(name, _LEVEL.get(kind, 0), [u[1] for u in grp], kind))
            for u in grp:
                box_of[u] = name

    below_kind = {"server": "leaf", "storage": "leaf"}
    # servers by the set of leaves they plug into; storage beside them
    for kind in ("server", "storage"):
        def leaves_of(u: Any, below: str = below_kind[kind]) -> frozenset:
            return frozenset(n for n in nbrs[u] if n[0] == below)
        add(kind, _group_by(by_kind.get(kind, []), leaves_of),
            "servers" if kind == "server" else "storage")
    # each switch tier by the boxes below it that it connects to
    for kind, under in (("leaf", ("server", "storage")), ("spine", ("leaf",)),
                        ("core", ("spine",))):
        def key(u: Any, under: tuple[str, ...] = under) -> Any:
            below = [(bw, box_of[n]) for n, bw in nbrs[u].items() if n[0] in under]
            return max(below)[1] if below else None
        add(kind, _group_by(by_kind.get(kind, []), key), {"leaf": "leaves", "spine": "spines",
                                                          "core": "cores"}[kind])
    edges: dict[tuple[str, str], float] = defaultdict(float)
    for (a, b), bw in unit_bw.items():
        if box_of[a] != box_of[b]:
            edges[(box_of[a], box_of[b])] += bw
    return boxes, dict(edges)


def _label(c: Cluster, b: Box) -> str:
    if b.kind == "server":
        if b.count == 1:
            return b.name
        return f"{b.name}\n{b.count} x {c.gpus_per_node} GPUs"
    return b.name if b.count == 1 else f"{b.name}\n{b.count} switches" if b.kind != "storage" \
        else f"{b.name}\n{b.count} servers"


def draw_fabric(c: Cluster, path: Path, title: str, fmt: str) -> None:
    """Write the drawing of `c` to `path` (an image of format `fmt`, e.g. png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_units = len(_units(c))
    aggregated = n_units > DETAIL_LIMIT
    boxes, edges = tier_view(c) if aggregated else detail_view(c)
    levels = sorted({b.level for b in boxes})
    row = {lv: i for i, lv in enumerate(levels)}
    per_level: dict[int, list[Box]] = defaultdict(list)
    for b in boxes:
        per_level[b.level].append(b)
    pos: dict[str, tuple[float, float]] = {}
    for lv, bs in per_level.items():
        for i, b in enumerate(bs):
            pos[b.name] = ((i + 0.5) / len(bs), row[lv])
    fig, ax = plt.subplots(figsize=(12, 1.2 + 1.6 * len(levels)))
    top = max(edges.values()) if edges else 1.0
    for (na, nb), bw in edges.items():
        (x1, y1), (x2, y2) = pos[na], pos[nb]
        ax.plot([x1, x2], [y1, y2], color="0.55", lw=0.4 + 3.0 * bw / top, alpha=0.55, zorder=1)
        if aggregated and len(edges) <= 24:
            ax.annotate(units.format_bandwidth(bw), ((x1 + x2) / 2, (y1 + y2) / 2), fontsize=6,
                        ha="center", va="center", color="0.3",
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    colors = {0: "tab:green", 1: "tab:blue", 2: "tab:orange", 3: "tab:red"}
    for b in boxes:
        x, y = pos[b.name]
        if aggregated:
            ax.annotate(_label(c, b), (x, y), fontsize=7, ha="center", va="center", zorder=3,
                        bbox=dict(boxstyle="round,pad=0.3", fc=colors.get(b.level, "0.8"),
                                  ec="k", alpha=0.35))
        else:
            ax.scatter([x], [y], s=40, color=colors.get(b.level, "k"), zorder=2)
            if len(per_level[b.level]) <= 40:
                ax.annotate(b.name, (x, y), fontsize=6, ha="center", va="bottom", rotation=30,
                            xytext=(0, 4), textcoords="offset points")
    ax.set_yticks(range(len(levels)), [_TIER_NAMES[lv] for lv in levels])
    ax.set_ylim(-0.5, len(levels) - 0.5)
    ax.set_xlim(0, 1)
    ax.set_xticks([])
    ax.set_title(title + (" (grouped by tier)" if aggregated else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format=fmt)
    plt.close(fig)
