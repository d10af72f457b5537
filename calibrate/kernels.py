"""Benchmarks of the op classes a transformer step runs, forward and backward, over sizes.

Each point is an (op class, variant, pass, precision, shape). `plan_points` lists the sweep,
`counts` gives the FLOP and byte counts of a point (the conventions of dcsim.profile.OP_CONVENTIONS,
restated per builder below) and `measure_point` times it. Backward passes are timed with
`torch.autograd.grad(..., retain_graph=True)` on a graph built once, so the forward is not in them.

Kernels are timed cold (calibrate.timing): the caches are flushed before every call, as
Triton's do_bench and nvbench do by default, because a training step finds most of a kernel's
data in memory: weights and saved activations were last touched a pass ago, optimizer state a
step ago, and a large model's step moves far more than any cache holds. `CachePolicy(None)`
(`calibrate run --cache warm`) times calls back to back instead.

Checked against the ops inside a real step (the tiny GPT of calibrate/tinygpt.py, fp32, one
thread, on the 2-core machine; in-step times by module hooks and autograd.grad splits), in-step
/ warm / cold: log-softmax + NLL over [512, 2048] 1.29 / 0.64 / 1.29 ms and its backward
1.81 / 0.95 / 1.71; GELU over 512 x 1024 1.13 / 0.93 / 1.11; AdamW over 2.66 M parameters
~3.0 / 1.76 / 3.57; the forward GEMMs 11-20% above warm, cold 25% above warm; the backward
GEMMs ~5% above warm; attention forward 0.9 / 0.72 / 1.15; layer norm over 512 x 256
0.10 / 0.05 / 0.25. The tiny GPT's whole step (~70 MB) partly fits that machine's large
last-level cache, so cold errs high for it (its compute ~10% high), warm low (~12% low).

`measure_framework` times what a kernel costs the framework inside a step beyond its sample
(dcsim.profile.FrameworkOverhead).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from calibrate.timing import CacheFlush, TimingConfig, flush_bytes_for, time_cold, time_fn
from dcsim.profile import (
    ELEMENT_BYTES,
    OPTIMIZER_BYTES_PER_PARAM,
    OPTIMIZER_FLOPS_PER_PARAM,
    STREAMING_COUNTS,
    FrameworkOverhead,
    KernelSample,
    Unsupported,
)

__all__ = ["KernelPoint", "CachePolicy", "plan_points", "counts", "cache_mode", "measure_point",
           "measure_framework", "DTYPES", "ELEMENT_BYTES"]

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Transformer head dimension used for the attention sweep: 64 in GPT-2/3 small models, 128 in
# Llama; the CPU sweep uses 64 (tiny GPT of calibrate/tinygpt.py), the GPU sweep both.
_CPU_HEAD_DIM = 64


@dataclass(frozen=True)
class KernelPoint:
    """One kernel to time: shape entries are ints, named as in the count formulas."""

    op_class: str
    variant: str
    direction: str  # "fwd" | "bwd"
    precision: str
    shape: tuple[tuple[str, int], ...]

    @property
    def dims(self) -> dict[str, int]:
        return dict(self.shape)

    @property
    def key(self) -> str:
        dims = ",".join(f"{k}={v}" for k, v in self.shape)
        return f"kernel/{self.op_class}/{self.variant}/{self.direction}/{self.precision}/{dims}"


def _pt(op: str, variant: str, direction: str, precision: str, **dims: int) -> KernelPoint:
    return KernelPoint(op, variant, direction, precision, tuple(dims.items()))


# --- the sweep -------------------------------------------------------------------------------

def _gemm_shapes(device_kind: str, quick: bool) -> list[dict[str, int]]:
    """[tokens x hidden] @ [hidden x k] shapes of a transformer layer, some tensor-parallel sharded."""
    if device_kind == "cuda":
        layers = [(2048, 2048), (4096, 4096), (8192, 8192), (16384, 12288)] if not quick else [(2048, 2048), (8192, 8192)]
        tps = (1, 8) if not quick else (1,)
    else:
        layers = [(128, 256), (512, 256), (256, 512), (512, 512), (1024, 512), (1024, 1024)] if quick else [
            (128, 256), (512, 256), (256, 512), (512, 512), (1024, 512), (1024, 1024), (2048, 1024), (2048, 2048)]
        tps = (1,) if quick else (1, 4)
    shapes: list[dict[str, int]] = []
    for tokens, h in layers:
        for tp in tps:
            shapes.append({"m": tokens, "k": h, "n": 3 * h // tp})       # fused QKV projection
            shapes.append({"m": tokens, "k": 4 * h // tp, "n": h})       # MLP down projection
            if not quick:
                shapes.append({"m": tokens, "k": h, "n": 4 * h // tp})   # MLP up projection
                shapes.append({"m": tokens, "k": h // tp, "n": h})       # attention output
    # The output head: [tokens, hidden] x [hidden, vocab], a wide, flat GEMM of its own kind.
    if device_kind == "cuda":
        heads = [(8192, 4096, 50304)] + ([] if quick else [(8192, 8192, 128256)])
    else:
        heads = [(512, 256, 2048), (512, 512, 8192)] + ([] if quick else [(2048, 1024, 32000)])
    shapes += [{"m": t, "k": h, "n": v} for t, h, v in heads]
    return shapes


def _attention_shapes(device_kind: str, quick: bool) -> list[dict[str, int]]:
    if device_kind == "cuda":
        seqs = (512, 2048, 8192) if quick else (512, 1024, 2048, 4096, 8192)
        return [{"b": 1, "h": 32, "s": s, "d": d} for s in seqs for d in ((128,) if quick else (64, 128))]
    d = _CPU_HEAD_DIM
    # torch's CPU flash attention tiles queries by 32 / 64 / 256 rows from s = 192 / 768 on and
    # keys by min(s, 512) (aten/src/ATen/native/cpu/FlashAttentionKernel.cpp, qSplitSize and
    # kvSplitSize), so its cost per FLOP steps with s: the sweep puts two or more points in
    # every tiling regime so a fit can follow them.
    if quick:
        return [{"b": b, "h": h, "s": s, "d": d} for b, h, s in
                ((1, 4, 64), (1, 4, 128), (4, 4, 128), (2, 8, 192), (2, 8, 256), (4, 8, 256),
                 (1, 8, 384), (1, 8, 512), (1, 8, 640), (1, 8, 768), (1, 8, 1024))]
    return [{"b": b, "h": h, "s": s, "d": d} for b, h, s in
            ((1, 4, 128), (4, 4, 128), (2, 8, 256), (4, 8, 256), (1, 8, 512), (2, 8, 512), (1, 8, 1024),
             (2, 16, 1024), (1, 16, 2048))]


def _row_shapes(device_kind: str, quick: bool, width_mult: int = 1) -> list[dict[str, int]]:
    """[tokens, width] activations for the row-wise memory-bound ops."""
    if device_kind == "cuda":
        pairs = [(2048, 4096), (8192, 8192), (16384, 12288)] if quick else [
            (1024, 2048), (2048, 4096), (4096, 8192), (8192, 8192), (16384, 12288), (32768, 16384)]
    else:
        pairs = [(64, 256), (128, 256), (512, 256), (512, 512), (1024, 512), (2048, 512), (2048, 1024)] if quick else [
            (64, 256), (128, 256), (512, 256), (512, 512), (1024, 512), (1024, 1024), (2048, 1024), (4096, 1024),
            (4096, 2048)]
    return [{"t": t, "h": h * width_mult} for t, h in pairs]


def _softmax_shapes(device_kind: str, quick: bool) -> list[dict[str, int]]:
    """Attention-probability softmax: rows = batch*heads*seq, width = seq."""
    seqs = ((512, 2048, 8192) if quick else (512, 1024, 2048, 4096, 8192)) if device_kind == "cuda" else (
        (64, 128, 192, 256, 384, 512, 1024) if quick else (64, 128, 192, 256, 384, 512, 768, 1024, 2048))
    heads = 32 if device_kind == "cuda" else 4
    return [{"rows": heads * s, "s": s} for s in seqs]


def _embedding_shapes(device_kind: str, quick: bool) -> list[dict[str, int]]:
    if device_kind == "cuda":
        return [{"t": t, "v": 50304, "h": h} for t, h in ((4096, 4096), (16384, 8192))] + (
            [] if quick else [{"t": 8192, "v": 128256, "h": 8192}])
    base = [{"t": 128, "v": 1024, "h": 256}, {"t": 512, "v": 1024, "h": 256}, {"t": 512, "v": 4096, "h": 256},
            {"t": 2048, "v": 8192, "h": 256}, {"t": 1024, "v": 8192, "h": 512}, {"t": 2048, "v": 32000, "h": 512},
            {"t": 2048, "v": 32000, "h": 1024}]
    return base if quick else base + [{"t": 4096, "v": 32000, "h": 2048}, {"t": 8192, "v": 50304, "h": 1024}]


def _ce_shapes(device_kind: str, quick: bool) -> list[dict[str, int]]:
    if device_kind == "cuda":
        return [{"t": t, "v": v} for t, v in ((4096, 50304), (16384, 50304))] + (
            [] if quick else [{"t": 8192, "v": 128256}])
    base = [{"t": 128, "v": 1024}, {"t": 512, "v": 1024}, {"t": 128, "v": 8192}, {"t": 512, "v": 8192},
            {"t": 256, "v": 32000}, {"t": 512, "v": 32000}, {"t": 1024, "v": 32000}]
    return base if quick else base + [{"t": 2048, "v": 32000}, {"t": 4096, "v": 50304}]


def _optimizer_shapes(device_kind: str, quick: bool) -> list[dict[str, int]]:
    sizes = ((1 << 24, 1 << 27) if quick else (1 << 22, 1 << 24, 1 << 26, 1 << 28)) if device_kind == "cuda" else (
        (1 << 16, 1 << 18, 1 << 19, 1 << 20, 1 << 21, 1 << 22, 1 << 24) if quick else (1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24, 1 << 26))
    return [{"p": p} for p in sizes]


# Variants of each class (which have no backward pass: _FORWARD_ONLY).
_VARIANTS: dict[str, tuple[str, ...]] = {
    "gemm": ("matmul",),
    "attention": ("sdpa_causal",),
    "norm": ("layer_norm", "rms_norm"),
    # add: residual adds and the gradient sums of their backward; copy: DDP's copies of the
    # gradients into and out of its buckets, layout copies.
    "elementwise": ("gelu", "swiglu", "add", "copy"),
    "softmax": ("softmax",),
    "embedding": ("embedding",),
    "cross_entropy": ("cross_entropy",),
    "optimizer": ("adamw",),
}
_FORWARD_ONLY = {"adamw", "copy"}
_SHAPES: dict[str, Callable[[str, bool], list[dict[str, int]]]] = {
    "gemm": _gemm_shapes,
    "attention": _attention_shapes,
    "norm": _row_shapes,
    "elementwise": lambda dk, q: _row_shapes(dk, q, width_mult=4),  # MLP hidden is 4x the model width
    "softmax": _softmax_shapes,
    "embedding": _embedding_shapes,
    "cross_entropy": _ce_shapes,
    "optimizer": _optimizer_shapes,
}


def plan_points(
    device_kind: str, quick: bool, precisions: Iterable[str], op_classes: Iterable[str] | None = None,
    max_points: int | None = None,
) -> tuple[list[KernelPoint], list[Unsupported]]:
    """The kernel sweep for a device, and what it leaves out (with why)."""
    points: list[KernelPoint] = []
    skipped: list[Unsupported] = []
    classes = list(op_classes) if op_classes is not None else list(_VARIANTS)
    for prec in precisions:
        if prec == "fp8":
            skipped.append(Unsupported(what="kernels/fp8", reason="fp8 kernels are not benchmarked by this version (torch._scaled_mm needs scaling recipes)"))
            continue
        for op in classes:
            if op == "optimizer" and prec != "fp32":
                continue  # Adam runs on fp32 master weights whatever the compute precision
            n = 0
            for shape in _SHAPES[op](device_kind, quick):
                for variant in _VARIANTS[op]:
                    if max_points is not None and n >= max_points:
                        break
                    for direction in ("fwd",) if variant in _FORWARD_ONLY else ("fwd", "bwd"):
                        points.append(_pt(op, variant, direction, prec, **shape))
                    n += 1
    return points, skipped


# --- FLOP and byte counts (see dcsim.profile.OP_CONVENTIONS) ---------------------------------

def counts(p: KernelPoint) -> tuple[float, float]:
    """(FLOP, bytes moved) of one point, by the documented conventions."""
    d, e = p.dims, ELEMENT_BYTES[p.precision]
    fwd = p.direction == "fwd"
    if p.op_class == "gemm":
        m, k, n = d["m"], d["k"], d["n"]
        io = (m * k + k * n + m * n) * e
        return (2.0 * m * n * k, io) if fwd else (4.0 * m * n * k, 2.0 * io)
    if p.op_class == "attention":
        b, h, s, dh = d["b"], d["h"], d["s"], d["d"]
        f = 4.0 * b * h * s * s * dh  # QK^T and PV, the causal mask's half counted too
        return (f, 4.0 * b * h * s * dh * e) if fwd else (2.0 * f, 8.0 * b * h * s * dh * e)
    if p.op_class in ("norm", "elementwise", "softmax"):
        n = d["t"] * d["h"] if "t" in d else d["rows"] * d["s"]
        fl, by = STREAMING_COUNTS[(p.variant, p.direction)]
        return float(fl * n), float(by * n * e)
    if p.op_class == "embedding":
        t, v, h = d["t"], d["v"], d["h"]
        return (0.0, 2.0 * t * h * e) if fwd else (float(t * h), float(v * h + 2 * t * h) * e)
    if p.op_class == "cross_entropy":
        n = d["t"] * d["v"]
        fl, by = STREAMING_COUNTS[("cross_entropy", p.direction)]
        return float(fl * n), float(by * n * e)
    if p.op_class == "optimizer":  # fp32 master weights, grads and moments
        return float(OPTIMIZER_FLOPS_PER_PARAM * d["p"]), float(OPTIMIZER_BYTES_PER_PARAM * d["p"])
    raise ValueError(f"unknown op class {p.op_class!r}")


# --- builders: return the callable to time ---------------------------------------------------

def _bwd(out: torch.Tensor, inputs: list[torch.Tensor]) -> Callable[[], object]:
    grad = torch.randn_like(out)
    return lambda: torch.autograd.grad(out, inputs, grad, retain_graph=True)


def _rms_norm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), w, eps=1e-5)


def _build(p: KernelPoint, device: torch.device) -> Callable[[], object]:
    d, fwd = p.dims, p.direction == "fwd"
    dt = DTYPES[p.precision]
    g = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape: int, grad: bool = not fwd, dtype: torch.dtype = dt) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype).requires_grad_(grad)

    with torch.enable_grad():
        if p.op_class == "gemm":
            x, w = rand(d["m"], d["k"]), rand(d["k"], d["n"])
            return (lambda: x @ w) if fwd else _bwd(x @ w, [x, w])
        if p.op_class == "attention":
            q, k, v = (rand(d["b"], d["h"], d["s"], d["d"]) for _ in range(3))
            f = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
            return f if fwd else _bwd(f(), [q, k, v])
        if p.op_class == "norm":
            x, w, b = rand(d["t"], d["h"]), rand(d["h"]), rand(d["h"])
            if p.variant == "layer_norm":
                f = lambda: F.layer_norm(x, (d["h"],), w, b)  # noqa: E731
            else:
                f = lambda: _rms_norm(x, w)  # noqa: E731
            return f if fwd else _bwd(f(), [x, w] + ([b] if p.variant == "layer_norm" else []))
        if p.op_class == "elementwise":
            if p.variant == "gelu":
                x = rand(d["t"], d["h"])
                f = lambda: F.gelu(x, approximate="tanh")  # noqa: E731
                return f if fwd else _bwd(f(), [x])
            if p.variant == "add":  # forward a + b; backward the branch-gradient sum a += b
                a, c = rand(d["t"], d["h"], grad=False), rand(d["t"], d["h"], grad=False)
                return (lambda: a + c) if fwd else (lambda: a.add_(c))
            if p.variant == "copy":  # a gradient scaled into a DDP bucket: y = x / world size
                x, y = rand(d["t"], d["h"], grad=False), rand(d["t"], d["h"], grad=False)
                return lambda: torch.mul(x, 0.5, out=y)
            a, c = rand(d["t"], d["h"]), rand(d["t"], d["h"])
            f = lambda: F.silu(a) * c  # noqa: E731
            return f if fwd else _bwd(f(), [a, c])
        if p.op_class == "softmax":
            x = rand(d["rows"], d["s"])
            f = lambda: torch.softmax(x, dim=-1)  # noqa: E731
            return f if fwd else _bwd(f(), [x])
        if p.op_class == "embedding":
            w = rand(d["v"], d["h"])
            idx = torch.randint(0, d["v"], (d["t"],), generator=g).to(device)
            f = lambda: F.embedding(idx, w)  # noqa: E731
            return f if fwd else _bwd(f(), [w])
        if p.op_class == "cross_entropy":
            logits = rand(d["t"], d["v"])
            target = torch.randint(0, d["v"], (d["t"],), generator=g).to(device)
            f = lambda: F.cross_entropy(logits, target)  # noqa: E731
            return f if fwd else _bwd(f(), [logits])
        if p.op_class == "optimizer":
            return _adamw_step(d["p"], device, g)[0]
    raise ValueError(f"unknown op class {p.op_class!r}")


def _adamw_step(n_params: int, device: torch.device, g: torch.Generator) -> tuple[Callable[[], object], Callable[[], object]]:
    """One AdamW step then zero_grad(set_to_none=True) over n_params fp32 parameters in 1 Mi-element
    tensors (fused if possible), as a training step ends; and the setup that gives the
    parameters their gradients back before each call (untimed)."""
    chunk = 1 << 20
    sizes = [chunk] * (n_params // chunk) + ([n_params % chunk] if n_params % chunk else [])
    params = [torch.randn(s, generator=g).to(device).requires_grad_(True) for s in sizes]
    grads = [torch.randn(prm.shape, generator=g).to(device) * 1e-3 for prm in params]

    def setup() -> None:
        for prm, grad in zip(params, grads, strict=False):
            prm.grad = grad

    setup()
    try:
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1, fused=True)
        opt.step()
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1, foreach=True)

    def step() -> None:
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, setup


@dataclass(frozen=True)
class CachePolicy:
    """How to time points: with a flush, cold; `flush` None times them warm (back to back)."""

    flush: CacheFlush | None

    @classmethod
    def for_device(cls, device: torch.device, cold: bool = True) -> "CachePolicy":
        """Cold timing with a flush of twice the last-level cache (64..256 MiB), or warm."""
        return cls(CacheFlush(device, flush_bytes_for(device)) if cold else None)


def cache_mode(p: KernelPoint, policy: CachePolicy | None) -> str:
    """'cold' or 'warm' for a point under a policy (see the module docstring)."""
    return "warm" if policy is None or policy.flush is None else "cold"


def measure_point(p: KernelPoint, device: torch.device, cfg: TimingConfig,
                  policy: CachePolicy | None = None) -> KernelSample:
    """Time one point (warm or cold per `cache_mode`); raises RuntimeError (from torch) if the op
    is not supported there."""
    setup: Callable[[], object] | None = None
    if p.op_class == "optimizer":
        fn, setup = _adamw_step(p.dims["p"], device, torch.Generator(device="cpu").manual_seed(0))
    else:
        fn = _build(p, device)
    if p.direction == "fwd" and p.op_class != "optimizer":
        inner = fn

        def fn() -> object:  # forward without recording a graph
            with torch.no_grad():
                return inner()

    mode = cache_mode(p, policy)
    if mode == "cold":
        assert policy is not None and policy.flush is not None
        t = time_cold(fn, device, cfg, policy.flush, setup)
    else:
        if setup is not None:
            step = fn

            def fn() -> object:  # the optimizer needs its gradients back for every call
                setup()
                return step()

        t = time_fn(fn, device, cfg)
    flops, nbytes = counts(p)
    return KernelSample(
        key=p.key, op_class=p.op_class, direction=p.direction, precision=p.precision,  # type: ignore[arg-type]
        variant=p.variant, shape=p.dims, flops=flops, bytes_moved=nbytes,
        median_s=t.median_s, p10_s=t.p10_s, p90_s=t.p90_s, repeats=t.repeats, cache=mode,  # type: ignore[arg-type]
    )


# Depth of the module chain the framework overhead is measured on: deep enough that one
# autograd call's own cost (~15 us on the 2-core machine) is spread thin.
_FRAMEWORK_DEPTH = 64


def measure_framework(device: torch.device, cfg: TimingConfig) -> FrameworkOverhead:
    """Per-kernel framework cost in a step beyond an isolated sample (FrameworkOverhead).

    On [4, 8] tensors (the kernels cost nothing): a chain of nn.Linear(8, 8) modules run forward
    with autograd and backward in one autograd call, per module; and what measure_point's
    samples pay for one such op alone: a bare forward call and an autograd.grad call.
    """
    torch.manual_seed(0)
    chain = torch.nn.Sequential(*[torch.nn.Linear(8, 8, bias=False) for _ in range(_FRAMEWORK_DEPTH)]).to(device)
    params = list(chain.parameters())
    x = torch.randn(4, 8, device=device)
    grad = torch.ones(4, 8, device=device)
    with torch.enable_grad():
        fwd = time_fn(lambda: chain(x), device, cfg)
        both = time_fn(lambda: torch.autograd.grad(chain(x), params, grad), device, cfg)
        xi = x.clone().requires_grad_(True)
        w = params[0]
        out = xi @ w
        call_bwd = time_fn(lambda: torch.autograd.grad(out, [xi, w], grad, retain_graph=True), device, cfg)
    with torch.no_grad():
        call_fwd = time_fn(lambda: x @ w, device, cfg)
    return FrameworkOverhead(
        step_fwd_s=fwd.median_s / _FRAMEWORK_DEPTH,
        step_bwd_s=max(both.median_s - fwd.median_s, 0.0) / _FRAMEWORK_DEPTH,
        call_fwd_s=call_fwd.median_s, call_bwd_s=call_bwd.median_s,
        repeats=min(fwd.repeats, both.repeats, call_fwd.repeats, call_bwd.repeats),
    )
