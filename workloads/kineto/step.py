"""Kineto traces: the records a classified step is made of (StepItem, TraceStep) and the
rules CPU and GPU traces share (the step-end op, a collective's breakdown category)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dcsim.program import Category, OpKind

STEP_END = "step end"  # the zero-length op that waits for collectives nothing else waited for
# A thread or stream resumed when a collective ended, give or take this share of the call (at
# least the CPU's or the GPU's wake tolerance; see workloads.kineto.cpu and .gpu).
WAKE_TOLERANCE_FRACTION = 0.05


@dataclass(slots=True)
class StepItem:
    """One op of the imported step: a compute op (recorded busy time plus the host time before
    it that was not a wait) or a collective (op, size, group; priced on the target)."""

    index: int
    kind: OpKind
    name: str
    label: str
    stream: str  # the trace's stream: compute, comm, p2p, comm:<id>, stream:<id>
    category: Category
    start_us: float
    busy_us: float
    host_us: float = 0.0  # host time before it (dispatch, Python, launch gaps) it is charged
    wait_us: float = 0.0  # recorded idle time before it spent waiting (not replayed)
    kernels: int = 1
    deps: list[int] = field(default_factory=list)
    op: str | None = None  # collective: a dcsim.collectives op
    size_bytes: float = 0.0
    group_size: int = 1
    recorded_exec_us: float | None = None  # collective: its recorded execution time
    consumer_rule: str = ""  # collective: how its consumer was found


@dataclass(slots=True)
class TraceStep:
    """One training step read from a trace: items in program order and what the trace says
    about where it ran."""

    kind: str  # cpu | gpu
    device_name: str
    device: str | None  # dcsim catalog name of that device, when known
    precision: str
    world_size: int
    step_name: str
    start_us: float
    end_us: float
    items: list[StepItem]
    source: str = ""

    @property
    def recorded_step_s(self) -> float:
        return (self.end_us - self.start_us) * 1e-6

    @property
    def collectives(self) -> list[StepItem]:
        return [i for i in self.items if i.kind == OpKind.COLLECTIVE]

    @property
    def dp_group(self) -> int:
        """The data-parallel group: the largest group any collective ran over."""
        return max((c.group_size for c in self.collectives), default=self.world_size)


def step_end(items: list[StepItem], t: float) -> int:
    """A zero-length op at the end of the step that waits for what nothing else waited for."""
    items.append(StepItem(len(items), OpKind.COMPUTE, STEP_END, "step/end (waits for comm)",
                          "compute", Category.COMPUTE, t, 0.0, kernels=0))
    return len(items) - 1


def comm_category(op: str, group: int, world: int) -> Category:
    """A recorded collective's parallel dimension: p2p is pipeline, all-to-all expert, a
    collective over the whole world data-parallel, a smaller group tensor-parallel."""
    if op == "send_recv":
        return Category.PP
    if op == "all_to_all":
        return Category.EP
    return Category.DP if group >= world else Category.TP
