"""The algorithms dcsim knows, in the order they are tried (a tie goes to the first).

A new algorithm is one `Algorithm` subclass (see base.py: its phases of traffic and its protocol
terms) added to ALGORITHM_CLASSES; both back ends and the choice pick it up from here.
"""

from __future__ import annotations

from dcsim.collectives.base import Algorithm, Context
from dcsim.collectives.direct import P2P, AllToAll
from dcsim.collectives.hierarchical import Hierarchical
from dcsim.collectives.nvls import Nvls
from dcsim.collectives.ring import Ring
from dcsim.collectives.tree import Tree

ALGORITHM_CLASSES: tuple[type[Algorithm], ...] = (Ring, Tree, Nvls, Hierarchical, AllToAll, P2P)
# the names a CollectiveCall may force, in the order error messages list them
ALGORITHM_NAMES = ("ring", "tree", "hierarchical", "direct", "nvls")


def allowed_algorithms(op: str) -> tuple[str, ...]:
    """The algorithm names that implement `op`."""
    names = {cls.name for cls in ALGORITHM_CLASSES if op in cls.ops}
    return tuple(n for n in ALGORITHM_NAMES if n in names)


def candidates(ctx: Context) -> tuple[Algorithm, ...]:
    """Every algorithm that can run this call shape (none for groups of one rank)."""
    if ctx.n <= 1:
        return ()
    return tuple(cls(ctx) for cls in ALGORITHM_CLASSES if ctx.op in cls.ops and cls.applies(ctx))
