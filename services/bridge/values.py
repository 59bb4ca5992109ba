"""Value functions of the description table: the words read → a property's value, where None
means unknown (the property is left out of this update).

Every function here reads *decoded* values through the register map (:mod:`aurora.registers`:
scaling, sign, 32-bit pairs, "not present", flag and field names); none looks at a raw word's
bits itself. Derived values (the unit's current mode) are made from those decoded values.
"""

from __future__ import annotations

from collections.abc import Callable

from aurora import registers as regs

from .spec import Value, Words

ValueFn = Callable[[Words], Value | None]


def _scalar(value: object) -> Value | None:
    return value if isinstance(value, bool | int | float | str) else None


def decoded(address: int) -> ValueFn:
    """The register map's decoded value (scaling, sign, 32-bit pairs, "not present", "absent")."""
    return lambda words: _scalar(regs.reading(address, words))


def sensor(address: int) -> ValueFn:
    """A sensor's reading; None when it reads "not present" or beyond the map's sensor limits
    (docs/architecture.md#detection uses the same test)."""
    return lambda words: regs.sensor_reading(address, words)


def flag(address: int, name: str) -> ValueFn:
    """Whether the register's flag ``name`` is set, as the map's flag table names its bits."""
    return lambda words: regs.is_set(address, name, words)


def field(address: int, key: str) -> ValueFn:
    """One entry of a composite register's decoded value, as text for enums."""
    return lambda words: _scalar(regs.field_of(address, key, words))


def in_group(address: int, group: str) -> ValueFn:
    """Whether the register's decoded fault code is in the map's fault group (``derated``)."""
    return lambda words: regs.reading(address, words) in regs.FAULT_GROUPS[group]


def current_mode(words: Words) -> str:
    """docs/architecture.md#value-path current_mode, first matching rule (362 is read only for VS drives)."""

    def out(name: str) -> bool:
        return bool(regs.is_set(30, name, words))

    if out("lockout"):
        return "lockout"
    if regs.reading(362, words):
        return "dehumidify"
    if out("cc") or out("cc2"):
        if out("rv"):
            return "cooling"
        return "heating_with_aux" if out("eh1") or out("eh2") else "heating"
    if out("eh1") or out("eh2"):
        return "emergency_heat"
    if out("blower"):
        return "blower"
    return "waiting" if regs.reading(6, words) else "standby"
