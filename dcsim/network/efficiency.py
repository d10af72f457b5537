"""Goodput of a link: the share of its signalling rate that carries payload.

Flow and analytical models both run on goodput (bytes of user data per second), so a link's
catalog bandwidth is scaled here once, with the source of every factor.
"""

from __future__ import annotations

# NVLink: NCCL's per-link data bandwidth (src/graph/topo.h: SM80_NVLINK_BW 20.0, SM90_NVLINK_BW
# 20.6, SM100_NVLINK_BW 40.1 GB/s) over the per-link signalling rate per direction (25 GB/s for
# NVLink3/4, 50 GB/s for NVLink5; A100/H100/B200 datasheets). The gap is NVLink packet headers
# and flow control; NCCL maintainers quote ~370 GB/s achievable per H100 (= 18 x 20.6).
NVLINK_GOODPUT = {"nvlink3": 20.0 / 25.0, "nvlink4": 20.6 / 25.0, "nvlink5": 40.1 / 50.0}

# InfiniBand: 4096-byte MTU payload per packet plus LRH 8 + BTH 12 + ICRC 4 + VCRC 2 = 26 bytes
# of headers (IBTA InfiniBand Architecture Specification vol. 1, ch. 5 "Data packet format").
IB_GOODPUT = 4096.0 / (4096.0 + 26.0)

# RoCEv2: 4096-byte payload plus Ethernet preamble/SFD 8 + header 14 + FCS 4 + inter-frame gap
# 12 + IPv4 20 + UDP 8 + BTH 12 + ICRC 4 = 82 bytes (IEEE 802.3; IBTA RoCEv2 annex A17).
ROCE_GOODPUT = 4096.0 / (4096.0 + 82.0)

# PCIe: 256-byte max payload per TLP plus 4DW header 16 + sequence 2 + LCRC 4 + framing 4 =
# 26 bytes (PCI Express Base Specification, TLP/DLLP formats); 128b/130b is already in pcie4/5's
# catalog bandwidth.
PCIE_GOODPUT = 256.0 / (256.0 + 26.0)

_BY_KIND = {"infiniband": IB_GOODPUT, "roce": ROCE_GOODPUT, "pcie": PCIE_GOODPUT}


def goodput_factor(link_name: str, kind: str) -> float:
    """Payload share of a link's per-direction bandwidth (1.0 when nothing is known)."""
    if link_name in NVLINK_GOODPUT:
        return NVLINK_GOODPUT[link_name]
    return _BY_KIND.get(kind, 1.0)
