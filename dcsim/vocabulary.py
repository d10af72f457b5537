"""Shared vocabulary of the core: names and per-unit constants that several packages must agree on.

One place for them, each with its source, so workloads, calibration and the cost models cannot
drift apart.
"""

from __future__ import annotations

# FlashAttention backward runs 5 matmuls against 2 in forward: 2.5x the forward FLOPs
# (Dao et al. 2022, FlashAttention, section 3.1 / appendix B).
FLASH_BWD_FLOP_RATIO = 2.5
