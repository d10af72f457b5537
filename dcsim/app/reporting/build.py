"""Build a report: load the inputs, compare with the history, append to it, render the page."""

from __future__ import annotations

from dcsim.errors import InputError

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dcsim.app.reporting.changes import EntryChanges, FigureChange, Watch, compare
from dcsim.app.reporting.entries import Entry, load_entry
from dcsim.app.reporting.history import History
from dcsim.app.reporting.page import Page, render
from dcsim.app.reporting.plots import entry_plot, trend_plot
from dcsim.app.sweeping.grid import dcsim_version

# The figure whose trend each kind of entry plots.
TREND = {"simulate": "iteration_s", "plan": "best_iteration_s", "capacity": "recommended_gpus",
         "fleet": "utilization"}


@dataclass
class ReportResult:
    html: str
    run_id: int
    changes: list[EntryChanges]
    breaches: list[tuple[str, Watch, FigureChange]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "entries": [{
                "name": c.entry.name, "kind": c.entry.kind.value,
                "scenario_hash": c.entry.scenario_hash, "figures": c.entry.figures,
                "since_last_run": None if c.past is None else {
                    "time_utc": c.past.time_utc.isoformat(), "dcsim_version": c.past.dcsim_version,
                    "figures": {f.figure: {"then": f.then, "now": f.now, "delta_pct": f.delta_pct}
                                for f in c.figures}},
                "why": c.why} for c in self.changes],
            "breaches": [{"entry": n, "figure": c.figure, "delta_pct": c.delta_pct,
                          "limit_pct": w.pct} for n, w, c in self.breaches],
        }


def build_report(inputs: list[Path], history_path: Path, watches: list[Watch],
                 title: str = "dcsim capacity report", now: datetime | None = None,
                 entries: list[Entry] | None = None) -> ReportResult:
    """Entries (given, or loaded from `inputs`), compared with their last run, appended."""
    if entries is None:
        entries = [load_entry(p) for p in inputs]
    names = [(e.name, e.kind) for e in entries]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise InputError(f"two inputs are both called {dup[0]!r} ({dup[1].value}): give them "
                         "distinct names (the history keys entries by name)")
    version = dcsim_version()
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    hist = History(history_path)
    try:
        changes = [compare(e, hist.last(e.name, e.kind.value), version) for e in entries]
        run_id = hist.append(entries, version, now)
        breaches = [(c.entry.name, w, f) for c in changes for f in c.figures for w in watches
                    if w.breached(f)]
        plots: dict[str, list[bytes]] = {}
        for e in entries:
            got = [p for p in (entry_plot(e),) if p is not None]
            fig = TREND.get(e.kind.value)
            pts = hist.trend(e.name, e.kind.value, fig) if fig else []
            if len(pts) >= 2:
                got.append(trend_plot(pts, fig or "", e.name))
            plots[e.name] = got
    finally:
        hist.close()
    page = Page(title, now, version, run_id, str(history_path), changes, plots, breaches)
    return ReportResult(render(page), run_id, changes, breaches)
