"""The records of the bridge's description table (docs/architecture.md#one-table): a Homie node, its
properties, each property's setter and Home Assistant hint, and the poll tier of the registers it reads.

The node modules (``node_*.py``) fill these in; :mod:`.properties` assembles the table.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from aurora import registers as regs

Words = Mapping[int, int]
Value = bool | int | float | str
Datatype = Literal["integer", "float", "boolean", "enum", "string"]


class Tier(enum.Enum):
    """How often a register is polled: status ≈5 s, settings ≈30 s, history/configuration ≈5 min."""

    FAST = "fast"
    MEDIUM = "medium"
    SLOW = "slow"


class Role(enum.Enum):
    """What a property is to a composite Home Assistant entity (climate, water heater,
    humidifier), which finds its parts by role rather than by topic path."""

    CLIMATE_ACTION = "climate action"  # the stage a zone calls for
    CLIMATE_MODE = "climate mode"
    CLIMATE_FAN_MODE = "climate fan mode"
    CLIMATE_TEMPERATURE = "climate temperature"  # a zone's ambient temperature
    CLIMATE_HEATING_TARGET = "climate heating target"
    CLIMATE_COOLING_TARGET = "climate cooling target"
    HUMIDITY = "relative humidity"
    WATER_HEATER_MODE = "water heater mode"
    WATER_HEATER_TARGET = "water heater target"
    WATER_HEATER_TEMPERATURE = "water heater temperature"
    HUMIDIFIER_MODE = "humidifier mode"
    HUMIDIFIER_TARGET = "humidifier target"
    HUMIDIFIER_ACTION = "humidifier action"
    DEHUMIDIFIER_MODE = "dehumidifier mode"
    DEHUMIDIFIER_TARGET = "dehumidifier target"
    DEHUMIDIFIER_ACTION = "dehumidifier action"


@dataclass(frozen=True, slots=True, kw_only=True)
class Hass:
    """How a property appears in Home Assistant by itself (docs/architecture.md#home-assistant).

    ``legacy`` is the platform the Ruby gem announced it on, when different ("" = none), so its
    old per-entity topic can be cleared.
    """

    platform: Literal["sensor", "binary_sensor", "number", "select", "switch", "button"]
    device_class: str | None = None
    state_class: str | None = None
    category: Literal["config", "diagnostic"] | None = None
    unit: str | None = None  # when HA wants a different spelling than the Homie $unit
    enabled: bool = True
    legacy: str | None = None


# Hints several nodes share
TEMPERATURE = Hass(platform="sensor", device_class="temperature", state_class="measurement")
TEMPERATURE_DIAG = Hass(
    platform="sensor", device_class="temperature", state_class="measurement", category="diagnostic"
)
# A difference of two temperatures (superheat, subcool, water ΔT): HA converts it by the factor
# only (7 °F is 3.9 °C, not -13.9 °C); its Homie $unit says so too (DELTA_F)
TEMPERATURE_DELTA = Hass(
    platform="sensor",
    device_class="temperature_delta",
    state_class="measurement",
    category="diagnostic",
    unit="°F",
)
DELTA_F = "Δ°F"
MEASURE = Hass(platform="sensor", state_class="measurement")
MEASURE_DIAG = Hass(platform="sensor", state_class="measurement", category="diagnostic")
RUNNING = Hass(platform="binary_sensor", device_class="running")


@dataclass(frozen=True, slots=True)
class Setter:
    """Turns a ``/set`` payload into register writes, validating first (nothing written on error)."""

    parse: Callable[[str], Value]
    encode: Callable[[Value, Words], list[tuple[int, int]]]
    reads: frozenset[int]
    rule: regs.WriteRule | None = None  # the map's rule of a number or enum written as it is

    def writes(self, payload: str, words: Words) -> list[tuple[int, int]]:
        """(register, raw) writes in order; UsageError with a clear message on a bad payload.

        ``words`` holds the latest raw words, for read-modify-write registers.
        """
        value = self.parse(payload.strip())
        writes = self.encode(value, words)
        for address, raw in writes:
            regs.validate_raw_write(address, raw)  # the map's own limits: a second, independent check
        return writes

    def readback(self) -> frozenset[int]:
        """Registers to read after writing, to publish the new value."""
        return self.reads


@dataclass(frozen=True, slots=True, kw_only=True)
class PropertySpec:
    """One Homie property: description, registers, value and optional setter."""

    node: str
    id: str
    name: str
    datatype: Datatype
    registers: tuple[int, ...]
    value: Callable[[Words], Value | None]
    tier: Tier = Tier.MEDIUM
    format: str | None = None
    unit: str | None = None
    retained: bool = True
    setter: Setter | None = None
    hass: Hass | None = None
    # Whether the unit has this sensor, from words read at start-up (None: always). A sensor
    # that reads "not installed" then gets no property and no HA entity (docs/architecture.md#value-path).
    present: Callable[[Words], bool] | None = None
    role: Role | None = None  # its part in a composite HA entity

    @property
    def path(self) -> str:
        """``<node>/<property>``."""
        return f"{self.node}/{self.id}"

    def payload(self, words: Words) -> str | None:
        """The Homie payload for these words, or None when a register is missing or unusable."""
        if any(a not in words for a in self.registers):
            return None
        value = self.value(words)
        return None if value is None else format_value(self.datatype, value)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    """One Homie node."""

    id: str
    name: str
    type: str
    properties: tuple[PropertySpec, ...] = field(default_factory=tuple)


def format_value(datatype: Datatype, value: Value) -> str:
    """Homie 4 payload text: true/false, integers plain, floats with one decimal (as the
    original's ÷10 values: ``68.0``), enums and strings as they are."""
    if datatype == "boolean":
        return "true" if value else "false"
    if datatype == "integer":
        return str(int(value))
    if datatype == "float":
        return f"{float(value):.1f}"
    return str(value)


Builder = Callable[..., PropertySpec]  # what builder() returns


def builder(node: str) -> Builder:
    """``p(id, name, datatype, registers, value, tier, *, fmt, unit, retained, setter, hass, present, role)``:
    a PropertySpec of ``node``, written positionally so that the table reads as one."""

    def make(  # noqa: PLR0917 - the table reads best positionally
        id_: str,
        name: str,
        datatype: Datatype,
        registers: tuple[int, ...],
        value: Callable[[Words], Value | None],
        tier: Tier,
        *,
        fmt: str | None = None,
        unit: str | None = None,
        retained: bool = True,
        setter: Setter | None = None,
        hass: Hass | None = None,
        present: Callable[[Words], bool] | None = None,
        role: Role | None = None,
    ) -> PropertySpec:
        return PropertySpec(
            node=node,
            id=id_,
            name=name,
            datatype=datatype,
            registers=registers,
            value=value,
            tier=tier,
            format=fmt,
            unit=unit,
            retained=retained,
            setter=setter,
            hass=hass,
            present=present,
            role=role,
        )

    return make
