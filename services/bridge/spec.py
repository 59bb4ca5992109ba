"""The records of the bridge's description table (docs/architecture.md#one-table): a Homie node, its
properties, each property's setter and Home Assistant hint, and the poll tier of the registers it reads.

The node modules (``node_*.py``) fill these in; :mod:`.properties` assembles the table. The records
are :mod:`aurora.records` ones, not dataclasses: detection imports this module before its first
request goes out (issue 15: start to ready).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TypeVar

from aurora import registers as regs
from aurora.records import FrozenRecord

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


_R = TypeVar("_R", bound="_Spec")


class _Spec(FrozenRecord):
    """A record of the table whose ``__init__`` takes every field by name: ``replace`` works."""

    __slots__ = ()

    def replace(self: _R, **changes: Any) -> _R:
        """A copy with ``changes`` (field=value), as ``dataclasses.replace`` made one."""
        values = {name: getattr(self, name) for name in self._fields}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        return type(self)(**(values | changes))


Platform = Literal["sensor", "binary_sensor", "number", "select", "switch", "button"]
Category = Literal["config", "diagnostic"]


class Hass(_Spec):
    """How a property appears in Home Assistant by itself (docs/architecture.md#home-assistant).

    ``legacy`` is the platform the Ruby gem announced it on, when different ("" = none), so its
    old per-entity topic can be cleared.
    """

    _fields = ("platform", "device_class", "state_class", "category", "unit", "enabled", "legacy")
    __slots__ = _fields
    platform: Final[Platform]
    device_class: Final[str | None]
    state_class: Final[str | None]
    category: Final[Category | None]
    unit: Final[str | None]  # when HA wants a different spelling than the Homie $unit
    enabled: Final[bool]
    legacy: Final[str | None]

    def __init__(
        self,
        *,
        platform: Platform,
        device_class: str | None = None,
        state_class: str | None = None,
        category: Category | None = None,
        unit: str | None = None,
        enabled: bool = True,
        legacy: str | None = None,
    ) -> None:
        self.platform, self.device_class, self.state_class = platform, device_class, state_class
        self.category, self.unit, self.enabled, self.legacy = category, unit, enabled, legacy


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


class Setter(_Spec):
    """Turns a ``/set`` payload into register writes, validating first (nothing written on error)."""

    _fields = ("parse", "encode", "reads", "rule")
    __slots__ = _fields
    parse: Final[Callable[[str], Value]]
    encode: Final[Callable[[Value, Words], list[tuple[int, int]]]]
    reads: Final[frozenset[int]]
    rule: Final[regs.WriteRule | None]  # the map's rule of a number or enum written as it is

    def __init__(
        self,
        parse: Callable[[str], Value],
        encode: Callable[[Value, Words], list[tuple[int, int]]],
        reads: frozenset[int],
        rule: regs.WriteRule | None = None,
    ) -> None:
        self.parse, self.encode, self.reads, self.rule = parse, encode, reads, rule

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


class PropertySpec(_Spec):
    """One Homie property: description, registers, value and optional setter."""

    _fields = (
        "node",
        "id",
        "name",
        "datatype",
        "registers",
        "value",
        "tier",
        "format",
        "unit",
        "retained",
        "setter",
        "hass",
        "present",
        "role",
    )
    __slots__ = _fields
    node: Final[str]
    id: Final[str]
    name: Final[str]
    datatype: Final[Datatype]
    registers: Final[tuple[int, ...]]
    value: Final[Callable[[Words], Value | None]]
    tier: Final[Tier]
    format: Final[str | None]
    unit: Final[str | None]
    retained: Final[bool]
    setter: Final[Setter | None]
    hass: Final[Hass | None]
    # Whether the unit has this sensor, from words read at start-up (None: always). A sensor
    # that reads "not installed" then gets no property and no HA entity (docs/architecture.md#value-path).
    present: Final[Callable[[Words], bool] | None]
    role: Final[Role | None]  # its part in a composite HA entity

    def __init__(
        self,
        *,
        node: str,
        id: str,
        name: str,
        datatype: Datatype,
        registers: tuple[int, ...],
        value: Callable[[Words], Value | None],
        tier: Tier = Tier.MEDIUM,
        format: str | None = None,
        unit: str | None = None,
        retained: bool = True,
        setter: Setter | None = None,
        hass: Hass | None = None,
        present: Callable[[Words], bool] | None = None,
        role: Role | None = None,
    ) -> None:
        self.node, self.id, self.name, self.datatype = node, id, name, datatype
        self.registers, self.value, self.tier, self.format = registers, value, tier, format
        self.unit, self.retained, self.setter, self.hass = unit, retained, setter, hass
        self.present, self.role = present, role

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


class NodeSpec(_Spec):
    """One Homie node."""

    _fields = ("id", "name", "type", "properties")
    __slots__ = _fields
    id: Final[str]
    name: Final[str]
    type: Final[str]
    properties: Final[tuple[PropertySpec, ...]]

    def __init__(
        self,
        *,
        id: str,
        name: str,
        type: str,
        properties: tuple[PropertySpec, ...] = (),
    ) -> None:
        self.id, self.name, self.type, self.properties = id, name, type, properties


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
