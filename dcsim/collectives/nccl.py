"""NCCL's published cost-model facts (latencies in us, bandwidths in GB/s), with their sources.

Unless noted, the tables are those of NVIDIA/nccl src/graph/tuning.cc as of NCCL 2.24/2.25
(`ncclTopoTuneModel`, the release with Hopper/Blackwell rows and PAT): per algorithm/protocol
base latency, per-step hardware latency by link class, and the protocol bandwidth refinements. dcsim uses them as NCCL does: predicted time =
latency + size / bandwidth, the cheapest (algorithm, protocol) wins.
"""

from __future__ import annotations

PROTOCOLS = ("LL", "LL128", "Simple")

# baseLat[algorithm][protocol] (us): tuning.cc `baseLat`.
BASE_LAT_US = {
    "tree": {"LL": 6.8, "LL128": 14.0, "Simple": 8.4},
    "ring": {"LL": 6.6, "LL128": 14.0, "Simple": 8.4},
    "nvls": {"Simple": 0.0},
    "nvls_tree": {"Simple": 0.0},
}

# hwLat[hw][algorithm][protocol] (us per step): tuning.cc `hwLat` (NVLINK, PCI, NET).
HW_LAT_US = {
    "nvlink": {"tree": {"LL": 0.6, "LL128": 1.25, "Simple": 4.0},
               "ring": {"LL": 0.6, "LL128": 1.9, "Simple": 3.4},
               "nvls": {"Simple": 25.0}, "nvls_tree": {"Simple": 25.0}},
    "pci": {"tree": {"LL": 1.0, "LL128": 1.9, "Simple": 4.0},
            "ring": {"LL": 1.0, "LL128": 2.5, "Simple": 5.7},
            "nvls": {"Simple": 0.0}, "nvls_tree": {"Simple": 0.0}},
    "net": {"tree": {"LL": 5.0, "LL128": 8.5, "Simple": 14.0},
            "ring": {"LL": 2.7, "LL128": 4.0, "Simple": 14.0},
            "nvls": {"Simple": 18.0}, "nvls_tree": {"Simple": 14.0}},
}

# llMaxBws[row][nodes bucket] (GB/s): tuning.cc. Single node: row by GPU generation; multi-node:
# row by host CPU vendor (0 = Intel, assumed here). Buckets: 1 node, 2 nodes, more.
LL_MAX_BW_GBPS = {"volta": (39.0, 39.0, 20.4), "ampere": (87.7, 22.5, 19.0),
                  "hopper": (141.0, 45.0, 35.0), "blackwell": (282.0, 90.0, 70.0),
                  "intel-host": (39.0, 39.0, 20.4)}

# Protocol bandwidth refinements (tuning.cc "Various model refinements"):
RING_LL_FACTOR = 0.5  # LL: 4 bytes of flag per 4 bytes of data
RING_LL128_FACTOR = 0.92  # LL128: 120 payload bytes per 128-byte line, rounded down
TREE_FACTOR = 0.92
TREE_LL_FACTOR = 1.0 / 3.8
TREE_LL128_FACTOR_1NODE = 7.0 / 9.0
TREE_LL128_FACTOR_MULTI = 120.0 / 128.0
TREE_ALGBW_RATIO = 0.5  # tuning.cc: "Convert bus BW to algorithm BW": tree ratio .5

# Per-step host/proxy overhead of inter-node rings (tuning.cc getNetOverhead: 1 us on Intel,
# 2 us on AMD hosts; x3 for the Simple protocol).
NET_OVERHEAD_US = 1.0
NET_OVERHEAD_SIMPLE_FACTOR = 3.0

# Tree bandwidth correction for medium sizes, powers of two from 64 B (ncclTopoGetAlgoTime,
# tuning.cc `treeCorrectionFactor`, NCCL 2.7-2.20 table).
TREE_CORRECTION = {
    "LL": (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0),
    "LL128": (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .5, .6, .6, .7, .7, .8, .9, .9, 1.0),
    "Simple": (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .5, .5, .6, .6, .7, .8, .9),
}

# NVLink SHARP efficiency (NVIDIA/nccl src/tuning/nvls.cc `nvlsEfficiency`, NCCL 2.23+):
# measured share of the NVLink bandwidth NVLS reaches; 0 where the GPU has no NVLS.
NVLS_EFFICIENCY = {"hopper": 0.85, "blackwell": 0.74}

# --- The NVLS kernel's pipeline (what tuning.cc's latency + size / bandwidth leaves out) -------
# An NVLS collective runs on NVLS_NCHANNELS CTAs (channels), every one of them at every size:
# enqueue.cc topoGetAlgoInfo shrinks nChannels by thread threshold for ring/tree only; for NVLS
# `nc = comm->nvlsChannels` ("NVLS should not need more than 16 channels to get peak BW").
# NVIDIA/nccl src/transport/nvls.cc: NCCL_PARAM(NvlsChannels, "NVLS_NCHANNELS", 16) (the
# Hopper-era default; later releases may run Blackwell on more).
NVLS_NCHANNELS = 16
# Largest NVLS chunk (bytes per head per channel per loop): src/transport/nvls.cc
# NCCL_PARAM(NvlsChunkSize, "NVLS_CHUNKSIZE", 128 * 1024) (comm->nvlsChunkSize).
NVLS_CHUNK_BYTES = 128 * 1024
# Pipeline stages of one loop, each a warp group of its own, handing loops on through an
# NCCL_STEPS-deep FIFO (src/device/all_reduce.h, all_gather.h, reduce_scatter.h,
# RunWorkElement<..., NCCL_ALGO_NVLS, NCCL_PROTO_SIMPLE>): all-reduce = scatter (copy the input
# into the heads' NVLS buffers) -> reduce (multimem.ld_reduce + multimem.st over NVLink) ->
# gather (copy the result out); all-gather = multicast send -> gather; reduce-scatter =
# scatter -> reduce. The scatter/gather primitives (prims_simple.h ScatterGatherOp) wait for,
# copy to and post every head's chunk of a loop together, so stages hand on whole loops.
NVLS_STAGES = {"all_reduce": 3, "all_gather": 2, "reduce_scatter": 2}


def nvls_chunk_bytes(size_bytes: float, n_heads: int, n_channels: int = NVLS_NCHANNELS) -> int:
    """The chunk NCCL uses for a single-node NVLS collective of size_bytes.

    NVIDIA/nccl src/enqueue.cc calcCollChunking, NVLS branch (NCCL 2.18-2.2x): the chunk starts
    at comm->nvlsChunkSize and is halved for mid sizes, the thresholds being multiples of
    concurrentOps * chunkSize, concurrentOps = nChannels * nHeads (one head per local GPU on one
    node). size_bytes is NCCL's nBytes (all-gather / reduce-scatter: count * nRanks * type size,
    enqueue.cc "count is per rank"), i.e. the nccl-tests size."""
    ops = n_channels * max(int(n_heads), 1)
    c = NVLS_CHUNK_BYTES
    if size_bytes < 64 * ops * c and c > 65536:
        c = 65536
    if size_bytes < 8 * ops * c and c > 32768:
        c = 32768
    if size_bytes < 2 * ops * c and c > 16384:
        c = 16384
    return c


def nvls_chunk_classes(n_heads: int, n_channels: int = NVLS_NCHANNELS) -> tuple[tuple[float, float, int], ...]:
    """(min_bytes, max_bytes, chunk) for every chunk nvls_chunk_bytes gives: the sizes in
    [min, max) run with that chunk; increasing, covering [0, inf)."""
    ops = n_channels * max(int(n_heads), 1)
    # every threshold of nvls_chunk_bytes is ops * (2, 8 or 64) * (a power-of-two chunk)
    points = sorted({0} | {m * ops * (1 << e) for m in (2, 8, 64) for e in range(12, 21)})
    out: list[tuple[float, float, int]] = []
    for p in points:
        c = nvls_chunk_bytes(p, n_heads, n_channels)
        if out and out[-1][2] == c:
            continue
        if out:
            out[-1] = (out[-1][0], float(p), out[-1][2])
        out.append((float(p), float("inf"), c))
    return tuple(out)


def gpu_arch(gpu_name: str) -> str:
    """The NCCL compute-capability class of a catalog GPU."""
    name = gpu_name.lower()
    if name.startswith(("h100", "h200", "gh200")):
        return "hopper"
    if name.startswith(("b200", "gb200", "b100", "gb300", "b300")):
        return "blackwell"
    if name.startswith(("a100", "a800")):
        return "ampere"
    return "volta"


def ll_max_bw(arch: str, n_nodes: int) -> float:
    """llMaxBw in bytes/s for an architecture and node count."""
    row = LL_MAX_BW_GBPS["intel-host"] if n_nodes > 1 else LL_MAX_BW_GBPS.get(arch, LL_MAX_BW_GBPS["volta"])
    return row[min(n_nodes, 3) - 1] * 1e9


def tree_correction(protocol: str, size_bytes: float) -> float:
    """NCCL's tree bandwidth correction factor for a message size (1.0 outside the table)."""
    if size_bytes < 64:
        return TREE_CORRECTION[protocol][0]
    idx = int(size_bytes) >> 6
    log = idx.bit_length() - 1
    table = TREE_CORRECTION[protocol]
    return table[log] if log < len(table) else 1.0
