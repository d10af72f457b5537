"""The `capacity:` section of a capacity file (a fleet scenario with this section added)."""

from __future__ import annotations

import copy
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, \
    model_validator

from dcsim import units
from dcsim.app.scenario import ScenarioError, read_yaml_file, scenario_error_text, set_path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Decide(str, Enum):
    """Which figure of a size's seeds decides whether it meets the service level."""

    UPPER = "upper"  # the upper end of the confidence interval (conservative)
    MEAN = "mean"


class SLO(_Strict):
    queue_wait_p95: float | None = None   # seconds: p95 queueing delay under this
    all_done: bool = False                # every submitted job completed within the horizon

    @field_validator("queue_wait_p95", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float | None:
        return None if v is None else units.parse_duration(v)

    @model_validator(mode="after")
    def _one(self) -> "SLO":
        if (self.queue_wait_p95 is None) == (not self.all_done):
            raise ValueError("give one service level: queue_wait_p95: DURATION or all_done: true")
        return self


class NodeRange(_Strict):
    min: int = Field(ge=1)
    max: int = Field(ge=1)
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _order(self) -> "NodeRange":
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self

    def sizes(self) -> list[int]:
        got = list(range(self.min, self.max + 1, self.step))
        return got if got[-1] == self.max else [*got, self.max]


class Demand(_Strict):
    growth_per_month: float = Field(0.0, ge=-0.99)  # job arrivals grow this much per month
    months_ahead: float = Field(0.0, ge=0.0)        # the quarter planned for starts this far out

    @property
    def scale(self) -> float:
        return (1.0 + self.growth_per_month) ** self.months_ahead


class CapacitySpec(_Strict):
    slo: SLO
    nodes: NodeRange
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])  # or a count: 3 = [0, 1, 2]
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    decide_on: Decide = Decide.UPPER
    demand: Demand = Field(default_factory=lambda: Demand.model_validate({}))

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        if isinstance(v, int):
            if v < 1:
                raise ValueError("a count >= 1 or a list of seeds")
            return list(range(v))
        if not v:
            raise ValueError("a count >= 1 or a list of seeds")
        return v


def load_capacity(path: Path, overrides: list[str] | None = None
                  ) -> tuple[CapacitySpec, dict[str, Any], Path]:
    """A capacity file -> (its capacity section, the fleet scenario data, its folder)."""
    data = read_yaml_file(path, "capacity file")
    if not isinstance(data, dict) or "capacity" not in data:
        raise ScenarioError(f"{path}: a fleet scenario with a capacity: section")
    data = copy.deepcopy(data)
    for a in overrides or []:
        set_path(data, a)
    raw = data.pop("capacity")
    try:
        spec = CapacitySpec.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError("capacity." + scenario_error_text(exc)) from None
    except units.UnitError as exc:
        raise ScenarioError(f"capacity.slo.queue_wait_p95: {exc}") from None
    return spec, data, path.parent
