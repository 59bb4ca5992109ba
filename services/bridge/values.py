"""Value functions of the description table: raw words → a property's value, where None means
unknown (the property is left out of this update); plus the register 30/31 bits and the unit's
current mode, which several nodes read."""

from __future__ import annotations

from collections.abc import Callable

from aurora import registers as regs

from .spec import Value, Words

ValueFn = Callable[[Words], Value | None]


def decoded(address: int) -> ValueFn:
    """The register map's decoded value (scaling, sign, 32-bit pairs, "not present")."""

    def value(words: Words) -> Value | None:
        result = regs.decode(address, words)
        return result if isinstance(result, bool | int | float | str) else None

    return value


def temperature(address: int) -> ValueFn:
    """Signed tenths °F; a reading beyond ±999 is a missing sensor (docs/architecture.md#detection uses the
    same test)."""

    def value(words: Words) -> Value | None:
        word = words[address]
        if word == regs.NOT_PRESENT:
            return None
        degrees = regs.int16(word) / 10
        return degrees if -999 <= degrees <= 999 else None

    return value


def raw(address: int) -> ValueFn:
    """The raw word as it is."""
    return lambda w: w[address]


def bit(address: int, mask: int) -> ValueFn:
    """Whether any bit of ``mask`` is set."""
    return lambda w: bool(w[address] & mask)


def u32(address: int) -> ValueFn:
    """Both words, high first: the original read only the low word of 1150-53
    (docs/architecture.md#original-bridge C1)."""
    return lambda w: regs.uint32(w[address], w[address + 1])


def i32(address: int) -> ValueFn:
    """Both words, high first, signed."""
    return lambda w: regs.int32(w[address], w[address + 1])


# Reg 30 system outputs and reg 31 inputs (docs/architecture.md#value-path)
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
    """docs/architecture.md#value-path current_mode, first matching rule (362 is read only for VS drives)."""
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
