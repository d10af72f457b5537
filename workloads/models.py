"""Transformer model definitions: a typed config and the zoo of published models."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from dcsim.errors import InputError

ACTIVATIONS = ("gelu", "swiglu")
NORMS = ("layer_norm", "rms_norm")


class ModelError(InputError):
    """An unknown zoo name or an inconsistent model definition."""


@dataclass(frozen=True)
class TransformerConfig:
    """A decoder-only transformer. Sizes are counts (not bytes)."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn_hidden: int
    vocab: int
    activation: str = "gelu"
    tied_embeddings: bool = True
    dropout: bool = True
    norm: str = "layer_norm"  # layer_norm (GPT) | rms_norm (Llama)
    # Mixture of experts (0/1 experts: dense). Each MoE layer routes every token to top_k of
    # `experts` MLPs of width moe_ffn_hidden (plus shared_experts always-on MLPs of that width);
    # the first dense_layers layers keep a dense MLP of ffn_hidden.
    experts: int = 0
    top_k: int = 0
    moe_ffn_hidden: int = 0
    shared_experts: int = 0
    dense_layers: int = 0

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ModelError(
                f"workload.model.activation: {self.activation!r} is not one of {', '.join(ACTIVATIONS)}"
            )
        if self.norm not in NORMS:
            raise ModelError(f"workload.model.norm: {self.norm!r} is not one of {', '.join(NORMS)}")
        for f in ("layers", "hidden", "heads", "kv_heads", "ffn_hidden", "vocab"):
            if getattr(self, f) <= 0:
                raise ModelError(f"workload.model.{f}: must be a positive integer")
        if self.hidden % self.heads:
            raise ModelError(
                f"workload.model.hidden: {self.hidden} is not divisible by heads={self.heads}"
            )
        if self.is_moe and (self.top_k < 1 or self.top_k > self.experts or self.moe_ffn_hidden < 1):
            raise ModelError("workload.model.top_k: a MoE model needs 1 <= top_k <= experts and "
                             "moe_ffn_hidden >= 1")
        if self.heads % self.kv_heads:
            raise ModelError(
                f"workload.model.kv_heads: heads={self.heads} is not divisible by kv_heads={self.kv_heads}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        """Width of K (or V) projections: kv_heads x head_dim (= hidden without GQA)."""
        return self.kv_heads * self.head_dim

    @property
    def mlp_up_width(self) -> int:
        """Output width of the first MLP GEMM: gate and up together for SwiGLU."""
        return 2 * self.ffn_hidden if self.activation == "swiglu" else self.ffn_hidden

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def gated(self) -> int:
        """MLP up-projection multiplicity: 2 for SwiGLU (gate + up), 1 for GeLU."""
        return 2 if self.activation == "swiglu" else 1

    def attention_params(self) -> int:
        h = self.hidden
        return h * (h + 2 * self.kv_dim) + h * h + 2 * h

    def expert_params(self) -> int:
        """Weights of one expert MLP (MoE models)."""
        return (self.gated + 1) * self.hidden * self.moe_ffn_hidden

    def dense_mlp_params(self) -> int:
        return (self.gated + 1) * self.hidden * self.ffn_hidden

    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.is_moe else 0

    def layer_params(self) -> int:
        """Weights of an average layer: attention, MLP (all experts of a MoE layer, the
        router and shared experts), two norms; biases ignored."""
        dense = self.attention_params() + self.dense_mlp_params()
        if not self.is_moe:
            return dense
        moe = (self.attention_params() + self.experts * self.expert_params()
               + self.shared_experts * self.expert_params() + self.hidden * self.experts)
        return (self.dense_layers * dense + self.moe_layers() * moe) // self.layers

    def active_layer_params(self) -> float:
        """Parameters a token touches in an average layer (top_k of the experts)."""
        if not self.is_moe:
            return self.layer_params()
        moe = (self.attention_params() + (self.top_k + self.shared_experts) * self.expert_params()
               + self.hidden * self.experts)
        dense = self.attention_params() + self.dense_mlp_params()
        return (self.dense_layers * dense + self.moe_layers() * moe) / self.layers

    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    def total_params(self) -> int:
        """All parameters: layers, input embedding, output head unless tied, final norm."""
        head = 0 if self.tied_embeddings else self.embedding_params()
        return self.layers * self.layer_params() + self.embedding_params() + head + self.hidden

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=1)
def _zoo() -> dict[str, dict[str, Any]]:
    text = resources.files("workloads").joinpath("zoo", "models.yaml").read_text()
    return yaml.safe_load(text)


def zoo_names() -> list[str]:
    return sorted(_zoo())


def get_model(name: str) -> TransformerConfig:
    """A zoo model by name, e.g. 'gpt3-175b'."""
    zoo = _zoo()
    if name not in zoo:
        shown = repr(name) if len(name) <= 60 else repr(name[:57]) + "..."
        raise ModelError(f"workload.model: unknown model {shown}; known: {', '.join(sorted(zoo))}")
    return TransformerConfig(name=name, **zoo[name])


def model_from_dict(d: dict[str, Any], name: str = "inline") -> TransformerConfig:
    """An inline model definition; unknown keys are an error naming the key."""
    allowed = set(TransformerConfig.__dataclass_fields__)
    unknown = set(d) - allowed
    if unknown:
        raise ModelError(
            f"workload.model.{sorted(unknown)[0]}: unknown key; allowed: {', '.join(sorted(allowed))}"
        )
    missing = {"layers", "hidden", "heads", "ffn_hidden", "vocab"} - set(d)
    if missing:
        raise ModelError(f"workload.model.{sorted(missing)[0]}: required for an inline model")
    d = dict(d)
    d.setdefault("kv_heads", d["heads"])
    return TransformerConfig(name=d.pop("name", name), **d)
