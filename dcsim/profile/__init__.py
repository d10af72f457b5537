"""Calibration profiles: the JSON file `dcsim calibrate` writes, and what the simulator asks of it.

A profile holds the device's metadata, the raw timed samples (kernels and collectives), the
curves fitted to them and the quality of each fit. The simulator asks two questions of it:
`Profile.op_time` (how long does an op of class C with F FLOP and B bytes take here) and
`Profile.collective_time` (how long does this collective of S bytes over n ranks take here).
Every answer says whether it is `measured` (a sample at exactly that size) or `fitted`
(interpolated by the curve) and whether it is extrapolated beyond the measured sizes.

Curves (`kind`): `saturating` (overhead + size / rate), `loglog` (monotone interpolation),
`roofline` (overhead + FLOP / FLOP-rate + bytes / byte-rate: a smooth roofline in arithmetic
intensity, for a class whose samples differ in FLOP per byte), `two_regime` (two rates joined
continuously at a fitted size), and for collectives `alpha_beta` and `piecewise_alpha_beta`.
Schema version 2 added `roofline` and `two_regime`; version-1 files are read unchanged.

This module is pure (pydantic + math): it imports neither torch nor anything from `calibrate`.

Conventions (the contract between `calibrate/` and the cost model):
- Kernel FLOP and byte counts are those documented in `OP_CONVENTIONS`; a query must count the
  same way (e.g. attention FLOPs count the masked half of a causal attention too).
- Collective `size_bytes` follows nccl-tests (doc/PERFORMANCE.md): the size of the whole
  buffer, i.e. per-rank buffer for all_reduce / broadcast / all_to_all, the gathered output for
  all_gather, the un-scattered input for reduce_scatter, and the message for send_recv.
- Collective times are wall time of one operation, the slowest rank; send_recv is one way.
- Kernels are timed cold by default (caches flushed before each call, as a training step finds
  its data in memory) or warm (calls back to back); `KernelSample.cache` says which and
  `Metadata.cache_flush_bytes` how much was written (calibrate/kernels.py says why and what it
  was checked against).
- `Profile.framework` holds the per-kernel framework cost a kernel pays inside a training step
  beyond what its isolated sample already includes (autograd recording, module calls).
"""

from __future__ import annotations

from dcsim.profile.conventions import (
    COLLECTIVES,
    ELEMENT_BYTES,
    OP_CLASSES,
    OP_CONVENTIONS,
    OP_SIZE_METRIC,
    OPTIMIZER_BYTES_PER_PARAM,
    OPTIMIZER_FLOPS_PER_PARAM,
    PRECISIONS,
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    STREAMING_COUNTS,
)
from dcsim.profile.curves import (
    AlphaBeta,
    GemmTableCurve,
    LogLogCurve,
    PiecewiseAlphaBeta,
    RooflineCurve,
    SaturatingCurve,
    TwoRegimeCurve,
    curve_time,
)
from dcsim.profile.files import load_profile, save_profile
from dcsim.profile.model import Profile
from dcsim.profile.records import (
    CollectiveFit,
    CollectiveSample,
    ComputeFit,
    Efficiency,
    FitQuality,
    FrameworkOverhead,
    KernelSample,
    Metadata,
    OpEstimate,
    ProfileError,
    PublishedSource,
    Unsupported,
)


__all__ = [
    "SCHEMA_VERSION",
    "READABLE_SCHEMA_VERSIONS",
    "OP_CLASSES",
    "COLLECTIVES",
    "PRECISIONS",
    "OP_SIZE_METRIC",
    "OP_CONVENTIONS",
    "ProfileError",
    "OpEstimate",
    "Efficiency",
    "Metadata",
    "KernelSample",
    "CollectiveSample",
    "Unsupported",
    "FrameworkOverhead",
    "STREAMING_COUNTS",
    "OPTIMIZER_FLOPS_PER_PARAM",
    "OPTIMIZER_BYTES_PER_PARAM",
    "ELEMENT_BYTES",
    "SaturatingCurve",
    "LogLogCurve",
    "RooflineCurve",
    "TwoRegimeCurve",
    "GemmTableCurve",
    "PublishedSource",
    "AlphaBeta",
    "PiecewiseAlphaBeta",
    "FitQuality",
    "ComputeFit",
    "CollectiveFit",
    "Profile",
    "curve_time",
    "load_profile",
    "save_profile",
]
