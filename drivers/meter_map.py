"""Meter register maps: load and strictly validate a map file, plan the reads, decode registers.

A map is data (``drivers/meters/<model>.toml``); this module is the only code that interprets it.
Everything here is pure: no I/O beyond reading the file, no pymodbus, no clock.
"""

from __future__ import annotations

import math
import struct
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Any

BUILTIN_DIR = Path(__file__).with_name("meters")

RTU_REQUEST_BYTES = 8  # id, FC, address(2), count(2), CRC(2)
RTU_RESPONSE_OVERHEAD = 5  # id, FC, byte count, CRC(2); plus 2 bytes per register

PHASE_QUANTITIES = ("voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3")
QUANTITIES = (*PHASE_QUANTITIES, "power_total", "energy_import")
UNITS = {"voltage": "V", "current": "A", "power_total": "W", "energy_import": "kWh"}

_MODEL_REQUIRED = ("name", "phases", "baudrate", "parity", "stopbits", "default_unit_id",
                   "max_registers_per_request")
_MODEL_OPTIONAL = ("bytesize", "bridge_gaps", "source")
_QUANTITY_REQUIRED = ("function_code", "address", "data_type", "word_order", "unit")
_QUANTITY_SCALES = ("divisor", "multiplier")
_UNREACHABLE = 1 << 62
_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


def rtu_request_cost(count: int) -> int:
    """Bytes on an RS-485 wire for one FC3/FC4 read of ``count`` registers: request + response."""
    return RTU_REQUEST_BYTES + RTU_RESPONSE_OVERHEAD + 2 * count


class MapError(ValueError):
    """A map file is invalid; the message names the file and the offending key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: [{key}] {problem}")
        self.source, self.key, self.problem = source, key, problem


class DecodeError(ValueError):
    """Registers from the wire cannot be decoded for what was requested (count or value wrong)."""


class DataType(StrEnum):
    """Register data types a map may name; the value is the name used in map files."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"

    @property
    def registers(self) -> int:
        """How many 16-bit registers one value occupies."""
        return {"16": 1, "32": 2, "64": 4}[self.value[-2:]]

    @property
    def struct_code(self) -> str:
        """The big-endian ``struct`` code for the value once words are in big (MSW-first) order."""
        return {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q",
                "uint64": "Q", "float32": "f"}[self.value]


class WordOrder(StrEnum):
    """Order of 16-bit words in a multi-register value (bytes in a register are always big-endian)."""

    BIG = "big"  # most significant word first (Eastron, ABB)
    LITTLE = "little"  # least significant word first (Carlo Gavazzi INT32)


@dataclass(frozen=True, slots=True)
class Quantity:
    """Where one quantity lives and how to turn its registers into a value in ``unit``.

    Scaling: ``value = raw / divisor`` or ``value = raw * multiplier`` (exactly one is not None).
    """

    name: str
    function_code: int
    address: int
    data_type: DataType
    word_order: WordOrder
    unit: str
    divisor: float | None = None
    multiplier: float | None = None

    @property
    def count(self) -> int:
        """Registers this quantity occupies."""
        return self.data_type.registers

    @property
    def end(self) -> int:
        """First address after this quantity."""
        return self.address + self.count

    def _ordered(self, words: Sequence[int]) -> list[int]:
        return list(words) if self.word_order is WordOrder.BIG else list(reversed(words))

    def decode(self, registers: Sequence[int]) -> float | None:
        """The scaled value, or None when the meter says "not available" (all 0xFFFF, NaN, inf)."""
        if len(registers) != self.count:
            raise DecodeError(f"{self.name}: needs {self.count} registers ({self.data_type}), "
                              f"got {len(registers)}")
        for index, word in enumerate(registers):
            if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word <= 0xFFFF:
                raise DecodeError(f"{self.name}: register {index} is {word!r}, not a 16-bit value")
        if all(word == 0xFFFF for word in registers):
            return None
        raw_bytes = struct.pack(f">{self.count}H", *self._ordered(registers))
        raw: float = struct.unpack(f">{self.data_type.struct_code}", raw_bytes)[0]
        if not math.isfinite(raw):
            return None
        if self.divisor is not None:
            return raw / self.divisor
        return raw * (self.multiplier if self.multiplier is not None else 1.0)

    def encode(self, value: float) -> list[int]:
        """Registers a meter would send for ``value`` (inverse of ``decode``; used by the simulator)."""
        if self.divisor is not None:
            raw: float = value * self.divisor
        else:
            raw = value / (self.multiplier if self.multiplier is not None else 1.0)
        if self.data_type is not DataType.FLOAT32:
            raw = round(raw)
        try:
            packed = struct.pack(f">{self.data_type.struct_code}", raw)
        except struct.error as exc:
            raise ValueError(f"{self.name}: {value} does not fit {self.data_type}") from exc
        return self._ordered(list(struct.unpack(f">{self.count}H", packed)))


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One FC3/FC4 read covering one or more quantities (and any bridged gap between them)."""

    function_code: int
    address: int
    count: int
    quantities: tuple[Quantity, ...]

    @property
    def wire_bytes(self) -> int:
        """RTU bytes for this request and its response."""
        return rtu_request_cost(self.count)

    def decode(self, registers: Sequence[int]) -> dict[str, float | None]:
        """Values of this request's quantities from the registers it returned."""
        if len(registers) != self.count:
            raise DecodeError(f"FC{self.function_code} @0x{self.address:04X}: expected {self.count} "
                              f"registers, got {len(registers)}")
        values: dict[str, float | None] = {}
        for quantity in self.quantities:
            offset = quantity.address - self.address
            values[quantity.name] = quantity.decode(registers[offset:offset + quantity.count])
        return values


@dataclass(frozen=True, slots=True)
class MeterMap:
    """A validated register map of one meter model, with its read plan."""

    key: str  # file stem, e.g. "sdm630"
    name: str
    phases: int
    baudrate: int
    bytesize: int
    parity: str
    stopbits: int
    default_unit_id: int
    max_registers_per_request: int
    bridge_gaps: bool
    quantities: Mapping[str, Quantity]
    plan: tuple[ReadRequest, ...]
    source: str = ""

    @property
    def plan_wire_bytes(self) -> int:
        """RTU bytes one snapshot costs with this map's plan."""
        return sum(request.wire_bytes for request in self.plan)


def plan_reads(quantities: Sequence[Quantity], max_registers: int, bridge_gaps: bool = True,
               ) -> tuple[ReadRequest, ...]:
    """Fewest wire bytes (then fewest requests) covering ``quantities``: an exact DP per FC.

    A gap between quantities is read through only when that is cheaper than another request
    (2 bytes per gap register against 13 bytes of request/response framing).
    """
    plan: list[ReadRequest] = []
    for fc in sorted({q.function_code for q in quantities}):
        items = sorted((q for q in quantities if q.function_code == fc), key=lambda q: q.address)
        best: list[tuple[int, int]] = [(0, 0)] + [(_UNREACHABLE, 0)] * len(items)
        start_of: list[int] = [0] * (len(items) + 1)
        for stop in range(1, len(items) + 1):
            for start in range(stop - 1, -1, -1):
                span = items[stop - 1].end - items[start].address
                if span > max_registers:
                    break
                if not bridge_gaps and span != sum(q.count for q in items[start:stop]):
                    continue
                bytes_so_far, requests_so_far = best[start]
                cost = (bytes_so_far + rtu_request_cost(span), requests_so_far + 1)
                if cost < best[stop]:
                    best[stop], start_of[stop] = cost, start
        groups: list[ReadRequest] = []
        stop = len(items)
        while stop > 0:
            start = start_of[stop]
            group = tuple(items[start:stop])
            groups.append(ReadRequest(fc, group[0].address, group[-1].end - group[0].address, group))
            stop = start
        plan.extend(reversed(groups))
    return tuple(plan)


# ---------------------------------------------------------------- loading and validation


def builtin_models() -> list[str]:
    """Keys of the maps shipped in ``drivers/meters`` (e.g. "sdm630")."""
    return sorted(path.stem for path in BUILTIN_DIR.glob("*.toml"))


def load_builtin(model: str) -> MeterMap:
    """Load a shipped map by key; unknown keys are a MapError listing the known ones."""
    path = BUILTIN_DIR / f"{model}.toml"
    if not path.is_file():
        raise MapError(str(path), "model", f"no built-in map {model!r}; known: {builtin_models()}")
    return load_map(path)


def load_map(path: str | Path) -> MeterMap:
    """Read and validate one map file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MapError(str(path), "(file)", f"not valid TOML: {exc}") from exc
    except OSError as exc:
        raise MapError(str(path), "(file)", f"cannot read: {exc}") from exc
    return parse_map(data, source=str(path), key=path.stem)


def parse_map(data: Mapping[str, Any], *, source: str, key: str) -> MeterMap:
    """Validate an already-parsed map (a dict shaped like the TOML file)."""
    _check_keys(data, source, "", required=("model", "quantities"), optional=())
    model = _table(data["model"], source, "model")
    _check_keys(model, source, "model.", required=_MODEL_REQUIRED, optional=_MODEL_OPTIONAL)
    name = _string(model["name"], source, "model.name")
    phases = _integer(model["phases"], source, "model.phases", choices=(1, 3))
    baudrate = _integer(model["baudrate"], source, "model.baudrate", choices=_BAUDRATES)
    bytesize = _integer(model.get("bytesize", 8), source, "model.bytesize", choices=(7, 8))
    parity = _string(model["parity"], source, "model.parity", choices=("N", "E", "O"))
    stopbits = _integer(model["stopbits"], source, "model.stopbits", choices=(1, 2))
    unit_id = _integer(model["default_unit_id"], source, "model.default_unit_id", low=1, high=247)
    max_regs = _integer(model["max_registers_per_request"], source, "model.max_registers_per_request",
                        low=1, high=125)
    bridge_gaps = model.get("bridge_gaps", True)
    if not isinstance(bridge_gaps, bool):
        raise MapError(source, "model.bridge_gaps", f"must be true or false, not {bridge_gaps!r}")
    origin = _string(model.get("source", "-"), source, "model.source")

    table = _table(data["quantities"], source, "quantities")
    expected = [q for q in QUANTITIES if q[-2:] not in ("l2", "l3") or phases == 3]
    for qname in table:
        if qname not in QUANTITIES:
            raise MapError(source, f"quantities.{qname}", f"unknown quantity; known: {list(QUANTITIES)}")
        if qname not in expected:
            raise MapError(source, f"quantities.{qname}", f"not allowed in a {phases}-phase map")
    for qname in expected:
        if qname not in table:
            raise MapError(source, f"quantities.{qname}", f"missing (a {phases}-phase map needs {expected})")
    quantities = {qname: _quantity(qname, table[qname], source, max_regs) for qname in expected}
    _check_overlaps(list(quantities.values()), source)
    return MeterMap(key=key, name=name, phases=phases, baudrate=baudrate, bytesize=bytesize,
                    parity=parity, stopbits=stopbits, default_unit_id=unit_id,
                    max_registers_per_request=max_regs, bridge_gaps=bridge_gaps, quantities=quantities,
                    plan=plan_reads(list(quantities.values()), max_regs, bridge_gaps), source=origin)


def _quantity(qname: str, raw: Any, source: str, max_regs: int) -> Quantity:
    where = f"quantities.{qname}"
    entry = _table(raw, source, where)
    _check_keys(entry, source, f"{where}.", required=_QUANTITY_REQUIRED, optional=_QUANTITY_SCALES)
    fc = _integer(entry["function_code"], source, f"{where}.function_code", choices=(3, 4))
    address = _integer(entry["address"], source, f"{where}.address", low=0, high=0xFFFF)
    type_name = _string(entry["data_type"], source, f"{where}.data_type", choices=tuple(DataType))
    order = _string(entry["word_order"], source, f"{where}.word_order", choices=tuple(WordOrder))
    unit = _string(entry["unit"], source, f"{where}.unit")
    wanted = UNITS[qname.split("_l")[0]]
    if unit != wanted:
        raise MapError(source, f"{where}.unit", f"must be {wanted!r} (after scaling), not {unit!r}")
    scales = [s for s in _QUANTITY_SCALES if s in entry]
    if len(scales) != 1:
        raise MapError(source, where, "needs exactly one of 'divisor' (value = raw / divisor) or "
                       "'multiplier' (value = raw * multiplier)")
    factor = entry[scales[0]]
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor < math.inf:
        raise MapError(source, f"{where}.{scales[0]}", f"must be a positive number, not {factor!r}")
    data_type = DataType(type_name)
    if address + data_type.registers > 0x10000:
        raise MapError(source, f"{where}.address", f"{data_type} at 0x{address:04X} runs past 0xFFFF")
    if data_type.registers > max_regs:
        raise MapError(source, f"{where}.data_type", f"{data_type} is longer than max_registers_per_request")
    return Quantity(qname, fc, address, data_type, WordOrder(order), unit,
                    divisor=float(factor) if scales[0] == "divisor" else None,
                    multiplier=float(factor) if scales[0] == "multiplier" else None)


def _check_overlaps(quantities: list[Quantity], source: str) -> None:
    ordered = sorted(quantities, key=lambda q: (q.function_code, q.address))
    for before, after in pairwise(ordered):
        if before.function_code == after.function_code and after.address < before.end:
            raise MapError(source, f"quantities.{after.name}",
                           f"registers 0x{after.address:04X}.. overlap {before.name} "
                           f"(0x{before.address:04X}..0x{before.end - 1:04X})")


def _check_keys(table: Mapping[str, Any], source: str, prefix: str, *, required: Sequence[str],
                optional: Sequence[str]) -> None:
    for key in table:
        if key not in required and key not in optional:
            raise MapError(source, f"{prefix}{key}", f"unknown key; allowed: {[*required, *optional]}")
    for key in required:
        if key not in table:
            raise MapError(source, f"{prefix}{key}", "missing")


def _table(value: Any, source: str, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MapError(source, key, f"must be a table, not {type(value).__name__}")
    return value


def _string(value: Any, source: str, key: str, choices: Sequence[str] = ()) -> str:
    if not isinstance(value, str) or not value:
        raise MapError(source, key, f"must be a non-empty string, not {value!r}")
    if choices and value not in choices:
        raise MapError(source, key, f"must be one of {[str(c) for c in choices]}, not {value!r}")
    return value


def _integer(value: Any, source: str, key: str, *, choices: Sequence[int] = (), low: int | None = None,
             high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MapError(source, key, f"must be an integer, not {value!r}")
    if choices and value not in choices:
        raise MapError(source, key, f"must be one of {list(choices)}, not {value}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise MapError(source, key, f"must be in {low}..{high}, not {value}")
    return value
