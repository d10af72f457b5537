"""The report's plots as PNG bytes (embedded in the page as base64 images)."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from dcsim.app.reporting.entries import Entry, EntryKind


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


def _figure(w: float = 6.0, h: float = 2.6) -> tuple[Any, Any]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=(w, h))


def entry_plot(e: Entry) -> bytes | None:
    """The plot that belongs to an entry's kind, or None."""
    if e.kind is EntryKind.SIMULATE and e.details.get("breakdown"):
        return breakdown_plot(e.details["breakdown"], e.name)
    if e.kind is EntryKind.PLAN and e.details.get("best"):
        return plan_plot(e.details["best"], e.name)
    if e.kind is EntryKind.CAPACITY and e.details.get("candidates"):
        return capacity_plot(e.details["candidates"], e.name)
    hours = {k.split(".", 1)[1]: v for k, v in e.figures.items()
             if k.startswith("gpu_hours.") and k != "gpu_hours.capacity" and v}
    if e.kind is EntryKind.FLEET and hours:
        return gpu_hours_plot(hours, e.name)
    return None


def gpu_hours_plot(hours: dict[str, float], title: str) -> bytes:
    """Where a fleet's GPU-hours went (used, idle, down, lost)."""
    return _stacked_bar(list(hours.items()), "GPU-hours", f"where the GPU-hours went: {title}")


def _stacked_bar(parts: list[tuple[str, float]], xlabel: str, title: str) -> bytes:
    """One horizontal bar split into labelled parts, as a PNG."""
    fig, ax = _figure(6.0, 1.6)
    left = 0.0
    for k, v in parts:
        ax.barh([0], [v], left=left, label=k)
        left += v
    ax.set_yticks([])
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.45))
    return _png(fig)


def breakdown_plot(bd: dict[str, Any], title: str) -> bytes:
    """Where one iteration's time goes (compute, exposed communication, bubble, I/O)."""
    parts = [("compute", bd.get("compute_s", 0.0)), ("optimizer", bd.get("optimizer_s", 0.0))]
    parts += [(f"exposed {k}", v) for k, v in (bd.get("exposed_comm_s") or {}).items()]
    parts += [("bubble", bd.get("pipeline_bubble_s", 0.0)), ("I/O", bd.get("io_s", 0.0))]
    parts = [(k, v) for k, v in parts if v and v > 0]
    return _stacked_bar(parts, "seconds of one iteration", f"where the time goes: {title}")


def plan_plot(best: list[dict[str, Any]], title: str) -> bytes:
    fig, ax = _figure()
    labels = [b.get("layout", str(i + 1)) for i, b in enumerate(best)]
    fast = [b["fast"]["iteration_s"] for b in best]
    sim = [b["result"]["iteration_s"] if b["result"].get("source") == "simulate" else None
           for b in best]
    y = list(range(len(best)))
    ax.barh([i + 0.2 for i in y], fast, height=0.4, label="fast model")
    ax.barh([i - 0.2 for i in y], [s or 0 for s in sim], height=0.4, label="simulated")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("iteration (s)")
    ax.set_title(f"best layouts: {title}", fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)


def capacity_plot(cands: list[dict[str, Any]], title: str) -> bytes:
    fig, ax = _figure()
    pts = sorted(((c["gpus"], c["queue_wait_s_p95"]) for c in cands
                  if c["queue_wait_s_p95"].get("seeds")), key=lambda p: p[0])
    xs = [g for g, _ in pts]
    mean = [w["mean"] / 3600 for _, w in pts]
    lo = [w["ci_low"] / 3600 for _, w in pts]
    hi = [w["ci_high"] / 3600 for _, w in pts]
    ax.plot(xs, mean, marker="o")
    ax.fill_between(xs, lo, hi, alpha=0.25)
    ax.set_xlabel("GPUs")
    ax.set_ylabel("p95 queue wait (h)")
    ax.set_title(f"wait vs cluster size: {title}", fontsize=9)
    return _png(fig)


def trend_plot(points: list[tuple[datetime, float]], figure: str, title: str) -> bytes:
    fig, ax = _figure(6.0, 2.2)
    ax.plot([t for t, _ in points], [v for _, v in points], marker="o")
    ax.set_ylabel(figure)
    ax.set_title(f"{figure} over the history: {title}", fontsize=9)
    fig.autofmt_xdate()
    return _png(fig)
