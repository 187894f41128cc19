"""The station's configuration store: every device-model variable it implements, validated, persisted in SQLite.

Version neutral: the 2.0.1 layer answers GetVariables/SetVariables/GetBaseReport with ``get``/``set``/``report``,
the 1.6 layer answers GetConfiguration/ChangeConfiguration through ``key_values_16``/``by_alias`` + ``set``, and the
station core reads typed values (``int_value``...) and hears changes (``on_change``).

Storage: table ``ocpp_variables`` in a SQLite file that other OCPP tables may share (made with ``CREATE TABLE IF
NOT EXISTS``; no other table is touched), WAL journal with ``synchronous=FULL``, one row per persistent variable
that was ever set (an absent EVSE, connector or instance is stored as 0 or ''; names compare case-insensitively as
OCPP says). A set is committed before it is answered Accepted; when the write fails (sqlite3.Error, OSError) it is
answered Rejected/InternalError and memory keeps the old value. A stored value that no longer passes its
definition (a definition changed, or the file was edited) is reported in a WARNING and the default used; the row
stays on disk until a valid set replaces it. Rows of variables no longer defined are kept and ignored.

Values that are not readable (WriteOnly, hence every secret such as SecurityCtrlr.BasicAuthPassword) are never
returned by get or reports and never written to a log; the internal readers return them to the station.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from controller.ocpp.station.ocpp_db import open_tables, write
from controller.ocpp.station.variable_db import LAYOUT, VariableStoreError, read_rows, write_row
from controller.ocpp.station.variable_types import (
    ACTUAL,
    DataType,
    GetResult,
    GetStatus,
    KeyValue16,
    Mutability,
    Reason,
    ReportBase,
    SetResult,
    SetStatus,
    VariableDef,
    VariableKey,
)
from controller.ocpp.station.variable_values import (
    check_value,
    parse_bool,
    parse_decimal,
    parse_int,
    split_list,
)
from controller.ocpp.station.variable_wire import (
    get_result,
    in_report,
    report_entry,
    request_attribute,
    request_key,
    request_value,
    set_result,
)

__all__ = ["ChangeCallback", "VariableStore", "VariableStoreError"]

log = logging.getLogger(__name__)

ChangeCallback = Callable[[VariableDef, str], None]
FoldedKey = tuple[str, str, int, int, str, str]
_REDACTED = "<redacted>"


class VariableStore:
    """The device-model variables of one station, in memory and (the persistent ones) in SQLite."""

    def __init__(self, path: str | Path, definitions: Iterable[VariableDef], *, busy_timeout_s: float = 2.0) -> None:
        self.path = Path(path)
        self._definitions = tuple(definitions)
        self._defs: dict[FoldedKey, VariableDef] = {}
        self._aliases: dict[str, tuple[str, VariableDef]] = {}
        for definition in self._definitions:
            _add_definition(definition, self._defs, self._aliases)
        self._components = {definition.key.component_folded() for definition in self._definitions}
        self._values: dict[FoldedKey, str | None] = {k: d.default for k, d in self._defs.items()}
        self._pending: dict[FoldedKey, str] = {}  # set, stored, waiting for a restart (reboot_required)
        self._readers: dict[FoldedKey, Callable[[], str]] = {}
        self._listeners: list[ChangeCallback] = []
        self._lock = threading.RLock()
        self._db = open_tables(self.path, busy_timeout_s, LAYOUT)
        try:
            self._load()
        except sqlite3.Error as exc:
            self._db.close()
            raise VariableStoreError(f"{self.path}: cannot read the OCPP variables: {exc}") from exc

    # -- the CSMS's view (GetVariables / SetVariables / GetBaseReport)

    def get(
        self, component: str, variable: str, *, component_instance: str | None = None, evse_id: int | None = None,
        connector_id: int | None = None, variable_instance: str | None = None, attribute: str = ACTUAL,
    ) -> GetResult:
        """Read a variable as the CSMS may: unknown ones, other attributes and WriteOnly/secret ones say so."""
        key = VariableKey(component, variable, component_instance, evse_id, connector_id, variable_instance)
        return self._get(key, attribute)

    def set(
        self, component: str, variable: str, value: str, *, component_instance: str | None = None,
        evse_id: int | None = None, connector_id: int | None = None, variable_instance: str | None = None,
        attribute: str = ACTUAL,
    ) -> SetResult:
        """Write a variable as the CSMS may: validated, stored durably before Accepted (RebootRequired if so)."""
        key = VariableKey(component, variable, component_instance, evse_id, connector_id, variable_instance)
        return self._set(key, value, attribute)

    def get_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """One 2.0.1 GetVariableData (snake_case or camelCase keys) answered as a GetVariableResult dict."""
        key, attribute = request_key(request), request_attribute(request)
        return get_result(key, attribute, self._get(key, attribute))

    def set_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """One 2.0.1 SetVariableData (snake_case or camelCase keys) answered as a SetVariableResult dict."""
        key, attribute = request_key(request), request_attribute(request)
        return set_result(key, attribute, self._set(key, request_value(request), attribute))

    def report(self, base: ReportBase | str) -> list[dict[str, Any]]:
        """The ReportData entries of a base report, in definition order (ValueError for an unknown base)."""
        kind = ReportBase(base)
        entries = []
        for definition in self._definitions:
            value = self._current(definition)
            if in_report(definition, kind, value):
                entries.append(report_entry(definition, value))
        return entries

    # -- the station's view

    def set_internal(
        self, component: str, variable: str, value: str, *, component_instance: str | None = None,
        evse_id: int | None = None, connector_id: int | None = None, variable_instance: str | None = None,
    ) -> None:
        """Set a value the station itself decides (e.g. ReadOnly AvailabilityState): any mutability, effective now.

        KeyError if undefined, ValueError if the value does not pass its definition, VariableStoreError if a
        persistent value cannot be written (memory then keeps the old value).
        """
        definition = self._require(component, variable, component_instance, evse_id, connector_id, variable_instance)
        problem = check_value(definition, value)
        if problem is not None:
            raise ValueError(f"OCPP variable {definition.key.label()}: {problem.reason}: {problem.info}")
        self._write(definition, value, by_csms=False)

    def bind(
        self, component: str, variable: str, reader: Callable[[], str], *, component_instance: str | None = None,
        evse_id: int | None = None, connector_id: int | None = None, variable_instance: str | None = None,
    ) -> None:
        """Make get, reports and the readers call ``reader`` for a live value (e.g. ClockCtrlr.DateTime); KeyError."""
        definition = self._require(component, variable, component_instance, evse_id, connector_id, variable_instance)
        self._readers[definition.key.folded()] = reader

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(definition, new_value)`` after each effective change; returns the unsubscribe function.

        Called after the value is stored, outside the store's lock; an exception in it is logged, not raised.
        A set answered RebootRequired changes nothing until the restart, so it calls no one.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def value(
        self, component: str, variable: str, *, component_instance: str | None = None, evse_id: int | None = None,
        connector_id: int | None = None, variable_instance: str | None = None,
    ) -> str | None:
        """The effective value in its string form, secrets included; None only for a never-set WriteOnly; KeyError."""
        definition = self._require(component, variable, component_instance, evse_id, connector_id, variable_instance)
        return self._current(definition)

    def str_value(
        self, component: str, variable: str, *, component_instance: str | None = None, evse_id: int | None = None,
        connector_id: int | None = None, variable_instance: str | None = None,
    ) -> str:
        """The effective value as a string, secrets included ("" for a never-set WriteOnly); KeyError if undefined."""
        definition = self._require(component, variable, component_instance, evse_id, connector_id, variable_instance)
        return self._current(definition) or ""

    def bool_value(
        self, component: str, variable: str, *, component_instance: str | None = None, evse_id: int | None = None,
        connector_id: int | None = None, variable_instance: str | None = None,
    ) -> bool:
        """A boolean variable's value; KeyError if undefined, TypeError if it is not a boolean."""
        definition = self._require(component, variable, component_instance, evse_id, connector_id, variable_instance)
        return parse_bool(self._typed(definition, DataType.BOOLEAN))

    def int_value(
        self, component: str, variable: str, *, component_instance: str | None = None, evse_id: int | None = None,
        connector_id: int | None = None, variable_instance: str | None = None,
    ) -> int:
        """An integer variable's value; KeyError if undefined, TypeError if it is not an integer."""
        definition = self._require(component, variable, component_instance, evse_id, connector_id, variable_instance)
        return parse_int(self._typed(definition, DataType.INTEGER))

    def float_value(
        self, component: str, variable: str, *, component_instance: str | None = None, evse_id: int | None = None,
        connector_id: int | None = None, variable_instance: str | None = None,
    ) -> float:
        """An integer or decimal variable's value; KeyError if undefined, TypeError for other types."""
        definition = self._require(component, variable, component_instance, evse_id, connector_id, variable_instance)
        return parse_decimal(self._typed(definition, DataType.INTEGER, DataType.DECIMAL))

    def list_value(
        self, component: str, variable: str, *, component_instance: str | None = None, evse_id: int | None = None,
        connector_id: int | None = None, variable_instance: str | None = None,
    ) -> tuple[str, ...]:
        """An OptionList/MemberList/SequenceList's members in order; KeyError if undefined, TypeError otherwise."""
        definition = self._require(component, variable, component_instance, evse_id, connector_id, variable_instance)
        return split_list(self._typed(definition, *_LIST_TYPES))

    def definition(
        self, component: str, variable: str, *, component_instance: str | None = None, evse_id: int | None = None,
        connector_id: int | None = None, variable_instance: str | None = None,
    ) -> VariableDef | None:
        """The definition at this key (names case-insensitive), or None."""
        key = VariableKey(component, variable, component_instance, evse_id, connector_id, variable_instance)
        return self._defs.get(key.folded())

    @property
    def definitions(self) -> tuple[VariableDef, ...]:
        """Every definition, in the order given."""
        return self._definitions

    def reboot_pending(self) -> bool:
        """Whether a set answered RebootRequired is waiting for the restart that makes it effective."""
        return bool(self._pending)

    # -- OCPP 1.6 keys

    def by_alias(self, key: str) -> VariableDef | None:
        """The definition a 1.6 configuration key names (case-insensitive), or None."""
        found = self._aliases.get(key.casefold())
        return None if found is None else found[1]

    def key_values_16(self, keys: Iterable[str] | None = None) -> tuple[list[KeyValue16], list[str]]:
        """1.6 GetConfiguration: (key, readonly, value) of ``keys`` (all aliases if None), and the unknown keys."""
        wanted = [alias for d in self._definitions for alias in d.aliases16] if keys is None else list(keys)
        known: list[KeyValue16] = []
        unknown: list[str] = []
        for requested in wanted:
            found = self._aliases.get(requested.casefold())
            if found is None:
                unknown.append(requested)
                continue
            alias, definition = found
            value = self._current(definition) if definition.readable else None
            known.append(KeyValue16(alias, definition.mutability is Mutability.READ_ONLY, value))
        return known, unknown

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._db.close()

    # -- internals

    def _get(self, key: VariableKey, attribute: str) -> GetResult:
        """``get`` of a key."""
        definition = self._defs.get(key.folded())
        if definition is None:
            known = key.component_folded() in self._components
            return GetResult(GetStatus.UNKNOWN_VARIABLE if known else GetStatus.UNKNOWN_COMPONENT)
        if attribute != ACTUAL:
            return GetResult(GetStatus.NOT_SUPPORTED_ATTRIBUTE_TYPE, None, Reason.UNSUPPORTED_PARAM, _ONLY_ACTUAL)
        if not definition.readable:
            return GetResult(GetStatus.REJECTED, None, Reason.WRITE_ONLY, "the variable is write-only")
        return GetResult(GetStatus.ACCEPTED, self._current(definition))

    def _set(self, key: VariableKey, value: object, attribute: str) -> SetResult:
        """``set`` of a key (``value`` checked whatever its type)."""
        definition = self._defs.get(key.folded())
        if definition is None:
            known = key.component_folded() in self._components
            return SetResult(SetStatus.UNKNOWN_VARIABLE if known else SetStatus.UNKNOWN_COMPONENT)
        if attribute != ACTUAL:
            return SetResult(SetStatus.NOT_SUPPORTED_ATTRIBUTE_TYPE, Reason.UNSUPPORTED_PARAM, _ONLY_ACTUAL)
        if definition.mutability is Mutability.READ_ONLY:
            return SetResult(SetStatus.REJECTED, Reason.READ_ONLY, "the variable is read-only")
        problem = check_value(definition, value)
        if problem is not None:
            log.info("OCPP variable %s: set refused (%s: %s)", definition.key.label(), problem.reason, problem.info)
            return SetResult(SetStatus.REJECTED, problem.reason, problem.info)
        assert isinstance(value, str)  # check_value refuses anything else
        try:
            return self._write(definition, value, by_csms=True)
        except VariableStoreError:
            return SetResult(SetStatus.REJECTED, Reason.INTERNAL_ERROR, "the value could not be stored")

    def _require(
        self, component: str, variable: str, component_instance: str | None, evse_id: int | None,
        connector_id: int | None, variable_instance: str | None,
    ) -> VariableDef:
        """The definition at this key, KeyError if there is none."""
        key = VariableKey(component, variable, component_instance, evse_id, connector_id, variable_instance)
        definition = self._defs.get(key.folded())
        if definition is None:
            raise KeyError(f"no OCPP variable {key.label()}")
        return definition

    def _typed(self, definition: VariableDef, *types: DataType) -> str:
        """The value of a variable that must be of one of ``types``; KeyError/TypeError otherwise."""
        if definition.data_type not in types:
            wanted = " or ".join(types)
            raise TypeError(f"OCPP variable {definition.key.label()} is {definition.data_type}, not {wanted}")
        text = self._current(definition)
        if text is None:
            raise KeyError(f"OCPP variable {definition.key.label()} has no value")
        return text

    def _current(self, definition: VariableDef) -> str | None:
        """The effective value: the bound reader's, else the one in memory."""
        key = definition.key.folded()
        reader = self._readers.get(key)
        if reader is not None:
            try:
                return reader()
            except Exception:
                log.exception("OCPP variable %s: its live reader failed; the stored value is used",
                              definition.key.label())
        return self._values[key]

    def _write(self, definition: VariableDef, value: str, *, by_csms: bool) -> SetResult:
        """Store (if persistent) then apply a validated value; VariableStoreError if it cannot be stored."""
        key = definition.key.folded()
        label = definition.key.label()
        shown = value if definition.readable else _REDACTED
        with self._lock:
            if definition.persistent:
                self._persist(definition, value)
            if by_csms and definition.reboot_required and value != self._values[key]:
                self._pending[key] = value
                log.info("OCPP variable %s set to %s, effective after a restart", label, shown)
                return SetResult(SetStatus.REBOOT_REQUIRED, None, "the new value takes effect after a restart")
            self._pending.pop(key, None)
            old = self._values[key]
            self._values[key] = value
        log.log(logging.INFO if by_csms else logging.DEBUG, "OCPP variable %s set to %s", label, shown)
        if old != value:
            for listener in list(self._listeners):
                try:
                    listener(definition, value)
                except Exception:
                    log.exception("OCPP variable %s: a change listener failed", label)
        return SetResult(SetStatus.ACCEPTED)

    def _persist(self, definition: VariableDef, value: str) -> None:
        """Commit one row durably; VariableStoreError (nothing changed) if the disk or SQLite refuses."""
        label = definition.key.label()

        def failed(exc: Exception) -> None:
            """Say that the value was not stored (before VariableStoreError is raised)."""
            log.error("OCPP variable %s: cannot store a new value in %s (%s); it keeps its old value",
                      label, self.path, exc)

        with write(self._db, self.path, f"store {label}", VariableStoreError, failed=failed) as db:
            write_row(db, definition, value)

    def _load(self) -> None:
        """Take the stored values of the persistent variables; an invalid one is reported and left on disk."""
        for key, text in read_rows(self._db):
            definition = self._defs.get(key.folded())
            if definition is None or not definition.persistent:
                continue  # no longer defined or no longer persistent: kept on disk, not used
            default = definition.default if definition.readable else _REDACTED
            if text is None:
                log.warning("OCPP variable %s: the stored value is not UTF-8 text; using the default %r",
                            definition.key.label(), default)
                continue
            problem = check_value(definition, text)
            if problem is None:
                self._values[definition.key.folded()] = text
                continue
            log.warning("OCPP variable %s: the stored value %r is not valid (%s: %s); using the default %r",
                        definition.key.label(), text if definition.readable else _REDACTED, problem.reason,
                        problem.info, default)


_ONLY_ACTUAL = "only the Actual attribute is supported"
_LIST_TYPES = (DataType.OPTION_LIST, DataType.MEMBER_LIST, DataType.SEQUENCE_LIST)


def _add_definition(
    definition: VariableDef, defs: dict[FoldedKey, VariableDef], aliases: dict[str, tuple[str, VariableDef]]
) -> None:
    """Index one definition; ValueError for a duplicate key or alias, or a default its own rules refuse."""
    key = definition.key.folded()
    label = definition.key.label()
    if key in defs:
        raise ValueError(f"OCPP variable {label} is defined twice")
    if definition.default is not None:
        problem = check_value(definition, definition.default)
        if problem is not None:
            raise ValueError(f"OCPP variable {label}: the default is not valid ({problem.reason}: {problem.info})")
    defs[key] = definition
    for alias in definition.aliases16:
        if alias.casefold() in aliases:
            raise ValueError(f"OCPP 1.6 key {alias} names two variables")
        aliases[alias.casefold()] = (alias, definition)
