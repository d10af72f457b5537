"""Parallelism-aware rank placement: which rank order a job runs in on a given cluster.

The Llama 3 paper (The Llama 3 Herd of Models, 2024, sec. 3.3.1-3.3.2) ordered its ranks
[TP, CP, PP, DP] on a RoCE fabric tapered 1:7 above 3,072-GPU pods: TP inside a server, CP and
PP inside a pod, DP across pods, so the oversubscribed tier carries only data-parallel traffic,
the most tolerant of latency (it overlaps with the backward pass). `auto` does the same when a
job spans more than one pod below a tapered spine tier and a pipeline fits inside one;
otherwise (a full-bisection fabric, a taper at the leaves, a job inside one pod, a MoE job
with expert parallelism) it keeps
Megatron-LM's default tp-cp-dp-pp, what Megatron runs without --use-tp-pp-dp-mapping.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Sequence

from dcsim.cluster import Cluster
from workloads.parallelism import RankOrder, TrainingJob

# An uplink tier counts as oversubscribed above this ratio of down- to up-link ports (a ratio
# of exactly 1 is a full-bisection tier; the float ratio of port counts needs no more slack).
_FULL_BISECTION = 1.0 + 1e-9


class TaperedTier(StrEnum):
    """The switch tier whose uplinks are oversubscribed (the fabric summary's names)."""

    LEAF = "leaf"
    SPINE = "spine"


@dataclass(frozen=True)
class Domains:
    """The full-bisection domains of a cluster: each GPU's domain and the tier above them."""

    of_gpu: tuple[int, ...]  # domain index of each GPU rank
    tier: TaperedTier        # the oversubscribed tier above the domains
    ratio: float             # its oversubscription (down : up)

    @property
    def name(self) -> str:
        """What one domain is called: a pod (below a tapered spine tier) or a leaf group."""
        return "pod" if self.tier is TaperedTier.SPINE else "leaf group"

    def sizes(self) -> dict[int, int]:
        """GPUs in each domain."""
        return dict(Counter(self.of_gpu))

    def gpus_per_domain(self) -> int:
        """GPUs in the smallest domain."""
        return min(self.sizes().values())


@dataclass(frozen=True)
class RankOrderChoice:
    """The order a job runs in and why (shown with the result)."""

    order: RankOrder
    reason: str


def full_bisection_domains(cluster: Cluster) -> Domains | None:
    """The GPUs below the lowest oversubscribed switch tier, grouped (None: no tier tapers).

    A tapered leaf tier groups servers that share a leaf (a rail-optimized scalable unit shares
    all its leaves); a tapered spine tier groups the GPUs of one pod."""
    summary = cluster.description.get("fabric_summary") or {}
    over = summary.get("oversubscription") or {}
    leaf, spine = (float(over.get(t, 1.0)) for t in TaperedTier)
    if leaf <= _FULL_BISECTION and spine <= _FULL_BISECTION:
        return None
    g = cluster.graph
    leaf_of_gpu: list[list[str]] = []
    for node in cluster.gpu_nodes:
        leaves = [up for nic in g.neighbors(node) if g.nodes[nic].get("kind") == "nic"
                  for up in g.neighbors(nic) if g.nodes[up].get("kind") == "leaf"]
        leaf_of_gpu.append(leaves)
    if not any(leaf_of_gpu):
        return None
    if leaf > _FULL_BISECTION:
        return Domains(_leaf_groups(cluster, leaf_of_gpu), TaperedTier.LEAF, leaf)
    pods = tuple(int(g.nodes[ls[0]].get("pod", 0)) if ls else -1 for ls in leaf_of_gpu)
    return Domains(pods, TaperedTier.SPINE, spine)


def _leaf_groups(cluster: Cluster, leaf_of_gpu: list[list[str]]) -> tuple[int, ...]:
    """Domain of each GPU when the leaf tier tapers: servers joined by any shared leaf."""
    parent = list(range(cluster.n_nodes))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_server: dict[str, int] = {}
    for rank, leaves in enumerate(leaf_of_gpu):
        server = cluster.server_of(rank)
        for leaf in leaves:
            other = first_server.setdefault(leaf, server)
            parent[find(server)] = find(other)
    roots: dict[int, int] = {}
    return tuple(roots.setdefault(find(cluster.server_of(r)), len(roots))
                 for r in range(cluster.n_gpus))


def choose_rank_order(job: TrainingJob, domains: Domains | None,
                      gpus: Sequence[int] | None = None) -> RankOrderChoice:
    """The order of a job whose rank i runs on GPU gpus[i] (default: GPU i). An explicit
    order is kept; `auto` takes Llama 3's order when the job spans several pods under a
    tapered spine tier and one pipeline (tp x cp x pp GPUs) fits in a pod."""
    p = job.par
    if p.rank_order != RankOrder.AUTO:
        return RankOrderChoice(RankOrder(p.rank_order), "set by the scenario")
    megatron = RankOrder.TP_CP_DP_PP
    if domains is None:
        return RankOrderChoice(megatron, "auto: no oversubscribed tier in the fabric")
    if domains.tier is not TaperedTier.SPINE:
        # Llama 3's rule is for pods of thousands of GPUs with the taper above them; under a
        # tapered leaf the domains are a few servers and DP, the bulk of the bytes, would
        # cross the taper on most ring hops (the two-job example runs 5% slower that way).
        return RankOrderChoice(megatron, "auto: the taper is above the leaves, not above pods")
    if p.ep > 1:
        # Expert-parallel groups are consecutive DP replicas: in Llama 3's order (a dense
        # model's) they would be whole pipelines apart, across pods, and their all-to-alls sit
        # on the critical path.
        return RankOrderChoice(megatron, "auto: expert parallelism keeps Megatron's order")
    placed = range(p.world) if gpus is None else gpus  # job rank -> GPU
    spanned = {domains.of_gpu[g] for g in placed}
    if len(spanned) < 2:
        return RankOrderChoice(megatron, f"auto: the job fits in one {domains.name} "
                                         "(full bisection)")
    pipeline = p.tp * p.cp * p.pp
    smallest = domains.gpus_per_domain()
    if pipeline > smallest:
        return RankOrderChoice(megatron, f"auto: a pipeline ({pipeline} GPUs) is larger than "
                                         f"a pod ({smallest} GPUs)")
    # In Llama 3's order data-parallel replica d is job ranks [d x pipeline, (d + 1) x pipeline).
    split = sum(1 for d in range(p.dp)
                if len({domains.of_gpu[g] for g in placed[d * pipeline:(d + 1) * pipeline]}) > 1)
    if split:
        return RankOrderChoice(megatron, f"auto: {split} of {p.dp} pipelines would straddle "
                                         "pods on these GPUs")
    return RankOrderChoice(RankOrder.TP_CP_PP_DP,
                           f"auto: spans {len(spanned)} {domains.name}s under {domains.ratio:.3g}:1;"
                           f" pipelines inside a {domains.name}, DP across (Llama 3 sec. 3.3)")


def with_rank_order(job: TrainingJob, order: RankOrder) -> TrainingJob:
    """The job in `order` (the same job when it already is)."""
    if job.par.rank_order == order:
        return job
    return replace(job, par=replace(job.par, rank_order=order))


def resolve_rank_order(job: TrainingJob, cluster: Cluster, gpus: Sequence[int] | None = None,
                       domains: Domains | None = None) -> tuple[TrainingJob, RankOrderChoice]:
    """The job with its rank order resolved on this cluster, and the choice made."""
    if domains is None and job.par.rank_order == RankOrder.AUTO:
        domains = full_bisection_domains(cluster)
    choice = choose_rank_order(job, domains, gpus)
    return with_rank_order(job, choice.order), choice
