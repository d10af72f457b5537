"""Power per GPU state, node overhead, PUE; energy, cost and carbon. Constants and sources.

GPU board power (datasheets): H100 SXM5 up to 700 W (NVIDIA H100 datasheet), A100 SXM4 400 W
(NVIDIA A100 datasheet). Computing is priced at the board limit (training kernels run at or near
it: Llama 3 paper sec. 3.3.4 reports tens-of-MW swings of the whole job as all GPUs start and
stop computing together). Idle: ASSUMED 10% of the board limit; communicating (NIC and NVLink
transfers, SMs mostly waiting): ASSUMED 50% (no datasheet gives either; scenario fields change
them). Node overhead: DGX H100 system maximum 10.2 kW (DGX H100 datasheet) less 8 x 700 W =
4.6 kW at full load for CPUs, memory, NICs, NVSwitches, fans; DGX A100 6.5 kW - 8 x 400 W =
3.3 kW. PUE 1.10: Google's fleet trailing-twelve-month PUE for 2023 (Google Data Centers,
"Efficiency"). Electricity 0.0804 USD/kWh: US industrial average 2023 (EIA Electric Power
Monthly, table 5.3). Carbon 0.388 kg CO2/kWh: US generation average 2022, 0.855 lb/kWh (EIA
FAQ "How much carbon dioxide is produced per kilowatthour"). GPU-hour price 2.0 USD: ASSUMED
(order of 2024 H100 rental list prices; set `fleet.power.gpu_hour_usd` to yours).
Switches: 1,720 W each, the maximum power (with active cables) of an NVIDIA Quantum-2 QM9700
64-port NDR switch (NVIDIA QM9700/QM9790 1U NDR 400Gb/s InfiniBand switch systems user
manual, "Specifications"; the figure as recalled from that manual, it could not be re-read
when this was written: set `fleet.power.switch_w` to your switches'), counted for every switch
of the fabric graph at all times (switches do not idle down). Storage: no default (no vendor
datasheet figure at hand); `fleet.power.storage_w` adds a constant draw for all tiers.
A cluster cap (`fleet.power.cluster_cap_w`) is provisioned as a uniform per-GPU cap sized so
that the cluster stays under it with every GPU computing at once (a static power budget, how a
cap holds without a live controller): (cap - node overhead - switches - storage) / GPUs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dcsim.errors import InputError
from dcsim.fleet.config import PowerSpec
from dcsim.fleet.model import JobSpeed

BOARD_W = {"h100-sxm": 700.0, "a100-sxm": 400.0, "a100-sxm-80gb": 400.0}
NODE_OVERHEAD_W = {"h100-sxm": 10200.0 - 8 * 700.0, "a100-sxm": 6500.0 - 8 * 400.0,
                   "a100-sxm-80gb": 6500.0 - 8 * 400.0}
IDLE_SHARE = 0.10      # ASSUMED, see above
COMM_SHARE = 0.50      # ASSUMED, see above
PUE = 1.10
PRICE_USD_PER_KWH = 0.0804
CARBON_KG_PER_KWH = 0.388
GPU_HOUR_USD = 2.0
SWITCH_W = 1720.0      # QM9700 maximum, see above


@dataclass(frozen=True)
class PowerModel:
    """Power per GPU state, overheads and prices, defaults resolved."""
    gpu_idle_w: float
    gpu_compute_w: float
    gpu_comm_w: float
    node_overhead_w: float     # per 8-GPU node at full load (scaled per GPU)
    pue: float
    price_usd_per_kwh: float
    gpu_hour_usd: float
    carbon_kg_per_kwh: float
    gpu_cap_w: float | None = None
    switches_w: float = 0.0    # every fabric switch together
    storage_w: float = 0.0     # every storage tier together

    @classmethod
    def from_spec(cls, spec: PowerSpec, gpu: str, n_gpus: int = 0,
                  n_switches: int = 0) -> "PowerModel":
        """The scenario's values where given, the sourced defaults elsewhere; a cluster cap
        turned into the per-GPU cap it needs (the tighter of it and gpu_cap_w)."""
        board = BOARD_W.get(gpu, 700.0)
        pick = lambda v, d: d if v is None else v  # noqa: E731
        m = cls(gpu_idle_w=pick(spec.gpu_idle_w, IDLE_SHARE * board),
                gpu_compute_w=pick(spec.gpu_compute_w, board),
                gpu_comm_w=pick(spec.gpu_comm_w, COMM_SHARE * board),
                node_overhead_w=pick(spec.node_overhead_w, NODE_OVERHEAD_W.get(gpu, 4600.0)),
                pue=pick(spec.pue, PUE), price_usd_per_kwh=pick(spec.price_usd_per_kwh,
                                                                  PRICE_USD_PER_KWH),
                gpu_hour_usd=pick(spec.gpu_hour_usd, GPU_HOUR_USD),
                carbon_kg_per_kwh=pick(spec.carbon_kg_per_kwh, CARBON_KG_PER_KWH),
                gpu_cap_w=spec.gpu_cap_w,
                switches_w=n_switches * pick(spec.switch_w, SWITCH_W),
                storage_w=pick(spec.storage_w, 0.0))
        if spec.cluster_cap_w is None or n_gpus <= 0:
            return m
        per_gpu = m.cluster_gpu_cap_w(spec.cluster_cap_w, n_gpus)
        cap = per_gpu if m.gpu_cap_w is None else min(per_gpu, m.gpu_cap_w)
        return dataclasses.replace(m, gpu_cap_w=cap)

    def cluster_gpu_cap_w(self, cluster_cap_w: float, n_gpus: int) -> float:
        """The per-GPU cap that holds the cluster under cluster_cap_w with every GPU computing:
        what is left after node overhead, switches and storage, shared equally."""
        fixed = n_gpus * self.node_overhead_w / 8.0 + self.switches_w + self.storage_w
        per_gpu = (cluster_cap_w - fixed) / n_gpus
        if per_gpu <= self.gpu_idle_w:
            raise InputError(f"fleet.power.cluster_cap_w: {cluster_cap_w:.0f} W leaves "
                             f"{max(per_gpu, 0.0):.0f} W per GPU after node overhead, switches "
                             f"and storage ({fixed:.0f} W), not above a GPU's idle "
                             f"{self.gpu_idle_w:.0f} W")
        return per_gpu

    @property
    def compute_w(self) -> float:
        """A computing GPU's power, the cap applied."""
        return self.gpu_compute_w if self.gpu_cap_w is None else min(self.gpu_compute_w,
                                                                      self.gpu_cap_w)

    def busy_gpu_w(self, compute_share: float) -> float:
        """One GPU of a running job: computing for compute_share of the time, else communicating."""
        comm = self.gpu_comm_w if self.gpu_cap_w is None else min(self.gpu_comm_w, self.gpu_cap_w)
        return compute_share * self.compute_w + (1 - compute_share) * comm

    def capped(self, speed: JobSpeed) -> JobSpeed:
        """A job's speed under the power cap. FIRST-PRINCIPLES, not a measured curve: dynamic
        power P ~ C V^2 f with the voltage scaled along with the clock in the DVFS range, so
        P ~ f^3 and a computing GPU capped at P_cap runs its clock, hence its compute time, at
        (P_cap / P)^(1/3) of full speed; communication time is unchanged. Static power is
        ignored, so the slowdown is a lower bound."""
        if self.gpu_cap_w is None or self.gpu_cap_w >= self.gpu_compute_w:
            return speed
        clock = (self.gpu_cap_w / self.gpu_compute_w) ** (1.0 / 3.0)
        share = speed.compute_share
        slow = share / clock + (1.0 - share)
        return JobSpeed(rate=speed.rate / slow, compute_share=share / clock / slow)

    def it_w(self, up_gpus: float, busy_w: float, busy_gpus: float) -> float:
        """IT power: busy GPUs at their state's power, the other up GPUs idle, node overhead per
        GPU (its full-load share: an upper bound for idle nodes), switches and storage."""
        idle = max(up_gpus - busy_gpus, 0.0)
        return (busy_w + idle * self.gpu_idle_w + up_gpus * self.node_overhead_w / 8.0
                + self.switches_w + self.storage_w)
