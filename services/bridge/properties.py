"""The bridge's one description table (STYLE §8): every Homie node and property, its datatype,
format and unit, the registers it reads, its value from raw words, its setter and its Home
Assistant hint. Homie messages, values, ``/set`` handling and HA discovery are all made from it.

Which properties exist depends on the detected :class:`Components` (aurora-bridge §3.4, §6.3-6.4).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aurora import registers as regs
from aurora.errors import UsageError

from .derived import cop, water_delta_t

Words = Mapping[int, int]
Value = bool | int | float | str
Datatype = Literal["integer", "float", "boolean", "enum", "string"]


class Tier(enum.Enum):
    """How often a register is polled: status ≈5 s, settings ≈30 s, history/configuration ≈5 min."""

    FAST = "fast"
    MEDIUM = "medium"
    SLOW = "slow"


_TIER_ORDER = {Tier.FAST: 0, Tier.MEDIUM: 1, Tier.SLOW: 2}

# ---------------------------------------------------------------------------------------------
# What was detected at start-up (aurora-bridge §3)

VS_PROGRAMS = frozenset({"ABCVSP", "ABCVSPR", "ABCSPLVS"})  # §3.4: program name → VS drive
_OFF = 0x7FFF


@dataclass(frozen=True, slots=True, kw_only=True)
class Components:
    """The unit's identity and fitted components, decided once at start-up."""

    serial: str
    model: str = ""
    program: str = ""
    abc_version: float = 0.0
    thermostat: bool = False
    thermostat_version: float = 0.0
    axb: bool = False
    axb_version: float = 0.0
    iz2: bool = False
    iz2_version: float = 0.0
    zone_count: int = 0  # IZ2 zones (register 483), only with IZ2 ≥ 2.0
    dip: int | None = None  # register 33; None when unreadable or 0x7FFF "manual" (§13 R8)
    axb_dip: int | None = None  # register 1103
    energy_monitor: int = 0  # register 412: 0 none, 1 compressor monitor, 2 energy monitor
    blower_type: int = 0  # register 404
    pump_type: int = 0  # register 413
    dhw: bool = False

    @property
    def awl_thermostat(self) -> bool:
        """A communicating thermostat new enough for the AWL registers (§3.3)."""
        return self.thermostat and self.thermostat_version >= 3.0

    @property
    def awl_iz2(self) -> bool:
        """IntelliZone 2 ≥ 2.0: zones are read from the IZ2 registers."""
        return self.iz2 and self.iz2_version >= 2.0

    @property
    def awl_communicating(self) -> bool:
        """Set points, modes and humidity can be read and written."""
        return self.awl_thermostat or self.awl_iz2

    @property
    def awl_axb(self) -> bool:
        """AXB ≥ 2.0: leaving air, entering air at 740, pump speed at 325."""
        return self.axb and self.axb_version >= 2.0

    @property
    def vs_drive(self) -> bool:
        """A variable-speed compressor drive (§3.4)."""
        return self.program in VS_PROGRAMS

    @property
    def stages(self) -> int:
        """Compressor stages of a generic compressor: DIP switch bit 5 set → 1 (unknown → 2)."""
        return 1 if self.dip is not None and self.dip & 0x20 else 2

    @property
    def blower(self) -> Literal["ecm", "5speed", "psc"]:
        """Register 404: 1-2 ECM, 3 five-speed, else PSC."""
        return "ecm" if self.blower_type in (1, 2) else "5speed" if self.blower_type == 3 else "psc"

    @property
    def pump(self) -> Literal["vs", "generic"] | None:
        """Register 413 in 3..5 → VS pump; else a generic pump when there is an AXB."""
        if 3 <= self.pump_type <= 5:
            return "vs"
        return "generic" if self.axb else None

    @property
    def refrigeration_monitoring(self) -> bool:
        """412 ≥ 1 (§3.3)."""
        return self.energy_monitor >= 1

    @property
    def energy_monitoring(self) -> bool:
        """412 = 2 (§3.3)."""
        return self.energy_monitor == 2

    @property
    def humidifier(self) -> bool:
        """ABC accessory relay (DIP bits 3-4) set to humidifier."""
        return self.dip is not None and (self.dip >> 3) & 3 == 2

    @property
    def dehumidifier(self) -> bool:
        """AXB accessory relay 2 (1103 bits 7-8) set to dehumidifier (neither bit)."""
        return self.axb and self.axb_dip is not None and self.axb_dip & 0x180 == 0

    @property
    def humidistat(self) -> bool:
        """The humidistat node exists (§3.4)."""
        return self.humidifier or self.dehumidifier or self.awl_communicating


# ---------------------------------------------------------------------------------------------
# The table's records


@dataclass(frozen=True, slots=True, kw_only=True)
class Hass:
    """How a property appears in Home Assistant by itself (aurora-bridge §7.3).

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


@dataclass(frozen=True, slots=True)
class Setter:
    """Turns a ``/set`` payload into register writes, validating first (nothing written on error)."""

    parse: Callable[[str], Value]
    encode: Callable[[Value, Words], list[tuple[int, int]]]
    reads: frozenset[int]

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


# ---------------------------------------------------------------------------------------------
# Value functions (registers → value); None = unknown, the property is left out of this update


def _decoded(address: int) -> Callable[[Words], Value | None]:
    """The register map's decoded value (scaling, sign, 32-bit pairs, "not present")."""

    def value(words: Words) -> Value | None:
        decoded = regs.decode(address, words)
        return decoded if isinstance(decoded, bool | int | float | str) else None

    return value


def _temperature(address: int) -> Callable[[Words], Value | None]:
    """Signed tenths °F; a reading beyond ±999 is a missing sensor (§3.4 uses the same test)."""

    def value(words: Words) -> Value | None:
        raw = words[address]
        if raw == regs.NOT_PRESENT:
            return None
        degrees = regs.int16(raw) / 10
        return degrees if -999 <= degrees <= 999 else None

    return value


def _raw(address: int) -> Callable[[Words], Value | None]:
    return lambda w: w[address]


def _bit(address: int, mask: int) -> Callable[[Words], Value | None]:
    return lambda w: bool(w[address] & mask)


def _u32(address: int) -> Callable[[Words], Value | None]:
    """Both words, high first: the original read only the low word of 1150-53 (§13 C1)."""
    return lambda w: regs.uint32(w[address], w[address + 1])


def _i32(address: int) -> Callable[[Words], Value | None]:
    return lambda w: regs.int32(w[address], w[address + 1])


# Reg 30 system outputs and reg 31 inputs (aurora-bridge §4.2)
CC, CC2, RV, BLOWER, EH1, EH2, ACCESSORY, LOCKOUT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x200, 0x400
Y1, Y2, O_INPUT, G_INPUT = 0x01, 0x02, 0x08, 0x10

ABC_MODES = (
    "lockout",
    "standby",
    "blower",
    "heating",
    "heating_with_aux",
    "emergency_heat",
    "cooling",
    "waiting",
)


def current_mode(words: Words) -> str:
    """aurora-bridge §4.2 current_mode, first matching rule (362 is read only for VS drives)."""
    out = words[30]
    if out & LOCKOUT:
        return "lockout"
    if words.get(362):
        return "dehumidify"
    if out & (CC | CC2):
        if out & RV:
            return "cooling"
        return "heating_with_aux" if out & (EH1 | EH2) else "heating"
    if out & (EH1 | EH2):
        return "emergency_heat"
    if out & BLOWER:
        return "blower"
    return "waiting" if words.get(6) else "standby"


# ---------------------------------------------------------------------------------------------
# Payload parsers and encoders (UsageError → nothing is written)

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _parse_int(low: int, high: int, step: int = 1) -> Callable[[str], Value]:
    def parse(payload: str) -> Value:
        if not _INT.fullmatch(payload):
            raise UsageError(f"{payload!r} is not an integer")
        value = int(payload)
        if not low <= value <= high:
            raise UsageError(f"{value} is outside {low}..{high}")
        if (value - low) % step:
            raise UsageError(f"{value} is not a multiple of {step}")
        return value

    return parse


def _parse_float(low: float, high: float, step: float) -> Callable[[str], Value]:
    def parse(payload: str) -> Value:
        if not _FLOAT.fullmatch(payload):
            raise UsageError(f"{payload!r} is not a number")
        value = float(payload)
        if not math.isfinite(value) or not low <= value <= high:
            raise UsageError(f"{payload} is outside {low:g}..{high:g}")
        if abs(round(value / step) * step - value) > 1e-6:
            raise UsageError(f"{payload} is not a multiple of {step:g}")
        return round(value / step) * step

    return parse


def _parse_enum(options: Sequence[str]) -> Callable[[str], Value]:
    def parse(payload: str) -> Value:
        if payload not in options:
            raise UsageError(f"{payload!r} is not one of {','.join(options)}")
        return payload

    return parse


def _parse_bool(payload: str) -> Value:
    if payload not in ("true", "false"):
        raise UsageError(f"{payload!r} is not true or false")
    return payload == "true"


def _write_scaled(address: int, scale: int = 1) -> Callable[[Value, Words], list[tuple[int, int]]]:
    return lambda value, words: [(address, round(float(value) * scale))]


def _write_enum(address: int, table: Mapping[str, int]) -> Callable[[Value, Words], list[tuple[int, int]]]:
    return lambda value, words: [(address, table[str(value)])]


def _int_setter(address: int, low: int, high: int, *, reads: Sequence[int], step: int = 1) -> Setter:
    return Setter(_parse_int(low, high, step), _write_scaled(address), frozenset(reads))


def _float_setter(address: int, low: float, high: float, step: float, *, reads: Sequence[int]) -> Setter:
    return Setter(_parse_float(low, high, step), _write_scaled(address, 10), frozenset(reads))


def _enum_setter(address: int, table: Mapping[str, int], *, reads: Sequence[int]) -> Setter:
    return Setter(_parse_enum(list(table)), _write_enum(address, table), frozenset(reads))


def _need(words: Words, address: int, what: str) -> int:
    """A raw word a read-modify-write needs; refused until a poll has read it."""
    if address not in words:
        raise UsageError(f"{what} (register {address}) has not been read yet; try again after the next poll")
    return words[address]


HEATING_MODES = {"off": 0, "auto": 1, "cool": 2, "heat": 3, "eheat": 4}
FAN_MODES = {"auto": 0, "continuous": 1, "intermittent": 2}
CALLS = ("standby", "unknown1", "h1", "h2", "h3", "c1", "c2", "unknown7")
ZONE_CALLS = ("standby", "h1", "h2", "h3", "c1", "c2")
FAN_ON_MINUTES = tuple(str(m) for m in range(0, 30, 5))  # setter 0..25 (§6.4; Homie said 0..20, §13 C9)
FAN_OFF_MINUTES = tuple(str(m) for m in range(5, 45, 5))  # decodes as 5..40; 0 never reads back (C9)


# ---------------------------------------------------------------------------------------------
# The table, node by node, in the original's order (aurora-bridge §6.3-6.4)

_T = Hass(platform="sensor", device_class="temperature", state_class="measurement", unit="°F")
_T_DIAG = Hass(
    platform="sensor", device_class="temperature", state_class="measurement", category="diagnostic", unit="°F"
)
_W = Hass(platform="sensor", device_class="power", state_class="measurement", unit="W")
_MEASURE = Hass(platform="sensor", state_class="measurement")
_MEASURE_DIAG = Hass(platform="sensor", state_class="measurement", category="diagnostic")
_ON_OFF = Hass(platform="binary_sensor")
_RUNNING = Hass(platform="binary_sensor", device_class="running")
_PROBLEM = Hass(platform="binary_sensor", device_class="problem")


def _temp(
    p: Callable[..., PropertySpec],
    id_: str,
    name: str,
    address: int,
    tier: Tier,
    *,
    hass: Hass | None = _T_DIAG,
) -> PropertySpec:
    """A temperature sensor: signed tenths °F from one register."""
    return p(id_, name, "float", (address,), _temperature(address), tier, unit="°F", hass=hass)


def _abc(c: Components) -> list[PropertySpec]:
    p = _builder("abc")
    air = 740 if c.awl_axb else 567  # §4.1: the AWL AXB's own entering-air sensor
    modes = ABC_MODES + (("dehumidify",) if c.vs_drive else ())
    props = [
        p(
            "current-mode",
            "Current Heating/Cooling Mode",
            "enum",
            (30, 6, *((362,) if c.vs_drive else ())),
            current_mode,
            Tier.FAST,
            fmt=",".join(modes),
            hass=Hass(platform="sensor", device_class="enum"),
        ),
        p(
            "emergency-shutdown",
            "Emergency Shutdown Requested",
            "boolean",
            (31,),
            _bit(31, 0x40),
            Tier.FAST,
            hass=_ON_OFF,
        ),
        p("load-shed", "Load Shed Requested", "boolean", (31,), _bit(31, 0x200), Tier.FAST, hass=_ON_OFF),
        p(
            "locked-out",
            "Is the heat pump currently locked out?",
            "boolean",
            (25,),
            _bit(25, 0x8000),
            Tier.FAST,
            hass=_PROBLEM,
        ),
        p(
            "derated",
            "Is the compressor currently running at a derated level?",
            "boolean",
            (25,),
            lambda w: 41 <= w[25] & 0x7FFF <= 46,
            Tier.FAST,
            hass=_PROBLEM,
        ),
        p(
            "safe-mode",
            "Is the heat pump currently in safe mode?",
            "boolean",
            (25,),
            lambda w: w[25] & 0x7FFF in (47, 48, 49, 72, 74),
            Tier.FAST,
            hass=_PROBLEM,
        ),
        # §13 R12: the original hid this property when it read 0.0 at start-up
        _temp(p, "entering-air-temperature", "Entering Air Temperature", air, Tier.FAST),
    ]
    if c.axb:
        props += [
            _temp(p, "entering-water-temperature", "Entering Water Temperature", 1111, Tier.FAST),
            _temp(p, "leaving-water-temperature", "Leaving Water Temperature", 1110, Tier.FAST),
        ]
    props += [
        p(
            "low-pressure-switch",
            "Low Pressure Switch Status",
            "enum",
            (31,),
            lambda w: "closed" if w[31] & 0x80 else "open",
            Tier.FAST,
            fmt="open,closed",
            hass=Hass(platform="sensor", device_class="enum", category="diagnostic", legacy=""),
        ),
        p(
            "high-pressure-switch",
            "High Pressure Switch Status",
            "enum",
            (31,),
            lambda w: "closed" if w[31] & 0x100 else "open",
            Tier.FAST,
            fmt="open,closed",
            hass=Hass(platform="sensor", device_class="enum", category="diagnostic", legacy=""),
        ),
    ]
    if c.awl_axb:
        props.append(_temp(p, "leaving-air-temperature", "Leaving Air Temperature", 900, Tier.FAST))
    if c.awl_communicating:
        props.append(_temp(p, "outdoor-temperature", "Outdoor Temperature", 742, Tier.MEDIUM, hass=_T))
    props += [
        # §13 C6: the value comes from 112 itself, never from the measured line voltage
        p(
            "line-voltage-setting",
            "Line Voltage Setting",
            "integer",
            (112,),
            _raw(112),
            Tier.SLOW,
            fmt="90:635",
            unit="V",
            setter=_int_setter(112, 90, 635, reads=(112,)),
            hass=Hass(platform="number", device_class="voltage", category="config", enabled=False, legacy=""),
        ),
        _temp(p, "air-coil-temperature", "Air Coil Temperature (FP2)", 20, Tier.FAST),
    ]
    if c.energy_monitoring:
        props += [
            p(
                "line-voltage",
                "Line Voltage",
                "integer",
                (16,),
                _raw(16),
                Tier.MEDIUM,
                fmt="90:635",
                unit="V",
                hass=Hass(
                    platform="sensor",
                    device_class="voltage",
                    state_class="measurement",
                    category="diagnostic",
                    legacy="",
                ),
            ),
            p(
                "watts",
                "Total Power Usage",
                "integer",
                (1152, 1153),
                _u32(1152),
                Tier.FAST,
                unit="W",
                hass=_W,
            ),
        ]
    # Derived values users computed by hand (issue 3)
    if c.axb:
        props.append(
            p(
                "water-delta-t",
                "Water Temperature Difference",
                "float",
                (1110, 1111),
                water_delta_t,
                Tier.FAST,
                unit="°F",
                hass=Hass(platform="sensor", state_class="measurement", unit="°F", legacy=""),
            )
        )
    if c.energy_monitoring:
        props.append(
            p(
                "cop",
                "Coefficient of Performance",
                "float",
                (30, 1152, 1153, 1154, 1155, 1156, 1157),
                cop,
                Tier.FAST,
                fmt="0:20",
                hass=Hass(platform="sensor", state_class="measurement", legacy=""),
            )
        )
    return props


def _compressor(c: Components) -> list[PropertySpec]:
    p = _builder("compressor")
    if c.vs_drive:
        speed = p(
            "speed", "Current Speed", "integer", (3001,), _raw(3001), Tier.FAST, fmt="0:12", hass=_MEASURE
        )
    else:
        stages = c.stages

        def generic_speed(w: Words) -> Value | None:
            # §13 C12: never above the stage count (a single-stage unit published 2 when cc2 was set)
            out = w[30]
            return min(stages, 2 if out & CC2 else 1 if out & CC else 0)

        speed = p(
            "speed",
            "Current Speed",
            "integer",
            (30,),
            generic_speed,
            Tier.FAST,
            fmt=f"0:{stages}",
            hass=_MEASURE,
        )
    props = [
        speed,
        _temp(p, "cooling-liquid-line-temperature", "Cooling Liquid Line Temperature (FP1)", 19, Tier.FAST),
    ]
    if c.refrigeration_monitoring:
        btu = Hass(platform="sensor", state_class="measurement", unit="BTU/h")
        props += [
            _temp(p, "heating-liquid-line-temperature", "Heating Liquid Line Temperature", 1109, Tier.MEDIUM),
            _temp(
                p,
                "saturated-condensor-discharge-temperature",
                "Saturated Condensor Discharge Temperature",
                1134,
                Tier.MEDIUM,
            ),
            p(
                "heat-of-extraction",
                "Heat of Extraction",
                "integer",
                (1154, 1155),
                _i32(1154),
                Tier.FAST,
                unit="BTU/h",
                hass=btu,
            ),
            p(
                "heat-of-rejection",
                "Heat of Rejection",
                "integer",
                (1156, 1157),
                _i32(1156),
                Tier.FAST,
                unit="BTU/h",
                hass=btu,
            ),
        ]
    if c.energy_monitoring:
        props.append(
            p("watts", "Power Usage", "integer", (1146, 1147), _u32(1146), Tier.FAST, unit="W", hass=_W)
        )
    if c.vs_drive:
        psi = Hass(
            platform="sensor",
            device_class="pressure",
            state_class="measurement",
            category="diagnostic",
            unit="psi",
        )
        props += [
            p(
                "desired-speed",
                "Desired Speed",
                "integer",
                (3000,),
                _raw(3000),
                Tier.FAST,
                fmt="0:12",
                hass=_MEASURE,
            ),
            _temp(p, "ambient-temperature", "Ambient Temperature", 3326, Tier.MEDIUM),
            _temp(p, "drive-temperature", "Drive Temperature", 3327, Tier.MEDIUM),
            _temp(p, "inverter-temperature", "Inverter Temperature", 3522, Tier.MEDIUM),
            p(
                "fan-speed",
                "Fan Speed",
                "integer",
                (3524,),
                _raw(3524),
                Tier.MEDIUM,
                fmt="0:100",
                unit="%",
                hass=_MEASURE_DIAG,
            ),
            _temp(p, "discharge-temperature", "Discharge Temperature", 3325, Tier.MEDIUM),
            p(
                "discharge-pressure",
                "Discharge Pressure",
                "float",
                (3322,),
                _decoded(3322),
                Tier.MEDIUM,
                unit="psi",
                hass=psi,
            ),
            _temp(p, "suction-temperature", "Suction Temperature", 3903, Tier.MEDIUM),
            p(
                "suction-pressure",
                "Suction Pressure",
                "float",
                (3323,),
                _decoded(3323),
                Tier.MEDIUM,
                unit="psi",
                hass=psi,
            ),
            _temp(
                p,
                "saturated-evaporator-discharge-temperature",
                "Saturated Evaporator Discharge Temperature",
                3905,
                Tier.MEDIUM,
            ),
            _temp(p, "superheat-temperature", "SuperHeat Temperature", 3906, Tier.MEDIUM),
            p(
                "subcool-temperature",
                "SubCool Temperature",
                "float",
                (30, 1135, 1136),
                lambda w: _temperature(1136 if w[30] & RV else 1135)(w),
                Tier.MEDIUM,
                unit="°F",
                hass=_T_DIAG,
            ),
            p(
                "eev-open-percentage",
                "Electronic Expansion Valve Open Percentage",
                "integer",
                (3808,),
                _raw(3808),
                Tier.MEDIUM,
                fmt="0:100",
                unit="%",
                hass=_MEASURE_DIAG,
            ),
        ]
        if c.iz2:
            props.append(
                p(
                    "iz2-desired-speed",
                    "IZ2 Desired Speed",
                    "integer",
                    (564,),
                    _raw(564),
                    Tier.MEDIUM,
                    fmt="0:12",
                    hass=_MEASURE_DIAG,
                )
            )
    return props


def _aux_heat(c: Components) -> list[PropertySpec]:
    p = _builder("aux-heat")
    props = [
        p(
            "stage",
            "Current Stage",
            "integer",
            (30,),
            lambda w: 2 if w[30] & EH2 else 1 if w[30] & EH1 else 0,
            Tier.FAST,
            fmt="0:2",
            hass=_MEASURE,
        )
    ]
    if c.energy_monitoring:
        props.append(
            p("watts", "Power Usage", "integer", (1150, 1151), _u32(1150), Tier.FAST, unit="W", hass=_W)
        )
    return props


def _blower(c: Components) -> list[PropertySpec]:
    p = _builder("blower")
    # §13 C2: the 5-speed blower publishes running and watts like the others
    props = [p("running", "Running", "boolean", (30,), _bit(30, BLOWER), Tier.FAST, hass=_RUNNING)]
    if c.blower == "ecm":
        props.append(
            p("speed", "Current Speed", "integer", (344,), _raw(344), Tier.FAST, fmt="0:12", hass=_MEASURE)
        )
    elif c.blower == "5speed":

        def five_speed(w: Words) -> Value | None:
            out = w[30]
            return 4 if out & (EH1 | EH2) else 3 if out & CC2 else 2 if out & CC else 1 if out & BLOWER else 0

        props.append(
            p("speed", "Current Speed", "integer", (30,), five_speed, Tier.FAST, fmt="0:4", hass=_MEASURE)
        )
    if c.energy_monitoring:
        props.append(
            p("watts", "Power Usage", "integer", (1148, 1149), _u32(1148), Tier.FAST, unit="W", hass=_W)
        )
    if c.blower == "ecm":
        preset = Hass(platform="number", category="config")
        for prop, name, address in (
            ("blower-only-speed", "Blower Only Preset Speed", 340),
            ("aux-heat-speed", "Aux Heat Preset Speed", 347),
            ("low-compressor-speed", "Low Compressor Preset Speed", 341),
            ("high-compressor-speed", "High Compressor Preset Speed", 342),
        ):
            props.append(
                p(
                    prop,
                    name,
                    "integer",
                    (address,),
                    _raw(address),
                    Tier.MEDIUM,
                    fmt="1:12",
                    setter=_int_setter(address, 1, 12, reads=(address,)),
                    hass=preset,
                )
            )
        if c.iz2:
            props.append(
                p(
                    "iz2-desired-speed",
                    "IZ2 Desired Speed",
                    "integer",
                    (565,),
                    lambda w: regs.iz2_fan_desired(w[565]),
                    Tier.MEDIUM,
                    fmt="0:100",
                    unit="%",
                    hass=_MEASURE_DIAG,
                )
            )
    return props


def _pump(c: Components) -> list[PropertySpec]:
    p = _builder("pump")
    props: list[PropertySpec] = []
    if c.axb:  # 1104 and 1117 are AXB registers: a VS pump without an AXB has neither (§13 R9)
        props.append(
            p(
                "waterflow",
                "Waterflow",
                "float",
                (1117,),
                _decoded(1117),
                Tier.FAST,
                unit="gpm",
                hass=Hass(
                    platform="sensor",
                    device_class="volume_flow_rate",
                    state_class="measurement",
                    category="diagnostic",
                    unit="gal/min",
                ),
            )
        )
    if c.energy_monitoring:
        props.append(
            p("watts", "Power Usage", "integer", (1164, 1165), _u32(1164), Tier.FAST, unit="W", hass=_W)
        )
    if c.axb:
        props.append(p("running", "Running", "boolean", (1104,), _bit(1104, 0x02), Tier.FAST, hass=_RUNNING))
    if c.pump == "vs":
        speed_reg = 325 if c.awl_axb else None

        def manual_on(value: Value, words: Words) -> list[tuple[int, int]]:
            if not value:
                return [(323, _OFF)]
            # §13 C5: the original failed without 325; fall back to the configured minimum speed
            for address in (325, 321):
                if 1 <= words.get(address, 0) <= 100:
                    return [(323, words[address])]
            raise UsageError("the pump speed is unknown; set pump/speed instead")

        pct = Hass(platform="number", category="config", unit="%")
        props += [
            p(
                "manual-control",
                "Manual Control",
                "boolean",
                (323,),
                lambda w: w[323] != _OFF,
                Tier.MEDIUM,
                setter=Setter(_parse_bool, manual_on, frozenset({323, *((325,) if speed_reg else ())})),
                hass=Hass(platform="switch", category="diagnostic"),
            ),
            # §13 C9: 1..100 in $format as in the setter (0 passed Homie, then failed)
            p(
                "minimum-speed",
                "Actual Minimum Speed",
                "integer",
                (321,),
                _raw(321),
                Tier.MEDIUM,
                fmt="1:100",
                unit="%",
                setter=_int_setter(321, 1, 100, reads=(321,)),
                hass=pct,
            ),
            p(
                "maximum-speed",
                "Actual Maximum Speed",
                "integer",
                (322,),
                _raw(322),
                Tier.MEDIUM,
                fmt="1:100",
                unit="%",
                setter=_int_setter(322, 1, 100, reads=(322,)),
                hass=pct,
            ),
        ]
        if speed_reg:
            # Writing a speed goes to 323, the manual-speed register: it also switches to manual
            # control (§13 C5), which manual-control then shows.
            props.append(
                p(
                    "speed",
                    "Speed",
                    "integer",
                    (325,),
                    _raw(325),
                    Tier.FAST,
                    fmt="1:100",
                    unit="%",
                    setter=_int_setter(323, 1, 100, reads=(323, 325)),
                    hass=Hass(platform="number", category="diagnostic", unit="%"),
                )
            )
    return props


def _dhw(c: Components) -> list[PropertySpec]:
    p = _builder("dhw")
    return [
        p(
            "enabled",
            "Enabled",
            "boolean",
            (400,),
            lambda w: w[400] != 0,
            Tier.MEDIUM,
            setter=Setter(_parse_bool, lambda v, w: [(400, 1 if v else 0)], frozenset({400})),
        ),
        p("running", "Pump Running", "boolean", (1104,), _bit(1104, 0x01), Tier.FAST, hass=_RUNNING),
        p(
            "set-point",
            "Set Point",
            "float",
            (401,),
            _decoded(401),
            Tier.MEDIUM,
            fmt="100:140",
            unit="°F",
            setter=_float_setter(401, 100, 140, 0.1, reads=(401,)),
        ),
        _temp(p, "water-temperature", "Water Temperature", 1114, Tier.FAST, hass=None),
    ]


def humidistat_registers(c: Components) -> tuple[int, int, int, int]:
    """(mode read, targets read, mode write, targets write): IZ2 ≥ 2.0 or the thermostat's.

    §13 C4: the original read the mode from the IZ2 write register 21114, and used IZ2 registers
    with an IZ2 older than 2.0; here the IZ2 read registers 31109/31110 are read, only with IZ2 ≥ 2.0.
    """
    if c.awl_iz2:
        return 31109, 31110, 21114, 21115
    return 12309, 12310, 12309, 12310


def _humidistat(c: Components) -> list[PropertySpec]:
    p = _builder("humidistat")
    mode_r, targets_r, mode_w, targets_w = humidistat_registers(c)
    hum_bit, dehum_bit = 0x8000, 0x4000  # one mapping for reads and writes (§13 C3)

    def mode_setter(bit: int) -> Setter:
        def encode(value: Value, words: Words) -> list[tuple[int, int]]:
            word = _need(words, mode_r, "the humidistat mode")
            word = word | bit if value == "auto" else word & ~bit
            return [(mode_w, word & 0xFFFF)]

        return Setter(_parse_enum(("auto", "manual")), encode, frozenset({mode_r}))

    def target_setter(high: bool, low: int, top: int) -> Setter:
        def encode(value: Value, words: Words) -> list[tuple[int, int]]:
            word = _need(words, targets_r, "the other humidity target")
            hum, dehum = word >> 8, word & 0xFF
            hum, dehum = (int(value), dehum) if high else (hum, int(value))
            # the other half keeps its value, clamped into its own range so the word is valid
            hum, dehum = min(max(hum, 15), 50), min(max(dehum, 35), 65)
            return [(targets_w, regs.encode_humidistat_targets(hum, dehum))]

        return Setter(_parse_int(low, top), encode, frozenset({targets_r}))

    props: list[PropertySpec] = []
    if c.humidifier:
        props.append(
            p("humidifier-running", "Humidifier Running", "boolean", (30,), _bit(30, ACCESSORY), Tier.FAST)
        )
        if c.awl_communicating:
            props += [
                p(
                    "humidifier-mode",
                    "Humidifier Mode",
                    "enum",
                    (mode_r,),
                    lambda w: "auto" if w[mode_r] & hum_bit else "manual",
                    Tier.MEDIUM,
                    fmt="auto,manual",
                    setter=mode_setter(hum_bit),
                ),
                p(
                    "humidification-target",
                    "Humidification Target Relative Humidity",
                    "integer",
                    (targets_r,),
                    lambda w: w[targets_r] >> 8,
                    Tier.MEDIUM,
                    fmt="15:50",
                    unit="%",
                    setter=target_setter(True, 15, 50),
                ),
            ]
    if c.dehumidifier or c.vs_drive:
        if c.dehumidifier:
            running = p(
                "dehumidifier-running",
                "Dehumidifier Running",
                "boolean",
                (1104,),
                _bit(1104, 0x10),
                Tier.FAST,
            )
        else:
            running = p(
                "dehumidifier-running",
                "Dehumidifier Running",
                "boolean",
                (30, 6, 362),
                lambda w: current_mode(w) == "dehumidify",
                Tier.FAST,
            )
        props.append(running)
        if c.awl_communicating:
            props += [
                p(
                    "dehumidifier-mode",
                    "Dehumidifier Mode",
                    "enum",
                    (mode_r,),
                    lambda w: "auto" if w[mode_r] & dehum_bit else "manual",
                    Tier.MEDIUM,
                    fmt="auto,manual",
                    setter=mode_setter(dehum_bit),
                ),
                p(
                    "dehumidification-target",
                    "Dehumidification Target Relative Humidity",
                    "integer",
                    (targets_r,),
                    lambda w: w[targets_r] & 0xFF,
                    Tier.MEDIUM,
                    fmt="35:65",
                    unit="%",
                    setter=target_setter(False, 35, 65),
                ),
            ]
    if c.awl_communicating:
        props.append(
            p(
                "relative-humidity",
                "Relative Humidity",
                "integer",
                (741,),
                _raw(741),
                Tier.MEDIUM,
                fmt="0:100",
                unit="%",
                hass=Hass(platform="sensor", device_class="humidity", state_class="measurement", unit="%"),
            )
        )
    return props


def _faults(c: Components) -> list[PropertySpec]:
    p = _builder("faults")
    props = [
        p(
            "current",
            "Current fault",
            "integer",
            (25,),
            lambda w: w[25] & 0x7FFF,
            Tier.FAST,
            fmt="0:99",
            hass=Hass(platform="sensor"),
        ),
        p(
            "clear-history",
            "Reset Fault Counts",
            "enum",
            (),
            lambda w: None,
            Tier.SLOW,
            fmt="clear",
            retained=False,
            setter=Setter(_parse_enum(("clear",)), lambda v, w: [(47, 0x5555)], frozenset(range(601, 700))),
            hass=Hass(platform="button", category="config"),
        ),
    ]
    counter = Hass(platform="sensor", state_class="total_increasing", category="diagnostic")
    for n in range(1, 100):
        address = 600 + n
        props.append(
            p(
                f"e{n}",
                regs.FAULT_NAMES.get(n, f"E{n}"),
                "integer",
                (address,),
                lambda w, a=address: None if w[a] == 0xFFFF else w[a],
                Tier.SLOW,
                hass=counter,
            )
        )
    return props


def _zone_common(
    p: Callable[..., PropertySpec],
    *,
    zone: int,
    iz2: bool,
    config1: int,
    mode_read: tuple[int, ...],
    mode_value: Callable[[Words], Value | None],
    writes: tuple[int, int, int, int, int, int],
    heating: tuple[tuple[int, ...], Callable[[Words], Value | None]],
    cooling: tuple[tuple[int, ...], Callable[[Words], Value | None]],
    ambient: int,
    fan_running: tuple[tuple[int, ...], Callable[[Words], Value | None]],
) -> list[PropertySpec]:
    # writes: mode, heating, cooling, fan mode, fan on, fan off registers (§9.3)
    mode_w, heat_w, cool_w, fan_w, on_w, off_w = writes
    modes = {k: v for k, v in HEATING_MODES.items() if k != "eheat" or zone == 1}
    step = 1.0 if iz2 else 0.1  # IZ2 stores whole degrees in its configuration words

    def fan_value(w: Words) -> Value | None:
        return str(regs.zone_configuration1(w[config1])["fan"])

    def on_value(w: Words) -> Value | None:
        return str(regs.zone_configuration1(w[config1])["on_time"])

    def off_value(w: Words) -> Value | None:
        return str(regs.zone_configuration1(w[config1])["off_time"])

    fan_minutes = Hass(platform="select", category="config")
    return [
        p(
            "target-mode",
            "Target Heating/Cooling Mode",
            "enum",
            mode_read,
            mode_value,
            Tier.MEDIUM,
            fmt=",".join(modes),
            setter=_enum_setter(mode_w, modes, reads=mode_read),
        ),
        p(
            "target-fan-mode",
            "Target Fan Mode",
            "enum",
            (config1,),
            fan_value,
            Tier.MEDIUM,
            fmt=",".join(FAN_MODES),
            setter=_enum_setter(fan_w, FAN_MODES, reads=(config1,)),
        ),
        p(
            "fan-intermittent-on",
            "Fan Intermittent Mode On Duration",
            "enum",
            (config1,),
            on_value,
            Tier.MEDIUM,
            fmt=",".join(FAN_ON_MINUTES),
            unit="min",
            setter=Setter(
                _parse_enum(FAN_ON_MINUTES), lambda v, w: [(on_w, int(str(v)))], frozenset({config1})
            ),
            hass=fan_minutes,
        ),
        p(
            "fan-intermittent-off",
            "Fan Intermittent Mode Off Duration",
            "enum",
            (config1,),
            off_value,
            Tier.MEDIUM,
            fmt=",".join(FAN_OFF_MINUTES),
            unit="min",
            setter=Setter(
                _parse_enum(FAN_OFF_MINUTES), lambda v, w: [(off_w, int(str(v)))], frozenset({config1})
            ),
            hass=fan_minutes,
        ),
        p(
            "current-fan-mode",
            "Current Fan Status",
            "boolean",
            fan_running[0],
            fan_running[1],
            Tier.FAST,
            hass=_RUNNING,
        ),
        _temp(p, "ambient-temperature", "Ambient Temperature", ambient, Tier.FAST, hass=_T),
        # §13 C7: float, as published (68.0), not integer
        p(
            "heating-target-temperature",
            "Heating Target Temperature",
            "float",
            heating[0],
            heating[1],
            Tier.MEDIUM,
            fmt="40:90",
            unit="°F",
            setter=_float_setter(heat_w, 40, 90, step, reads=heating[0]),
        ),
        p(
            "cooling-target-temperature",
            "Cooling Target Temperature",
            "float",
            cooling[0],
            cooling[1],
            Tier.MEDIUM,
            fmt="54:99",
            unit="°F",
            setter=_float_setter(cool_w, 54, 99, step, reads=cooling[0]),
        ),
    ]


def _thermostat_zone(c: Components) -> list[PropertySpec]:
    p = _builder("zone1")

    def call(w: Words) -> Value | None:
        inputs = w[31]
        cooling = inputs & O_INPUT
        if inputs & Y2:
            return "c2" if cooling else "h2"
        if inputs & Y1:
            return "c1" if cooling else "h1"
        return "standby"

    props = [
        p(
            "current-mode",
            "Current Heating/Cooling Mode Requested",
            "enum",
            (31,),
            call,
            Tier.FAST,
            fmt=",".join(ZONE_CALLS),
        )
    ]
    if c.awl_thermostat:
        props += _zone_common(
            p,
            zone=1,
            iz2=False,
            config1=12005,
            mode_read=(12006,),
            mode_value=lambda w: regs.HEATING_MODE.get((w[12006] >> 8) & 7),
            writes=(12606, 12619, 12620, 12621, 12622, 12623),
            heating=((745,), _decoded(745)),
            cooling=((746,), _decoded(746)),
            ambient=502,
            fan_running=((31,), _bit(31, G_INPUT)),
        )
    return props


def _iz2_zone(zone: int) -> list[PropertySpec]:
    p = _builder(f"zone{zone}")
    ambient, c1, c2 = (31007 + 3 * (zone - 1) + i for i in range(3))
    c3 = 31200 + 3 * (zone - 1)

    def call(w: Words) -> Value | None:
        # §13 C8: unknown1/unknown7 are outside the enum: left out rather than published
        name = CALLS[(w[c2] >> 1) & 7]
        return name if name in ZONE_CALLS else None

    props = [
        p(
            "current-mode",
            "Current Heating/Cooling Mode Requested",
            "enum",
            (c2,),
            call,
            Tier.FAST,
            fmt=",".join(ZONE_CALLS),
        )
    ]
    common = _zone_common(
        p,
        zone=zone,
        iz2=True,
        config1=c1,
        # §13 C8: three mode bits (8-10) so that eheat (4) reads back; the original read two
        mode_read=(c2,),
        mode_value=lambda w: regs.HEATING_MODE.get((w[c2] >> 8) & 7),
        writes=tuple(21202 + 9 * (zone - 1) + i for i in range(6)),  # type: ignore[arg-type]
        heating=((c1, c2), lambda w: float(((w[c1] & 1) << 5 | (w[c2] & 0xF800) >> 11) + 36)),
        cooling=((c1,), lambda w: float(((w[c1] & 0x7E) >> 1) + 36)),
        ambient=ambient,
        fan_running=((c2,), _bit(c2, 0x10)),
    )
    by_id = {spec.id: spec for spec in common}
    config3 = regs.zone_configuration3
    extra = [
        p(
            "priority",
            "Zone Priority",
            "enum",
            (c3,),
            lambda w: config3(w[c3])["zone_priority"],
            Tier.SLOW,
            fmt="economy,comfort",
            hass=Hass(platform="sensor", device_class="enum", category="diagnostic"),
        ),
        p(
            "size",
            "Size",
            "enum",
            (c3,),
            lambda w: str(config3(w[c3])["zone_size"]),
            Tier.SLOW,
            fmt="0,25,45,70",
            hass=Hass(platform="sensor", device_class="enum", category="diagnostic"),
        ),
        p(
            "normalized-size",
            "Normalized Size",
            "integer",
            (c3,),
            lambda w: config3(w[c3])["normalized_size"],
            Tier.SLOW,
            fmt="0:100",
            unit="%",
            hass=_MEASURE_DIAG,
        ),
    ]
    order = (
        "target-mode",
        "target-fan-mode",
        "fan-intermittent-on",
        "fan-intermittent-off",
        "current-fan-mode",
    )
    rest = ("ambient-temperature", "heating-target-temperature", "cooling-target-temperature")
    return props + [by_id[i] for i in order] + extra + [by_id[i] for i in rest]


def _builder(node: str) -> Callable[..., PropertySpec]:
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
        )

    return make


BLOWER_TYPES = {0: "PSC", 1: "ECM 208/230", 2: "ECM 265/277", 3: "5 Speed ECM 460"}
PUMP_TYPES = {
    0: "Open Loop",
    1: "FC1",
    2: "FC2",
    3: "VS Pump",
    4: "VS Pump + 26-99",
    5: "VS Pump + UPS26-99",
    6: "FC1_GLNP",
    7: "FC2_GLNP",
}


def build_nodes(c: Components) -> tuple[NodeSpec, ...]:
    """Every node of this unit, in the original's ``$nodes`` order (§6.1)."""
    if c.vs_drive:
        compressor = "Variable Speed Drive"
    else:
        compressor = "Single Stage Compressor" if c.stages == 1 else "Dual Stage Compressor"
    nodes = [
        NodeSpec(id="abc", name="Heat Pump", type="ABC", properties=tuple(_abc(c))),
        NodeSpec(id="compressor", name="Compressor", type=compressor, properties=tuple(_compressor(c))),
        NodeSpec(id="aux-heat", name="Aux Heater", type="Aux Heater", properties=tuple(_aux_heat(c))),
        NodeSpec(
            id="blower",
            name="Blower",
            type=BLOWER_TYPES.get(c.blower_type, "Other"),
            properties=tuple(_blower(c)),
        ),
    ]
    if c.pump:
        nodes.append(
            NodeSpec(
                id="pump",
                name="Loop Pump",
                type=PUMP_TYPES.get(c.pump_type, "Other"),
                properties=tuple(_pump(c)),
            )
        )
    if c.dhw:
        nodes.append(
            NodeSpec(id="dhw", name="Domestic Hot Water Generator", type="DHW", properties=tuple(_dhw(c)))
        )
    if c.humidistat:
        humidistat = tuple(_humidistat(c))
        if humidistat:
            nodes.append(
                NodeSpec(id="humidistat", name="Humidistat", type="Humidistat", properties=humidistat)
            )
    nodes.append(NodeSpec(id="faults", name="Fault History", type="ABC", properties=tuple(_faults(c))))
    if c.awl_iz2:
        for zone in range(1, c.zone_count + 1):
            nodes.append(
                NodeSpec(
                    id=f"zone{zone}",
                    name=f"Zone {zone}",
                    type="IntelliZone 2 Zone",
                    properties=tuple(_iz2_zone(zone)),
                )
            )
    else:
        nodes.append(
            NodeSpec(id="zone1", name="Zone 1", type="Thermostat", properties=tuple(_thermostat_zone(c)))
        )
    return tuple(nodes)


def register_tiers(nodes: Sequence[NodeSpec]) -> dict[int, Tier]:
    """Each register in the fastest tier of any property that reads it, so it is polled once."""
    tiers: dict[int, Tier] = {}
    for node in nodes:
        for spec in node.properties:
            for address in spec.registers:
                known = tiers.get(address)
                if known is None or _TIER_ORDER[spec.tier] < _TIER_ORDER[known]:
                    tiers[address] = spec.tier
    return tiers
