"""The configuration store's SQLite table ``ocpp_variables``: its layout in the (shared) file, reading and writing rows.

The file may hold other OCPP tables too (the message queue's ``ocpp_queue*``): ours is made with ``CREATE TABLE IF
NOT EXISTS`` and no other table is read or touched; the file is opened, made and written as
controller.ocpp.station.ocpp_db does for every store (WAL, ``synchronous=FULL``, a new file linked into place, a
0-byte file refused). Absent instances are stored as '' and absent EVSE and connector ids as 0; the text columns
compare case-insensitively, as OCPP's names do.
"""

from __future__ import annotations

import sqlite3

from controller.ocpp.station.ocpp_db import Layout
from controller.ocpp.station.variable_types import VariableDef, VariableKey

COLUMNS = ("component", "component_instance", "evse_id", "connector_id", "variable", "variable_instance", "value")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ocpp_variables (
    component TEXT NOT NULL COLLATE NOCASE, component_instance TEXT NOT NULL COLLATE NOCASE,
    evse_id INTEGER NOT NULL, connector_id INTEGER NOT NULL,
    variable TEXT NOT NULL COLLATE NOCASE, variable_instance TEXT NOT NULL COLLATE NOCASE,
    value TEXT NOT NULL,
    PRIMARY KEY (component, component_instance, evse_id, connector_id, variable, variable_instance)
);
"""
_INSERT = f"INSERT OR REPLACE INTO ocpp_variables ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_SELECT = f"SELECT {', '.join(COLUMNS[:-1])}, CAST(value AS BLOB) FROM ocpp_variables"


class VariableStoreError(RuntimeError):
    """The variable database cannot be opened or written; the message names the file and the cause."""


LAYOUT = Layout(VariableStoreError, _SCHEMA, {"ocpp_variables": COLUMNS})


def write_row(db: sqlite3.Connection, definition: VariableDef, value: str) -> None:
    """Store ``definition``'s value, inside the caller's transaction (ocpp_db.write)."""
    db.execute(_INSERT, (
        definition.component, definition.component_instance or "", definition.evse_id or 0,
        definition.connector_id or 0, definition.variable, definition.variable_instance or "", value,
    ))


def read_rows(db: sqlite3.Connection) -> list[tuple[VariableKey, str | None]]:
    """Every stored row with a readable key, as (key, value); value None when it is not UTF-8 text."""
    rows: list[tuple[VariableKey, str | None]] = []
    for component, c_instance, evse_id, connector_id, variable, v_instance, raw in db.execute(_SELECT):
        if not all(isinstance(t, str) for t in (component, c_instance, variable, v_instance)) or not all(
            isinstance(i, int) for i in (evse_id, connector_id)
        ):
            continue  # a key this program never writes: nothing of ours, left alone
        key = VariableKey(component, variable, c_instance or None, evse_id or None, connector_id or None,
                          v_instance or None)
        try:
            text = bytes(raw).decode("utf-8") if isinstance(raw, bytes) else None
        except UnicodeDecodeError:
            text = None
        rows.append((key, text))
    return rows
