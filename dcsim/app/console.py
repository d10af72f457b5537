"""Rich consoles for the CLI: on a terminal they wrap to its width; piped or redirected they
print tables at their natural width (rich's default of 80 columns would cut job and fit names)."""

from __future__ import annotations

import sys

from rich.console import Console

__all__ = ["stdout_console", "stderr_console", "PIPE_WIDTH"]

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
