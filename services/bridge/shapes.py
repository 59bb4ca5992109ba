"""Property shapes that several nodes repeat: temperature sensors and differences, power
readings, integers read as they are from one register, and integer settings written back to it."""

from __future__ import annotations

from aurora import registers as regs

from .setters import number_setter, range_format, rule_of
from .spec import (
    DELTA_F,
    TEMPERATURE_DELTA,
    TEMPERATURE_DIAG,
    Builder,
    Hass,
    PropertySpec,
    Setter,
    Tier,
    Words,
)
from .values import ValueFn, raw, temperature, u32

_POWER = Hass(platform="sensor", device_class="power", state_class="measurement", unit="W")


def fitted(address: int, *, zero_is_absent: bool = False) -> ValueFn:
    """Whether a temperature sensor is fitted, from its word at start-up: not the "not present"
    reading 0xD8F1, within ±999 °F, and (for the sensors the original hid when they read 0.0,
    docs/architecture.md#homie-tree: entering air, outdoor) not exactly 0."""

    def check(words: Words) -> bool:
        word = words[address]
        if word == regs.NOT_PRESENT or not -9990 <= regs.int16(word) <= 9990:
            return False
        return not (zero_is_absent and word == 0)

    return check


def temperature_sensor(
    p: Builder,
    id_: str,
    name: str,
    address: int,
    tier: Tier,
    *,
    hass: Hass | None = TEMPERATURE_DIAG,
    zero_is_absent: bool = False,
    optional: bool = True,
) -> PropertySpec:
    """A temperature sensor: signed tenths °F from one register; with ``optional``, left out of
    the tree when the unit does not have it (see :func:`fitted`)."""
    present = fitted(address, zero_is_absent=zero_is_absent) if optional else None
    value = temperature(address)
    return p(id_, name, "float", (address,), value, tier, unit="°F", hass=hass, present=present)


def temperature_difference(
    p: Builder,
    id_: str,
    name: str,
    registers: tuple[int, ...],
    value: ValueFn,
    *,
    tier: Tier,
    hass: Hass = TEMPERATURE_DELTA,
) -> PropertySpec:
    """A difference of two temperatures in °F (superheat, subcool, water ΔT): converted to °C by
    the factor only, never like a temperature (7 °F is 3.9 °C, not -13.9 °C)."""
    return p(id_, name, "float", registers, value, tier, unit=DELTA_F, hass=hass)


def power_sensor(p: Builder, address: int, name: str = "Power Usage") -> PropertySpec:
    """``watts``: the energy monitor's 32-bit reading in W at ``address``, ``address + 1``."""
    return p("watts", name, "integer", (address, address + 1), u32(address), Tier.FAST, unit="W", hass=_POWER)


def raw_integer(
    p: Builder,
    id_: str,
    name: str,
    address: int,
    tier: Tier,
    *,
    fmt: str,
    unit: str | None = None,
    setter: Setter | None = None,
    hass: Hass | None = None,
) -> PropertySpec:
    """An integer that is one register's raw word."""
    value = raw(address)
    return p(id_, name, "integer", (address,), value, tier, fmt=fmt, unit=unit, setter=setter, hass=hass)


def int_setting(
    p: Builder,
    id_: str,
    name: str,
    address: int,
    *,
    tier: Tier = Tier.MEDIUM,
    unit: str | None = None,
    hass: Hass | None = None,
) -> PropertySpec:
    """An integer read from and written to one register as it is, in the range the register
    map's write rule allows."""
    setter = number_setter(address, reads=(address,), integer=True)
    fmt = range_format(rule_of(address))
    return raw_integer(p, id_, name, address, tier, fmt=fmt, unit=unit, setter=setter, hass=hass)
