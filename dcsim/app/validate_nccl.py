"""NCCL predicted vs published: the collective model against nccl-tests figures nobody here wrote.

Reproduces ../shared/validation/nccl-dgx-h100-allreduce.yaml (all-reduce on one DGX H100, bus
bandwidth per size and the 8-byte latency) and nccl-internode.yaml (inter-node ring all-reduce
bus bandwidth per node / per NIC, 4 nodes, 8 GiB). Each row carries the published value, the
prediction, the error in percent, and the algorithm/protocol the model chose.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from dcsim.collectives import CollectiveCall
from dcsim.network.analytical import analytical_time

INTERNODE_NODES = 4  # the file's rows are ring measurements "across 3+ nodes"
INTERNODE_SIZE_BYTES = 8 * 2 ** 30  # nccl-tests' usual largest size (-e 8G): the bandwidth plateau


def _row(source: str, case: str, metric: str, published: float, predicted: float,
         algorithm: str, protocol: str) -> dict[str, Any]:
    return {"source": source, "case": case, "metric": metric, "published": published,
            "predicted": round(predicted, 3),
            "error_pct": round(100.0 * (predicted - published) / published, 2),
            "algorithm": algorithm, "protocol": protocol}


def _dgx_h100(path: Path) -> list[dict[str, Any]]:
    from topologies import build_cluster
    data = yaml.safe_load(path.read_text())
    c = build_cluster("dgx-h100", nodes=1)
    group = (tuple(range(int(data["gpus"]))),)
    src = path.name
    rows = []
    for p in data["points"]:
        r = analytical_time(c, CollectiveCall("all_reduce", group, float(p["size_bytes"])))
        rows.append(_row(src, f"all_reduce {int(p['size_bytes'])} B", "busbw_GBps", float(p["busbw_GBps"]),
                         r.busbw_bytes_per_s / 1e9, r.algorithm, r.protocol))
        rows.append(_row(src, f"all_reduce {int(p['size_bytes'])} B", "time_us", float(p["time_us"]),
                         r.time_s * 1e6, r.algorithm, r.protocol))
    if "small_message_latency_us" in data:
        r = analytical_time(c, CollectiveCall("all_reduce", group, 8.0))
        rows.append(_row(src, "all_reduce 8 B", "time_us", float(data["small_message_latency_us"]),
                         r.time_s * 1e6, r.algorithm, r.protocol))
    return rows


def _internode(path: Path) -> list[dict[str, Any]]:
    from topologies import build_cluster
    data = yaml.safe_load(path.read_text())
    rows = []
    for spec in data["rows"]:
        c = build_cluster(spec["node"], nodes=INTERNODE_NODES)
        group = (tuple(range(c.n_gpus)),)
        r = analytical_time(c, CollectiveCall("all_reduce", group, INTERNODE_SIZE_BYTES, "ring"))
        nics = int(c.description["server"]["nics"])
        case = f"{spec['node']} x{INTERNODE_NODES} ring all_reduce 8 GiB ({spec.get('nic', '')})"
        if "allreduce_busbw_GBps" in spec:
            rows.append(_row(path.name, case, "busbw_GBps_per_node", float(spec["allreduce_busbw_GBps"]),
                             r.busbw_bytes_per_s / 1e9, r.algorithm, r.protocol))
        if "per_nic_busbw_GBps" in spec:
            rows.append(_row(path.name, case, "busbw_GBps_per_nic", float(spec["per_nic_busbw_GBps"]),
                             r.busbw_bytes_per_s / 1e9 / nics, r.algorithm, r.protocol))
    return rows


def validate_nccl(validation_dir: Path) -> list[dict[str, Any]]:
    """Rows of predicted vs published for the NCCL files found in validation_dir."""
    validation_dir = Path(validation_dir)
    rows: list[dict[str, Any]] = []
    h100 = validation_dir / "nccl-dgx-h100-allreduce.yaml"
    inter = validation_dir / "nccl-internode.yaml"
    if not h100.exists() and not inter.exists():
        raise FileNotFoundError(f"no nccl-*.yaml validation files in {validation_dir}")
    if h100.exists():
        rows += _dgx_h100(h100)
    if inter.exists():
        rows += _internode(inter)
    return rows


def main(argv: list[str] | None = None) -> None:
    """python -m dcsim.app.validate_nccl [DIR]: print the table."""
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "shared" / "validation"
    for r in validate_nccl(folder):
        print(f"{r['case']:<55} {r['metric']:<20} published {r['published']:>9.2f}  predicted "
              f"{r['predicted']:>9.2f}  {r['error_pct']:+7.1f}%  {r['algorithm']}/{r['protocol']}")


if __name__ == "__main__":
    main()
