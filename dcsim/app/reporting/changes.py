"""What changed since the last run: each headline figure then and now, and why where dcsim can
tell (another dcsim version, another calibration profile, another scenario, and which fields)."""

from __future__ import annotations

from dcsim.errors import InputError

import re
from dataclasses import dataclass, field
from typing import Any

from dcsim.app.reporting.entries import Entry
from dcsim.app.reporting.history import PastEntry

MAX_FIELDS = 6  # scenario fields named in a reason; the rest are counted


@dataclass
class FigureChange:
    figure: str
    then: float | None
    now: float | None

    @property
    def delta_pct(self) -> float | None:
        if self.then in (None, 0) or self.now is None:
            return None
        return 100.0 * (self.now / self.then - 1.0)


@dataclass
class EntryChanges:
    entry: Entry
    past: PastEntry | None
    figures: list[FigureChange] = field(default_factory=list)
    why: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(c.delta_pct not in (None, 0.0) for c in self.figures)


def compare(entry: Entry, past: PastEntry | None, version: str) -> EntryChanges:
    """Figures then and now with the reasons dcsim can see."""
    out = EntryChanges(entry, past)
    if past is None:
        out.why.append("first run of this entry in the history")
        return out
    for f in [*entry.figures, *[f for f in past.figures if f not in entry.figures]]:
        now = entry.figures.get(f)
        out.figures.append(FigureChange(f, past.figures.get(f),
                                        float(now) if isinstance(now, (int, float)) else None))
    if past.dcsim_version != version:
        out.why.append(f"dcsim version {past.dcsim_version} -> {version}")
    if past.calibration != entry.calibration:
        out.why.append(f"calibration {past.calibration} -> {entry.calibration}")
    if past.scenario_hash != entry.scenario_hash:
        diffs = scenario_diff(past.scenario, entry.scenario)
        shown = [f"{k}: {a} -> {b}" for k, a, b in diffs[:MAX_FIELDS]]
        more = f" (and {len(diffs) - MAX_FIELDS} more)" if len(diffs) > MAX_FIELDS else ""
        out.why.append("scenario changed: " + "; ".join(shown) + more if shown
                       else "scenario changed")
    if not out.why:
        out.why.append("same scenario, calibration and dcsim version" +
                       (": figures unchanged, as expected (deterministic)" if not out.changed
                        else ": the change is not explained by its inputs"))
    return out


def scenario_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Dotted paths whose values differ between two resolved scenarios."""
    fa, fb = _flat(a), _flat(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def _flat(v: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(v, dict):
        out: dict[str, Any] = {}
        for k, x in v.items():
            out.update(_flat(x, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(v, list):
        out = {}
        for i, x in enumerate(v):
            out.update(_flat(x, f"{prefix}.{i}"))
        return out or {prefix: []}
    return {prefix: v}


@dataclass(frozen=True)
class Watch:
    """A `--fail-on FIGURE:+N%` (or -N%) rule: fail when the figure moves past N% that way."""

    figure: str
    pct: float  # signed: +5 fails on a rise of more than 5%, -2 on a fall of more than 2%

    @classmethod
    def parse(cls, text: str) -> "Watch":
        m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*:\s*([+-])\s*([0-9]*\.?[0-9]+)\s*%\s*", text)
        if not m:
            raise InputError(f"--fail-on {text!r}: expected FIGURE:+N% or FIGURE:-N% "
                             "(e.g. iteration_s:+5%)")
        sign = 1.0 if m.group(2) == "+" else -1.0
        return cls(m.group(1), sign * float(m.group(3)))

    def breached(self, change: FigureChange) -> bool:
        d = change.delta_pct
        if d is None or change.figure != self.figure:
            return False
        return d > self.pct if self.pct >= 0 else d < self.pct
