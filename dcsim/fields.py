"""Field types the input schemas share (presets, scenarios): strict counts, positive finite
quantities with units, and one-line error messages with the field's full path.

Every schema that reads user input builds on `Strict` and these annotated types, so a count is
never a boolean, a quantity never NaN, infinite, zero or negative where that means nothing, and
every message names the field and what is allowed, with the wrong value abbreviated.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Annotated, Any, Callable, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from dcsim import units

# The longest a wrong value is quoted in a message (a one-line error never carries a document).
MAX_VALUE_CHARS = 60
# The largest count a schema accepts: 2**53, the last integer a float holds exactly (IEEE 754
# binary64), so products of counts in the cost formulas stay finite and exact enough.
MAX_COUNT = 2**53
# The longest one error line may be.
MAX_MESSAGE_CHARS = 300


class Strict(BaseModel):
    """A schema of user input: unknown keys are errors, NaN and infinity are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


def abbreviate(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """repr(value) cut to `limit` characters (a huge wrong value never floods a message)."""
    text = _bounded_repr(value, limit)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _bounded_repr(value: Any, limit: int) -> str:
    """repr of value without walking more than needed (an aliased YAML value can be huge)."""
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            parts.append(f"{k!r}: {_bounded_repr(v, limit)}")
            if sum(len(p) for p in parts) > limit:
                break
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, (list, tuple)):
        parts = []
        for v in value:
            parts.append(_bounded_repr(v, limit))
            if sum(len(p) for p in parts) > limit:
                break
        return "[" + ", ".join(parts) + "]"
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit])
    return repr(value)


def one_line(message: str) -> str:
    """A message as one line of at most MAX_MESSAGE_CHARS characters."""
    text = " ".join(message.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS - 3] + "..."


def _whole(minimum: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        """v as an int in [minimum, MAX_COUNT]; booleans, fractions and strings refused."""
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"must be an integer >= {minimum}, got {abbreviate(v)}")
        if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
            raise ValueError(f"must be an integer >= {minimum}, got {abbreviate(v)}")
        if int(v) < minimum:
            raise ValueError(f"must be an integer >= {minimum}, got {abbreviate(v)}")
        if int(v) > MAX_COUNT:
            raise ValueError(f"must be an integer <= 2**53 (exact in floating point), got "
                             f"{abbreviate(v)}")
        return int(v)
    return check


def _real(v: Any) -> Any:
    """A plain number: a boolean is not a factor or a rate (True would be read as 1.0)."""
    if isinstance(v, bool):
        raise ValueError(f"must be a number, got {v!r}")
    return v


# Real numbers (finite by the Strict config); bounds go in Field(ge=..., gt=..., le=...).
Real = Annotated[float, BeforeValidator(_real)]

# Counts: integers (2.0 is 2; True, 2.5, "8" and NaN are errors) at or above a minimum.
Count = Annotated[int, BeforeValidator(_whole(1))]
Count0 = Annotated[int, BeforeValidator(_whole(0))]
Count2 = Annotated[int, BeforeValidator(_whole(2))]


def _quantity(parse: Callable[[Any], float], what: str, example: str,
              positive: bool = True) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        """v parsed with its unit to SI; finite, and > 0 when `positive`."""
        try:
            out = parse(v)
        except units.UnitError as exc:
            raise ValueError(f"{exc}".replace(repr(v), abbreviate(v)) if isinstance(v, str)
                             else str(exc)) from None
        if not math.isfinite(out):
            raise ValueError(f"must be a finite {what} such as {example}, got {abbreviate(v)}")
        if positive and out <= 0:
            raise ValueError(f"must be a {what} > 0 such as {example}, got {abbreviate(v)}")
        return out
    return check


def _text(v: Any) -> Any:
    """A unit-bearing value as str or number (never a list/dict the parsers would repr whole)."""
    if isinstance(v, (str, int, float)):
        return v
    raise units.UnitError(f"expected a number or a quantity with a unit, got {abbreviate(v)}")


Bandwidth = Annotated[float, BeforeValidator(
    _quantity(lambda v: units.parse_bandwidth(_text(v)), "bandwidth", "'200 GB/s'"))]
Bytes = Annotated[float, BeforeValidator(
    _quantity(lambda v: units.parse_bytes(_text(v)), "size", "'80 GiB'"))]
Duration = Annotated[float, BeforeValidator(
    _quantity(lambda v: units.parse_duration(_text(v)), "duration", "'30 min'"))]
Number = Annotated[float, BeforeValidator(
    _quantity(lambda v: units.parse_number(_text(v)), "number", "300e9"))]


_TAGS = ("constrained-", "function-", "lax-or-strict", "json-or-python", "tagged-union", "nullable",
         "literal[", "is-instance[", "chain[", "default[")


def _is_branch_tag(part: str) -> bool:
    """A location part pydantic adds for a union branch or a validator, not a field."""
    return (part[:1].isupper() or part.startswith(_TAGS) or "(" in part
            or part in ("str", "int", "float", "bool", "dict", "list", "enum"))


def _error_location(loc: tuple[Any, ...], prefix: str) -> str:
    # pydantic names union branches and validator functions in the location; drop them.
    parts = [str(p) for p in loc if not (isinstance(p, str) and _is_branch_tag(p))]
    path = ".".join(p.removesuffix("_") if p == "global_" else p for p in parts)
    return ".".join(x for x in (prefix, path) if x)


def format_validation_error(err: ValidationError, model: type[BaseModel] | None = None,
                            prefix: str = "", whole: str = "the document") -> str:
    """The first error of a pydantic ValidationError as one line: `path: what is wrong`."""
    errors = err.errors()
    # A union (a name or an inline mapping) reports one error per branch: show the branch the
    # user meant, i.e. not "should be a string" when they wrote a mapping.
    e = next((x for x in errors if x["type"] not in ("string_type", "literal_error", "enum")
              or len(errors) == 1), errors[0])
    loc = _error_location(tuple(e["loc"]), prefix)
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
        if len(e["loc"]) > 0:
            parent = allowed_keys(model, tuple(e["loc"][:-1])) if model else []
            if parent:
                msg += f"; allowed: {', '.join(parent)}"
    elif e["type"] in ("literal_error", "enum"):
        msg = f"got {abbreviate(e.get('input'))}; {msg.lower()}"
    elif e["type"] == "missing":
        msg = "required"
    elif e["type"] in ("finite_number",):
        msg = f"must be a finite number, got {abbreviate(e.get('input'))}"
    elif "input" in e and e["type"] not in ("value_error",):
        msg = f"{msg}, got {abbreviate(e.get('input'))}"
    return one_line(f"{loc or whole}: {msg}")


def allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the schema allows at `loc` (a pydantic error location), sorted; [] if unknown."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    models = [m for m in _members(current) if isinstance(m, type) and issubclass(m, BaseModel)]
    if len(models) != 1:
        return []
    return sorted(f.alias or name for name, f in models[0].model_fields.items())


def _members(tp: Any) -> list[Any]:
    """The types a (possibly Optional / Union / Annotated) annotation may hold."""
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _members(args[0])
    if origin in (Union, types.UnionType):
        return [m for a in args for m in _members(a)]
    return [tp]


def _step(current: Any, part: Any) -> Any:
    """The annotation one step down `part` (a field name, a list index, a dict key, a branch)."""
    for tp in _members(current):
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            for name, f in tp.model_fields.items():
                if part in (name, f.alias):
                    return f.annotation
        if origin in (list, tuple) and isinstance(part, int):
            return typing.get_args(tp)[0]
        if origin is dict:
            return typing.get_args(tp)[1]
    if isinstance(part, str) and (part[:1].isupper() or "[" in part):
        return current  # a union branch's name in the location: stay on this level
    return None
