"""`dcsim replay TRACE`: a recorded training step (PyTorch profiler / Kineto trace) replayed on
a cluster: its own shape, another preset, more data-parallel replicas, faster compute.

Compute ops keep their recorded durations (scaled by --compute-scale, and by the ratio of the
two devices' peaks with --scale-to-peak); collectives are priced on the target cluster by the
calibration profile when it measured that device (gloo on cpu-host), else by the network model.
`--calibration recorded` replays the step's own timeline where the trace's device is the
target's: collectives at their recorded durations, beside compute as they ran (a CPU rank's
gloo thread did run beside its main thread; the recorded compute already holds the
interference). Mounted by dcsim/cli.py as
`app.command("replay")(replay_cmd)`; bad input prints one line on stderr and exits 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import typer

from dcsim.app.console import stderr_console, stdout_console
from dcsim.errors import InputError
from dcsim.files import atomic_write_text, check_input_file, check_output_file
from rich.table import Table

from dcsim import units
from dcsim.cluster import Cluster
from dcsim.costs import Cost, CostModel, SpecRoofline
from dcsim.engine import Engine
from dcsim.hardware import GPUSpec
from dcsim.program import Kernel, Program
from dcsim.results import Breakdown, flatten
from dcsim.timing import IterationTiming

RECORDED = "recorded"  # --calibration value: collectives at their recorded durations

_out = stdout_console()
_err = stderr_console()


@dataclass
class RecordedCollectives:
    """A CostModel that prices a collective at its recorded duration when the trace ran that
    exact call (op, group size, bytes), and leaves everything else to the network model."""

    recorded_s: dict[tuple[str, int, float], list[float]]
    name: str = RECORDED
    spec: SpecRoofline = field(default_factory=SpecRoofline)
    note: str = "collectives at the durations the trace recorded"

    def kernel_time(self, kernel: Kernel, gpu: GPUSpec) -> Cost:
        return self.spec.kernel_time(kernel, gpu)

    def collective_time(self, op: str, world_size: int, size_bytes: float,
                        gpu: GPUSpec) -> Cost | None:
        times = self.recorded_s.get((op, int(world_size), float(size_bytes)))
        if not times:
            return None
        times = sorted(times)
        return Cost(times[len(times) // 2], "measured", False)


@dataclass
class OnDevice:
    """A cost model whose measured collectives count only on the device it measured (gloo
    times of a CPU profile are not NCCL times of an H100 node)."""

    base: CostModel
    same_device: bool

    @property
    def name(self) -> str:
        return self.base.name

    def kernel_time(self, kernel: Kernel, gpu: GPUSpec) -> Cost:
        return self.base.kernel_time(kernel, gpu)

    def collective_time(self, op: str, world_size: int, size_bytes: float,
                        gpu: GPUSpec) -> Cost | None:
        return (self.base.collective_time(op, world_size, size_bytes, gpu)
                if self.same_device else None)


@dataclass
class ReplayResult:
    """A replayed step: its time and breakdown on the target, and where the numbers came from."""

    trace: str
    step_name: str
    trace_device: str
    trace_kind: str
    recorded_step_s: float
    step_s: float
    change_pct: float
    preset: str
    nodes: int
    gpus: int
    dp: int
    trace_dp: int
    compute_scale: float
    network: str
    calibration: str
    breakdown: dict[str, Any]
    collectives: list[dict[str, Any]]
    compute_provenance: str
    ops: int
    comm_overlaps_compute: bool
    collectives_from: str
    timing: IterationTiming | None = field(default=None, repr=False, compare=False)
    program: Program | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        timing, program = self.timing, self.program
        self.timing = self.program = None
        try:
            return asdict(self)
        finally:
            self.timing, self.program = timing, program

    def to_record(self) -> dict[str, Any]:
        """One flat row: what was replayed where (the varied inputs) and the figures; the
        per-collective rows stay in `collectives` (counted here)."""
        d = self.to_dict()
        d["collectives"] = len(self.collectives)
        return flatten(d)


def peak_ratio(trace_device: str | None, target: GPUSpec, precision: str) -> float:
    """Recorded-device peak / target peak at the trace's precision: the factor that scales a
    recorded compute time to the target (DESIGN.md: spec provenance)."""
    from dcsim.hardware import gpu

    if trace_device is None:
        raise InputError("--scale-to-peak: the trace's device is not in the catalog; "
                         "give --compute-scale instead")
    src = gpu(trace_device)
    return src.peak(precision) / target.peak(precision)


def _cost_model(calibration: str, cluster: Cluster, step: Any) -> CostModel:
    """The collective pricer: recorded times, a profile (on its own device only), or spec."""
    if calibration == RECORDED:
        table: dict[tuple[str, int, float], list[float]] = {}
        for c in step.collectives:
            if c.recorded_exec_us is not None:
                table.setdefault((c.op, c.group_size, float(c.size_bytes)), []).append(
                    c.recorded_exec_us * 1e-6)
        return OnDevice(RecordedCollectives(table), step.device == cluster.gpu_spec.name)
    from dcsim.app.simulate import cost_model_for

    base = cost_model_for(calibration, cluster.gpu_spec)
    profile = getattr(base, "profile", None)
    if profile is None:
        return base
    from dcsim.calibrated import profiled_gpu

    return OnDevice(base, profiled_gpu(profile) == cluster.gpu_spec.name)


def replay(trace: Path, preset: str = "cpu-host", nodes: int = 1, dp: int | None = None,
           compute_scale: float = 1.0, network: str = "analytical",
           calibration: str = "cpu-2core", scale_to_peak: bool = False,
           step: int | None = None) -> ReplayResult:
    """Import a Kineto trace and replay its step on `preset` x `nodes` (InputError if bad)."""
    import topologies
    from workloads.kineto import import_trace, to_program

    if nodes < 1:
        raise InputError(f"--nodes must be at least 1, got {nodes}")
    if not compute_scale > 0:
        raise InputError(f"--compute-scale must be a positive number, got {compute_scale}")
    ts = import_trace(Path(trace), step)
    cluster = topologies.build_cluster(preset, nodes=nodes)
    want = dp if dp is not None else ts.dp_group
    if want < 1:
        raise InputError(f"--dp must be at least 1, got {want}")
    if want > cluster.n_gpus:
        raise InputError(f"--dp {want} needs {want} GPUs; {preset} x {nodes} node(s) has "
                         f"{cluster.n_gpus} (raise --nodes)")
    scale = compute_scale
    if scale_to_peak:
        scale *= peak_ratio(ts.device, cluster.gpu_spec, ts.precision)
    prov = "measured" if scale == 1.0 else "spec"
    program = to_program(ts, dp=want, compute_scale=scale, provenance=prov)
    costs = _cost_model(calibration, cluster, ts)
    same_device = ts.device == cluster.gpu_spec.name
    if calibration == RECORDED and same_device and not cluster.gpu_spec.comm_overlaps_compute:
        cluster.gpu_spec = dataclasses.replace(cluster.gpu_spec, comm_overlaps_compute=True)
    timing = Engine(program, cluster, costs, network=network).run()
    return ReplayResult(
        trace=str(trace), step_name=ts.step_name, trace_device=ts.device_name,
        trace_kind=ts.kind, recorded_step_s=ts.recorded_step_s, step_s=timing.iteration_s,
        change_pct=100.0 * (timing.iteration_s / ts.recorded_step_s - 1.0),
        preset=preset, nodes=nodes, gpus=cluster.n_gpus, dp=want, trace_dp=ts.dp_group,
        compute_scale=scale, network=network, calibration=calibration,
        breakdown=asdict(Breakdown.from_categories(timing.breakdown)),
        collectives=collective_rows(timing), compute_provenance=prov,
        ops=program.op_count(), comm_overlaps_compute=cluster.gpu_spec.comm_overlaps_compute,
        collectives_from=_source(costs, calibration, network),
        timing=timing, program=program)


def _source(costs: CostModel, calibration: str, network: str) -> str:
    """Where the collective times came from, in words."""
    model = f"the {network} network model"
    if isinstance(costs, OnDevice):
        if not costs.same_device:
            return f"{model} ({calibration} measured another device)"
        if calibration == RECORDED:
            return "their recorded durations, beside compute as recorded"
        return f"{calibration} where it measured the call, else {model}"
    return model


def collective_rows(timing: IterationTiming) -> list[dict[str, Any]]:
    """Each replayed collective: op, bytes, group, its recorded and replayed time."""
    rows = []
    for t in sorted(timing.timings, key=lambda t: t.start_s):
        c = t.op.collective
        if c is None:
            continue
        meta = t.op.meta or {}
        rows.append({"label": t.op.label, "op": c.op, "size_bytes": c.size_bytes,
                     "group_size": max(len(g) for g in c.groups), "groups": len(c.groups),
                     "recorded_s": meta.get("recorded_exec_s"),
                     "replayed_s": t.end_s - t.start_s,
                     "recorded_group_size": meta.get("recorded_group_size")})
    return rows


def _table(r: ReplayResult) -> Table:
    t = Table(title=f"replay of {Path(r.trace).name} ({r.step_name}, {r.trace_device}, "
                    f"dp {r.trace_dp})", header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("target", f"{r.preset} x {r.nodes} node(s), {r.gpus} GPUs, dp {r.dp}")
    t.add_row("recorded step", units.format_duration(r.recorded_step_s))
    t.add_row("replayed step", f"{units.format_duration(r.step_s)} ({r.change_pct:+.1f}%)")
    b = r.breakdown
    parts = [("compute", b["compute_s"]), ("optimizer", b["optimizer_s"]),
             *[(f"exposed {d} comm", v) for d, v in b["exposed_comm_s"].items() if v > 0],
             ("pipeline bubble", b["pipeline_bubble_s"]), ("storage I/O", b["io_s"])]
    for name, v in parts:
        if v > 0 or name == "compute":
            t.add_row(f"  {name}", f"{units.format_duration(v)} ({100 * v / r.step_s:.1f}%)")
    for c in r.collectives:
        rec = units.format_duration(c["recorded_s"]) if c["recorded_s"] else "-"
        t.add_row(f"  {c['label']}", f"{c['op']} {units.format_bytes(c['size_bytes'])} x"
                                     f"{c['group_size']}: {units.format_duration(c['replayed_s'])}"
                                     f" (recorded {rec})")
    t.add_row("compute", f"recorded durations x {r.compute_scale:.4g} ({r.compute_provenance})")
    t.add_row("collectives from", r.collectives_from)
    return t


def _fail(message: str) -> None:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def replay_cmd(
    trace: Path = typer.Argument(..., help="PyTorch profiler (Kineto) trace of one step, "
                                           ".json or .json.gz"),
    preset: str = typer.Option("cpu-host", "--preset",
                               help="cluster preset or YAML file to replay on"),
    nodes: int = typer.Option(1, "--nodes", help="nodes of the preset"),
    dp: Optional[int] = typer.Option(None, "--dp",
                                     help="data-parallel replicas (default: the trace's)"),
    compute_scale: float = typer.Option(1.0, "--compute-scale",
                                        help="multiply recorded compute times (0.5 = twice as fast)"),
    network: str = typer.Option("analytical", "--network", help="analytical | flow"),
    calibration: str = typer.Option("cpu-2core", "--calibration",
                                    help="profile name or path | spec | recorded"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    scale_to_peak: bool = typer.Option(False, "--scale-to-peak",
                                       help="also scale compute by trace-device peak / target peak"),
    step: Optional[int] = typer.Option(None, "--step",
                                       help="ProfilerStep#N to replay (default: the last)"),
    timeline: Optional[Path] = typer.Option(None, "--timeline",
                                            help="write the replayed timeline (Chrome trace)"),
) -> None:
    """Replay a recorded training step on a cluster: step time and where it goes."""
    check_input_file(trace, "TRACE")  # a directory or unreadable file: one line
    if network not in ("analytical", "flow"):
        raise InputError(f"--network: got {network!r}; use analytical or flow")
    if timeline is not None:
        check_output_file(timeline, "--timeline")
    r = replay(trace, preset, nodes, dp, compute_scale, network, calibration, scale_to_peak, step)
    if timeline is not None and r.timing is not None:
        from dcsim.trace import chrome_trace

        assert r.timing is not None  # replay() keeps the timing

        doc = chrome_trace(r.timing, r.program, name=f"replay of {Path(r.trace).name}",
                           overlaps_compute=r.comm_overlaps_compute,
                           extra={"recorded_step_s": r.recorded_step_s})
        atomic_write_text(timeline, json.dumps(doc, separators=(",", ":")), "--timeline")
    if as_json:
        sys.stdout.write(json.dumps(r.to_dict()) + "\n")
    else:
        _out.print(_table(r))

