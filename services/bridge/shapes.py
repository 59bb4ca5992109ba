"""The shapes of the description table's properties, each made from the register map.

A property names its register; the map (``aurora/data/registers.json`` through
:mod:`aurora.registers`) gives its decoding, datatype, unit, ``$format``, enum options, limits,
step and setter. So a new sensor is one :func:`reading` line in a node, and a new setting one
write rule in the map plus one :func:`setting` line (docs/architecture.md#add-a-sensor).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from aurora import registers as regs

from .setters import (
    bool_setter,
    enum_options,
    enum_setter,
    number_setter,
    range_format,
    rule_of,
    step_options,
    steps_setter,
)
from .spec import (
    DELTA_F,
    TEMPERATURE_DELTA,
    TEMPERATURE_DIAG,
    Builder,
    Datatype,
    Hass,
    PropertySpec,
    Role,
    Setter,
    Tier,
    Words,
)
from .values import ValueFn, decoded, flag, sensor

_POWER = Hass(platform="sensor", device_class="power", state_class="measurement")

# The Homie datatype of each converter's value (a composite has none: its fields are read with
# values.field and a datatype of their own)
_DATATYPES: dict[str, Datatype] = {
    "uint16": "integer",
    "int16": "integer",
    "uint32": "integer",
    "int32": "integer",
    "fault": "integer",
    "iz2_fan_desired": "integer",
    "tenths": "float",
    "signed_tenths": "float",
    "hundredths": "float",
    "boolean": "boolean",
    "enum": "enum",
    "string": "string",
}


def _register(address: int) -> regs.Register:
    register = regs.REGISTERS.get(address)
    if register is None:
        raise ValueError(f"register {address} is not in the register map")
    return register


def datatype_of(address: int) -> Datatype:
    """The Homie datatype of a register's decoded value."""
    converter = _register(address).converter
    if converter not in _DATATYPES:
        raise ValueError(f"register {address} decodes as a composite ({converter}): read one of its fields")
    return _DATATYPES[converter]


def words_of(address: int) -> tuple[int, ...]:
    """The addresses a register's value is decoded from (two for a 32-bit pair)."""
    return tuple(range(address, address + _register(address).length))


def format_of(address: int) -> str | None:
    """A read-only register's ``$format``: its range in the map, or its enumeration's names."""
    register = _register(address)
    if register.range is not None:
        low, high = register.range
        return f"{low}:{high}"
    if register.converter == "enum" and register.table is not None:
        return ",".join(regs.ENUMS[register.table].values())
    return None


def absent_at_start(address: int) -> Callable[[Words], bool] | None:
    """Whether the unit has what the register reads, from its word at start-up: not the map's
    ``absent`` reading (a fault counter it does not keep reads 0xFFFF); None when the map gives
    none (always there)."""
    absent = _register(address).absent
    if absent is None:
        return None
    return lambda words: words[address] != absent


def reading(
    p: Builder,
    id_: str,
    name: str,
    address: int,
    tier: Tier,
    *,
    hass: Hass | None = None,
    role: Role | None = None,
) -> PropertySpec:
    """A read-only property that is one register's decoded value; datatype, unit and ``$format``
    come from the map, and a register with an ``absent`` reading is left out of the tree when it
    reads so at start-up."""
    register = _register(address)
    present = absent_at_start(address)
    return p(
        id_,
        name,
        datatype_of(address),
        words_of(address),
        decoded(address),
        tier,
        fmt=format_of(address),
        unit=register.published_unit,
        hass=hass,
        present=present,
        role=role,
    )


def flag_sensor(  # noqa: PLR0917 - one line in a node reads best positionally
    p: Builder,
    id_: str,
    name: str,
    address: int,
    flag_name: str,
    tier: Tier,
    *,
    hass: Hass | None = None,
    role: Role | None = None,
) -> PropertySpec:
    """A boolean: whether the register's flag ``flag_name`` (as the map names its bits) is set."""
    return p(id_, name, "boolean", (address,), flag(address, flag_name), tier, hass=hass, role=role)


def setting(
    p: Builder,
    id_: str,
    name: str,
    write: int,
    *,
    read: int | None = None,
    tier: Tier = Tier.MEDIUM,
    hass: Hass | None = None,
    role: Role | None = None,
    registers: tuple[int, ...] | None = None,
    value: ValueFn | None = None,
    datatype: Datatype | None = None,
    readback: Collection[int] | None = None,
    exclude: Collection[str] = (),
) -> PropertySpec:
    """A property written to register ``write`` by its write rule in the map and read at
    ``read`` (the same register unless given).

    The rule decides the setter and ``$format``: an enumeration's names (less ``exclude``), a
    boolean for a boolean register, a choice of steps for an ``enum`` datatype of a stepped
    number (fan minutes 0, 5 … 25), else a number rounded to the rule's step in its range. A
    value read from a composite register gives ``registers`` and ``value`` (a field).
    """
    rule = rule_of(write)
    source = write if read is None else read
    if registers is None:
        registers = words_of(source)
    if value is None:
        value = decoded(source)
    if datatype is None:
        datatype = "enum" if rule.enum else datatype_of(source)
    reads = tuple(registers if readback is None else readback)
    setter: Setter
    fmt: str | None
    if rule.enum is not None:
        options = enum_options(write, exclude=exclude)
        setter, fmt = enum_setter(write, options, reads=reads), ",".join(options)
    elif datatype == "boolean":
        setter, fmt = bool_setter(write, reads=reads), None
    elif datatype == "enum":
        steps = step_options(write, exclude=tuple(int(x) for x in exclude))
        setter, fmt = steps_setter(write, steps, reads=reads), ",".join(steps)
    else:
        setter = number_setter(write, reads=reads, integer=datatype == "integer")
        fmt = range_format(rule)
    unit = _register(source).published_unit or _register(write).published_unit
    return p(
        id_, name, datatype, registers, value, tier, fmt=fmt, unit=unit, setter=setter, hass=hass, role=role
    )


def fitted(address: int, *, zero_is_absent: bool = False) -> Callable[[Words], bool]:
    """Whether a temperature sensor is fitted, from its word at start-up: a reading within the
    map's sensor limits (not "not present" 0xD8F1, within ±999 °F), and (for the sensors the
    original hid when they read 0.0, docs/architecture.md#homie-tree: entering air, outdoor) not
    exactly 0."""

    def check(words: Words) -> bool:
        degrees = regs.sensor_reading(address, words)
        return degrees is not None and not (zero_is_absent and degrees == 0)

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
    role: Role | None = None,
) -> PropertySpec:
    """A temperature sensor's reading; with ``optional``, left out of the tree when the unit does
    not have it (see :func:`fitted`)."""
    present = fitted(address, zero_is_absent=zero_is_absent) if optional else None
    unit = _register(address).published_unit
    return p(
        id_,
        name,
        datatype_of(address),
        (address,),
        sensor(address),
        tier,
        unit=unit,
        hass=hass,
        present=present,
        role=role,
    )


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
    """``watts``: the energy monitor's 32-bit reading in W at ``address``."""
    return reading(p, "watts", name, address, Tier.FAST, hass=_POWER)
