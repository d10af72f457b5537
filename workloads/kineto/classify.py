"""Kineto traces, classified: the events of one step become StepItems in program order: which
are compute and which collectives, their stream, breakdown category and phase, the host time
and waits around them, and their dependencies (the launching op before a collective, the op
that waited for it after). The rules for CPU traces are in workloads.kineto.cpu, for GPU
traces in workloads.kineto.gpu; the records in workloads.kineto.step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workloads.kineto.cpu import cpu_items
from workloads.kineto.gpu import gpu_items
from workloads.kineto.parse import (check_kineto, device_of, events_of, load_trace, pick_step,
                                    precision_of, world_size_of)
from workloads.kineto.step import StepItem, TraceStep

__all__ = ["StepItem", "TraceStep", "import_trace", "parse_step"]


def parse_step(data: dict[str, Any], step: int | None = None, source: str = "trace") -> TraceStep:
    """One step of a loaded trace as items in program order (ProfilerStep#`step`, by default
    the last one; the whole trace when it has no ProfilerStep)."""
    check_kineto(data, source)
    evs = events_of(data)
    kind = "gpu" if any(e.cat == "kernel" for e in evs) else "cpu"
    st = pick_step(evs, step, source)
    precision = precision_of(evs, "fp32" if kind == "cpu" else "bf16")
    if kind == "cpu":
        items, w0, w1 = cpu_items(evs, data, st, precision)
    else:
        items, w0, w1 = gpu_items(evs, data, st, precision)
    name, device = device_of(data, kind)
    return TraceStep(kind=kind, device_name=name, device=device, precision=precision,
                     world_size=world_size_of(data), step_name=st.name if st else "whole trace",
                     start_us=w0, end_us=w1, items=items, source=source)


def import_trace(path: Path, step: int | None = None) -> TraceStep:
    """Read a Kineto trace file and parse one step of it."""
    return parse_step(load_trace(path), step, str(path))
