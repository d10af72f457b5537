"""The one family of "the user's input is wrong" errors, so the CLI can tell them from bugs.

Every domain error (ScenarioError, TopologyError, ModelError, ParallelismError, UnitError,
UnknownHardware, ProfileError, KinetoError, CalibrationInputError, ...) derives from
`InputError`. The CLI (dcsim/guard.py) prints an InputError as one line and exits 2; any
other exception is a bug and keeps its traceback (exit 1).

`InputError` subclasses `ValueError` on purpose: pydantic turns a ValueError raised inside a
field validator into a validation error naming the field (a plain Exception would escape it),
and callers that already catch ValueError around parsing keep working. The CLI never catches
ValueError itself, so a bug that raises one (an empty `max()`, a numpy error) is not taken for
bad input.
"""

from __future__ import annotations

__all__ = ["InputError", "PathError", "abbreviate"]


class InputError(ValueError):
    """Bad input from the user; str() is one line naming the field or flag and what is allowed."""


class PathError(InputError):
    """A user-given path that cannot be read or written as asked (directory, missing,
    unreadable, not UTF-8, cannot be created)."""


def abbreviate(value: object, limit: int = 60) -> str:
    """repr(value) cut to `limit` characters, so an error line stays one short line even
    when the wrong value is huge (a YAML alias bomb, a 10 MB string)."""
    text = repr(value) if not isinstance(value, str) else repr(value[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."
