"""README's table of OCPP 1.6 configuration keys is the station's own: every key GetConfiguration lists appears
in it with its access (read-only, read-write, write-only), and it names no key the station does not have."""

from __future__ import annotations

import re
from pathlib import Path

from controller.ocpp.front import definitions, definitions16
from controller.ocpp.station.variable_types import Mutability
from controller.ocpp.station.variables import VariableStore

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_keys() -> dict[str, str]:
    """Key -> access, from the table after "Configuration keys" in the OCPP 1.6J section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### OCPP 1.6J"):]
    table = section[section.index("| Key | Access | Default |"):]
    rows = table.split("\n\n", 1)[0].splitlines()[2:]
    found: dict[str, str] = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        keys = [k.strip() for k in cells[0].split(",")]
        accesses = [a.strip() for a in cells[1].split(",")]
        if len(accesses) == 1:
            accesses *= len(keys)
        assert len(accesses) == len(keys), f"README row {row!r}: one access per key, or one for all"
        for key, access in zip(keys, accesses, strict=True):
            assert re.fullmatch(r"[A-Za-z]+", key), f"README row {row!r}: {key!r} is not a key name"
            found[key] = access
    return found


def station_keys(tmp_path: Path) -> dict[str, str]:
    """Key -> access of the simulated charger's 1.6 station (two connectors, reservations on)."""
    evses = [(1, [(1, "cType2")]), (2, [(1, "cType2")])]
    defs = definitions(evses, reservations_available=True, non_evse_specific=True, vendor="v", model="m",
                       security_profile=1, serial_number=None, firmware_version="0", station_id="CS001")
    defs += definitions16(defs, connectors=2, reservations=True)
    store = VariableStore(tmp_path / "ocpp.db", defs)
    try:
        known, unknown = store.key_values_16()
        assert unknown == []
        access = {}
        for entry in known:
            definition = store.by_alias(entry.key)
            assert definition is not None
            access[entry.key] = {Mutability.READ_ONLY: "read-only", Mutability.WRITE_ONLY: "write-only"}.get(
                definition.mutability, "read-write")
        return access
    finally:
        store.close()


def test_the_readme_lists_every_key_of_the_station_with_its_access(tmp_path: Path) -> None:
    assert readme_keys() == station_keys(tmp_path)
