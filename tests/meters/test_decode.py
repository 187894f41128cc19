"""Register decoding in our own code: known vectors, round trips, "not available", bad input."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.meter_map import DataType, DecodeError, Quantity, WordOrder, load_builtin


def _q(data_type: DataType, order: WordOrder = WordOrder.BIG, *, divisor: float | None = None) -> Quantity:
    return Quantity("x", 4, 0, data_type, order, "V", divisor=divisor,
                    multiplier=None if divisor is not None else 1.0)


@pytest.mark.parametrize(("model", "quantity", "registers", "value"), [
    ("sdm630", "voltage_l1", [0x4366, 0x1999], struct.unpack(">f", bytes.fromhex("43661999"))[0]),
    ("em340", "voltage_l1", [2305, 0], 230.5),  # Carlo Gavazzi sends the low word first
    ("em340", "power_total", [0xFFF6, 0xFFFF], -1.0),  # -10 / 10, LSW first
    ("abb_b23", "energy_import", [0, 0, 0x0001, 0x86A0], 1000.0),
    ("abb_b23", "voltage_l1", [0, 2301], 230.1),
    ("abb_b23", "power_total", [0xFFFF, 0xFF9C], -1.0),  # INT32 -100 / 100
])
def test_known_vectors(model: str, quantity: str, registers: list[int], value: float) -> None:
    assert load_builtin(model).quantities[quantity].decode(registers) == value


@given(st.sampled_from(list(DataType)), st.sampled_from(list(WordOrder)), st.data())
def test_encode_then_decode_gives_the_value_back(data_type: DataType, order: WordOrder,
                                                 data: st.DataObject) -> None:
    quantity = _q(data_type, order)
    bits = 16 * data_type.registers
    exact = 2**53  # values are floats: 64-bit counters are exact up to 2**53
    if data_type is DataType.FLOAT32:
        value = data.draw(st.floats(width=32, allow_nan=False, allow_infinity=False))
    elif data_type.value.startswith("u"):
        value = data.draw(st.integers(0, min(2**bits - 2, exact)))  # all-ones means "not available"
    else:
        low, high = max(-(2 ** (bits - 1)), -exact), min(2 ** (bits - 1) - 1, exact)
        value = data.draw(st.integers(low, high).filter(lambda v: v != -1))
    assert quantity.decode(quantity.encode(value)) == value


@pytest.mark.parametrize("data_type", list(DataType))
def test_all_ffff_is_not_available(data_type: DataType) -> None:
    assert _q(data_type).decode([0xFFFF] * data_type.registers) is None


def test_float_nan_and_infinity_are_not_available() -> None:
    quantity = _q(DataType.FLOAT32)
    assert quantity.decode([0x7FC0, 0x0000]) is None
    assert quantity.decode([0x7F80, 0x0000]) is None
    assert quantity.decode([0x4366, 0x1999]) is not None


def test_divisor_is_exact_for_decimal_scales() -> None:
    assert _q(DataType.UINT32, divisor=10).decode([0, 2301]) == 230.1  # not 230.10000000000002


@given(st.sampled_from(list(DataType)), st.lists(st.integers(0, 0xFFFF), max_size=6))
def test_wrong_register_counts_are_clear_errors(data_type: DataType, registers: list[int]) -> None:
    quantity = _q(data_type)
    if len(registers) == data_type.registers:
        return
    with pytest.raises(DecodeError, match=rf"x: needs {data_type.registers} registers \({data_type}\), "
                                          rf"got {len(registers)}"):
        quantity.decode(registers)


@given(st.lists(st.one_of(st.integers(-(2**20), -1), st.integers(0x10000, 2**20), st.booleans(),
                          st.floats(allow_nan=True), st.text(max_size=2)), min_size=1, max_size=2))
def test_garbage_register_values_are_clear_errors(garbage: list[object]) -> None:
    registers = [*garbage, 0][:2]
    with pytest.raises(DecodeError, match=r"x: register \d is .*, not a 16-bit value"):
        _q(DataType.UINT32).decode(registers)  # type: ignore[arg-type]


def test_request_decode_checks_the_reply_length() -> None:
    request = load_builtin("sdm630").plan[0]
    with pytest.raises(DecodeError, match=r"FC4 @0x0000: expected 12 registers, got 11"):
        request.decode([0] * 11)
    values = request.decode([0] * 12)
    assert values["voltage_l1"] == 0.0 and len(values) == 6


def test_encode_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit uint16"):
        _q(DataType.UINT16).encode(70000)
    assert math.isclose(_q(DataType.FLOAT32).decode(_q(DataType.FLOAT32).encode(230.1)) or 0, 230.1,
                        rel_tol=1e-6)
