"""Who a simulated rank talks to: its GPU and its TP, DP, EP and pipeline-neighbour groups.

Placement through an optional rank map (job rank -> cluster GPU); groups are built once per
slot and reused by every op (building them anew dominated program generation for 1,024 ranks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from workloads.parallelism import TrainingJob


def _memo(method):
    """Cache a group builder per generator and arguments: every op of a rank reuses the same
    group tuples (building them anew dominated program generation for 1,024 ranks)."""
    name = method.__name__

    def wrapper(self, *args):
        cache = self.__dict__.setdefault("_groups", {})
        key = (name, *args)
        got = cache.get(key)
        if got is None:
            got = cache[key] = method(self, *args)
        return got

    wrapper.__name__, wrapper.__doc__ = name, method.__doc__
    return wrapper


@dataclass(frozen=True)
class Slot:
    """One simulated rank: its stage and (unfolded) its dp, cp and tp index."""

    stage: int
    dp: int | None  # None: folded over every data-parallel replica
    cp: int | None  # None: folded over every context-parallel rank
    tp: int | None  # None: folded over every tensor-parallel rank



class RankGroups:
    """The groups of one job's ranks (folded slots stand for every replica they fold)."""

    def __init__(self, job: TrainingJob, rank_map: Sequence[int] | None = None) -> None:
        self.job, self.par, self.rank_map = job, job.par, rank_map

    def gpu(self, pp_i: int, dp_i: int, tp_i: int, cp_i: int = 0) -> int:
        """The cluster GPU rank of a job rank (through the placement map when there is one)."""
        r = self.par.rank(pp_i, dp_i, tp_i, cp_i)
        return self.rank_map[r] if self.rank_map is not None else r

    def _r(self, fixed: int | None, n: int) -> range:
        return range(n) if fixed is None else range(fixed, fixed + 1)

    @_memo
    def tp_groups(self, s: Slot) -> tuple[tuple[int, ...], ...]:
        p = self.par
        return tuple(tuple(self.gpu(s.stage, d, t, c) for t in range(p.tp))
                     for d in self._r(s.dp, p.dp) for c in self._r(s.cp, p.cp))

    @_memo
    def dp_groups(self, s: Slot) -> tuple[tuple[int, ...], ...]:
        """Gradient-reduction groups of replicated weights: all dp x cp ranks of a TP slice."""
        p = self.par
        return tuple(tuple(self.gpu(s.stage, d, t, c) for d in range(p.dp) for c in range(p.cp))
                     for t in self._r(s.tp, p.tp))

    @_memo
    def expert_dp_groups(self, s: Slot) -> tuple[tuple[int, ...], ...]:
        """Replicas of one expert shard: data-parallel ranks with the same index mod ep."""
        p = self.par
        shards = range(p.ep) if s.dp is None else range(s.dp % p.ep, s.dp % p.ep + 1)
        return tuple(tuple(self.gpu(s.stage, d, t, c) for d in range(e, p.dp, p.ep)
                           for c in range(p.cp))
                     for t in self._r(s.tp, p.tp) for e in shards)

    @_memo
    def ep_groups(self, s: Slot) -> tuple[tuple[int, ...], ...]:
        """All-to-all groups: ep consecutive data-parallel replicas."""
        p = self.par
        blocks = range(p.dp // p.ep) if s.dp is None else range(s.dp // p.ep, s.dp // p.ep + 1)
        return tuple(tuple(self.gpu(s.stage, d, t, c) for d in range(bl * p.ep, (bl + 1) * p.ep))
                     for bl in blocks for t in self._r(s.tp, p.tp) for c in self._r(s.cp, p.cp))

    @_memo
    def pairs(self, s: Slot, other_stage: int, cp_shift: int = 0) -> tuple[tuple[int, ...], ...]:
        p = self.par
        return tuple((self.gpu(s.stage, d, t, c), self.gpu(other_stage, d, t, (c + cp_shift) % p.cp))
                     for d in self._r(s.dp, p.dp) for c in self._r(s.cp, p.cp)
                     for t in self._r(s.tp, p.tp))

    # -- op helpers --------------------------------------------------------------------
