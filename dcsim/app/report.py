"""`dcsim report FILE... --history H.duckdb --out report.html`: a capacity report for cron/CI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def report_cmd(
    files: list[Path] = typer.Argument(..., help="scenario / plan / capacity / fleet YAML "
                                       "files, or their --json outputs"),
    history: Path = typer.Option(..., "--history", help="DuckDB history (created if absent)"),
    out: Path = typer.Option(..., "--out", help="the HTML page to write"),
    fail_on: list[str] = typer.Option([], "--fail-on", help="FIGURE:+N% or FIGURE:-N%: exit 1 "
                                      "when a figure moved past N% that way since the last run"),
    title: str = typer.Option("dcsim capacity report", "--title"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Run or read each input, compare with the last run in the history, write one HTML page."""
    from dcsim.app.cli import err, fail
    from dcsim.errors import InputError
    from dcsim.app.cli import out as console
    from dcsim.app.plan import write_atomic
    from dcsim.app.reporting.build import build_report
    from dcsim.app.reporting.changes import Watch

    try:
        watches = [Watch.parse(w) for w in fail_on]
        res = build_report(list(files), history, watches, title)
    except InputError as exc:
        fail(str(exc))
    write_atomic(out, res.html)
    if as_json:
        sys.stdout.write(json.dumps({**res.to_dict(), "out": str(out)}) + "\n")
    else:
        for c in res.changes:
            moved = [f for f in c.figures if f.delta_pct]
            line = ", ".join(f"{f.figure} {f.delta_pct:+.1f}%" for f in moved[:4]) or "no change"
            console.print(f"{c.entry.name}: {line if c.past else 'first run'}; why: "
                          f"{'; '.join(c.why)}", highlight=False, soft_wrap=True)
        console.print(f"wrote {out} (run {res.run_id} in {history})", highlight=False)
    for name, w, f in res.breaches:
        err.print(f"regression: {name}: {f.figure} {f.delta_pct:+.1f}% (limit {w.pct:+g}%)",
                  highlight=False)
    if res.breaches:
        raise typer.Exit(1)
