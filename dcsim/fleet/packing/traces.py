"""Read the Alibaba GPU v2023 (openb) node and pod lists, checking every field a user can get wrong.

Node list columns: sn, cpu_milli, memory_mib, gpu, model. Pod list columns: name, cpu_milli,
memory_mib, num_gpu, gpu_milli, and optionally gpu_spec ('|'-separated GPU models the pod
accepts; empty for any) and creation_time (seconds; the submission order, row order without it).
Errors are ValueError with one line that names the file's role, the column and what is allowed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dcsim.errors import InputError
from dcsim.fleet.packing.records import GPU_MILLI, NodeSpec, PodRequest

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
MIB_BYTES = 1 << 20


def _read(path: Path, role: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """The CSV as strings, with its required columns present and at least one row."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{role}: no such file {path}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputError(f"{role}: {path} is not a readable CSV ({str(e).splitlines()[0]})") \
            from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{role}: missing column {missing[0]!r} in {path} "
                         f"(needs {', '.join(columns)})")
    if df.empty:
        raise InputError(f"{role}: {path} has no rows")
    return df


def _whole(df: pd.DataFrame, role: str, column: str, low: int, high: float = np.inf) -> np.ndarray:
    """A column of whole numbers in [low, high], or a ValueError naming the first bad row."""
    values = pd.to_numeric(df[column].str.strip(), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < low) | (values > high)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        allowed = f">= {low}" if high == np.inf else f"in [{low}, {int(high)}]"
        raise InputError(f"{role}: column {column!r} row {row + 1}: must be a whole number "
                         f"{allowed}, got {df[column].iloc[row]!r}")
    return values.astype(np.int64)


def read_nodes(path: Path) -> list[NodeSpec]:
    """The node list: one NodeSpec per row."""
    df = _read(path, "nodes", NODE_COLUMNS)
    cpu = _whole(df, "nodes", "cpu_milli", 1)
    mem = _whole(df, "nodes", "memory_mib", 1)
    gpus = _whole(df, "nodes", "gpu", 0)
    models = df["model"].str.strip()
    if (models == "").any():
        raise InputError(f"nodes: column 'model' row {int(np.flatnonzero(models == '')[0]) + 1}: "
                         "empty GPU model")
    return [NodeSpec(str(sn), int(c), int(m) * MIB_BYTES, int(g), str(mo))
            for sn, c, m, g, mo in zip(df["sn"], cpu, mem, gpus, models, strict=True)]


def _models(df: pd.DataFrame, known: set[str]) -> list[frozenset[str]]:
    """The gpu_spec column as sets of GPU models, each one a model of the node list."""
    if "gpu_spec" not in df.columns:
        return [frozenset()] * len(df)
    out = []
    for row, spec in enumerate(df["gpu_spec"]):
        models = frozenset(s.strip() for s in str(spec).split("|") if s.strip())
        unknown = sorted(models - known)
        if unknown:
            raise InputError(f"trace: column 'gpu_spec' row {row + 1}: unknown GPU type "
                             f"{unknown[0]!r} (the node list has {', '.join(sorted(known))})")
        out.append(models)
    return out


def read_pods(path: Path, known_models: set[str]) -> list[PodRequest]:
    """The pod list in submission order (creation_time, then row)."""
    df = _read(path, "trace", POD_COLUMNS)
    cpu = _whole(df, "trace", "cpu_milli", 0)
    mem = _whole(df, "trace", "memory_mib", 0)
    num = _whole(df, "trace", "num_gpu", 0)
    milli = _whole(df, "trace", "gpu_milli", 0, GPU_MILLI)
    zero = (num > 0) & (milli == 0)
    if zero.any():
        raise InputError(f"trace: column 'gpu_milli' row {int(np.flatnonzero(zero)[0]) + 1}: "
                         f"must be in (0, {GPU_MILLI}] when num_gpu > 0")
    milli = np.where(num > 0, milli, 0)
    submit = (_whole(df, "trace", "creation_time", 0) if "creation_time" in df.columns
              else np.arange(len(df)))
    models = _models(df, known_models)
    order = np.argsort(submit, kind="stable")
    return [PodRequest(str(df["name"].iloc[i]), int(cpu[i]), int(mem[i]) * MIB_BYTES,
                       int(num[i]), int(milli[i]), models[i] if num[i] else frozenset(),
                       float(submit[i]))
            for i in order]
