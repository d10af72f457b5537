"""The report page: one self-contained HTML file (inline style, plots as data: images).
Every piece of user text (names, paths, scenario values) is escaped."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from dcsim import units
from dcsim.app.reporting.changes import EntryChanges, FigureChange, Watch

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.25em .6em}
th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{background:#fde2e2}.why{color:#555;font-size:.92em}h2{margin-top:1.6em}"""


@dataclass
class Page:
    title: str
    generated: datetime
    version: str
    run_id: int
    history: str
    changes: list[EntryChanges]
    plots: dict[str, list[bytes]] = field(default_factory=dict)  # entry name -> PNGs
    breaches: list[tuple[str, Watch, FigureChange]] = field(default_factory=list)


def fmt(figure: str, v: Any) -> str:
    """A figure's value with its unit, read off its name."""
    if v is None:
        return "-"
    if not isinstance(v, (int, float)):
        return escape(str(v))
    if figure.endswith("_per_s"):
        return f"{v:,.0f}/s"
    if figure.endswith("_s"):
        return units.format_duration(v)
    if figure.endswith("_bytes"):
        return units.format_bytes(v)
    if figure in ("mfu", "hfu", "best_mfu", "utilization"):
        return f"{100 * v:.1f}%"
    if figure.endswith("_usd"):
        return f"${v:,.0f}"
    return f"{v:,.4g}" if isinstance(v, float) else f"{v:,}"


def _img(png: bytes) -> str:
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def render(p: Page) -> str:
    e = escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(p.title)}</title>"
           f"<style>{STYLE}</style></head><body>",
           f"<h1>{e(p.title)}</h1>",
           f"<p>Generated {e(p.generated.strftime('%Y-%m-%d %H:%M UTC'))} by dcsim "
           f"{e(p.version)}; run {p.run_id} in history {e(p.history)}.</p>"]
    if p.breaches:
        out.append("<h2>Watched figures past their threshold</h2><ul>")
        for name, w, c in p.breaches:
            out.append(f"<li class='bad'>{e(name)}: {e(c.figure)} {fmt(c.figure, c.then)} -> "
                       f"{fmt(c.figure, c.now)} ({c.delta_pct:+.1f}%, limit {w.pct:+g}%)</li>")
        out.append("</ul>")
    out.append("<h2>What changed since the last run</h2>")
    for ch in p.changes:
        out.append(_changes(ch, {id(c) for _, _, c in p.breaches}))
    for ch in p.changes:
        en = ch.entry
        out.append(f"<h2>{e(en.name)} <small>({e(en.kind.value)}, {e(en.source)})</small></h2>")
        out.append("<table><tr><th>figure</th><th>value</th></tr>")
        for f, v in en.figures.items():
            out.append(f"<tr><td>{e(f)}</td><td class='n'>{fmt(f, v)}</td></tr>")
        out.append("</table>")
        out.append(f"<p class='why'>calibration {e(en.calibration)}; scenario hash "
                   f"{e(en.scenario_hash)}</p>")
        for png in p.plots.get(en.name, []):
            out.append(_img(png))
    out.append("</body></html>")
    return "\n".join(out)


def _changes(ch: EntryChanges, bad: set[int]) -> str:
    e = escape
    head = f"<h3>{e(ch.entry.name)} ({e(ch.entry.kind.value)})</h3>"
    why = "<p class='why'>why: " + e("; ".join(ch.why)) + "</p>"
    if ch.past is None:
        return head + why
    rows = ["<table><tr><th>figure</th><th>then</th><th>now</th><th>change</th></tr>"]
    for c in ch.figures:
        d = c.delta_pct
        cls = " class='bad'" if id(c) in bad else ""
        rows.append(f"<tr{cls}><td>{e(c.figure)}</td><td class='n'>{fmt(c.figure, c.then)}</td>"
                    f"<td class='n'>{fmt(c.figure, c.now)}</td>"
                    f"<td class='n'>{'-' if d is None else f'{d:+.2f}%'}</td></tr>")
    rows.append("</table>")
    then = ch.past.time_utc.strftime("%Y-%m-%d %H:%M UTC")
    return head + f"<p>last run: {e(then)} (dcsim {e(ch.past.dcsim_version)})</p>" + \
        "".join(rows) + why
