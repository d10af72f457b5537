"""A sweep's rows on disk: one Parquet file, rewritten whole under a temporary name and renamed,
so an interrupted sweep leaves the last complete file (and a rerun resumes from it)."""

from __future__ import annotations

from dcsim.errors import InputError

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of an existing sweep file ([] when there is none)."""
    if not path.exists():
        return []
    try:
        return pq.read_table(path).to_pylist()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"--out: {path} is not a Parquet file this sweep can resume "
                         f"({str(exc).splitlines()[0]})") from None


def write_rows(path: Path, rows: list[dict[str, Any]], first: list[str]) -> None:
    """Write rows (columns: `first` in order, then the rest as they come) atomically."""
    cols: list[str] = [c for c in first if any(c in r for r in rows)]
    for r in rows:
        cols += [c for c in r if c not in cols]
    data = {c: [_norm(r.get(c)) for r in rows] for c in cols}
    table = pa.table({c: _array(v) for c, v in data.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def _norm(v: Any) -> Any:
    return v


def _array(values: list[Any]) -> pa.Array:
    """A column; mixed types (an int and a float, a number and a text) fall back to text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if all(isinstance(v, (int, float)) or v is None for v in values):
            return pa.array([None if v is None else float(v) for v in values])
        return pa.array([None if v is None else str(v) for v in values])
