"""The Aurora register map (docs/protocol.md#register-map): names, converters, print formats and write rules.

The map is data (``data/registers.json``); each entry names a converter defined here, and a bad name
fails when the entry is built (on first lookup; tests/unit/test_registers.py builds every entry).
Quirk: strings, 32-bit pairs and IZ2 zone configuration 2 decode from neighbouring words, so
:func:`decode` takes every word read, and a missing neighbour decodes as None.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from .errors import WriteRefused
from .records import FrozenRecord

Words: TypeAlias = Mapping[int, int]
"""Raw 16-bit words as read, by address."""
Field: TypeAlias = int | str | bool | None
"""One entry of a composite value: a number, a symbol-like name, a flag, or None."""
Record: TypeAlias = Mapping[str, Field]
"""A composite value (status, DIP switches, zone configuration …), in the original's key order."""
Value: TypeAlias = int | float | str | bool | tuple[str, ...] | Record
"""A decoded register: number, name, flag, list of set flag names, or a composite."""

NOT_PRESENT: Final = 0xD8F1  # -9999 as int16 (-999.9 °F): a sensor that is not fitted (peers.md)
# register 25, bit 15: the current fault locked the unit out (docs/protocol.md#faults)
LOCKED_OUT: Final = 0x8000
_OFF: Final = 0x7FFF  # "off"/"manual" sentinel of 4, 32, 33, 323 and 3002 (docs/protocol.md#conversions)


# ---------------------------------------------------------------------------------------------
# Scalar converters (docs/protocol.md#conversions)


def uint16(raw: int) -> int:
    """The raw word."""
    return raw


def int16(raw: int) -> int:
    """The raw word as two's complement."""
    return raw - 0x10000 if raw & 0x8000 else raw


def tenths(raw: int) -> float | None:
    """raw ÷ 10, unsigned; None for the not-present reading 0xD8F1."""
    return None if raw == NOT_PRESENT else raw / 10


def signed_tenths(raw: int) -> float | None:
    """int16(raw) ÷ 10; None for the not-present reading 0xD8F1 (-999.9)."""
    return None if raw == NOT_PRESENT else int16(raw) / 10


def hundredths(raw: int) -> float:
    """raw ÷ 100 (program and component versions, power adjustment factors)."""
    return raw / 100


def uint32(high: int, low: int) -> int:
    """Two words, high word first (docs/protocol.md#conversions)."""
    return (high << 16) | low


def int32(high: int, low: int) -> int:
    """Two words, high word first, as two's complement."""
    value = uint32(high, low)
    return value - (1 << 32) if value & 0x8000_0000 else value


def string(raws: Sequence[int]) -> str:
    """ASCII, high byte then low byte of each word, trailing spaces and NULs stripped.

    A byte ≥ 0x80 becomes U+FFFD instead of raising (docs/protocol.md#bugs-decoding).
    """
    data = b"".join((raw & 0xFFFF).to_bytes(2, "big") for raw in raws)
    return data.decode("ascii", errors="replace").rstrip(" \0")


def flags(raw: int, table: Mapping[int, str]) -> tuple[str, ...]:
    """Names of the set flags in table order, then any leftover bits as ``0x%04x``
    (docs/protocol.md#conversions)."""
    names: list[str] = []
    for bits, name in table.items():
        if raw & bits == bits:
            names.append(name)
            raw &= ~bits
    if raw:
        names.append(f"0x{raw:04x}")
    return tuple(names)


def enum(raw: int, table: Mapping[int, str], default: str | None = None) -> str | None:
    """The table's name for raw, else default (None unless the table has one,
    docs/protocol.md#conversions)."""
    return table.get(raw, default)


def boolean(raw: int) -> bool:
    """Any non-zero word is true (45, 362, 400)."""
    return raw != 0


def fault(raw: int) -> int:
    """Register 25: the current fault code, 0 for none; bit 15 (locked out) masked
    (docs/protocol.md#bugs-decoding)."""
    return raw & 0x7FFF


def last_lockout(raw: int) -> int | None:
    """Register 26: the fault code of the last lockout, None when bit 15 is clear."""
    return raw & 0x7FFF if raw & LOCKED_OUT else None


# ---------------------------------------------------------------------------------------------
# Composite converters (docs/protocol.md#conversions)


def _unknown(record: dict[str, Field], bits: int) -> dict[str, Field]:
    """Add the bits no field explains as ``unknown`` (rendered as a hex string), if any."""
    if bits:
        record["unknown"] = bits
    return record


def thermostat_override(raw: int) -> tuple[str, ...]:
    """Register 32: ``("off",)`` for 0x7fff, else the SYSTEM_INPUTS flags."""
    return ("off",) if raw == _OFF else flags(raw, SYSTEM_INPUTS)


def dip_switches(raw: int) -> str | Record:
    """Registers 4 and 33: ``"manual"`` for 0x7fff, else the switch settings."""
    if raw == _OFF:
        return "manual"
    return {
        "fp1": 30 if raw & 0x01 else 15,
        "fp2": 30 if raw & 0x02 else "off",
        "reversing_valve": "o" if raw & 0x04 else "b",
        "accessory_relay": ACCESSORY_RELAY_SETTINGS[(raw >> 3) & 3],
        "compressor": 1 if raw & 0x20 else 2,
        "lockout": "continuous" if raw & 0x40 else "pulse",
        "dehumidifier_reheat": "dehumidifier" if raw & 0x80 else "reheat",
    }


def status(raw: int) -> Record:
    """Register 31: pressure switches, then each set SYSTEM_INPUTS flag as ``name: True``."""
    record: dict[str, Field] = {
        "lps": "closed" if raw & 0x0080 else "open",
        "hps": "closed" if raw & 0x0100 else "open",
    }
    for bits, name in SYSTEM_INPUTS.items():
        if raw & bits == bits:
            record[name] = True
    return _unknown(record, raw & ~0x03FF)


def axb_inputs(raw: int) -> Record:
    """Register 1103: AXB DIP switches and inputs."""
    relay2 = {0x180: "blower", 0x100: "low_capacity_compressor", 0x080: "high_capacity_compressor"}
    record: dict[str, Field] = {
        "smart_grid": bool(raw & 0x001),
        "ha1": bool(raw & 0x002),
        "ha2": bool(raw & 0x004),
        "pump_slave": bool(raw & 0x008),
        "mb_address": 3 if raw & 0x010 else 4,
        "sw1_2": bool(raw & 0x020),
        "sw1_3": bool(raw & 0x040),
        "accessory_relay2": relay2.get(raw & 0x180, "dehumidifier"),
    }
    return _unknown(record, raw & ~0x01FF)


def manual_operation(raw: int) -> str | Record:
    """Register 3002: ``"off"`` for 0x7fff, else the forced mode and speeds.

    The blower speed is bits 4-7 shifted down (the original returned them unshifted,
    docs/protocol.md#bugs-decoding); 15 means "with compressor".
    """
    if raw == _OFF:
        return "off"
    record: dict[str, Field] = {"mode": "cooling" if raw & 0x100 else "heating"}
    if raw & 0x200:
        record["aux_heat"] = True
    record["compressor_speed"] = raw & 0x0F
    blower = (raw >> 4) & 0x0F
    record["blower_speed"] = "with_compressor" if blower == 0x0F else blower
    return _unknown(record, raw & ~0x03FF)


def vs_manual_control(raw: int) -> int | str:
    """Register 323: ``"off"`` for 0x7fff, else the manual pump speed in %."""
    return "off" if raw == _OFF else raw


def iz2_demand(raw: int) -> Record:
    """Register 31005: fan demand (high byte) and unit demand (low byte)."""
    return {"fan_demand": raw >> 8, "unit_demand": raw & 0xFF}


def iz2_fan_desired(raw: int) -> int:
    """Register 565: blower step 1..6 as its % (25..100); other values pass through."""
    return IZ2_FAN_DESIRED.get(raw, raw)


def humidistat_targets(raw: int) -> Record:
    """Registers 12310, 21115, 31110: targets in %RH, humidification in the high byte."""
    return {"humidification_target": raw >> 8, "dehumidification_target": raw & 0xFF}


def thermostat_configuration2(raw: int) -> Record:
    """Register 12006: the thermostat's HEATING_MODE in bits 8-10."""
    return _unknown({"mode": HEATING_MODE.get((raw >> 8) & 7)}, raw & ~0x0700)


def zone_configuration1(raw: int) -> Record:
    """Registers 12005 and 31008 + 3(z-1): fan settings, cooling target, heating target's bit 5."""
    fan = "continuous" if raw & 0x80 else "intermittent" if raw & 0x100 else "auto"
    record: dict[str, Field] = {
        "fan": fan,
        "on_time": ((raw >> 9) & 7) * 5,
        "off_time": (((raw >> 12) & 7) + 1) * 5,
        "cooling_target_temperature": ((raw & 0x7E) >> 1) + 36,
        "heating_target_temperature_carry": raw & 1,
    }
    return _unknown(record, raw & ~0x7FFF)


def zone_configuration2(raw: int, configuration1: int | None) -> Record:
    """Registers 31009 + 3(z-1): call, mode, damper and, given the zone's raw Configuration 1
    word (the register before), the heating target in °F.

    The heating target's bit 5 is bit 0 of Configuration 1; the original took it from this word
    when printing raw maps (docs/protocol.md#bugs-decoding).
    """
    record: dict[str, Field] = {
        "call": CALLS[(raw >> 1) & 7],
        "mode": HEATING_MODE.get((raw >> 8) & 3),
        "damper": "open" if raw & 0x10 else "closed",
    }
    if configuration1 is not None:
        carry = configuration1 & 1
        record["heating_target_temperature"] = ((carry << 5) | ((raw & 0xF800) >> 11)) + 36
    return _unknown(record, raw & ~0xFB1E)


def zone_mode(raw: int) -> str | None:
    """Registers 31009 + 3(z-1): the zone's HEATING_MODE in bits 8-10, so that emergency heat (4)
    reads back. :func:`zone_configuration2` prints two bits, as the original read them
    (docs/architecture.md#original-bridge C8)."""
    return HEATING_MODE.get((raw >> 8) & 7)


def zone_configuration3(raw: int) -> Record:
    """Registers 31200 + 3(z-1): priority, size and normalized size (%)."""
    record: dict[str, Field] = {
        "zone_priority": "economy" if raw & 0x20 else "comfort",
        "zone_size": ZONE_SIZES[(raw >> 3) & 3],
        "normalized_size": raw >> 8,
    }
    return _unknown(record, raw & ~0xFF38)


# ---------------------------------------------------------------------------------------------
# Encoders for the packed words the bridge writes (docs/protocol.md#writes), symmetric with the decoders above


def encode_manual_operation(
    mode: str, *, compressor_speed: int = 0, blower_speed: int | str = 0, aux_heat: bool = False
) -> int:
    """Register 3002's word: ``mode`` off, heating or cooling; speeds 0..12, blower also
    ``"with_compressor"``. Encodes the compressor speed, which the original dropped
    (docs/protocol.md#bugs-decoding).

    Raises WriteRefused for a value out of range.
    """
    if mode == "off":
        return _OFF
    if mode not in ("heating", "cooling"):
        raise WriteRefused(f"manual operation mode {mode!r} is not off, heating or cooling")
    if not 0 <= compressor_speed <= 12:
        raise WriteRefused(f"manual compressor speed {compressor_speed} is outside 0..12")
    if blower_speed == "with_compressor":
        blower = 0x0F
    elif isinstance(blower_speed, int) and 0 <= blower_speed <= 12:
        blower = blower_speed
    else:
        raise WriteRefused(f"manual blower speed {blower_speed!r} is not 0..12 or with_compressor")
    return (0x100 if mode == "cooling" else 0) | (0x200 if aux_heat else 0) | blower << 4 | compressor_speed


# read and written alike (docs/protocol.md#bugs-decoding: the original wrote them swapped)
_HUMIDIFIER_AUTO: Final = 0x8000
_DEHUMIDIFIER_AUTO: Final = 0x4000


def encode_humidistat_mode(*, humidifier_auto: bool, dehumidifier_auto: bool, current: int = 0) -> int:
    """Register 12309 or 21114's word: the two auto bits as :func:`flags` reads them, every other
    bit kept from ``current`` (the raw word last read)."""
    word = current & ~(_HUMIDIFIER_AUTO | _DEHUMIDIFIER_AUTO) & 0xFFFF
    return (
        word | (_HUMIDIFIER_AUTO if humidifier_auto else 0) | (_DEHUMIDIFIER_AUTO if dehumidifier_auto else 0)
    )


def encode_humidistat_targets(humidification: int, dehumidification: int) -> int:
    """Register 12310 or 21115's word from targets in %RH (15..50 and 35..65).

    Raises WriteRefused for a target out of range.
    """
    if not 15 <= humidification <= 50:
        raise WriteRefused(f"humidification target {humidification}% is outside 15..50")
    if not 35 <= dehumidification <= 65:
        raise WriteRefused(f"dehumidification target {dehumidification}% is outside 35..65")
    return humidification << 8 | dehumidification


# ---------------------------------------------------------------------------------------------
# Write rules (docs/protocol.md#writes)


class WriteField(FrozenRecord):
    """One packed part of a written word (e.g. 3002's compressor speed in bits 0-3)."""

    _fields = ("name", "mask", "low", "high", "also")
    __slots__ = _fields
    name: Final[str]
    mask: Final[int]
    low: Final[int]
    high: Final[int]
    also: Final[tuple[int, ...]]

    def __init__(self, *, name: str, mask: int, low: int, high: int, also: tuple[int, ...] = ()) -> None:
        self.name, self.mask, self.low, self.high, self.also = name, mask, low, high, also

    def problem(self, raw: int) -> str | None:
        """Why this part of raw is refused, or None."""
        shift = (self.mask & -self.mask).bit_length() - 1
        part = (raw & self.mask) >> shift
        if self.low <= part <= self.high or part in self.also:
            return None
        also = "".join(f" or {a}" for a in self.also)
        return f"{self.name} {part} is outside {self.low}..{self.high}{also}"


class WriteRule(FrozenRecord):
    """What may be written to a register: ``low..high`` in the register's unit, raw = value × scale.

    ``step`` counts raw words between allowed values from ``low × scale``; ``signed`` registers
    take two's complement; ``special`` raw words (0x7fff = off) are accepted outside the range;
    ``fields`` constrain packed parts; ``dangerous`` rules apply only when asked for explicitly.
    """

    _fields = ("low", "high", "scale", "step", "signed", "enum", "special", "fields", "dangerous")
    __slots__ = _fields
    _unhashed = ("special",)  # a mapping; equal rules still hash alike
    low: Final[int]
    high: Final[int]
    scale: Final[int]
    step: Final[int]
    signed: Final[bool]
    enum: Final[str | None]
    special: Final[Mapping[int, str]]
    fields: Final[tuple[WriteField, ...]]
    dangerous: Final[bool]

    def __init__(
        self,
        *,
        low: int,
        high: int,
        scale: int = 1,
        step: int = 1,
        signed: bool = False,
        enum: str | None = None,
        special: Mapping[int, str] | None = None,
        fields: tuple[WriteField, ...] = (),
        dangerous: bool = False,
    ) -> None:
        self.low, self.high, self.scale, self.step, self.signed = low, high, scale, step, signed
        self.enum, self.fields, self.dangerous = enum, fields, dangerous
        self.special = MappingProxyType({}) if special is None else special

    def describe(self) -> str:
        """The allowed values in words, e.g. ``100..140 (raw 1000..1400)``."""
        single = f"only {self.low} (0x{self.low:04x})"
        text = single if self.low == self.high else f"{self.low}..{self.high}"
        if self.scale != 1:
            text += f" (raw {self.low * self.scale}..{self.high * self.scale})"
        if self.step != 1:
            text += f" in steps of {self.step}"
        if self.enum:
            names = ", ".join(f"{k} {v}" for k, v in ENUMS[self.enum].items())
            text += f" ({names})"
        return text + "".join(f" or {raw} ({name})" for raw, name in self.special.items())

    def problem(self, raw: int) -> str | None:
        """Why the raw word is refused, or None when it may be written."""
        if not 0 <= raw <= 0xFFFF:
            return f"raw {raw} is not a 16-bit word"
        if raw in self.special:
            return None
        value = int16(raw) if self.signed else raw
        low, high = self.low * self.scale, self.high * self.scale
        if not low <= value <= high:
            return f"raw {raw} is outside {self.describe()}"
        if (value - low) % self.step:
            return f"raw {raw} is not in {self.describe()}"
        for part in self.fields:
            if reason := part.problem(raw):
                return reason
        return None

    @property
    def limits(self) -> tuple[float, float]:
        """The allowed range in the register's unit (e.g. 40.0..90.0 °F)."""
        return self.low, self.high

    @property
    def resolution(self) -> float:
        """The step between values the register stores, in its unit (0.1 for tenths, 1 for a
        set point stored as whole degrees, 5 for minutes in fives)."""
        return self.step / self.scale

    def nearest(self, value: float) -> int:
        """The raw word of the stored value nearest to ``value``: rounded half up to the
        register's step, then checked against the range. The one rounding rule for every write
        that carries a number (a ``/set`` payload, Home Assistant's °C→°F conversion such as
        69.80000000000001, the web UI).

        Raises WriteRefused for a number that is not finite, or whose rounded value is outside
        the range.
        """
        if not math.isfinite(value):
            raise WriteRefused(f"{value} is not a finite number")
        low = self.low * self.scale
        # A billionth of a step absorbs binary noise (71.99999999 → 72, 0.15×10 → 1.5 → 2)
        steps = math.floor((value * self.scale - low) / self.step + 0.5 + 1e-9)
        scaled = low + steps * self.step
        if not low <= scaled <= self.high * self.scale:
            raise WriteRefused(f"{value:g} is outside {self.describe()}")
        raw = scaled & 0xFFFF  # two's complement for signed registers
        if reason := self.problem(raw):
            raise WriteRefused(reason)
        return raw

    def to_raw(self, value: float) -> int:
        """The raw word for a value in the register's unit, rounded to the nearest step
        (:meth:`nearest`). Raises WriteRefused when the value is not allowed."""
        return self.nearest(value)

    def value_of(self, raw: int) -> float:
        """The value in the register's unit that a raw word of this rule means."""
        return (int16(raw) if self.signed else raw) / self.scale


# ---------------------------------------------------------------------------------------------
# The map


class Register(FrozenRecord):
    """One register of the map. ``name`` is None for the continuation words of strings and 32-bit
    values (``part_of`` names the owner): they belong to ``known`` but are never printed."""

    _fields = (
        "address",
        "name",
        "converter",
        "length",
        "unit",
        "format",
        "table",
        "part_of",
        "write",
        "range",
        "publish_unit",
        "flags",
        "absent",
    )
    __slots__ = _fields
    address: Final[int]
    name: Final[str | None]
    converter: Final[str]
    length: Final[int]
    unit: Final[str | None]
    format: Final[str | None]
    table: Final[str | None]
    part_of: Final[int | None]
    write: Final[WriteRule | None]
    range: Final[tuple[int, int] | None]  # the values a reading takes
    publish_unit: Final[str | None]  # the unit published where it differs from ``unit``
    flags: Final[str | None]  # the FLAGS table naming the bits, when the converter is not flags
    absent: Final[int | None]  # the raw word of something the unit does not have (0xFFFF counters)

    def __init__(
        self,
        *,
        address: int,
        name: str | None,
        converter: str = "uint16",
        length: int = 1,
        unit: str | None = None,
        format: str | None = None,
        table: str | None = None,
        part_of: int | None = None,
        write: WriteRule | None = None,
        range: tuple[int, int] | None = None,
        publish_unit: str | None = None,
        flags: str | None = None,
        absent: int | None = None,
    ) -> None:
        self.address, self.name, self.converter, self.length = address, name, converter, length
        self.unit, self.format, self.table, self.part_of = unit, format, table, part_of
        self.write, self.range, self.publish_unit = write, range, publish_unit
        self.flags, self.absent = flags, absent

    @property
    def published_unit(self) -> str | None:
        """The unit a value of this register is published in (Homie ``$unit``)."""
        return self.publish_unit or self.unit

    @property
    def ignored(self) -> bool:
        """A continuation word, skipped when printing (docs/protocol.md#printing)."""
        return self.part_of is not None

    def decode(self, words: Words) -> Value | None:
        """This register's value from the words read; None when a word it needs is missing."""
        return _DECODERS[self.converter](self, words)


def _word(convert: Callable[[int], Value | None]) -> Callable[[Register, Words], Value | None]:
    def run(register: Register, words: Words) -> Value | None:
        raw = words.get(register.address)
        return None if raw is None else convert(raw)

    return run


def _pair(convert: Callable[[int, int], int]) -> Callable[[Register, Words], Value | None]:
    def run(register: Register, words: Words) -> Value | None:
        # docs/protocol.md#bugs-decoding: a missing low word is "no value", never a crash.
        high, low = words.get(register.address), words.get(register.address + 1)
        return None if high is None or low is None else convert(high, low)

    return run


def _string(register: Register, words: Words) -> Value | None:
    raws = [words.get(a) for a in range(register.address, register.address + register.length)]
    return None if None in raws else string([r for r in raws if r is not None])


def _enum(register: Register, words: Words) -> Value | None:
    raw = words.get(register.address)
    table = register.table or ""
    return None if raw is None else enum(raw, ENUMS[table], _ENUM_DEFAULTS[table])


def _flags(register: Register, words: Words) -> Value | None:
    raw = words.get(register.address)
    return None if raw is None else flags(raw, FLAGS[register.table or ""])


def _zone2(register: Register, words: Words) -> Value | None:
    raw = words.get(register.address)
    return None if raw is None else zone_configuration2(raw, words.get(register.address - 1))


_DECODERS: Final[Mapping[str, Callable[[Register, Words], Value | None]]] = {
    "uint16": _word(uint16),
    "int16": _word(int16),
    "tenths": _word(tenths),
    "signed_tenths": _word(signed_tenths),
    "hundredths": _word(hundredths),
    "uint32": _pair(uint32),
    "int32": _pair(int32),
    "string": _string,
    "flags": _flags,
    "enum": _enum,
    "boolean": _word(boolean),
    "fault": _word(fault),
    "last_lockout": _word(last_lockout),
    "thermostat_override": _word(thermostat_override),
    "dip_switches": _word(dip_switches),
    "status": _word(status),
    "axb_inputs": _word(axb_inputs),
    "manual_operation": _word(manual_operation),
    "vs_manual_control": _word(vs_manual_control),
    "iz2_demand": _word(iz2_demand),
    "iz2_fan_desired": _word(iz2_fan_desired),
    "humidistat_targets": _word(humidistat_targets),
    "thermostat_configuration2": _word(thermostat_configuration2),
    "zone_configuration1": _word(zone_configuration1),
    "zone_configuration2": _zone2,
    "zone_configuration3": _word(zone_configuration3),
}


# ---------------------------------------------------------------------------------------------
# Loading data/registers.json: every key of an entry is checked when it is built (the unit tests
# build them all, so a typo in the packaged map fails the tests, not a poll)


def _load() -> dict[str, Any]:
    # Beside this file (wheel and checkout alike); importlib.resources would cost a fetch more
    # import time (zipfile, tempfile, shutil) than reading the map itself (issue 15).
    text = (Path(__file__).parent / "data" / "registers.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _int_keys(raw: Mapping[str, Any]) -> dict[int, Any]:
    return {int(k, 0): v for k, v in raw.items()}


def _write_rule(raw: Mapping[str, Any]) -> WriteRule:
    parts = tuple(
        WriteField(
            name=p["name"], mask=p["mask"], low=p["low"], high=p["high"], also=tuple(p.get("also", ()))
        )
        for p in raw.get("fields", ())
    )
    known = {"low", "high", "scale", "step", "signed", "enum", "special", "fields", "dangerous"}
    if unexpected := set(raw) - known:
        raise ValueError(f"unknown write rule keys {sorted(unexpected)}")
    return WriteRule(
        low=raw["low"],
        high=raw["high"],
        scale=raw.get("scale", 1),
        step=raw.get("step", 1),
        signed=raw.get("signed", False),
        enum=raw.get("enum"),
        special=MappingProxyType(_int_keys(raw.get("special", {}))),
        fields=parts,
        dangerous=raw.get("dangerous", False),
    )


def _register(raw: Mapping[str, Any]) -> Register:
    known = {"address", "name", "converter", "length", "unit", "format", "table", "part_of", "write"}
    known |= {"range", "publish_unit", "flags", "absent"}
    if unexpected := set(raw) - known:
        raise ValueError(f"register {raw['address']}: unknown keys {sorted(unexpected)}")
    limits = raw.get("range")
    register = Register(
        address=raw["address"],
        name=raw["name"],
        converter=raw.get("converter", "uint16"),
        length=raw.get("length", 1),
        unit=raw.get("unit"),
        format=raw.get("format"),
        table=raw.get("table"),
        part_of=raw.get("part_of"),
        write=_write_rule(raw["write"]) if "write" in raw else None,
        range=None if limits is None else (limits[0], limits[1]),
        publish_unit=raw.get("publish_unit"),
        flags=raw.get("flags"),
        absent=raw.get("absent"),
    )
    if register.converter not in _DECODERS:
        raise ValueError(f"register {register.address}: unknown converter {register.converter!r}")
    tables = ENUMS if register.converter == "enum" else FLAGS if register.converter == "flags" else None
    if tables is not None and register.table not in tables:
        raise ValueError(f"register {register.address}: unknown table {register.table!r}")
    if register.flags is not None and register.flags not in FLAGS:
        raise ValueError(f"register {register.address}: unknown flags table {register.flags!r}")
    if register.write and register.write.enum and register.write.enum not in ENUMS:
        raise ValueError(f"register {register.address}: unknown write enum {register.write.enum!r}")
    return register


_DATA: Final = _load()

ENUMS: Final[Mapping[str, Mapping[int, str]]] = MappingProxyType(
    {name: MappingProxyType(_int_keys(t["values"])) for name, t in _DATA["enums"].items()}
)
"""Enumerations by name (docs/protocol.md#conversions); values not listed decode as the table's default,
usually None."""
_ENUM_DEFAULTS: Final[Mapping[str, str | None]] = {n: t.get("default") for n, t in _DATA["enums"].items()}
FLAGS: Final[Mapping[str, Mapping[int, str]]] = MappingProxyType(
    {name: MappingProxyType(_int_keys(t)) for name, t in _DATA["flags"].items()}
)
"""Flag tables by name (docs/protocol.md#conversions): bit mask -> name, in decoding order."""

HEATING_MODE: Final = ENUMS["HEATING_MODE"]
FAN_MODE: Final = ENUMS["FAN_MODE"]
SMARTGRID_ACTION: Final = ENUMS["SMARTGRID_ACTION"]
HA_ALARM: Final = ENUMS["HA_ALARM"]
COMPONENT_STATUS: Final = ENUMS["COMPONENT_STATUS"]
BRINE_TYPE: Final = ENUMS["BRINE_TYPE"]
FLOW_METER_TYPE: Final = ENUMS["FLOW_METER_TYPE"]
BLOWER_TYPE: Final = ENUMS["BLOWER_TYPE"]
ENERGY_MONITOR_TYPE: Final = ENUMS["ENERGY_MONITOR_TYPE"]
PUMP_TYPE: Final = ENUMS["PUMP_TYPE"]
PHASE_TYPE: Final = ENUMS["PHASE_TYPE"]
ACCESSORY_RELAY_SETTINGS: Final = ENUMS["ACCESSORY_RELAY_SETTINGS"]
CALLS: Final = ENUMS["CALLS"]
TRIGGER: Final = ENUMS["TRIGGER"]

SYSTEM_OUTPUTS: Final = FLAGS["SYSTEM_OUTPUTS"]
SYSTEM_INPUTS: Final = FLAGS["SYSTEM_INPUTS"]
VS_DRIVE_DERATE: Final = FLAGS["VS_DRIVE_DERATE"]
VS_SAFE_MODE: Final = FLAGS["VS_SAFE_MODE"]
VS_ALARM1: Final = FLAGS["VS_ALARM1"]
VS_ALARM2: Final = FLAGS["VS_ALARM2"]
VS_EEV2: Final = FLAGS["VS_EEV2"]
AXB_OUTPUTS: Final = FLAGS["AXB_OUTPUTS"]
HUMIDIFIER_SETTINGS: Final = FLAGS["HUMIDIFIER_SETTINGS"]

ZONE_SIZES: Final[Mapping[int, int]] = MappingProxyType(_int_keys(_DATA["numeric_tables"]["ZONE_SIZES"]))
IZ2_FAN_DESIRED: Final[Mapping[int, int]] = MappingProxyType(
    _int_keys(_DATA["numeric_tables"]["IZ2_FAN_DESIRED"])
)

OPTIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {name: tuple(values) for name, values in _DATA["options"].items()}
)
"""The names a decoded field or a value derived from registers takes, in publishing order
(CURRENT_MODE, PRESSURE_SWITCH, HUMIDISTAT_MODE, ZONE_PRIORITY)."""
FAULT_GROUPS: Final[Mapping[str, frozenset[int]]] = MappingProxyType(
    {name: frozenset(codes) for name, codes in _DATA["fault_groups"].items()}
)
"""Fault codes by what they mean: ``derated`` (the VS drive runs slower), ``safe_mode``."""
SENSOR_LIMITS: Final[Mapping[str, tuple[float, float]]] = MappingProxyType(
    {unit: (low, high) for unit, (low, high) in _DATA["sensor_limits"].items()}
)
"""Per unit, the readings a fitted sensor gives: beyond them the sensor is missing (±999 °F)."""

FAULT_NAMES: Final[Mapping[int, str]] = MappingProxyType(_int_keys(_DATA["faults"]))
"""Fault code -> name (docs/protocol.md#faults); register 600 + n counts fault n."""


class _RegisterMap(Mapping[int, Register]):
    """The map's entries by address, each built into a :class:`Register` (and checked) when first
    looked up: a fetch of three registers builds three records, not all of them at every start
    (issue 15). tests/unit/test_registers.py builds and checks every entry of the packaged map."""

    __slots__ = ("_built", "_entries")

    def __init__(self, entries: Sequence[Mapping[str, Any]]) -> None:
        self._entries: dict[int, Mapping[str, Any]] = {e["address"]: e for e in entries}
        self._built: dict[int, Register] = {}

    def __getitem__(self, address: int) -> Register:
        register = self._built.get(address)
        if register is None:
            # Two threads may build the same entry at once: equal records, either one kept.
            register = self._built[address] = _register(self._entries[address])
        return register

    def __contains__(self, address: object) -> bool:
        return address in self._entries

    def __iter__(self) -> Iterator[int]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


REGISTERS: Final[Mapping[int, Register]] = _RegisterMap(_DATA["registers"])
"""Every register of the map by address, continuation words included (with name None)."""

KNOWN_ADDRESSES: Final[frozenset[int]] = frozenset(REGISTERS)
"""The ``known`` query: every register the map names, and the continuation words of its values."""

REGISTER_RANGES: Final[tuple[tuple[int, int], ...]] = tuple((a, b) for a, b in _DATA["ranges"])
"""The ``valid`` query: 72 inclusive (first, last) ranges the ABC answers (docs/protocol.md#valid-ranges)."""

BREAKPOINTS: Final[tuple[int, ...]] = tuple(_DATA["breakpoints"])
"""Addresses a read never runs across (docs/protocol.md#valid-ranges)."""

MULTIWORD: Final[tuple[tuple[int, int], ...]] = tuple(
    sorted((e["address"], e["length"]) for e in _DATA["registers"] if e.get("length", 1) > 1)
)
"""(address, length) of every register whose value takes more than one word (strings, 32-bit)."""


# ---------------------------------------------------------------------------------------------
# Public queries


def is_known(address: int) -> bool:
    """Whether the map knows the address (names it, or it continues a named value)."""
    return address in KNOWN_ADDRESSES


def name_of(address: int) -> str | None:
    """The register's printed name; None for unknown addresses and continuation words."""
    register = REGISTERS.get(address)
    return None if register is None else register.name


def decode(address: int, words: Words) -> Value | None:
    """The decoded value of one register from the raw words read.

    None when the register was not read, when a neighbour it needs is missing, when a sensor
    reads "not present" (0xD8F1), or when an enumeration has no name for the raw value. An
    unknown register decodes as its raw word.
    """
    register = REGISTERS.get(address)
    if register is None:
        return words.get(address)
    return register.decode(words)


def writable(address: int, *, dangerous: bool = False) -> WriteRule | None:
    """The write rule of a register, or None if it must not be written.

    Adding or removing components (800..827 := 2 or 3) reconfigures the board, so those rules
    count only with ``dangerous=True``.
    """
    register = REGISTERS.get(address)
    rule = None if register is None else register.write
    if rule is None or (rule.dangerous and not dangerous):
        return None
    return rule


def validate_raw_write(address: int, raw: int, *, dangerous: bool = False) -> None:
    """Refuse a write the map does not allow: WriteRefused names the register and the reason."""
    label = f"register {address} ({name_of(address) or '???'})"
    rule = writable(address, dangerous=dangerous)
    if rule is None:
        register = REGISTERS.get(address)
        if register is not None and register.write is not None:
            raise WriteRefused(f"{label} reconfigures the board; refused unless dangerous writes are allowed")
        raise WriteRefused(f"{label} is not writable")
    if reason := rule.problem(raw):
        raise WriteRefused(f"{label}: {reason}")


def register_from(entry: Mapping[str, Any]) -> Register:
    """A Register from one entry of the map's ``registers`` list, checked as the map is at
    import (unknown keys, converters and tables fail)."""
    return _register(entry)


def enum_name(table: str, raw: int) -> str | None:
    """The name enumeration ``table`` gives ``raw``, with the table's default (e.g. "Other")."""
    return enum(raw, ENUMS[table], _ENUM_DEFAULTS[table])


def flag_mask(table: str, name: str) -> int:
    """The bit mask of the flag ``name`` in the FLAGS ``table``; KeyError for an unknown name."""
    for bits, flag in FLAGS[table].items():
        if flag == name:
            return bits
    raise KeyError(f"{table} has no flag {name!r}")


def flag_table(address: int) -> str:
    """The FLAGS table that names the register's bits (its ``table`` for a flags register)."""
    register = REGISTERS[address]
    table = register.flags or (register.table if register.converter == "flags" else None)
    if table is None:
        raise KeyError(f"register {address} has no flag table in the register map")
    return table


def is_set(address: int, name: str, words: Words) -> bool | None:
    """Whether the register's flag ``name`` (as its flag table names it) is set; None when the
    register was not read."""
    raw = words.get(address)
    return None if raw is None else bool(raw & flag_mask(flag_table(address), name))


def reading(address: int, words: Words) -> Value | None:
    """:func:`decode` as a consumer of values wants it: also None when the word is the register's
    ``absent`` reading (a fault counter the unit does not keep reads 0xFFFF)."""
    register = REGISTERS.get(address)
    if register is not None and register.absent is not None and words.get(address) == register.absent:
        return None
    return decode(address, words)


def field_of(address: int, key: str, words: Words) -> Field:
    """One entry of a composite register's decoded value (``zone_priority`` of 31200); None when
    the register, a neighbour it needs, or the entry is missing."""
    value = decode(address, words)
    return value.get(key) if isinstance(value, Mapping) else None


def sensor_reading(address: int, words: Words) -> float | None:
    """A sensor's decoded reading; None when it reads "not present" or beyond the map's
    ``sensor_limits`` for its unit (a sensor that is not fitted, docs/architecture.md#detection)."""
    value = reading(address, words)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    unit = REGISTERS[address].unit
    limits = SENSOR_LIMITS.get(unit) if unit is not None else None
    if limits is not None and not limits[0] <= value <= limits[1]:
        return None
    return float(value)
