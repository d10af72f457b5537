"""The command line's error policy (shared by `dcsim` and `python -m calibrate.cli`): bad input is one line and exit 2; Ctrl-C one line and exit 130;
anything else is a bug and keeps its traceback (exit 1).

`GuardedGroup` is the click group class of the `dcsim` app, so every command (the mounted
`calibrate` and `topo` groups too) runs under the same policy without a try/except each.
"Bad input" is the `InputError` family (dcsim/errors.py), click's own usage errors (a
misspelt flag, `--gpus abc`) and the OS errors of paths the user named on the command line;
a ValueError or OSError from anywhere else is a bug and is not dressed up as the user's fault.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.26 carries its own copy of click; its exceptions are the ones raised
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # older typer runs on click itself
    from click.exceptions import (NoArgsIsHelpError,  # type: ignore[assignment,no-redef]
                                  UsageError)

from dcsim.errors import InputError

__all__ = ["GuardedGroup", "one_line", "user_path_error"]

# The longest error line we print: a huge wrong value (an alias bomb) is cut, not echoed.
MAX_MESSAGE_CHARS = 300


def one_line(message: str) -> str:
    """A message as one line of at most MAX_MESSAGE_CHARS characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def _print_error(message: str) -> None:
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()


def user_path_error(exc: OSError, args: list[str]) -> str | None:
    """One line for an OS error on a path the user gave in `args`, None for any other path
    (an OS error on a path we chose ourselves is a bug or an environment fault, not input)."""
    names = [n for n in (exc.filename, getattr(exc, "filename2", None)) if n is not None]
    given = [os.path.abspath(a) for a in args if a and not a.startswith("-")]
    for name in names:
        full = os.path.abspath(os.fsdecode(name))
        for g in given:
            if full == g or full.startswith(g.rstrip(os.sep) + os.sep) or g.startswith(full + os.sep):
                return f"{os.fsdecode(name)}: {exc.strerror or type(exc).__name__}"
    return None


class GuardedGroup(TyperGroup):
    """A typer group that applies the error policy around every command it runs."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: Any = None, **extra: Any) -> Any:
        self._guard_args = list(args)
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError as exc:
            _show_help(exc)
        except UsageError as exc:
            _print_error(_usage_message(exc))
            raise typer.Exit(2) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except NoArgsIsHelpError as exc:
            _show_help(exc)
        except UsageError as exc:
            _print_error(_usage_message(exc))
            raise typer.Exit(2) from None
        except InputError as exc:
            _print_error(str(exc))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            sys.stderr.write("\ninterrupted\n")
            raise typer.Exit(130) from None
        except OSError as exc:
            message = user_path_error(exc, getattr(self, "_guard_args", []))
            if message is None:
                raise
            _print_error(message)
            raise typer.Exit(2) from None


def _show_help(exc: Any) -> None:
    """`dcsim` or `dcsim topo` alone: the help it asks for, on stdout, exit 0."""
    if exc.ctx is not None:
        sys.stdout.write(exc.ctx.get_help() + "\n")
    raise typer.Exit(0) from None


def _usage_message(exc: Any) -> str:
    """click's usage error as one line, with the command it was about."""
    where = exc.ctx.command_path if exc.ctx is not None else "dcsim"
    return f"{where}: {exc.format_message()} (see {where} --help)"
