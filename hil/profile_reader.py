"""The strict TOML walker bench profiles are read with: unknown keys and wrong types are errors naming the file and
the key (``ProfileError``). Shared by hil.profile_loader and hil.pilot_profile."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hil.profile import LineSpec, ProfileError


class Reader:
    """Small strict TOML walker: unknown keys and wrong types are errors naming the key."""

    def __init__(self, source: str) -> None:
        """Errors name ``source`` (the profile's file)."""
        self.source = source

    def table(self, raw: object, path: str, allowed: set[str]) -> dict[str, Any]:
        """``raw`` as a table with only ``allowed`` keys."""
        if not isinstance(raw, dict):
            raise ProfileError(f"{self.source}: [{path}] must be a table")
        unknown = sorted(set(raw) - allowed)
        if unknown:
            where = f"[{path}] " if path else ""
            known = ", ".join(sorted(allowed))
            raise ProfileError(f"{self.source}: {where}unknown key {unknown[0]!r} (known: {known})")
        return raw

    def array(self, raw: object, path: str) -> list[Any]:
        """``raw`` as an array of tables (none: empty)."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise ProfileError(f"{self.source}: [{path}] must be an array of tables ([[{path}]])")
        return raw

    def choice(self, table: dict[str, Any], path: str, options: tuple[str, ...], default: str) -> str:
        """The key at the end of ``path`` in ``table``: one of ``options``."""
        value = table.get(path.rpartition(".")[2], default)
        if value not in options:
            raise ProfileError(f"{self.source}: [{path}] must be one of {', '.join(options)}, got {value!r}")
        return str(value)

    def dataclass(self, cls: Any, raw: object, path: str, tuple_fields: tuple[str, ...] = ()) -> Any:
        """A dataclass from a table: its fields are the keys, each of its default's type."""
        fields = cls.__dataclass_fields__
        table = self.table(raw, path, set(fields))
        values = {}
        for key, value in table.items():
            default = fields[key].default
            if key in tuple_fields:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ProfileError(f"{self.source}: [{path}] {key} must be a list of strings")
                value = tuple(value)
            elif isinstance(default, bool) or isinstance(value, bool):
                if not isinstance(value, bool) or not isinstance(default, bool):
                    raise ProfileError(f"{self.source}: [{path}] {key} has the wrong type: {value!r}")
            elif isinstance(default, float):
                if not isinstance(value, int | float) or value < 0:
                    raise ProfileError(f"{self.source}: [{path}] {key} must be a number of seconds/amperes >= 0")
                value = float(value)
            elif isinstance(default, int) and not isinstance(value, int):
                raise ProfileError(f"{self.source}: [{path}] {key} must be an integer, got {value!r}")
            elif isinstance(default, str) and not isinstance(value, str):
                raise ProfileError(f"{self.source}: [{path}] {key} must be a string, got {value!r}")
            values[key] = value
        try:
            return cls(**values)
        except TypeError as exc:
            raise ProfileError(f"{self.source}: [{path}] {exc}") from None

    def lines(self, raw: object, path: str, roles: Iterable[str], *, dut: bool = True) -> dict[str, LineSpec]:
        """A table of wires by role: ``{ harness = "GPIOn", dut = "GPIOn", active_high = true|false }`` each (no
        ``dut`` where ``dut`` is False: a wire to the harness's own board, e.g. a relay of the car simulator)."""
        table = self.table(raw, path, set(roles))
        keys = {"harness", "dut", "active_high"} if dut else {"harness", "active_high"}
        lines = {}
        for role, item in table.items():
            spec = self.table(item, f"{path}.{role}", keys)
            harness, pin, active_high = spec.get("harness"), spec.get("dut", ""), spec.get("active_high")
            if not isinstance(harness, str) or not isinstance(pin, str) or (dut and not pin) \
                    or not isinstance(active_high, bool):
                wanted = 'harness = "GPIOn", dut = "GPIOn"' if dut else 'harness = "GPIOn"'
                raise ProfileError(f"{self.source}: [{path}.{role}] needs {wanted}, active_high = true|false")
            lines[role] = LineSpec(role, harness, pin, active_high)
        return lines
