"""YAML scenario -> validated, typed objects (pydantic), with one-line errors naming the field.

The scenario file is the user's contract (DESIGN.md section 3). Quantities may be written with
units ("400 Gb/s", "30 min", "300e9"); they are converted to SI here, once.
"""

from __future__ import annotations

import copy

from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from dcsim import units
from dcsim.errors import InputError


class ScenarioError(InputError):
    """Bad scenario input; str() is one line naming the field and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FabricSpec(_Strict):
    """Overrides of the preset's fabric; only the keys the user wrote are passed on."""

    topology: str | None = None
    tiers: int | Literal["auto"] | None = None
    oversubscription: float | str | dict[str, float] | None = None
    link: str | None = None
    radix: int | dict[str, int] | None = None
    rails: int | None = None
    k: int | None = None
    pod_leaves: int | None = None


class StorageSpec(_Strict):
    tier: str
    read_bw: float
    write_bw: float
    capacity: float | None = None

    @field_validator("read_bw", "write_bw", mode="before")
    @classmethod
    def _bw(cls, v: Any) -> float:
        return units.parse_bandwidth(v)

    @field_validator("capacity", mode="before")
    @classmethod
    def _cap(cls, v: Any) -> float | None:
        return None if v is None else units.parse_bytes(v)


class ClusterSpec(_Strict):
    preset: str
    nodes: int | None = Field(None, ge=1)
    fabric: FabricSpec | None = None
    storage: list[StorageSpec] = Field(default_factory=list)


class InlineModel(_Strict):
    name: str = "inline"
    layers: int = Field(ge=1)
    hidden: int = Field(ge=1)
    heads: int = Field(ge=1)
    kv_heads: int | None = Field(None, ge=1)
    ffn_hidden: int = Field(ge=1)
    vocab: int = Field(ge=1)
    activation: Literal["gelu", "swiglu"] = "gelu"
    tied_embeddings: bool = True
    dropout: bool = True
    norm: Literal["layer_norm", "rms_norm"] = "layer_norm"
    experts: int = Field(0, ge=0)
    top_k: int = Field(0, ge=0)
    moe_ffn_hidden: int = Field(0, ge=0)
    shared_experts: int = Field(0, ge=0)
    dense_layers: int = Field(0, ge=0)


class ParallelismSpec(_Strict):
    tp: int = Field(1, ge=1)
    pp: int = Field(1, ge=1)
    dp: int = Field(1, ge=1)
    vp: int = Field(1, ge=1)
    cp: int = Field(1, ge=1)
    ep: int = Field(1, ge=1)
    zero: int = Field(0, ge=0, le=3)
    sequence_parallel: bool = False
    recompute: Literal["none", "selective", "full"] = "none"
    overlap_grad_reduce: bool = True
    gradient_accumulation_fusion: bool = True
    tp_comm_overlap: bool = False
    overlap_p2p_comm: bool = True
    ddp_bucket_params: int | None = Field(None, ge=1)
    uneven_stages: bool = False
    distributed_optimizer: bool = False  # Megatron's name for ZeRO-1 sharding of the optimizer
    fsdp: bool = False                   # PyTorch FSDP (full shard) = ZeRO-3


class BatchSpec(_Strict):
    global_: int = Field(alias="global", ge=1)
    micro: int = Field(1, ge=1)


class TrainSpec(_Strict):
    tokens: float | None = None
    checkpoint_every: float | None = None

    @field_validator("tokens", mode="before")
    @classmethod
    def _tokens(cls, v: Any) -> float | None:
        return None if v is None else units.parse_number(v)

    @field_validator("checkpoint_every", mode="before")
    @classmethod
    def _ckpt(cls, v: Any) -> float | None:
        return None if v is None else units.parse_duration(v)


class WorkloadSpec(_Strict):
    model: Union[str, InlineModel]
    seq_len: int = Field(ge=1)
    precision: Literal["bf16", "fp16", "fp8", "fp32"] = "bf16"
    parallelism: ParallelismSpec = Field(default_factory=ParallelismSpec)
    batch: BatchSpec
    train: TrainSpec = Field(default_factory=TrainSpec)
    flash_attention: bool = True
    moe_imbalance: float = Field(1.0, ge=1.0)


class DegradedLink(_Strict):
    """The NIC link of one GPU running at a fraction of its bandwidth (a flapping cable)."""

    gpu: int = Field(ge=0)
    factor: float = Field(gt=0.0, le=1.0)


class PerturbSpec(_Strict):
    """Asymmetries: they make a job unfoldable, so `fold: auto` simulates every rank."""

    slow_gpus: dict[int, float] = Field(default_factory=dict)  # GPU rank -> slowdown >= 1
    degraded_links: list[DegradedLink] = Field(default_factory=list)

    @field_validator("slow_gpus")
    @classmethod
    def _slow(cls, v: dict[int, float]) -> dict[int, float]:
        for rank, f in v.items():
            if f < 1.0 or rank < 0:
                raise ValueError(f"slow_gpus[{rank}]: a slowdown factor is >= 1, got {f}")
        return v

    @property
    def any(self) -> bool:
        return bool(self.slow_gpus or self.degraded_links)


class RunSpec(_Strict):
    network: Literal["flow", "analytical"] = "analytical"
    # flow network routing: auto = dmodk on InfiniBand, ecmp (hashed by seed) on Ethernet
    routing: Literal["auto", "ecmp", "dmodk", "spray"] = "auto"
    fold: Literal["auto", "off"] = "auto"
    calibration: str = "spec"
    seed: int = 0
    perturb: PerturbSpec = Field(default_factory=PerturbSpec)

    @field_validator("fold", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        """YAML 1.1 reads a bare `off` as false (and `on` as true)."""
        return {False: "off", True: "auto"}.get(v, v) if isinstance(v, bool) else v


class JobSpec(_Strict):
    """One of several jobs sharing a cluster: its workload and where it is placed."""

    name: str
    workload: WorkloadSpec
    placement: Literal["packed", "spread"] = "packed"


class Scenario(_Strict):
    name: str = "scenario"
    cluster: ClusterSpec
    workload: WorkloadSpec | None = None
    jobs: list[JobSpec] | None = None
    run: RunSpec = Field(default_factory=RunSpec)

    @model_validator(mode="after")
    def _one_of_workload_or_jobs(self) -> "Scenario":
        if (self.workload is None) == (self.jobs is None):
            raise ValueError("give either workload (one job) or jobs (several), not both/neither")
        return self

    def resolved(self) -> dict[str, Any]:
        """The scenario with every default filled in, as plain data (dumped with results)."""
        return self.model_dump(mode="json", by_alias=True)


def _format_error(err: ValidationError) -> str:
    errors = err.errors()
    # A union (model: name or inline mapping) reports one error per branch; show the branch
    # the user meant, i.e. not "should be a string" when they wrote a mapping.
    e = next((x for x in errors if x["type"] != "string_type"), errors[0])
    loc = ".".join(str(p) for p in e["loc"])
    loc = loc.replace("global_", "global")
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    elif e["type"] == "literal_error":
        msg = f"got {e.get('input')!r}; {msg.lower()}"
    elif e["type"] == "missing":
        msg = "required"
    # Strip the class-name noise pydantic adds to union errors ("str" / "InlineModel").
    for noise in (".str", ".InlineModel", ".function-after[_bw(), float]"):
        loc = loc.replace(noise, "")
    return f"{loc}: {msg}"


def set_path(data: dict[str, Any], assignment: str) -> None:
    """Apply one --set key.path=value (value parsed as YAML) to the raw scenario data; list
    entries by index: jobs.0.placement=spread or jobs[0].placement=spread."""
    if "=" not in assignment:
        raise ScenarioError(f"--set {assignment!r}: expected key.path=value")
    path, raw = assignment.split("=", 1)
    path = path.strip()
    keys = path.replace("[", ".").replace("]", "").split(".")
    if any(k == "" for k in keys):
        raise ScenarioError(f"--set {path}: empty key in the path")
    node: Any = data
    for i, k in enumerate(keys):
        last = i == len(keys) - 1
        where = ".".join(keys[:i]) or "the scenario"
        if isinstance(node, list):
            if not k.isdigit():
                raise ScenarioError(f"--set {path}: {where} is a list; index it by number")
            if int(k) >= len(node):
                raise ScenarioError(f"--set {path}: {where} has {len(node)} entries "
                                    f"(0..{len(node) - 1})")
            if last:
                node[int(k)] = yaml.safe_load(raw)
            else:
                node = node[int(k)]
            continue
        if not isinstance(node, dict):
            raise ScenarioError(f"--set {path}: {where} is not a mapping")
        if last:
            node[k] = yaml.safe_load(raw)
        else:
            if node.get(k) is None:
                node[k] = {}
            node = node[k]


def load_scenario(source: str | Path | dict[str, Any], overrides: list[str] | None = None) -> Scenario:
    """Read, override and validate a scenario; raises ScenarioError with one clear line."""
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        if not path.exists():
            raise ScenarioError(f"{path}: no such scenario file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ScenarioError(f"{path}: a scenario is a mapping with cluster, workload, run")
    data = copy.deepcopy(data)  # overrides never touch the caller's data
    for a in overrides or []:
        set_path(data, a)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_format_error(exc)) from None
    except units.UnitError as exc:  # raised inside a field validator
        raise ScenarioError(str(exc)) from None
