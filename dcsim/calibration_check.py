"""`dcsim calibrate check`: a real tiny-GPT DDP step measured against the simulator's prediction
for the same model, layout and calibration profile: the honest end-to-end test of the chain."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dcsim.scenario import load_scenario
from dcsim.simulate import simulate


@dataclass
class CheckResult:
    measured_step_s: float
    predicted_step_s: float
    error_pct: float
    measured: dict[str, float]
    predicted: dict[str, Any]
    profile: str
    device: str
    world_size: int
    model: dict[str, Any]
    plot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tiny_scenario(cfg: Any, world_size: int, profile: str, preset: str) -> dict[str, Any]:
    """The scenario of the tiny GPT that calibrate.tinygpt trains (same shapes, same layout)."""
    return {
        "name": "calibrate-check-tiny-gpt",
        "cluster": {"preset": preset, "nodes": 1},
        "workload": {
            "model": {"name": "tiny-gpt", "layers": cfg.layers, "hidden": cfg.hidden,
                      "heads": cfg.heads, "ffn_hidden": cfg.ffn_hidden, "vocab": cfg.vocab,
                      "activation": "gelu", "tied_embeddings": False, "dropout": False},
            "seq_len": cfg.seq_len,
            "precision": cfg.precision,
            # torch DDP: one data-parallel step, gradients bucketed and overlapped with backward
            "parallelism": {"dp": world_size},
            "batch": {"global": cfg.micro_batch * world_size, "micro": cfg.micro_batch},
            "flash_attention": True,  # scaled_dot_product_attention never stores s x s scores
        },
        "run": {"network": "analytical", "fold": "auto", "calibration": profile},
    }


def run_check(device: str = "cpu", profile: str = "cpu-2core", world_size: int = 2,
              steps: int = 10, plot_path: Path | None = None) -> CheckResult:
    from calibrate.tinygpt import TinyGPTConfig, measure_ddp_step  # torch only here

    if profile != "spec":
        from dcsim.calibrated import load_cost_model
        load_cost_model(profile)  # a bad profile fails before minutes of measuring
    cfg = TinyGPTConfig()
    measured = measure_ddp_step(cfg, world_size=world_size, device=device, steps=steps)
    preset = "cpu-host" if device == "cpu" else "dgx-h100"
    res = simulate(load_scenario(tiny_scenario(cfg, world_size, profile, preset)))
    err = 100.0 * (res.iteration_s - measured.step_s) / measured.step_s
    meas = {"forward_s": measured.forward_s, "backward_s": measured.backward_s,
            "optimizer_s": measured.optimizer_s, "step_s": measured.step_s}
    pred = {"breakdown": asdict(res.breakdown), "provenance": asdict(res.provenance)}
    out = CheckResult(measured.step_s, res.iteration_s, err, meas, pred, profile, device,
                      world_size, asdict(cfg))
    if plot_path is not None:
        out.plot = str(plot_comparison(out, plot_path))
    return out


def plot_comparison(r: CheckResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = r.predicted["breakdown"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.barh(["measured"], [r.measured["forward_s"]], label="forward")
    ax.barh(["measured"], [r.measured["backward_s"]], left=[r.measured["forward_s"]],
            label="backward + all-reduce")
    ax.barh(["measured"], [r.measured["optimizer_s"]],
            left=[r.measured["forward_s"] + r.measured["backward_s"]], label="optimizer")
    left = 0.0
    for key, label in (("compute_s", "compute (pred.)"), ("optimizer_s", "optimizer (pred.)")):
        ax.barh(["predicted"], [b[key]], left=[left], label=label, alpha=0.7)
        left += b[key]
    dp = b["exposed_comm_s"]["dp"]
    ax.barh(["predicted"], [dp], left=[left], label="exposed DP comm (pred.)", alpha=0.7)
    ax.set_xlabel("seconds per step")
    ax.set_title(f"tiny GPT, DDP x{r.world_size} on {r.device}: error {r.error_pct:+.1f}%")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
