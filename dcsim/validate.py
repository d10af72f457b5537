"""Predicted vs published: the simulator against public measurements nobody here wrote."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dcsim.scenario import load_scenario


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


def megatron_scenario(row: dict[str, Any], table: dict[str, Any], network: str) -> dict[str, Any]:
    """A scenario for one row of Megatron-LM SC'21 Table 1 (Selene: DGX A100, HDR fat-tree)."""
    h = row["hidden"]
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
            # Megatron-LM as of SC'21: LocalDDP reduced gradients after the backward pass, and
            # weight gradients were accumulated by a separate add (no accumulation fusion).
            "parallelism": {"tp": row["tp"], "pp": row["pp"], "dp": row["dp"],
                            "recompute": table["recompute"], "overlap_grad_reduce": False,
                            "gradient_accumulation_fusion": False, "overlap_p2p_comm": False},
            # Micro-batch size is not in the table; 1 is Megatron's default.
            "batch": {"global": row["global_batch"], "micro": 1},
            # SC'21 predates FlashAttention (2022): attention materialises the s x s scores.
            "flash_attention": False,
        },
        "run": {"network": network, "fold": "auto"},
    }


def validate_megatron(path: Path, network: str = "analytical") -> list[ValidationRow]:
    from dcsim.simulate import simulate

    table = yaml.safe_load(path.read_text())
    rows = []
    for row in table["rows"]:
        res = simulate(load_scenario(megatron_scenario(row, table, network)))
        rows.append(ValidationRow(f"{row['params_b']}B tp{row['tp']} pp{row['pp']} "
                                  f"dp{row['dp']} ({row['gpus']} GPUs)",
                                  row["tflops_per_gpu"], res.hardware_tflops_per_gpu,
                                  "TFLOP/s/GPU"))
    return rows
