"""The placement policies by name: `make_policy("fgd")`; unknown names fail naming the choices."""

from __future__ import annotations

from dcsim.errors import InputError
from dcsim.fleet.packing.fgd import FragmentationGradientDescent
from dcsim.fleet.packing.policies import (
    BestFit,
    DotProduct,
    GpuClustering,
    GpuPacking,
    PlacementPolicy,
    RandomFit,
)
from dcsim.fleet.packing.records import PolicyName

POLICIES: dict[PolicyName, type[PlacementPolicy]] = {
    cls.name: cls for cls in (RandomFit, DotProduct, GpuClustering, GpuPacking, BestFit,
                              FragmentationGradientDescent)
}


def policy_names() -> list[str]:
    """The names a user may give, in the paper's order."""
    return [p.value for p in POLICIES]


def make_policy(name: str | PolicyName) -> PlacementPolicy:
    """A fresh policy object for a name such as "fgd" or "best-fit"."""
    try:
        return POLICIES[PolicyName(name)]()
    except ValueError:
        raise InputError(f"policy: unknown {str(name)!r}; one of "
                         f"{', '.join(policy_names())}") from None
