"""Units: parsing and printing quantities, bits vs bytes, SI vs binary prefixes."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcsim import units


@pytest.mark.parametrize("text,expected", [
    ("400 Gb/s", 50e9), ("400Gbps", 50e9), ("50 GB/s", 50e9), ("200 Gb/s", 25e9),
    ("1.5 GB/s", 1.5e9), ("1 GiB/s", 2**30), ("8 b/s", 1.0), (12.5, 12.5),
])
def test_bandwidth(text, expected):
    assert units.parse_bandwidth(text) == pytest.approx(expected)


@pytest.mark.parametrize("text,expected", [
    ("80 GiB", 80 * 2**30), ("80 GB", 80e9), ("4 KiB", 4096), ("1 Gb", 1.25e8),
    ("1 MiB", 2**20), ("3 bytes", 3), ("16 b", 2), (1024, 1024),
])
def test_bytes(text, expected):
    assert units.parse_bytes(text) == pytest.approx(expected)


@pytest.mark.parametrize("text,expected", [
    ("30 min", 1800), ("2 h", 7200), ("5 us", 5e-6), ("1.5 days", 129600), ("130 ns", 1.3e-7),
    ("10", 10.0),
])
def test_duration(text, expected):
    assert units.parse_duration(text) == pytest.approx(expected)


def test_power_numbers_flops():
    assert units.parse_power("700 W") == 700
    assert units.parse_power("1.2 kW") == 1200
    assert units.parse_number("1.2e15") == 1.2e15
    assert units.parse_number("300e9") == 300e9
    assert units.parse_number("15 T") == 15e12
    assert units.parse_flops("989.4 TFLOP/s") == pytest.approx(989.4e12)
    assert units.parse_flops("1.2e15 FLOP") == 1.2e15


@pytest.mark.parametrize("bad,fn", [
    ("400 Gx/s", units.parse_bandwidth), ("fast", units.parse_bandwidth),
    ("400 Gb", units.parse_bandwidth), ("80 GiW", units.parse_bytes),
    ("3 fortnights", units.parse_duration), ("7 V", units.parse_power), ("nan GB", units.parse_bytes),
    (True, units.parse_bytes),
])
def test_bad_units_raise_with_message(bad, fn):
    with pytest.raises(units.UnitError, match="expected"):
        fn(bad)


def test_format():
    assert units.format_bytes(80 * 2**30) == "80 GiB"
    assert units.format_bandwidth(50e9, bits=True) == "400 Gb/s"
    assert units.format_bandwidth(50e9) == "50 GB/s"
    assert units.format_duration(1800) == "30 min"
    assert units.format_duration(1.5e-3) == "1.5 ms"
    assert units.format_power(1.2e6) == "1.2 MW"


finite = st.floats(min_value=1e-6, max_value=1e15, allow_nan=False, allow_infinity=False)


@given(finite)
def test_bits_are_one_eighth_of_bytes(x):
    assert units.parse_bandwidth(f"{x!r} Gb/s") * 8 == pytest.approx(units.parse_bandwidth(f"{x!r} GB/s"))


@given(finite)
def test_binary_prefix_larger_than_decimal(x):
    assert units.parse_bytes(f"{x!r} GiB") > units.parse_bytes(f"{x!r} GB")
    assert units.parse_bytes(f"{x!r} GiB") / units.parse_bytes(f"{x!r} GB") == pytest.approx(2**30 / 1e9)


@given(st.floats(min_value=1.0, max_value=1e18, allow_nan=False))
def test_format_parse_round_trip_bytes(x):
    assert units.parse_bytes(units.format_bytes(x)) == pytest.approx(x, rel=1e-3)


@given(st.floats(min_value=1e-3, max_value=1e14, allow_nan=False))
def test_format_parse_round_trip_bandwidth(x):
    text = units.format_bandwidth(x, bits=True)
    assert units.parse_bandwidth(text) == pytest.approx(x, rel=1e-3)


@given(st.floats(min_value=0.0, max_value=1e9, allow_nan=False))
def test_bare_numbers_are_si(x):
    assert units.parse_duration(x) == x and units.parse_bytes(x) == x
    assert math.isfinite(units.parse_bandwidth(x))
