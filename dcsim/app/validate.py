"""Predicted vs published: the simulator against public measurements nobody here wrote."""

from __future__ import annotations

from dataclasses import dataclass
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
    from dcsim.app.simulate import simulate

    table = yaml.safe_load(path.read_text())
    runs = megatron_runs(path.parent)
    rows = []
    for row in table["rows"]:
        if float(row["params_b"]) not in runs:
            raise ValueError(f"{path}: no run configuration for the {row['params_b']}B row in "
                             "megatron-sc21-runs.yaml")
        run = runs[float(row["params_b"])]
        res = simulate(load_scenario(megatron_scenario(row, table, network, run)))
        rows.append(ValidationRow(f"{row['params_b']}B tp{row['tp']} pp{row['pp']} "
                                  f"dp{row['dp']} ({row['gpus']} GPUs)",
                                  row["tflops_per_gpu"], res.hardware_tflops_per_gpu,
                                  "TFLOP/s/GPU"))
    return rows
