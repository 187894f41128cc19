"""Map files: the shipped maps, strict validation with clear errors, and the read planner."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.meter_map import (
    QUANTITIES,
    DataType,
    MapError,
    Quantity,
    WordOrder,
    builtin_models,
    load_builtin,
    load_map,
    parse_map,
    plan_reads,
    rtu_request_cost,
)


def test_every_model_ships_a_map() -> None:
    assert builtin_models() == ["abb_b23", "em340", "sdm120", "sdm630", "sdm72dm"]


@pytest.mark.parametrize("model", builtin_models())
def test_builtin_maps_load_with_all_quantities_of_their_phases(model: str) -> None:
    meter_map = load_builtin(model)
    expected = [q for q in QUANTITIES if meter_map.phases == 3 or q[-2:] not in ("l2", "l3")]
    assert sorted(meter_map.quantities) == sorted(expected)
    covered = [q.name for request in meter_map.plan for q in request.quantities]
    assert sorted(covered) == sorted(expected)
    assert all(r.count <= meter_map.max_registers_per_request for r in meter_map.plan)


@pytest.mark.parametrize(("model", "plan"), [
    ("sdm630", [(4, 0x0000, 12), (4, 0x0034, 2), (4, 0x0048, 2)]),
    ("sdm72dm", [(4, 0x0000, 12), (4, 0x0034, 2), (4, 0x0048, 2)]),
    ("sdm120", [(4, 0x0000, 14), (4, 0x0048, 2)]),  # V, I, P bridged: 2x4-register gaps < a request
    ("abb_b23", [(3, 0x5000, 4), (3, 0x5B00, 22)]),
    ("em340", [(4, 0x0000, 18), (4, 0x0028, 2), (4, 0x0034, 2)]),  # 6-register gap V..I bridged
])
def test_plans_of_the_shipped_maps(model: str, plan: list[tuple[int, int, int]]) -> None:
    assert [(r.function_code, r.address, r.count) for r in load_builtin(model).plan] == plan


def _quantity(name: str, address: int, data_type: str = "float32", fc: int = 4) -> Quantity:
    return Quantity(name, fc, address, DataType(data_type), WordOrder.BIG, "V", multiplier=1.0)


@pytest.mark.parametrize(("gap", "requests"), [(0, 1), (6, 1), (7, 2)])
def test_gap_bridged_only_when_cheaper_than_a_request(gap: int, requests: int) -> None:
    # A gap of g registers costs 2g bytes; another request costs 8 + 5 = 13 bytes.
    plan = plan_reads([_quantity("a", 0), _quantity("b", 2 + gap)], max_registers=125)
    assert len(plan) == requests


def test_no_bridging_when_the_map_forbids_it() -> None:
    plan = plan_reads([_quantity("a", 0), _quantity("b", 3)], max_registers=125, bridge_gaps=False)
    assert [(r.address, r.count) for r in plan] == [(0, 2), (3, 2)]


def test_function_codes_never_share_a_request() -> None:
    plan = plan_reads([_quantity("a", 0, fc=3), _quantity("b", 2, fc=4)], max_registers=125)
    assert [(r.function_code, r.address) for r in plan] == [(3, 0), (4, 2)]


def _brute_force_bytes(quantities: list[Quantity], max_registers: int) -> int:
    total = 0
    for fc in {q.function_code for q in quantities}:
        items = sorted((q for q in quantities if q.function_code == fc), key=lambda q: q.address)
        best = None
        for cuts in itertools.product((False, True), repeat=len(items) - 1):
            groups, start = [], 0
            for index, cut in enumerate(cuts, start=1):
                if cut:
                    groups.append(items[start:index])
                    start = index
            groups.append(items[start:])
            spans = [g[-1].end - g[0].address for g in groups]
            if all(span <= max_registers for span in spans):
                cost = sum(rtu_request_cost(span) for span in spans)
                best = cost if best is None else min(best, cost)
        assert best is not None
        total += best
    return total


@st.composite
def _layouts(draw: st.DrawFn) -> tuple[list[Quantity], int]:
    types = ["uint16", "int32", "float32", "uint64"]
    quantities, address = [], draw(st.integers(0, 50))
    for index in range(draw(st.integers(1, 7))):
        data_type = DataType(draw(st.sampled_from(types)))
        quantities.append(Quantity(f"q{index}", draw(st.sampled_from([3, 4])), address, data_type,
                                   WordOrder.BIG, "V", multiplier=1.0))
        address += data_type.registers + draw(st.integers(0, 12))
    return quantities, draw(st.integers(4, 40))


@settings(max_examples=300, deadline=None)
@given(_layouts())
def test_planner_is_optimal_and_covers_each_quantity_once(layout: tuple[list[Quantity], int]) -> None:
    quantities, max_registers = layout
    plan = plan_reads(quantities, max_registers)
    assert sorted(q.name for r in plan for q in r.quantities) == sorted(q.name for q in quantities)
    for request in plan:
        assert request.count <= max_registers
        assert all(q.function_code == request.function_code for q in request.quantities)
        assert request.address <= min(q.address for q in request.quantities)
        assert request.address + request.count >= max(q.end for q in request.quantities)
    assert sum(r.wire_bytes for r in plan) == _brute_force_bytes(quantities, max_registers)


# ---------------------------------------------------------------- validation


def _valid() -> dict[str, Any]:
    q = {"function_code": 4, "data_type": "float32", "word_order": "big", "multiplier": 1}
    return {
        "model": {"name": "Test 1P", "phases": 1, "baudrate": 9600, "parity": "N", "stopbits": 1,
                  "default_unit_id": 1, "max_registers_per_request": 50},
        "quantities": {"voltage_l1": {**q, "address": 0, "unit": "V"},
                       "current_l1": {**q, "address": 6, "unit": "A"},
                       "power_total": {**q, "address": 12, "unit": "W"},
                       "energy_import": {**q, "address": 72, "unit": "kWh"}},
    }


def test_a_valid_map_parses() -> None:
    assert parse_map(_valid(), source="t.toml", key="t").phases == 1


@pytest.mark.parametrize(("edit", "key", "problem"), [
    (lambda d: d["model"].update(colour="red"), "model.colour", "unknown key"),
    (lambda d: d.update(extra={}), "extra", "unknown key"),
    (lambda d: d["model"].pop("baudrate"), "model.baudrate", "missing"),
    (lambda d: d["model"].update(baudrate="9600"), "model.baudrate", "must be an integer"),
    (lambda d: d["model"].update(baudrate=9601), "model.baudrate", "must be one of"),
    (lambda d: d["model"].update(phases=True), "model.phases", "must be an integer"),
    (lambda d: d["model"].update(parity="X"), "model.parity", "must be one of"),
    (lambda d: d["model"].update(max_registers_per_request=126), "model.max_registers_per_request", "1..125"),
    (lambda d: d["model"].update(bridge_gaps="yes"), "model.bridge_gaps", "true or false"),
    (lambda d: d["quantities"]["voltage_l1"].update(fc=4), "quantities.voltage_l1.fc", "unknown key"),
    (lambda d: d["quantities"]["voltage_l1"].update(function_code=6), "quantities.voltage_l1.function_code",
     "one of [3, 4]"),
    (lambda d: d["quantities"]["voltage_l1"].update(data_type="float64"), "quantities.voltage_l1.data_type",
     "must be one of"),
    (lambda d: d["quantities"]["voltage_l1"].update(word_order="middle"), "quantities.voltage_l1.word_order",
     "must be one of"),
    (lambda d: d["quantities"]["voltage_l1"].update(address=-1), "quantities.voltage_l1.address", "0..65535"),
    (lambda d: d["quantities"]["voltage_l1"].update(address=0xFFFF), "quantities.voltage_l1.address",
     "runs past"),
    (lambda d: d["quantities"]["voltage_l1"].update(unit="mV"), "quantities.voltage_l1.unit", "must be 'V'"),
    (lambda d: d["quantities"]["voltage_l1"].update(divisor=10), "quantities.voltage_l1", "exactly one of"),
    (lambda d: d["quantities"]["voltage_l1"].pop("multiplier"), "quantities.voltage_l1", "exactly one of"),
    (lambda d: d["quantities"]["voltage_l1"].update(multiplier=0), "quantities.voltage_l1.multiplier",
     "positive number"),
    (lambda d: d["quantities"]["current_l1"].update(address=1), "quantities.current_l1", "overlap voltage_l1"),
    (lambda d: d["quantities"].pop("energy_import"), "quantities.energy_import", "missing"),
    (lambda d: d["quantities"].update(voltage_l2=d["quantities"]["voltage_l1"]), "quantities.voltage_l2",
     "not allowed in a 1-phase map"),
    (lambda d: d["quantities"].update(frequency={}), "quantities.frequency", "unknown quantity"),
    (lambda d: d.update(quantities=[]), "quantities", "must be a table"),
])
def test_validation_errors_name_file_key_and_problem(edit: Any, key: str, problem: str) -> None:
    data = _valid()
    edit(data)
    with pytest.raises(MapError) as caught:
        parse_map(data, source="meters/test.toml", key="test")
    assert caught.value.key == key
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"meters/test.toml: [{key}]")


def test_overlap_is_found_across_table_order() -> None:
    data = _valid()
    data["quantities"]["power_total"]["address"] = 7  # inside current_l1 (6..7)
    with pytest.raises(MapError, match=r"power_total.*overlap current_l1"):
        parse_map(data, source="x.toml", key="x")


def test_same_address_on_different_function_codes_is_fine() -> None:
    data = _valid()
    data["quantities"]["energy_import"].update(function_code=3, address=0)
    assert len(parse_map(data, source="x.toml", key="x").plan) == 2


def test_bad_toml_and_missing_files_are_map_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[model\nname = 1\n")
    with pytest.raises(MapError, match=r"broken\.toml: \[\(file\)\] not valid TOML"):
        load_map(broken)
    with pytest.raises(MapError, match="cannot read"):
        load_map(tmp_path / "absent.toml")
    with pytest.raises(MapError, match=r"no built-in map 'sdm999'.*sdm630"):
        load_builtin("sdm999")
