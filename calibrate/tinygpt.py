"""A tiny GPT trained data-parallel over local processes: the measured side of `calibrate check`.

`TinyGPTConfig` is the model and batch the simulator must rebuild (it is plain data);
`measure_ddp_step` trains it for a few steps with DistributedDataParallel over `world_size`
local ranks (gloo on CPU, NCCL on GPUs) and returns the median step time and its phases:
forward (including the loss), backward (including DDP's gradient bucket copies and all-reduce,
one bucket of `ddp_bucket_mb` reduced as the backward ends) and the optimizer (step and
zero_grad).
"""

from __future__ import annotations

import math
import os
import queue as queue_mod
import statistics
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from calibrate.device import (CalibrationInputError, check_device, check_world_size, cpu_count,
                              join_process_group)

__all__ = ["TinyGPTConfig", "TinyGPTResult", "TinyGPT", "measure_ddp_step"]


@dataclass(frozen=True)
class TinyGPTConfig:
    """A GPT-2-style decoder (pre-LayerNorm, GELU MLP, learned positions, untied LM head, no
    biases in linear layers) and the per-rank batch it trains on."""

    layers: int = 2
    hidden: int = 256
    heads: int = 4
    ffn_hidden: int = 1024  # 4 x hidden, as in GPT-2/3
    vocab: int = 2048
    seq_len: int = 128
    micro_batch: int = 4  # sequences per rank per step
    precision: str = "fp32"  # fp32 | bf16 (bf16 = autocast, fp32 master weights)
    lr: float = 3e-4
    weight_decay: float = 0.1
    seed: int = 0
    # DDP gradient bucket size, passed to DDP explicitly: torch's default size (25 MiB), and,
    # being explicit, without DDP's 1 MiB first bucket (dist._DEFAULT_FIRST_BUCKET_BYTES), which
    # all-reduces the output head's gradients alone while the backward still runs. The simulator
    # buckets whole layers and reduces the embedding and head gradients with the last bucket
    # (workloads/training.py); with this, both sides bucket alike (one bucket for the tiny GPT).
    ddp_bucket_mb: float = 25.0

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16 (got {self.precision!r})")
        if self.ddp_bucket_mb <= 0:
            raise ValueError(f"ddp_bucket_mb must be positive (got {self.ddp_bucket_mb!r})")

    @property
    def ddp_bucket_params(self) -> int:
        """The DDP bucket in parameters (fp32 gradients, 4 bytes each; also under bf16 autocast)."""
        return max(1, int(self.ddp_bucket_mb * (1 << 20) // 4))

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def tokens_per_rank(self) -> int:
        return self.micro_batch * self.seq_len

    def parameter_count(self) -> int:
        """Parameters: embeddings, per layer 2 LayerNorms + QKV + out + 2 MLP matrices, final LN, head."""
        h, f = self.hidden, self.ffn_hidden
        per_layer = 2 * (2 * h) + h * 3 * h + h * h + h * f + f * h
        return self.vocab * h + self.seq_len * h + self.layers * per_layer + 2 * h + h * self.vocab


@dataclass(frozen=True)
class TinyGPTResult:
    """Measured DDP step: medians over the timed steps (the slowest rank of each step)."""

    config: TinyGPTConfig
    world_size: int
    backend: str
    device_kind: str
    threads_per_rank: int
    steps: int
    step_s: float
    step_p10_s: float
    step_p90_s: float
    forward_s: float
    backward_s: float  # includes DDP's bucket copies and all-reduce of the gradients
    optimizer_s: float
    first_loss: float
    last_loss: float

    def to_dict(self) -> dict:
        return asdict(self)


class _Block(nn.Module):
    def __init__(self, c: TinyGPTConfig) -> None:
        super().__init__()
        self.heads = c.heads
        self.ln1 = nn.LayerNorm(c.hidden)
        self.qkv = nn.Linear(c.hidden, 3 * c.hidden, bias=False)
        self.proj = nn.Linear(c.hidden, c.hidden, bias=False)
        self.ln2 = nn.LayerNorm(c.hidden)
        self.fc1 = nn.Linear(c.hidden, c.ffn_hidden, bias=False)
        self.fc2 = nn.Linear(c.ffn_hidden, c.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, s, h))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class TinyGPT(nn.Module):
    """The model of `TinyGPTConfig`; forward returns logits [batch, seq, vocab]."""

    def __init__(self, c: TinyGPTConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(c.vocab, c.hidden)
        self.pos = nn.Embedding(c.seq_len, c.hidden)
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.layers))
        self.ln_f = nn.LayerNorm(c.hidden)
        self.head = nn.Linear(c.hidden, c.vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train(rank: int, world_size: int, c: TinyGPTConfig, device: torch.device, steps: int, warmup: int) -> dict | None:
    """Train on one rank inside an initialised group; rank 0 returns the timings."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.manual_seed(c.seed)  # same initial weights on every rank (DDP also broadcasts them)
    model = TinyGPT(c).to(device)
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None, bucket_cap_mb=c.ddp_bucket_mb)
    try:
        opt = torch.optim.AdamW(ddp.parameters(), lr=c.lr, weight_decay=c.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(ddp.parameters(), lr=c.lr, weight_decay=c.weight_decay, foreach=True)
    gen = torch.Generator().manual_seed(c.seed + 1 + rank)  # each rank its own data shard
    data = torch.randint(0, c.vocab, (c.micro_batch, c.seq_len + 1), generator=gen).to(device)
    x, y = data[:, :-1], data[:, 1:]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=c.precision == "bf16")
    rows: list[list[float]] = []
    losses: list[float] = []
    for step in range(warmup + steps):
        dist.barrier()
        _sync(device)
        t0 = time.perf_counter()
        with autocast:
            logits = ddp(x)
            loss = F.cross_entropy(logits.reshape(-1, c.vocab).float(), y.reshape(-1))
        _sync(device)
        t1 = time.perf_counter()
        loss.backward()
        _sync(device)
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        t3 = time.perf_counter()
        losses.append(float(loss.detach()))
        if step >= warmup:
            rows.append([t1 - t0, t2 - t1, t3 - t2, t3 - t0])
    # The slowest rank of each step and phase is what a synchronous job runs at.
    t = torch.tensor(rows, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if rank != 0:
        return None
    cols = t.cpu().T.tolist()
    step_sorted = sorted(cols[3])
    return {
        "forward_s": statistics.median(cols[0]),
        "backward_s": statistics.median(cols[1]),
        "optimizer_s": statistics.median(cols[2]),
        "step_s": statistics.median(cols[3]),
        "step_p10_s": step_sorted[int(0.1 * (len(step_sorted) - 1))],
        "step_p90_s": step_sorted[math.ceil(0.9 * (len(step_sorted) - 1))],
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


def _worker(
    rank: int, world_size: int, init_file: str, backend: str, threads: int, c: TinyGPTConfig,
    steps: int, warmup: int, timeout_s: float, out: "queue_mod.Queue[tuple]",
) -> None:
    try:
        device = join_process_group(rank, world_size, init_file, backend, threads, timeout_s)
        try:
            res = _train(rank, world_size, c, device, steps, warmup)
        finally:
            dist.destroy_process_group()
        out.put(("ok", rank, res))
    except BaseException:
        out.put(("error", rank, traceback.format_exc(limit=4)))
        raise SystemExit(1) from None


def measure_ddp_step(
    config: TinyGPTConfig | None = None, world_size: int = 2, device: str = "cpu", steps: int = 10,
    warmup: int = 3, threads: int | None = None, timeout_s: float = 300.0,
) -> TinyGPTResult:
    """Train `config` with DDP over `world_size` local ranks; the median step and its phases.

    CPU ranks get cores // world_size threads each (one core per rank, DESIGN.md section 4).
    Raises CalibrationInputError for a device or world size this machine cannot run and
    RuntimeError if a rank fails.
    """
    c = config or TinyGPTConfig()
    check_device(device)
    check_world_size(device, world_size)
    if steps < 1 or warmup < 0:
        raise CalibrationInputError(f"steps must be >= 1 and warmup >= 0 (got {steps}, {warmup})")
    backend = "nccl" if device == "cuda" else "gloo"
    threads = threads or (max(1, cpu_count() // world_size) if device == "cpu" else 1)
    ctx = torch.multiprocessing.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="dcsim-tinygpt-") as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        procs = [ctx.Process(target=_worker, args=(r, world_size, init_file, backend, threads, c, steps, warmup, timeout_s, out),
                             daemon=True) for r in range(world_size)]
        for p in procs:
            p.start()
        result: dict | None = None
        deadline = time.monotonic() + timeout_s + 60
        ok = 0
        try:
            while ok < world_size:
                try:
                    msg = out.get(timeout=0.5)
                except queue_mod.Empty:
                    if any(p.exitcode not in (None, 0) for p in procs):
                        raise RuntimeError("a tiny-GPT rank exited without a report") from None
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"tiny-GPT ranks did not finish in {timeout_s:.0f} s") from None
                    continue
                if msg[0] == "error":
                    lines = [ln for ln in msg[2].strip().splitlines() if ln.strip()]
                    raise RuntimeError(f"tiny-GPT rank {msg[1]} failed: {lines[-1] if lines else 'unknown error'}")
                ok += 1
                if msg[1] == 0:
                    result = msg[2]
        finally:
            for p in procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.terminate()
                    p.join(timeout=5)
    assert result is not None
    return TinyGPTResult(config=c, world_size=world_size, backend=backend, device_kind=device,
                         threads_per_rank=threads, steps=steps, **result)


if __name__ == "__main__":
    print(measure_ddp_step().to_dict())
