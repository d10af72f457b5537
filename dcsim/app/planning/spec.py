"""The `plan:` section of a plan file: what to search, within which limits, for what goal."""

from __future__ import annotations

import copy
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dcsim import units
from dcsim.app.scenario import (Scenario, ScenarioError, load_scenario, read_yaml_file,
                                scenario_error_text, set_path)


class Objective(str, Enum):
    """What `dcsim plan` minimises (or, for throughput, maximises)."""

    TIME_TO_TRAIN = "time_to_train"
    COST = "cost"
    ENERGY = "energy"
    TOKENS_PER_S_PER_GPU = "tokens_per_s_per_gpu"


Recompute = Literal["none", "selective", "full"]
DEFAULT_RECOMPUTE: tuple[Recompute, ...] = ("selective",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchSpace(_Strict):
    """Values tried per field; dp follows from the GPUs (gpus / (tp x pp x cp))."""

    tp: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])
    pp: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])
    vp: list[int] = Field(default_factory=lambda: [1])
    cp: list[int] = Field(default_factory=lambda: [1])
    ep: list[int] = Field(default_factory=lambda: [1])
    zero: list[int] = Field(default_factory=lambda: [1])  # 3 = FSDP (full shard)
    micro: list[int] = Field(default_factory=lambda: [1])
    recompute: list[Recompute] = Field(default_factory=lambda: list(DEFAULT_RECOMPUTE))
    sequence_parallel: list[bool] = Field(default_factory=lambda: [True])
    nodes: list[int] | None = None    # None: the scenario's cluster.nodes
    preset: list[str] | None = None   # None: the scenario's cluster.preset

    @field_validator("tp", "pp", "vp", "cp", "ep", "micro", "nodes")
    @classmethod
    def _positive(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(x < 1 for x in v)):
            raise ValueError("a non-empty list of integers >= 1")
        return v

    @field_validator("nodes", mode="before")
    @classmethod
    def _range(cls, v: Any) -> Any:
        """`nodes: {from: 32, to: 128, step: 32}` is the list 32, 64, 96, 128."""
        if isinstance(v, dict):
            if set(v) - {"from", "to", "step"} or "from" not in v or "to" not in v:
                raise ValueError("a list, or {from, to, step}")
            return list(range(int(v["from"]), int(v["to"]) + 1, int(v.get("step", 1))))
        return v

    @field_validator("zero")
    @classmethod
    def _zero(cls, v: list[int]) -> list[int]:
        if not v or any(z not in (0, 1, 2, 3) for z in v):
            raise ValueError("values from 0, 1, 2, 3")
        return v


class Constraints(_Strict):
    max_gpus: int | None = Field(None, ge=1)
    deadline: float | None = None        # the training tokens must be done within this
    max_cost_usd: float | None = Field(None, gt=0)
    min_memory_headroom: float = Field(0.0, ge=0.0, lt=1.0)  # fraction of HBM left free

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline(cls, v: Any) -> float | None:
        return None if v is None else units.parse_duration(v)


class Prices(_Strict):
    """What a GPU-hour costs and how much power the building takes on top of the GPUs."""

    gpu_hour_usd: float | None = Field(None, gt=0)
    # Power usage effectiveness: facility power over IT power (1.0 = the GPUs alone).
    pue: float = Field(1.0, ge=1.0)


class PlanSpec(_Strict):
    objective: Objective = Objective.TIME_TO_TRAIN
    search: SearchSpace = Field(default_factory=SearchSpace)
    constraints: Constraints = Field(default_factory=lambda: Constraints.model_validate({}))
    prices: Prices = Field(default_factory=lambda: Prices.model_validate({}))
    top: int = Field(5, ge=1)               # rows in the table and `best`
    confirm: int = Field(3, ge=0)           # of them, how many the full simulation confirms
    confirm_network: Literal["flow", "analytical"] = "flow"


def load_plan(source: str | Path | dict[str, Any],
              overrides: list[str] | None = None) -> tuple[Scenario, PlanSpec, dict[str, Any]]:
    """A plan file -> (its base scenario, its plan section, the raw scenario data)."""
    if isinstance(source, dict):
        data = copy.deepcopy(source)
    else:
        path = Path(source)
        data = read_yaml_file(path, "plan file")
        if not isinstance(data, dict):
            raise ScenarioError(f"{path}: a plan file is a scenario mapping with a plan: section")
    for a in overrides or []:
        set_path(data, a)  # before the split, so --set plan.top=3 works too
    raw_plan = data.pop("plan", None) or {}
    if not isinstance(raw_plan, dict):
        raise ScenarioError("plan: a mapping (objective, search, constraints, prices, top, confirm)")
    try:
        plan = PlanSpec.model_validate(raw_plan)
    except ValidationError as exc:
        raise ScenarioError("plan." + scenario_error_text(exc)) from None
    except units.UnitError as exc:
        raise ScenarioError(f"plan.constraints.deadline: {exc}") from None
    sc = load_scenario(data)
    if sc.workload is None:
        raise ScenarioError("workload: dcsim plan searches one job's layout (jobs: is not supported)")
    needs_price = plan.objective is Objective.COST or plan.constraints.max_cost_usd is not None
    if needs_price and plan.prices.gpu_hour_usd is None:
        raise ScenarioError("plan.prices.gpu_hour_usd: required for the cost objective or "
                            "plan.constraints.max_cost_usd")
    needs_tokens = plan.objective in (Objective.TIME_TO_TRAIN, Objective.COST, Objective.ENERGY) \
        or plan.constraints.deadline is not None or plan.constraints.max_cost_usd is not None
    if needs_tokens and not sc.workload.train.tokens:
        raise ScenarioError(f"workload.train.tokens: required for objective "
                            f"{plan.objective.value} and deadline / cost constraints")
    return sc, plan, data
