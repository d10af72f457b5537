"""Evaluating a `gemm_table` curve: a GEMM's rate from the nearest measured shapes (numpy).

See `GemmTableCurve` for the model. Kept apart from the curve record so the record stays a
plain schema and the vectorised search (used by fitting, thousands of queries at once) lives
in one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from dcsim.profile.curves import GemmTableCurve

# Weight of the alignment feature against one octave of a dimension: a GEMM whose n and k are
# multiples of 64 and one whose dims are odd differ by up to 3.5x in rate at the same size
# (EleutherAI's A100 k sweep: 8192x51200x14272 at 254 TFLOP/s, 14273 at 72), more than a
# factor 2 in any one dimension does; 1.0 makes the two octaves of alignment between 64 and 16
# weigh like a factor 4 in size. Our choice, checked by the held-out error of the fit.
ALIGN_WEIGHT = 1.0
# Alignment is counted up to 64 elements: beyond it cuBLAS tile shapes (64-256) no longer gain
# from the dimensions (NVIDIA Matrix Multiplication Background guide: multiples of 64/128 best).
ALIGN_CAP = 64
# Distance in octaves beyond which a query is flagged as far from every measured shape.
FAR_OCTAVES = 1.0
# ln FLOP/s gap weights: inverse squared distance, softened so an exact match dominates.
_EPS = 1e-3


def alignment(n: int, k: int) -> int:
    """Largest power of two (capped at ALIGN_CAP) dividing both n and k."""
    g = math.gcd(int(n), int(k)) or ALIGN_CAP
    return min(g & -g, ALIGN_CAP)


def features(shapes: np.ndarray) -> np.ndarray:
    """Feature rows (log2 batch, m, n, k, weighted log2 alignment) of [batch, m, n, k] rows."""
    s = np.asarray(shapes, dtype=np.int64).reshape(-1, 4)
    g = np.gcd(s[:, 2], s[:, 3])
    g = np.where(g == 0, ALIGN_CAP, g)
    align = np.minimum(g & -g, ALIGN_CAP)
    return np.column_stack([np.log2(np.maximum(s, 1)), ALIGN_WEIGHT * np.log2(align)])


def shape_row(shape: Mapping[str, int]) -> list[int]:
    """[batch, m, n, k] of a kernel shape dict (batch 1 when absent)."""
    return [int(shape.get("batch", 1)), int(shape["m"]), int(shape["n"]), int(shape["k"])]


class GemmTable:
    """The arrays of a GemmTableCurve, built once, answering many queries at once."""

    def __init__(self, curve: GemmTableCurve) -> None:
        self.x = features(np.array(curve.shapes))
        self.y = np.array(curve.log_rates, dtype=float)
        self.k = min(curve.neighbours, len(self.y))
        self.lo = self.x.min(axis=0)
        self.hi = self.x.max(axis=0)

    def log_rates(self, shapes: np.ndarray, exclude: np.ndarray | None = None,
                  ) -> tuple[np.ndarray, np.ndarray]:
        """ln FLOP/s at each [batch, m, n, k] row and whether it lies outside the measured
        shapes; `exclude[i]` (optional) is a table row query i may not use (held-out tests)."""
        q = features(shapes)
        clipped = np.clip(q, self.lo, self.hi)
        outside = np.any(np.abs(clipped - q) > 1e-9, axis=1)
        out = np.empty(len(q))
        near = np.empty(len(q))
        for a in range(0, len(q), 512):
            d = np.sqrt(((clipped[a:a + 512, None, :] - self.x[None, :, :]) ** 2).sum(axis=2))
            if exclude is not None:
                d[np.arange(d.shape[0]), exclude[a:a + 512]] = np.inf
            idx = np.argpartition(d, self.k - 1, axis=1)[:, : self.k]
            dk = np.take_along_axis(d, idx, axis=1)
            w = 1.0 / (dk + _EPS) ** 2
            out[a:a + 512] = (w * self.y[idx]).sum(axis=1) / w.sum(axis=1)
            near[a:a + 512] = dk.min(axis=1)
        return out, outside | (near > FAR_OCTAVES)

    def time(self, flops: float, shape: Mapping[str, int]) -> tuple[float, bool]:
        """Seconds for a GEMM of `flops` at `shape`, and whether it extrapolates."""
        lr, far = self.log_rates(np.array([shape_row(shape)]))
        return flops / math.exp(float(lr[0])), bool(far[0])
