"""Servers (NVLink domains): GPUs on one aggregated NVSwitch node, NICs on the host link.

The NVSwitch fabric of a server is one `nvswitch` node: each GPU's NVLink bandwidth (per
direction) is its edge to it, which is what bounds intra-server traffic on NVSwitch systems
(DGX A100/H100 NVSwitch is non-blocking: NVIDIA DGX H100 user guide, NVSwitch overview).
"""

from __future__ import annotations

import networkx as nx

from dcsim import hardware
from topologies.spec import ServerSpec


def gpu_id(server: int, local: int) -> str:
    return f"s{server}/gpu{local}"


def nic_id(server: int, local: int) -> str:
    return f"s{server}/nic{local}"


def nvswitch_id(server: int) -> str:
    return f"s{server}/nvsw"


def add_servers(g: nx.Graph, spec: ServerSpec, nodes: int) -> tuple[list[str], list[str]]:
    """Add `nodes` servers to g; return (GPU node ids in rank order, NIC node ids in order)."""
    gpu = hardware.gpu(spec.gpu)
    nvl = hardware.link(spec.nvlink)
    host = hardware.link(spec.host_link)
    nvl_bw = gpu.nvlink_bw_bytes_per_s if spec.nvlink == gpu.nvlink else nvl.bw_bytes_per_s
    gpus_per_nic = spec.gpus // spec.nics
    gpu_nodes: list[str] = []
    nic_nodes: list[str] = []
    for s in range(nodes):
        sw = nvswitch_id(s)
        if spec.gpus > 1:
            g.add_node(sw, kind="nvswitch", server=s)
        for i in range(spec.nics):
            g.add_node(nic_id(s, i), kind="nic", server=s, local=i, link=spec.nic)
            nic_nodes.append(nic_id(s, i))
        for i in range(spec.gpus):
            node = gpu_id(s, i)
            g.add_node(node, kind="gpu", server=s, local=i, rank=s * spec.gpus + i, gpu=gpu.name)
            gpu_nodes.append(node)
            if spec.gpus > 1:
                g.add_edge(node, sw, bw_bytes_per_s=nvl_bw, latency_s=nvl.latency_s,
                           link=spec.nvlink, tier="nvlink", links=1)
            g.add_edge(node, nic_id(s, i // gpus_per_nic), bw_bytes_per_s=host.bw_bytes_per_s,
                       latency_s=host.latency_s, link=spec.host_link, tier="pcie", links=1)
    return gpu_nodes, nic_nodes
