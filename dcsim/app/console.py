"""Rich consoles for the CLI: on a terminal they wrap to its width; piped or redirected they
print tables at their natural width (rich's default of 80 columns would cut job and fit names)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

__all__ = ["stdout_console", "stderr_console", "terminal_progress", "PIPE_WIDTH"]

# Wide enough for every table dcsim prints; rich tables take only the width they need.
PIPE_WIDTH = 400


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(stderr=stderr, width=None if tty else PIPE_WIDTH)


def stdout_console() -> Console:
    """The console for results (stdout)."""
    return _console(stderr=False)


def stderr_console() -> Console:
    """The console for warnings and progress (stderr)."""
    return _console(stderr=True)


@contextmanager
def terminal_progress(console: Console, label: str, unit: str = "") -> Iterator[
        Callable[[int, int], None] | None]:
    """A rich progress bar on `console` when it is a terminal, yielding `update(done, total)`;
    None when piped or captured, so --json output stays one object."""
    if not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    count = "{task.completed:,}/{task.total:,}" + (f" {unit}" if unit else "")
    with Progress(TextColumn(label), BarColumn(), TextColumn(count), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        tasks: list[Any] = []  # added at the first update, when the total is known

        def update(done: int, total: int) -> None:
            if not tasks:
                tasks.append(bar.add_task(label, total=total))
            bar.update(tasks[0], completed=done, total=total)
        yield update
