"""Failures per component: each cause a Poisson process per component with a repair time.

Default rates come from the Llama 3 405B pre-training snapshot (Dubey et al., "The Llama 3 Herd
of Models", 2024, Table 5: 419 unexpected interruptions in 54 days on 16,384 H100 GPUs = 2,048
servers; ../shared/validation/llama3-405b-interruptions.yaml): a cause's rate per component-day
is its count / (components of its kind in that cluster x 54 days). Components of the 16,384-GPU
cluster: 16,384 GPUs, 2,048 hosts, 16,384 NICs (one per GPU, paper sec. 3.3.1), 1,024 rack
(leaf) switches (a rack switch per 16 GPUs, Gangidi et al. SIGCOMM'24), software per host.
`rsc1` keeps that mix and scales the total to Meta RSC-1's 6.5 failures per 1,000 node-days
(Kokolis et al., "Revisiting Reliability in Large-Scale ML Research Clusters", HPCA'25), whose
mean time to failure for 16,384 GPUs is 1,000 / (6.5 x 2,048) days = 1.80 h.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dcsim.errors import InputError
from dcsim.fleet.config import FailureModel, FailureSpec


class Component(str, Enum):
    """The components failures are drawn for."""
    GPU = "gpu"
    HOST = "host"
    NIC = "nic"
    SWITCH = "switch"
    SOFTWARE = "software"   # a job's software stack on a host: no repair, the job restarts


LLAMA3_DAYS = 54.0
LLAMA3_COMPONENTS = {Component.GPU: 16384, Component.HOST: 2048, Component.NIC: 16384,
                     Component.SWITCH: 1024, Component.SOFTWARE: 2048}
RSC1_FAILURES_PER_NODE_DAY = 6.5 / 1000.0   # Kokolis et al. HPCA'25

# Repair / replacement times. ASSUMED where no public figure was at hand (scenario fields
# `fleet.failures.causes.NAME.repair` change them): a GPU or host part swap 3 days (vendor
# RMA with next-business-day parts and burn-in); a NIC or switch/cable 1 day; a host
# maintenance reboot 2 h; software faults need no repair (the job restarts on the same nodes).
HW_REPAIR_S = 3 * 86400.0
NET_REPAIR_S = 86400.0
REBOOT_S = 2 * 3600.0

# cause -> (component, Llama 3 count, repair time). Counts: Llama 3 paper, Table 5.
LLAMA3_CAUSES: dict[str, tuple[Component, int, float]] = {
    "faulty GPU": (Component.GPU, 148, HW_REPAIR_S),
    "GPU HBM3 memory": (Component.GPU, 72, HW_REPAIR_S),
    "software bug": (Component.SOFTWARE, 54, 0.0),
    "network switch/cable": (Component.SWITCH, 35, NET_REPAIR_S),
    "host maintenance": (Component.HOST, 32, REBOOT_S),
    "GPU SRAM memory": (Component.GPU, 19, HW_REPAIR_S),
    "GPU system processor": (Component.GPU, 17, HW_REPAIR_S),
    "NIC": (Component.NIC, 7, NET_REPAIR_S),
    "NCCL watchdog timeouts": (Component.SOFTWARE, 7, 0.0),
    "silent data corruption": (Component.GPU, 6, HW_REPAIR_S),
    "GPU thermal interface and sensor": (Component.GPU, 6, HW_REPAIR_S),
    "SSD": (Component.HOST, 3, HW_REPAIR_S),
    "power supply": (Component.HOST, 3, HW_REPAIR_S),
    "server chassis": (Component.HOST, 2, HW_REPAIR_S),
    "IO expansion board": (Component.HOST, 2, HW_REPAIR_S),
    "dependency": (Component.SOFTWARE, 2, 0.0),
    "CPU": (Component.HOST, 2, HW_REPAIR_S),
    "system memory": (Component.HOST, 2, HW_REPAIR_S),
}
LLAMA3_TOTAL = sum(c for _, c, _ in LLAMA3_CAUSES.values())  # 419


@dataclass(frozen=True)
class Cause:
    """One failure cause: its component kind, rate per component per second, repair time."""

    name: str
    component: Component
    rate_per_component_s: float
    repair_s: float


def causes_for(spec: FailureSpec) -> list[Cause]:
    """The failure causes of a scenario (rates scaled and overridden as it says)."""
    if spec.model == FailureModel.NONE:
        return []
    unknown = set(spec.causes) - set(LLAMA3_CAUSES)
    if unknown:
        raise InputError(f"fleet.failures.causes: unknown cause {sorted(unknown)[0]!r}; allowed: "
                         + ", ".join(LLAMA3_CAUSES))
    scale = spec.rate_scale
    if spec.model == FailureModel.RSC1:
        llama3_per_node_day = LLAMA3_TOTAL / (LLAMA3_COMPONENTS[Component.HOST] * LLAMA3_DAYS)
        scale *= RSC1_FAILURES_PER_NODE_DAY / llama3_per_node_day
    out = []
    for name, (comp, count, repair) in LLAMA3_CAUSES.items():
        per_day = count / (LLAMA3_COMPONENTS[comp] * LLAMA3_DAYS) * scale
        o = spec.causes.get(name)
        if o is not None and o.rate_per_component_day is not None:
            per_day = o.rate_per_component_day
        if o is not None and o.repair is not None:
            repair = o.repair
        out.append(Cause(name, comp, per_day / 86400.0, repair))
    return out


def mttf_s(causes: list[Cause], nodes: int, gpus_per_node: int = 8) -> float:
    """Mean time to the next failure touching any of `nodes` servers (switches: one per 2
    servers as in the Llama 3 rack layout), in seconds."""
    per_node = {Component.GPU: gpus_per_node, Component.HOST: 1, Component.NIC: gpus_per_node,
                Component.SWITCH: 0.5, Component.SOFTWARE: 1}
    rate = sum(c.rate_per_component_s * per_node[c.component] * nodes for c in causes)
    return 1.0 / rate if rate > 0 else float("inf")
