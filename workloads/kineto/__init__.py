"""Trace in: a PyTorch profiler (Kineto) trace of one training step -> a replayable Program.

Three steps, a module each:
- `parse`: the trace file into complete events, their names as collectives, sizes, groups,
  the device and the step window (`load_trace`, `events_of`, `collective_op`);
- `classify`: the step's events into StepItems (compute or collective, stream, category,
  host time, waits, dependencies) (`parse_step`, `import_trace`), by the rules of `cpu` or
  `gpu` traces, into the records of `step`;
- `build`: a TraceStep into a folded Program the engine replays (`to_program`).

Collectives (gloo or NCCL, from `c10d::allreduce_`, `record_param_comms`, `nccl:*` / `gloo:*`
spans or NCCL kernels) become CollectiveCalls (op, nccl-tests size, group) that the target
cluster's cost model or network prices.

    step = import_trace(Path("step.json"))            # a TraceStep: plain records
    program = to_program(step, dp=8, compute_scale=0.5)
"""

from workloads.kineto.build import to_program
from workloads.kineto.classify import import_trace, parse_step
from workloads.kineto.parse import DTYPE_BYTES, KinetoError, TraceEvent, collective_op, load_trace
from workloads.kineto.step import StepItem, TraceStep

__all__ = ["KinetoError", "TraceEvent", "StepItem", "TraceStep", "load_trace", "parse_step",
           "import_trace", "to_program", "collective_op", "DTYPE_BYTES"]
