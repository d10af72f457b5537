"""YAML scenario -> validated, typed objects (pydantic), with one-line errors naming the field.

The scenario file is the user's contract (DESIGN.md section 3). Quantities may be written with
units ("400 Gb/s", "30 min", "300e9"); they are converted to SI here, once.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from dcsim import units
from dcsim.errors import InputError
from dcsim.fields import (Bytes, Count, Count0, Duration, Number, Real, Strict, abbreviate,
                          format_validation_error, one_line)
from dcsim.limits import Limits
from dcsim.vocabulary import PRECISIONS
from dcsim.yamlio import YamlInputError, load_yaml
from topologies import ClusterSpec, FabricSpec, NodeSpec, StorageSpec
from workloads.models import ModelError, get_model, model_from_dict
from workloads.parallelism import Parallelism, RankOrder, TrainingJob

__all__ = ["ClusterSpec", "FabricSpec", "NodeSpec", "StorageSpec", "Scenario", "ScenarioError",
           "WorkloadSpec", "load_scenario", "set_path"]


class ScenarioError(InputError):
    """Bad scenario input; str() is one line naming the field and what is allowed (at most
    dcsim.fields.MAX_MESSAGE_CHARS characters, whatever the wrong value was)."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


# Fields are validated by the shared strict base (dcsim/fields.py): unknown keys, booleans where
# numbers belong, NaN and infinity are errors everywhere.
_Strict = Strict


class InlineModel(_Strict):
    """A transformer written out in the scenario (workloads/models.py TransformerConfig)."""

    name: str = "inline"
    layers: Count
    hidden: Count
    heads: Count
    kv_heads: Count | None = None
    ffn_hidden: Count
    vocab: Count
    activation: Literal["gelu", "swiglu"] = "gelu"
    tied_embeddings: bool = True
    dropout: bool = True
    norm: Literal["layer_norm", "rms_norm"] = "layer_norm"
    experts: Count0 = 0
    top_k: Count0 = 0
    moe_ffn_hidden: Count0 = 0
    shared_experts: Count0 = 0
    dense_layers: Count0 = 0


class ParallelismSpec(_Strict):
    """Group sizes and framework switches of the layout (workloads/parallelism.py)."""

    tp: Count = 1
    pp: Count = 1
    dp: Count = 1
    vp: Count = 1
    cp: Count = 1
    ep: Count = 1
    zero: Literal[0, 1, 2, 3] = 0
    sequence_parallel: bool = False
    recompute: Literal["none", "selective", "full"] = "none"
    overlap_grad_reduce: bool = True
    overlap_param_gather: bool = False
    gradient_accumulation_fusion: bool = True
    tp_comm_overlap: bool = False
    overlap_p2p_comm: bool = True
    ddp_bucket_params: Count | None = None
    uneven_stages: bool = False
    distributed_optimizer: bool = False  # Megatron's name for ZeRO-1 sharding of the optimizer
    fsdp: bool = False                   # PyTorch FSDP (full shard) = ZeRO-3
    # Who shards the weights under ZeRO-3 (workloads/sharding.py); fsdp: true sets "fsdp".
    zero3_impl: Literal["deepspeed", "fsdp"] = "deepspeed"
    # Rank order (workloads/parallelism.py RankOrder): auto puts whole pipelines inside a pod
    # and DP across pods when the job spans several pods under a tapered spine tier (Llama 3,
    # sec. 3.3), else Megatron's tp-cp-dp-pp (dcsim/app/rank_order.py).
    rank_order: Literal["auto", "tp-cp-dp-pp", "tp-cp-pp-dp"] = "auto"

    @field_validator("zero", mode="before")
    @classmethod
    def _zero(cls, v: Any) -> Any:
        if isinstance(v, bool):  # True == 1 in Python: a boolean is not a ZeRO stage
            raise ValueError(f"must be a ZeRO stage 0, 1, 2 or 3, got {v!r}")
        return v

    def to_parallelism(self) -> Parallelism:
        """The layout dataclass; Megatron's and FSDP's switches raise the ZeRO stage."""
        spec = self.model_dump()
        distributed_optimizer, fsdp = spec.pop("distributed_optimizer"), spec.pop("fsdp")
        if fsdp:
            spec["zero"] = max(spec["zero"], 3)
            spec["zero3_impl"] = "fsdp"
        elif distributed_optimizer:
            spec["zero"] = max(spec["zero"], 1)
        spec["rank_order"] = RankOrder(spec["rank_order"])
        return Parallelism(**spec)


class BatchSpec(_Strict):
    """Sequences per iteration (global) and per micro-batch."""

    global_: Count = Field(alias="global")
    micro: Count = 1


class TrainSpec(_Strict):
    """How long to train (tokens) and how often to checkpoint (a duration)."""

    tokens: Number | None = None
    checkpoint_every: Duration | None = None


class DataSpec(_Strict):
    """Where a job's training data comes from and how big a token is on disk."""

    # None: Megatron's indexed dataset rule (megatron/core/datasets/indexed_dataset.py,
    # DType.optimal_dtype): uint16 ids (2 bytes) for a vocabulary under 65,500, else int32 (4).
    bytes_per_token: Real | None = Field(None, gt=0.0)
    tier: str | None = None   # cluster.storage tier read (default: the first with a read_bw)


class WorkloadSpec(_Strict):
    """One training job: model, sequence, precision, layout, batch, training length."""

    model: Union[str, InlineModel]
    seq_len: Count
    precision: str = "bf16"  # one of dcsim.vocabulary.PRECISIONS
    parallelism: ParallelismSpec = Field(default_factory=lambda: ParallelismSpec())
    batch: BatchSpec
    train: TrainSpec = Field(default_factory=lambda: TrainSpec())
    flash_attention: bool = True
    moe_imbalance: Real = Field(1.0, ge=1.0)
    # Which framework's kernels a step runs where eras differ (workloads/kernels.py): Megatron-LM
    # as of 2021 (apex layer norm, bias adds and bias-gradient reductions as their own kernels,
    # QKV split/permute copies) or Megatron-Core with Transformer Engine (fused into the GEMMs).
    framework: Literal["megatron-core", "megatron-2021"] = "megatron-core"
    data: DataSpec = Field(default_factory=lambda: DataSpec.model_validate({}))

    @field_validator("precision")
    @classmethod
    def _precision(cls, v: str) -> str:
        if v not in PRECISIONS:
            raise ValueError(f"must be one of {', '.join(PRECISIONS)}, got {abbreviate(v)}")
        return v

    def to_job(self, where: str = "workload") -> TrainingJob:
        """The TrainingJob workloads/ builds from: the one conversion of scenario data."""
        try:
            if isinstance(self.model, str):
                model = get_model(self.model)
            else:
                model = model_from_dict(self.model.model_dump(exclude_none=True))
        except ModelError as exc:
            raise ScenarioError(str(exc).replace("workload.", f"{where}.", 1)) from None
        return TrainingJob(model=model, par=self.parallelism.to_parallelism(),
                           seq_len=self.seq_len, global_batch=self.batch.global_,
                           micro_batch=self.batch.micro, precision=self.precision,
                           flash_attention=self.flash_attention, moe_imbalance=self.moe_imbalance,
                           framework=self.framework)


class DegradedLink(_Strict):
    """The NIC link of one GPU running at a fraction of its bandwidth (a flapping cable)."""

    gpu: Count0
    factor: Real = Field(gt=0.0, le=1.0)


def _slowdown(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 1.0 or v == float("inf"):
        raise ValueError(f"a slowdown factor is a finite number >= 1, got {abbreviate(v)}")
    return float(v)


class PerturbSpec(_Strict):
    """Asymmetries: they make a job unfoldable, so `fold: auto` simulates every rank."""

    slow_gpus: dict[Count0, float] = Field(default_factory=dict)  # GPU rank -> slowdown >= 1
    degraded_links: list[DegradedLink] = Field(default_factory=list)

    @field_validator("slow_gpus", mode="before")
    @classmethod
    def _slow(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        for rank, f in v.items():
            if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
                raise ValueError(f"a GPU rank is an integer >= 0, got {abbreviate(rank)}")
            try:
                _slowdown(f)
            except ValueError as exc:
                raise ValueError(f"GPU {rank}: {exc}") from None
        return v

    @property
    def any(self) -> bool:
        """Whether any asymmetry is asked for (it makes the job unfoldable)."""
        return bool(self.slow_gpus or self.degraded_links)

    def check_ranks(self, n_gpus: int, where: str = "run.perturb") -> None:
        """Every GPU named exists in a cluster of n_gpus (checked before it is built)."""
        for rank in self.slow_gpus:
            if rank >= n_gpus:
                raise ScenarioError(f"{where}.slow_gpus: GPU {rank} is not in the cluster "
                                    f"(0..{n_gpus - 1})")
        for i, d in enumerate(self.degraded_links):
            if d.gpu >= n_gpus:
                raise ScenarioError(f"{where}.degraded_links.{i}.gpu: GPU {d.gpu} is not in the "
                                    f"cluster (0..{n_gpus - 1})")


class LimitsSpec(_Strict):
    """The most memory and time a run may be estimated to need (dcsim/limits.py); unset: this
    machine's defaults (80% of its memory, 1 h), or DCSIM_MAX_MEMORY / DCSIM_MAX_TIME."""

    memory: Bytes | None = None
    time: Duration | None = None

    def resolve(self) -> Limits:
        """This machine's limits (or the environment's) with the scenario's in their place."""
        try:
            base = Limits.default()
        except ValueError as exc:
            raise ScenarioError(str(exc)) from None
        return base.with_overrides(self.memory, self.time)


class RunSpec(_Strict):
    """How to simulate: network model, routing, folding, costs, seed, perturbations, limits."""

    network: Literal["flow", "analytical"] = "analytical"
    # flow network routing: auto = dmodk on InfiniBand, ecmp (hashed by seed) on Ethernet
    routing: Literal["auto", "ecmp", "dmodk", "spray"] = "auto"
    fold: Literal["auto", "off"] = "auto"
    # auto: the shipped profile measured on the cluster's GPU (a published one for A100/H100),
    # else the spec scaled by the nearest profiled GPU, else spec; or spec, a profile name, a path
    calibration: str = "auto"
    seed: Count0 = 0
    perturb: PerturbSpec = Field(default_factory=lambda: PerturbSpec())
    limits: LimitsSpec = Field(default_factory=lambda: LimitsSpec())

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


_ONE_OF = ("workload / jobs: give either workload (one job) or jobs (several jobs sharing the "
           "cluster), not both and not neither")


class Scenario(_Strict):
    """A scenario file: the cluster, one workload or several jobs, and how to run."""

    name: str = "scenario"
    cluster: ClusterSpec
    workload: WorkloadSpec | None = None
    jobs: list[JobSpec] | None = None
    run: RunSpec = Field(default_factory=lambda: RunSpec())

    @model_validator(mode="after")
    def _one_of_workload_or_jobs(self) -> "Scenario":
        if (self.workload is None) == (self.jobs is None):
            raise ValueError(_ONE_OF)
        return self

    def resolved(self) -> dict[str, Any]:
        """The scenario with every default filled in, as plain data (dumped with results)."""
        data = self.model_dump(mode="json", by_alias=True)
        data["cluster"] = self.cluster.model_dump(mode="json", by_alias=True, exclude_none=True)
        return data


def scenario_error_text(err: ValidationError) -> str:
    if any(e["type"] == "value_error" and not e["loc"] for e in err.errors()):
        return _ONE_OF
    return format_validation_error(err, Scenario, whole="the scenario")


def _parse_value(path: str, raw: str) -> Any:
    try:
        return load_yaml(raw, f"--set {path}")
    except YamlInputError as exc:
        raise ScenarioError(str(exc)) from None


def set_path(data: dict[str, Any], assignment: str) -> None:
    """Apply one --set key.path=value (value parsed as YAML) to the raw scenario data; list
    entries by index: jobs.0.placement=spread or jobs[0].placement=spread."""
    if "=" not in assignment:
        raise ScenarioError(f"--set {abbreviate(assignment)}: expected key.path=value")
    path, raw = assignment.split("=", 1)
    path = path.strip()
    keys = path.replace("[", ".").replace("]", "").split(".")
    if any(k == "" for k in keys):
        raise ScenarioError(f"--set {abbreviate(path)}: empty key in the path")
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
                node[int(k)] = _parse_value(path, raw)
            else:
                node = node[int(k)]
            continue
        if not isinstance(node, dict):
            raise ScenarioError(f"--set {path}: {where} is not a mapping")
        if last:
            node[k] = _parse_value(path, raw)
        else:
            if node.get(k) is None:
                node[k] = {}
            node = node[k]


def read_scenario_file(path: Path) -> Any:
    """The YAML data of a scenario file; one-line ScenarioError naming the file otherwise."""
    return read_yaml_file(path, "scenario file")


def read_yaml_file(path: Path, what: str, label: str = "") -> Any:
    """The YAML data of an input file (`what`: "plan file", "grid file", ...), read as the
    scenario is (UTF-8, dcsim.yamlio's bounds); a one-line ScenarioError naming the file, after
    `label` (a flag such as "--grid: ") when given, otherwise."""
    head = f"{label}{path}"
    if not path.exists():
        raise ScenarioError(f"{head}: no such {what}")
    if path.is_dir():
        raise ScenarioError(f"{head}: is a directory; give a {what} (.yaml)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{head}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ScenarioError(f"{head}: cannot be read ({exc.strerror})") from None
    try:
        return load_yaml(text, head)
    except YamlInputError as exc:
        raise ScenarioError(str(exc)) from None


def load_scenario(source: str | Path | dict[str, Any], overrides: list[str] | None = None) -> Scenario:
    """Read, override and validate a scenario; raises ScenarioError with one clear line."""
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        data = read_scenario_file(path)
        if not isinstance(data, dict):
            raise ScenarioError(f"{path}: a scenario is a mapping with cluster, workload, run")
    data = copy.deepcopy(data)  # overrides never touch the caller's data
    for a in overrides or []:
        set_path(data, a)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(scenario_error_text(exc)) from None
    except units.UnitError as exc:  # raised inside a field validator
        raise ScenarioError(one_line(str(exc))) from None
