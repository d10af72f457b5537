"""Parse and print physical quantities: the one place where text like "400 Gb/s" becomes SI.

Inside dcsim everything is SI (bytes, bytes/s, seconds, watts, FLOP). Bits exist only in
text at the edge; decimal prefixes (k, M, G, T, P) are powers of 1000 and binary prefixes
(Ki, Mi, Gi, Ti) powers of 1024, as in IEC 80000-13.
"""

from __future__ import annotations

import math
import re
from dcsim.errors import InputError

__all__ = [
    "UnitError",
    "parse_bytes",
    "parse_bandwidth",
    "parse_duration",
    "parse_power",
    "parse_number",
    "parse_flops",
    "format_bytes",
    "format_bandwidth",
    "format_duration",
    "format_power",
    "format_flops",
]


class UnitError(InputError):
    """A quantity could not be parsed; the message says what was expected."""


_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_QTY = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>[^\s].*?)?\s*$")

# Seconds per duration unit (SI second; minute/hour/day/week by definition).
_DURATION = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "secs": 1.0,
    "second": 1.0, "seconds": 1.0, "min": 60.0, "mins": 60.0, "minute": 60.0,
    "minutes": 60.0, "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0,
    "hours": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0, "w": 604800.0,
    "week": 604800.0, "weeks": 604800.0,
}


def _split(text: str | float | int, what: str) -> tuple[float, str]:
    if isinstance(text, bool):
        raise UnitError(f"expected {what}, got a boolean")
    if isinstance(text, (int, float)):
        return float(text), ""
    m = _QTY.match(str(text))
    if not m:
        raise UnitError(f"expected {what}, got {text!r}")
    value = float(m.group("num"))
    if not math.isfinite(value):
        raise UnitError(f"expected {what} (finite), got {text!r}")
    return value, (m.group("unit") or "").strip()


def _prefix(prefix: str, text: object, what: str) -> float:
    if prefix in _BINARY:
        return _BINARY[prefix]
    if prefix in _DECIMAL:
        return _DECIMAL[prefix]
    raise UnitError(f"unknown prefix {prefix!r} in {text!r}; expected {what}")


def parse_bytes(text: str | float | int) -> float:
    """'80 GiB' -> 85899345920.0; '1 Gb' -> 1.25e8 (bits / 8); a bare number is bytes."""
    what = "a size such as '80 GiB', '4 MB' or '1 Gb'"
    value, unit = _split(text, what)
    if unit == "":
        return value
    m = re.fullmatch(r"(?P<p>[kKMGTPE]i?|)(?P<u>B|b|bytes?|bits?)", unit)
    if not m:
        raise UnitError(f"expected {what}, got {text!r}")
    scale = _prefix(m.group("p"), text, what)
    bits = m.group("u") in ("b", "bit", "bits")
    return value * scale / (8.0 if bits else 1.0)


def parse_bandwidth(text: str | float | int) -> float:
    """'400 Gb/s' -> 5e10 bytes/s; '50 GB/s' -> 5e10; 'Gbps' accepted; a bare number is B/s."""
    what = "a bandwidth such as '400 Gb/s' or '50 GB/s'"
    value, unit = _split(text, what)
    if unit == "":
        return value
    unit = unit[:-2] + "/s" if unit.endswith("ps") else unit
    if not unit.endswith("/s"):
        raise UnitError(f"expected {what}, got {text!r}")
    try:
        return parse_bytes(f"{value!r} {unit[:-2]}")
    except UnitError:
        raise UnitError(f"expected {what}, got {text!r}") from None


def parse_duration(text: str | float | int) -> float:
    """'30 min' -> 1800.0; '2 h', '5 us', '1.5 days'; a bare number is seconds."""
    what = "a duration such as '30 min', '2 h' or '5 us'"
    value, unit = _split(text, what)
    if unit == "":
        return value
    if unit not in _DURATION:
        raise UnitError(f"expected {what}, got {text!r}")
    return value * _DURATION[unit]


def parse_power(text: str | float | int) -> float:
    """'700 W' -> 700.0; '1.2 kW', '20 MW'; a bare number is watts."""
    what = "a power such as '700 W' or '1.2 kW'"
    value, unit = _split(text, what)
    if unit == "":
        return value
    m = re.fullmatch(r"(?P<p>[kMG]?)W", unit)
    if not m:
        raise UnitError(f"expected {what}, got {text!r}")
    return value * _DECIMAL[m.group("p")]


def parse_number(text: str | float | int) -> float:
    """'1.2e15' -> 1.2e15; '300e9'; '2 k' / '1.5 M' / '300 B' (billion) for counts like tokens."""
    what = "a number such as '1.2e15', '300e9' or '15 T'"
    value, unit = _split(text, what)
    if unit == "":
        return value
    # Counting suffixes as written in ML papers: K/M/B (billion)/T (trillion).
    counts = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
    if unit not in counts:
        raise UnitError(f"expected {what}, got {text!r}")
    return value * counts[unit]


def parse_flops(text: str | float | int) -> float:
    """'989 TFLOP/s' -> 9.89e14 (rate) or '1.2e15 FLOP' -> 1.2e15 (count); units are decimal."""
    what = "FLOPs such as '1.2e15', '3 PFLOP' or '989 TFLOP/s'"
    value, unit = _split(text, what)
    if unit == "":
        return value
    m = re.fullmatch(r"(?P<p>[kMGTPE]?)(FLOP|FLOPs|FLOPS|flop|flops)(/s)?", unit)
    if not m:
        raise UnitError(f"expected {what}, got {text!r}")
    return value * _DECIMAL[m.group("p")]


def _format(value: float, unit: str, prefixes: list[tuple[str, float]]) -> str:
    for prefix, scale in prefixes:
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}"


_DEC_DESC = [("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)]
_BIN_DESC = [("Pi", 2.0**50), ("Ti", 2.0**40), ("Gi", 2.0**30), ("Mi", 2.0**20), ("Ki", 2.0**10)]


def format_bytes(n: float, binary: bool = True) -> str:
    """85899345920 -> '80 GiB' (binary) or '85.9 GB' (decimal)."""
    return _format(n, "B", _BIN_DESC if binary else _DEC_DESC)


def format_bandwidth(bytes_per_s: float, bits: bool = False) -> str:
    """5e10 -> '50 GB/s', or with bits=True '400 Gb/s'."""
    if bits:
        return _format(bytes_per_s * 8.0, "b/s", _DEC_DESC)
    return _format(bytes_per_s, "B/s", _DEC_DESC)


def format_duration(seconds: float) -> str:
    """A duration in the largest unit that keeps it readable: '1.5 ms', '3.2 h', '12 days'."""
    s = abs(seconds)
    if s >= 2 * 86400:
        return f"{seconds / 86400:.4g} days"
    if s >= 3600:
        return f"{seconds / 3600:.4g} h"
    if s >= 60:
        return f"{seconds / 60:.4g} min"
    if s >= 1 or s == 0:
        return f"{seconds:.4g} s"
    if s >= 1e-3:
        return f"{seconds * 1e3:.4g} ms"
    if s >= 1e-6:
        return f"{seconds * 1e6:.4g} us"
    return f"{seconds * 1e9:.4g} ns"


def format_power(watts: float) -> str:
    """700 -> '700 W'; 1.2e6 -> '1.2 MW'."""
    return _format(watts, "W", [("G", 1e9), ("M", 1e6), ("k", 1e3)])


def format_flops(flops: float, rate: bool = True) -> str:
    """9.89e14 -> '989 TFLOP/s' (rate) or '989 TFLOP' (count)."""
    return _format(flops, "FLOP/s" if rate else "FLOP", _DEC_DESC)
