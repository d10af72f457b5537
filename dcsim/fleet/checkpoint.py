"""Checkpoint interval and the closed forms the fleet simulation is checked against.

Young (1974): the interval of useful work between checkpoints that minimizes expected waste is
tau = sqrt(2 C M) for a checkpoint write time C and a mean time to failure M. Daly (2006) adds
the restart time R: tau = sqrt(2 C (M + R)) (first order). Both assume C << M.
"""

from __future__ import annotations

import math


def young_interval_s(write_s: float, mttf_s: float) -> float:
    """Young's optimum interval (J. W. Young, CACM 17(9), 1974)."""
    return math.sqrt(2.0 * write_s * mttf_s)


def daly_interval_s(write_s: float, mttf_s: float, restart_s: float) -> float:
    """Daly's first-order optimum (J. T. Daly, FGCS 22(3), 2006, eq. 20)."""
    return math.sqrt(2.0 * write_s * (mttf_s + restart_s))


def expected_ettr(interval_s: float, write_s: float, mttf_s: float, restart_s: float) -> float:
    """First-order expected effective training time ratio of one job under Poisson failures:
    1 - C/(tau + C) - (R + (tau + C)/2) / M, the waste model of Young and Daly that Kokolis et
    al. (HPCA'25, sec. on ETTR) use: each segment of tau useful seconds costs a write of C;
    each failure costs the restart R (detection, requeue, start-up, read-back) and, on
    average, half a segment of rework."""
    seg = interval_s + write_s
    return 1.0 - write_s / seg - (restart_s + seg / 2.0) / mttf_s
