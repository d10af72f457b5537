"""Predicted vs published: the simulator against public measurements nobody here wrote.

`validation_report` runs every public table (Megatron-LM SC'21 Table 1, the NCCL curves) and
returns each with its mean and worst error and the costs it was priced with; `render` prints
them (the README's validation section is that output).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dcsim.app.scenario import load_scenario


def bundled_validation_dir() -> Path:
    """The copies of ../shared/validation shipped with dcsim (same files, same provenance)."""
    return Path(str(resources.files("dcsim").joinpath("data", "validation")))


@dataclass(frozen=True)
class ValidationRow:
    label: str
    published: float
    predicted: float
    unit: str

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted - self.published) / self.published


@dataclass(frozen=True)
class ValidationTable:
    """One public table: its rows, where it comes from, and the costs that priced it."""

    title: str
    source: str
    costs: str
    rows: list[ValidationRow] = field(default_factory=list)

    @property
    def mean_abs_error_pct(self) -> float:
        return statistics.fmean(abs(r.error_pct) for r in self.rows) if self.rows else 0.0

    @property
    def max_abs_error_pct(self) -> float:
        return max((abs(r.error_pct) for r in self.rows), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "source": self.source, "costs": self.costs,
                "mean_abs_error_pct": round(self.mean_abs_error_pct, 2),
                "max_abs_error_pct": round(self.max_abs_error_pct, 2),
                "rows": [{"row": r.label, "published": r.published, "predicted": round(r.predicted, 2),
                          "unit": r.unit, "error_pct": round(r.error_pct, 2)} for r in self.rows]}


# torch DistributedDataParallel's default bucket_cap_mb is 25 MiB (torch.nn.parallel.
# DistributedDataParallel docs); Megatron SC'21 ran in fp16, 2 bytes per gradient.
TORCH_DDP_BUCKET_BYTES = 25 * 2**20
FP16_GRAD_BYTES = 2


def megatron_runs(directory: Path) -> dict[float, dict[str, Any]]:
    """How each Table 1 row was run (micro-batch, DDP, interleaving), from the paper's
    artifact scripts; see megatron-sc21-runs.yaml for the source."""
    path = directory / "megatron-sc21-runs.yaml"
    if not path.exists():
        path = bundled_validation_dir() / "megatron-sc21-runs.yaml"
    return {float(k): v for k, v in yaml.safe_load(path.read_text())["runs"].items()}


def megatron_scenario(row: dict[str, Any], table: dict[str, Any], network: str,
                      run: dict[str, Any]) -> dict[str, Any]:
    """A scenario for one row of Megatron-LM SC'21 Table 1 (Selene: DGX A100, HDR fat-tree),
    run as the paper's scripts ran it (`run`: one entry of megatron-sc21-runs.yaml)."""
    h = row["hidden"]
    torch_ddp = run["ddp"] == "torch"
    vp = row["layers"] // (row["pp"] * run["layers_per_virtual_stage"]) \
        if "layers_per_virtual_stage" in run else 1
    parallelism: dict[str, Any] = {
        "tp": row["tp"], "pp": row["pp"], "dp": row["dp"], "vp": vp,
        "recompute": table["recompute"],
        # torch DDP all-reduces buckets while the backward runs; LocalDDP after it.
        "overlap_grad_reduce": torch_ddp,
        # Megatron-LM as of SC'21: weight gradients accumulated by a separate add (no
        # accumulation fusion) and blocking pipeline sends.
        "gradient_accumulation_fusion": False, "overlap_p2p_comm": False}
    if torch_ddp:
        parallelism["ddp_bucket_params"] = TORCH_DDP_BUCKET_BYTES // FP16_GRAD_BYTES
    return {
        "name": f"megatron-{row['params_b']}b",
        "cluster": {"preset": "dgx-a100", "nodes": row["gpus"] // 8},
        "workload": {
            "model": {
                "name": f"gpt-{row['params_b']}b", "layers": row["layers"], "hidden": h,
                "heads": row["heads"], "ffn_hidden": 4 * h, "vocab": table["vocab"],
                "activation": "gelu", "tied_embeddings": True, "dropout": True,
            },
            "seq_len": table["seq_len"],
            "precision": table["precision"],
            "parallelism": parallelism,
            "batch": {"global": row["global_batch"], "micro": run["micro_batch"]},
            # SC'21 predates FlashAttention (2022): attention materialises the s x s scores.
            "flash_attention": False,
            # ... and ran Megatron-LM of 2021: apex layer norm, bias kernels, layout copies.
            "framework": "megatron-2021",
        },
        "run": {"network": network, "fold": "auto"},
    }


def validate_megatron(path: Path, network: str = "analytical") -> list[ValidationRow]:
    """Table 1's rows, predicted (see megatron_table for the costs used)."""
    return megatron_table(path, network).rows


def megatron_table(path: Path, network: str = "analytical") -> ValidationTable:
    """Megatron-LM SC'21 Table 1, each row simulated as the paper's scripts ran it."""
    from dcsim.app.simulate import simulate

    table = yaml.safe_load(path.read_text())
    runs = megatron_runs(path.parent)
    rows = []
    costs: list[tuple[str, float, str]] = []
    for row in table["rows"]:
        if float(row["params_b"]) not in runs:
            raise ValueError(f"{path}: no run configuration for the {row['params_b']}B row in "
                             "megatron-sc21-runs.yaml")
        run = runs[float(row["params_b"])]
        res = simulate(load_scenario(megatron_scenario(row, table, network, run)))
        p = res.provenance
        costs.append((p.calibration, 100 * (p.measured + p.fitted), p.note))
        rows.append(ValidationRow(f"{row['params_b']}B tp{row['tp']} pp{row['pp']} "
                                  f"dp{row['dp']} ({row['gpus']} GPUs)",
                                  row["tflops_per_gpu"], res.hardware_tflops_per_gpu,
                                  "TFLOP/s/GPU"))
    return ValidationTable("Megatron-LM SC'21 Table 1 (A100, TFLOP/s per GPU, full recompute)",
                           str(table.get("source", path.name)), _costs_line(costs), rows)


def _costs_line(costs: list[tuple[str, float, str]]) -> str:
    """Which costs priced the rows: profile, share of compute time measured or fitted, source."""
    parts = []
    for name in sorted({c[0] for c in costs}):
        shares = [c[1] for c in costs if c[0] == name]
        notes = sorted({c[2] for c in costs if c[0] == name and c[2]})
        parts.append(f"{name}, {min(shares):.0f}-{max(shares):.0f}% of compute time measured or fitted"
                     + (f" ({'; '.join(notes)})" if notes else ""))
    return "; ".join(parts)


def nccl_tables(folder: Path) -> list[ValidationTable]:
    """The NCCL tables (nccl-tests figures), one per source file, priced by the network model."""
    from dcsim.app.validate_nccl import validate_nccl

    by_source: dict[str, list[ValidationRow]] = {}
    for r in validate_nccl(folder):
        by_source.setdefault(r["source"], []).append(
            ValidationRow(f"{r['case']} {r['metric']}", float(r["published"]), float(r["predicted"]),
                          r["metric"]))
    return [ValidationTable(f"NCCL {src.removesuffix('.yaml')} (nccl-tests, published)", src,
                            "network model (closed form over routed paths; link datasheets)", rows)
            for src, rows in by_source.items()]


def validation_report(folder: Path, network: str = "analytical") -> list[ValidationTable]:
    """Every public table under `folder`: Megatron SC'21 Table 1, then the NCCL curves."""
    path = folder / "megatron-sc21-table1.yaml"
    return [megatron_table(path, network), *nccl_tables(folder)]


def render(tables: list[ValidationTable], out: Any) -> None:
    """Print each table (rich) with its mean and worst error and the costs that priced it."""
    from rich.table import Table

    for vt in tables:
        t = Table(title=vt.title)
        for c in ("case", "published", "predicted", "error"):
            t.add_column(c, justify="left" if c == "case" else "right")
        for r in vt.rows:
            t.add_row(r.label, f"{r.published:g}", f"{r.predicted:.1f}", f"{r.error_pct:+.1f}%")
        out.print(t)
        out.print(f"mean |error| {vt.mean_abs_error_pct:.1f}%, worst {vt.max_abs_error_pct:.1f}% "
                  f"({len(vt.rows)} rows)\ncosts: {vt.costs}\nsource: {vt.source}\n")
