"""What this machine can simulate: estimates of memory and time checked before anything is built.

A typo like `nodes: 1000000000000` must cost a line, not minutes of graph building and a
MemoryError. The estimates below scale with what dominates: the cluster graph with its GPUs,
the program and the engine with the ops they hold. Beyond the limits, one line says what the
run would need, which limit it exceeds, and how to raise it (`run.limits` in a scenario, or the
environment variables DCSIM_MAX_MEMORY / DCSIM_MAX_TIME, e.g. `DCSIM_MAX_MEMORY='500 GiB'`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping

from dcsim import units
from dcsim.errors import InputError

# Per GPU of the cluster graph (servers, NICs, switches, links as networkx nodes and edges):
# `build_cluster('dgx-h100-superpod', nodes=2048)`, 16,384 GPUs, took 0.57 s and 37 MiB above
# the interpreter on the 2-core AMD EPYC host: 2.3 KiB and 35 us per GPU.
GRAPH_BYTES_PER_GPU = 37 * 2**20 / 16384
GRAPH_SECONDS_PER_GPU = 0.57 / 16384
# Per op of the program, built and simulated: GPT-3 175B on 1,024 GPUs unfolded, flow network
# (benchmarks/bench_scale.py, README "Speed"): 908,544 ops, 40 s and 1.2 GiB max RSS: about
# 1.4 KiB and 44 us per op (the analytical network takes about half the time).
BYTES_PER_OP = 1.2 * 2**30 / 908_544
SECONDS_PER_OP = 40.0 / 908_544
# Ops per simulated rank, micro-batch and layer of a stage: 0.34-2.23 in the bundled examples
# (fused layers of a 1F1B schedule to FSDP's per-layer gathers); 3 bounds them all.
OPS_PER_RANK_MICROBATCH_LAYER = 3
# Default time limit: one hour of simulation is beyond any interactive use of this tool.
DEFAULT_MAX_TIME_S = 3600.0
# Default memory limit: 80% of this machine's physical memory (the rest for the OS and others).
DEFAULT_MEMORY_FRACTION = 0.8

ENV_MAX_MEMORY = "DCSIM_MAX_MEMORY"
ENV_MAX_TIME = "DCSIM_MAX_TIME"


class LimitExceeded(InputError):
    """A run this machine could not simulate; the message is one line with the estimate."""


def physical_memory_bytes() -> float:
    """This machine's physical memory (POSIX sysconf), or 16 GiB where it cannot be read."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16.0 * 2**30


@dataclass(frozen=True)
class Limits:
    """The most memory and time one run may be estimated to need."""

    max_memory_bytes: float
    max_time_s: float
    # Whether a scenario is being run (its run.limits can raise them) or a bare command.
    scenario: bool = False

    @classmethod
    def default(cls, environ: Mapping[str, str] | None = None) -> "Limits":
        """This machine's defaults, raised or lowered by DCSIM_MAX_MEMORY / DCSIM_MAX_TIME."""
        env = os.environ if environ is None else environ
        memory = DEFAULT_MEMORY_FRACTION * physical_memory_bytes()
        time_s = DEFAULT_MAX_TIME_S
        try:
            if env.get(ENV_MAX_MEMORY):
                memory = units.parse_bytes(env[ENV_MAX_MEMORY])
            if env.get(ENV_MAX_TIME):
                time_s = units.parse_duration(env[ENV_MAX_TIME])
        except units.UnitError as exc:
            raise LimitExceeded(f"{ENV_MAX_MEMORY} / {ENV_MAX_TIME}: {exc}") from None
        return cls(memory, time_s)

    def with_overrides(self, max_memory_bytes: float | None, max_time_s: float | None) -> "Limits":
        """These limits with the ones a scenario sets (run.limits) in their place."""
        return Limits(self.max_memory_bytes if max_memory_bytes is None else max_memory_bytes,
                      self.max_time_s if max_time_s is None else max_time_s, scenario=True)

    def check(self, what: str, memory_bytes: float, time_s: float) -> None:
        """Raise LimitExceeded when the estimate is over either limit."""
        over = []
        field = "run.limits.memory or " if self.scenario else ""
        if memory_bytes > self.max_memory_bytes:
            over.append(f"memory limit {units.format_bytes(self.max_memory_bytes)} "
                        f"({field}{ENV_MAX_MEMORY})")
        field = "run.limits.time or " if self.scenario else ""
        if time_s > self.max_time_s:
            over.append(f"time limit {units.format_duration(self.max_time_s)} "
                        f"({field}{ENV_MAX_TIME})")
        if over:
            raise LimitExceeded(
                f"{what} would need about {_fmt_bytes(memory_bytes)} of memory and "
                f"{_fmt_time(time_s)} on this machine: over the {' and the '.join(over)}")

    def check_cluster(self, nodes: int, gpus_per_node: int, where: str = "nodes") -> None:
        """The cluster graph of `nodes` servers fits (before any node is added)."""
        gpus = float(nodes) * gpus_per_node
        self.check(f"{where}: {nodes:,} nodes x {gpus_per_node} GPUs = {gpus:.4g} GPUs",
                   gpus * GRAPH_BYTES_PER_GPU,
                   gpus * GRAPH_SECONDS_PER_GPU)

    def check_program(self, ops: float, gpus: float, where: str = "workload") -> None:
        """The program's ops, simulated on a cluster of `gpus` GPUs, fit."""
        self.check(f"{where}: about {ops:.3g} ops to simulate",
                   ops * BYTES_PER_OP + gpus * GRAPH_BYTES_PER_GPU,
                   ops * SECONDS_PER_OP + gpus * GRAPH_SECONDS_PER_GPU)


def estimate_ops(simulated_ranks: float, micro_batches: float, layers_per_stage: float) -> float:
    """An upper estimate of the ops of one iteration's program (see OPS_PER_RANK_...)."""
    return (OPS_PER_RANK_MICROBATCH_LAYER * simulated_ranks * (micro_batches + 1)
            * max(1.0, math.ceil(layers_per_stage)))


def _fmt_bytes(n: float) -> str:
    return units.format_bytes(n) if n < 2.0**70 else f"{n:.3g} B"


def _fmt_time(s: float) -> str:
    return units.format_duration(s) if s < 1e12 else f"{s / 86400 / 365:.3g} years"
