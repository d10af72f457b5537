"""`dcsim calibrate ...`: measure this machine and write a calibration profile.

The typer `app` here is mounted by dcsim/cli.py as `dcsim calibrate`; it also runs alone:
`python -m calibrate.cli run --quick --device cpu`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

if TYPE_CHECKING:
    from calibrate.runner import RunSummary

__all__ = ["app", "main"]

app = typer.Typer(
    help="Measure this machine (kernels and collectives) and write a calibration profile.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """Measure this machine and write a calibration profile (calibrate/profiles/*.json)."""


def _names(text: Optional[str]) -> Optional[tuple[str, ...]]:
    if text is None:
        return None
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _fail(message: str, code: int = 2) -> "typer.Exit":
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command()
def run(
    device: str = typer.Option("cpu", "--device", help="What to measure: cpu | cuda."),
    quick: bool = typer.Option(False, "--quick", help="A short sweep (minutes): fewer sizes and repeats."),
    world_size: Optional[int] = typer.Option(
        None, "--world-size", help="Ranks for collectives (2..N are measured). Default: 2 on CPU, all GPUs on cuda."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Profile file to write (and to resume, if it holds a partial run). "
        "Default: calibrate/profiles/<device>.json."
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads for kernels. Default: cores per rank."),
    precisions: Optional[str] = typer.Option(
        None, "--precisions", help="Comma list of fp32,bf16,fp16,fp8. Default: fp32 on CPU (+bf16 without --quick)."
    ),
    ops: Optional[str] = typer.Option(
        None, "--ops", help="Comma list of op classes, collectives and 'framework' (per-kernel framework overhead) to measure "
        "(e.g. gemm,all_reduce); 'none' for nothing."
    ),
    max_points: Optional[int] = typer.Option(None, "--max-points", hidden=True, help="At most N sizes per op (tests)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    cache: str = typer.Option(
        "cold", "--cache", help="cold: flush the caches before each kernel call (as a training step finds its data); "
        "warm: time calls back to back."
    ),
) -> None:
    """Benchmark kernels and collectives, fit the curves, save the profile."""
    # Imported here so `--help` and input errors do not pay for importing torch.
    from calibrate.device import CalibrationInputError
    from calibrate.runner import RunConfig, run_calibration

    cfg = RunConfig(
        device=device.strip().lower(), quick=quick, out=out, world_size=world_size, threads=threads,
        precisions=_names(precisions), ops=_names(ops), max_points=max_points, progress=progress,
        cache=cache.strip().lower(),
    )
    console = Console(stderr=True)
    try:
        summary = run_calibration(cfg, console=console)
    except CalibrationInputError as e:
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        target = out if out is not None else "the profile file"
        raise _fail(f"interrupted; the points measured so far are in {target}; rerun the same command to resume", 130) from None
    if summary.primary:
        _print_summary(console, summary)
    if summary.failures:
        for f in summary.failures:
            typer.echo(f"error: {f}", err=True)
        raise typer.Exit(1)


def _print_summary(console: Console, summary: RunSummary) -> None:
    """A short table: each fit with its held-out error."""
    from rich.table import Table

    p = summary.profile
    table = Table(title=f"profile {summary.out}", show_lines=False)
    for col in ("fit", "model", "n", "held-out median err", "held-out max err", "size range"):
        table.add_column(col)

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    for f in p.compute_fits:
        name = f"{f.op_class}/{f.precision}/{f.direction}" + (f"/{f.variant}" if f.variant else "")
        q = f.quality
        table.add_row(name, f.curve.kind, str(q.n_samples), pct(q.heldout_median_rel_err), pct(q.heldout_max_rel_err),
                      f"{q.size_min:.3g}..{q.size_max:.3g} {f.size_metric}")
    for c in p.collective_fits:
        q = c.quality
        table.add_row(f"{c.op}/ws={c.world_size}", c.curve.kind, str(q.n_samples), pct(q.heldout_median_rel_err),
                      pct(q.heldout_max_rel_err), f"{q.size_min:.3g}..{q.size_max:.3g} bytes")
    console.print(table)
    if p.framework is not None:
        fw = p.framework
        console.print(f"framework overhead per kernel in a step: forward {fw.fwd_s * 1e6:+.1f} us, "
                      f"backward {fw.bwd_s * 1e6:+.1f} us (beyond the isolated samples)")
    console.print(
        f"measured {summary.measured} point(s), kept {summary.skipped} from an earlier run, "
        f"{len(p.unsupported)} not measured (see 'unsupported'); {summary.elapsed_s:.0f} s; wrote {summary.out}"
    )


def main() -> None:
    """Entry point for `python -m calibrate.cli`."""
    app()


if __name__ == "__main__":
    sys.exit(main())
