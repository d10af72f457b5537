"""`dcsim calibrate ...`: measure this machine and write a calibration profile.

The typer `app` here is mounted by dcsim/cli.py as `dcsim calibrate`; it also runs alone:
`python -m calibrate.cli run --quick --device cpu`. `refit PROFILE` fits a profile's stored
samples again (after a change of the fitting models) without measuring anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

from dcsim.guard import GuardedGroup

if TYPE_CHECKING:
    from calibrate.runner import RunSummary
    from dcsim.profile import Profile

__all__ = ["app", "main"]

app = typer.Typer(
    cls=GuardedGroup,  # bad input one line, exit 2, also when run alone (python -m calibrate.cli)
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
    from calibrate.device import CalibrationInputError, require_torch
    from dcsim.files import check_output_file

    if out is not None:
        check_output_file(out, "--out")
    require_torch("dcsim calibrate run")
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
    p = summary.profile
    _print_fits(console, p, f"profile {summary.out}")
    console.print(
        f"measured {summary.measured} point(s), kept {summary.skipped} from an earlier run, "
        f"{len(p.unsupported)} not measured (see 'unsupported'); {summary.elapsed_s:.0f} s; wrote {summary.out}"
    )


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _print_fits(console: Console, p: Profile, title: str, before: Profile | None = None) -> None:
    """Each fit with its model and held-out error (and, given `before`, the earlier fit's)."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    cols = ["fit", "model", "n", "held-out median err", "held-out max err", "size range"]
    if before is not None:
        cols[3:3] = ["was: model", "was: held-out median"]
    for col in cols:
        table.add_column(col)
    old = {} if before is None else {(f.op_class, f.precision, f.direction, f.variant): f for f in before.compute_fits}
    old_c = {} if before is None else {(c.op, c.world_size): c for c in before.collective_fits}

    def row(name: str, kind: str, q: object, size_range: str, was: object) -> None:
        cells = [name, kind, str(q.n_samples), _pct(q.heldout_median_rel_err), _pct(q.heldout_max_rel_err),  # type: ignore[attr-defined]
                 size_range]
        if before is not None:
            cells[3:3] = ["-", "-"] if was is None else [was.curve.kind, _pct(was.quality.heldout_median_rel_err)]  # type: ignore[attr-defined]
        table.add_row(*cells)

    for f in p.compute_fits:
        name = f"{f.op_class}/{f.precision}/{f.direction}" + (f"/{f.variant}" if f.variant else "")
        q = f.quality
        row(name, f.curve.kind, q, f"{q.size_min:.3g}..{q.size_max:.3g} {f.size_metric}",
            old.get((f.op_class, f.precision, f.direction, f.variant)))
    for c in p.collective_fits:
        q = c.quality
        row(f"{c.op}/ws={c.world_size}", c.curve.kind, q, f"{q.size_min:.3g}..{q.size_max:.3g} bytes",
            old_c.get((c.op, c.world_size)))
    console.print(table)
    if p.framework is not None:
        fw = p.framework
        console.print(f"framework overhead per kernel in a step: forward {fw.fwd_s * 1e6:+.1f} us, "
                      f"backward {fw.bwd_s * 1e6:+.1f} us (beyond the isolated samples)")


@app.command()
def refit(
    profile: Path = typer.Argument(..., help="Profile file, or the name of one in calibrate/profiles (e.g. cpu-2core)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the refitted profile here. Default: over PROFILE."),
) -> None:
    """Fit a profile's stored samples again with this version's models; nothing is measured."""
    from calibrate.fit import refit_profile
    from dcsim.files import check_output_file, read_input_text
    from dcsim.profile import ProfileError, load_profile, save_profile

    path = profile
    if not path.exists() and path.suffix != ".json":
        path = Path(__file__).resolve().parent / "profiles" / f"{profile}.json"
    read_input_text(path, "PROFILE")  # a directory, unreadable or binary file: one line
    if out is not None:
        check_output_file(out, "--out")
    try:
        before = load_profile(path)
        after = refit_profile(load_profile(path))
    except ProfileError as e:
        raise _fail(str(e)) from None
    if not after.kernels and not after.collectives:
        raise _fail(f"calibration profile {path}: no samples to fit")
    target = out if out is not None else path
    save_profile(after, target, indent=None if after.metadata.measurement == "published" else 1)
    console = Console(stderr=True)
    _print_fits(console, after, f"refitted {path}", before=before)
    console.print(f"wrote {target} (schema version {after.metadata.schema_version})")


@app.command("import")
def import_(
    source: str = typer.Argument(..., help="Dataset: vidur | eleutherai (../shared/data/kernels/*)."),
    path: Path = typer.Argument(..., help="The dataset's folder."),
    out: Path = typer.Option(..., "--out", help="Profile to write; an existing published profile of the device is added to."),
    device: str = typer.Option("a100", "--device", help="a100 | h100 (Vidur has both; EleutherAI a100 only)."),
) -> None:
    """Import published kernel and NCCL measurements as a calibration profile (nothing is measured)."""
    from calibrate.published import PublishedImportError, import_published

    try:
        prof = import_published(source.strip().lower(), path, device, out)
    except PublishedImportError as e:
        raise _fail(str(e)) from None
    console = Console(stderr=True)
    _print_fits(console, prof, f"imported {source} into {out}")
    console.print(f"wrote {out} (published measurement: {', '.join(s.dataset for s in prof.metadata.sources)})")


def main() -> None:
    """Entry point for `python -m calibrate.cli` (the same error policy as `dcsim calibrate`)."""
    app()


if __name__ == "__main__":
    main()
