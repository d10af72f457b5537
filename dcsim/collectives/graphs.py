"""The communication graphs NCCL builds over a group: channel rings and double binary trees."""

from __future__ import annotations

from typing import Iterable

from dcsim.cluster import Cluster


def by_server(cluster: Cluster, group: Iterable[int]) -> list[list[int]]:
    """The group's ranks per server, servers in the order the group first reaches them.

    NCCL numbers a communicator's nodes by their first rank and connects rings and trees across
    nodes in that order (init.cc rankToNode; graph/connect.cc), so a job whose consecutive ranks
    sit under different leaves crosses the spine on every hop. Inside a server the order does not
    matter on an NVSwitch; ranks are sorted there.
    """
    out: dict[int, list[int]] = {}
    for r in group:
        out.setdefault(cluster.server_of(r), []).append(r)
    return [sorted(v) for v in out.values()]


def ring_edges(cluster: Cluster, group: tuple[int, ...]) -> tuple[list[int], list[int], int]:
    """NCCL-style channel rings over a group: (src, dst, n_channels); one edge per hop per channel.

    Across servers there is one channel per local GPU; channel c enters server i at local
    position (c - i) mod g and leaves it from the position before, so consecutive servers hand
    over on the same rail (NIC index) as rail-optimized fabrics require.
    """
    per = by_server(cluster, group)
    if len(per) <= 1:
        ranks = per[0] if per else []
        return ranks, ranks[1:] + ranks[:1], 1
    n_ch = min(len(p) for p in per)
    src: list[int] = []
    dst: list[int] = []
    for c in range(n_ch):
        seq: list[int] = []
        for i, loc in enumerate(per):
            g = len(loc)
            e = (c - i) % g
            seq += loc[e:] + loc[:e]
        src += seq
        dst += seq[1:] + seq[:1]
    return src, dst, n_ch


def binary_tree(m: int) -> list[int]:
    """Parent of each of m ranks in NCCL's binary tree (-1 for the root, rank 0): a rank's
    parent flips its lowest set bit up one place, or clears it when that is out of range; odd
    ranks are leaves (NVIDIA/nccl src/graph/trees.cc, ncclGetBtree)."""
    parent = [-1] * m
    for r in range(1, m):
        bit = r & -r
        up = (r ^ bit) | (bit << 1)
        parent[r] = up if up < m else r ^ bit
    return parent


def double_binary_tree(m: int) -> tuple[list[int], list[int]]:
    """NCCL's two complementary trees over m ranks: the binary tree, and the same tree mirrored
    (m even) or shifted by one (m odd), so a rank is interior in at most one of them and the two
    halves of the buffer load every rank's links evenly (NVIDIA/nccl src/graph/trees.cc,
    ncclGetDtree; Sanders, Speck, Traeff, "Two-tree algorithms for full bandwidth broadcast,
    reduction and scan", Parallel Computing 2009)."""
    t1 = binary_tree(m)
    t2 = [-1] * m
    for r in range(m):
        if m % 2:
            p = t1[(r - 1) % m]
            t2[r] = -1 if p < 0 else (p + 1) % m
        else:
            p = t1[m - 1 - r]
            t2[r] = -1 if p < 0 else m - 1 - p
    return t1, t2


def tree_edges(cluster: Cluster, group: tuple[int, ...]) -> tuple[list[int], list[int], list[float]]:
    """NCCL's tree all-reduce as traffic: a double binary tree across servers (one channel per
    local GPU/NIC), chains inside; every edge in both directions (reduce up, broadcast down),
    each carrying 1 / (2 trees x channels) of the buffer. Returns (src, dst, bytes per byte)."""
    per = by_server(cluster, group)
    m, g = len(per), min(len(p) for p in per)
    share = 1.0 / (2 * g)
    trees = double_binary_tree(m) if m > 1 else ([-1], [-1])
    src: list[int] = []
    dst: list[int] = []
    for c in range(g):
        for parent in trees:
            for i, p in enumerate(parent):
                if p >= 0:
                    a, b = per[i][c], per[p][c]
                    src += [a, b]
                    dst += [b, a]
            for loc in per:
                chain = loc[c:] + loc[:c]
                for a, b in zip(chain[:-1], chain[1:], strict=False):
                    src += [a, b]
                    dst += [b, a]
    return src, dst, [share] * len(src)


def per_server_groups(cluster: Cluster, groups: Iterable[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Every group cut at server boundaries: the groups of the work done inside servers."""
    return [tuple(loc) for grp in groups for loc in by_server(cluster, grp)]


def rail_groups(cluster: Cluster, groups: Iterable[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Per group, the j-th rank of every server together (one group per local position): the
    groups of the work done across servers."""
    out = []
    for grp in groups:
        per = by_server(cluster, grp)
        for j in range(min(len(p) for p in per)):
            out.append(tuple(p[j] for p in per))
    return out
