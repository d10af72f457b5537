"""Shared test helpers: scenario dicts that run in milliseconds."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def small_scenario(**over: Any) -> dict[str, Any]:
    """A 16-GPU job (2 DGX H100): TP 4, PP 2, DP 2 on a 2-layer-per-stage GPT."""
    sc: dict[str, Any] = {
        "name": "small",
        "cluster": {"preset": "dgx-h100", "nodes": 2},
        "workload": {
            "model": {"layers": 8, "hidden": 2048, "heads": 16, "ffn_hidden": 8192,
                      "vocab": 32000},
            "seq_len": 1024,
            "precision": "bf16",
            "parallelism": {"tp": 4, "pp": 2, "dp": 2},
            "batch": {"global": 16, "micro": 1},
            "train": {"tokens": "1e9"},
        },
        "run": {"network": "analytical", "fold": "auto"},
    }
    for path, value in over.items():
        node = sc
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return copy.deepcopy(sc)


@pytest.fixture
def root() -> Path:
    return ROOT
