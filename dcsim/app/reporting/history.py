"""The report history: an embedded DuckDB file that every report run appends to (the time,
the dcsim version, each entry's resolved scenario and its hash, its headline figures)."""

from __future__ import annotations

from dcsim.errors import InputError

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from dcsim.app.reporting.entries import Entry

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS runs (run_id BIGINT PRIMARY KEY, time_utc TIMESTAMP, "
    "dcsim_version VARCHAR)",
    "CREATE TABLE IF NOT EXISTS entries (run_id BIGINT, name VARCHAR, kind VARCHAR, "
    "source VARCHAR, scenario_hash VARCHAR, calibration VARCHAR, scenario_json VARCHAR)",
    "CREATE TABLE IF NOT EXISTS figures (run_id BIGINT, name VARCHAR, kind VARCHAR, "
    "figure VARCHAR, value DOUBLE)",
)


@dataclass
class PastEntry:
    """An entry as a previous run recorded it."""

    run_id: int
    time_utc: datetime
    dcsim_version: str
    scenario_hash: str
    calibration: str
    scenario: dict[str, Any]
    figures: dict[str, float | None]


class History:
    """One DuckDB file, created with its tables if absent."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(path))
        except duckdb.Error as exc:
            raise InputError(f"--history: {path} is not a DuckDB file this report can use "
                             f"({str(exc).splitlines()[0]})") from None
        for stmt in SCHEMA:
            self.con.execute(stmt)

    def close(self) -> None:
        self.con.close()

    def last(self, name: str, kind: str) -> PastEntry | None:
        """The latest recorded run of an entry with this name and kind."""
        row = self.con.execute(
            "SELECT e.run_id, r.time_utc, r.dcsim_version, e.scenario_hash, e.calibration, "
            "e.scenario_json FROM entries e JOIN runs r USING (run_id) "
            "WHERE e.name = ? AND e.kind = ? ORDER BY e.run_id DESC LIMIT 1", [name, kind]
        ).fetchone()
        if row is None:
            return None
        figs = self.con.execute("SELECT figure, value FROM figures WHERE run_id = ? AND "
                                "name = ? AND kind = ?", [row[0], name, kind]).fetchall()
        return PastEntry(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]),
                         {f: v for f, v in figs})

    def trend(self, name: str, kind: str, figure: str) -> list[tuple[datetime, float]]:
        """Every recorded value of one figure, oldest first."""
        return [(t, v) for t, v in self.con.execute(
            "SELECT r.time_utc, f.value FROM figures f JOIN runs r USING (run_id) "
            "WHERE f.name = ? AND f.kind = ? AND f.figure = ? AND f.value IS NOT NULL "
            "ORDER BY f.run_id", [name, kind, figure]).fetchall()]

    def append(self, entries: list[Entry], version: str, now: datetime | None = None) -> int:
        """Record this run; returns its id."""
        now = now or datetime.now(timezone.utc).replace(tzinfo=None)
        last = self._one("SELECT coalesce(max(run_id), 0) FROM runs")
        run_id = int(last) + 1
        self.con.execute("BEGIN TRANSACTION")
        self.con.execute("INSERT INTO runs VALUES (?, ?, ?)", [run_id, now, version])
        for e in entries:
            self.con.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [run_id, e.name, e.kind.value, e.source, e.scenario_hash,
                              e.calibration, json.dumps(e.scenario, sort_keys=True, default=str)])
            self.con.executemany("INSERT INTO figures VALUES (?, ?, ?, ?, ?)",
                                 [[run_id, e.name, e.kind.value, f, _num(v)]
                                  for f, v in e.figures.items()])
        self.con.execute("COMMIT")
        return run_id

    def runs(self) -> int:
        return int(self._one("SELECT count(*) FROM runs"))

    def _one(self, sql: str) -> Any:
        row = self.con.execute(sql).fetchone()
        assert row is not None  # an aggregate always returns one row
        return row[0]


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
