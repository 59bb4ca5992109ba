"""Property shapes that several nodes repeat: temperature sensors, power readings, integers read
as they are from one register, and integer settings written back to it."""

from __future__ import annotations

from .setters import int_setter
from .spec import TEMPERATURE_DIAG, Builder, Hass, PropertySpec, Setter, Tier
from .values import raw, temperature, u32

_POWER = Hass(platform="sensor", device_class="power", state_class="measurement", unit="W")


def temperature_sensor(
    p: Builder, id_: str, name: str, address: int, tier: Tier, *, hass: Hass | None = TEMPERATURE_DIAG
) -> PropertySpec:
    """A temperature sensor: signed tenths °F from one register."""
    return p(id_, name, "float", (address,), temperature(address), tier, unit="°F", hass=hass)


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
    limits: tuple[int, int],
    *,
    tier: Tier = Tier.MEDIUM,
    unit: str | None = None,
    hass: Hass | None = None,
) -> PropertySpec:
    """An integer in ``limits`` (inclusive), read from and written to one register as it is."""
    low, high = limits
    setter = int_setter(address, low, high, reads=(address,))
    return raw_integer(p, id_, name, address, tier, fmt=f"{low}:{high}", unit=unit, setter=setter, hass=hass)
