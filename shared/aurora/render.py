"""Text forms of raw registers: aurora_fetch's ``Name (N): value`` lines and its YAML dump
(docs/protocol.md#printing).

Composite values print as Ruby ≥ 3.4 ``Hash#inspect``, ``{lps: :closed, unknown: "0x1800"}``: the
original's form changed with the Ruby version (docs/protocol.md#bugs-decoding), and this is our one stable
form: names as ``:symbols``, ``unknown`` bits as a quoted hex string, None as ``nil``. Register 25
prints ``E5``, or ``E5 (locked out)`` when bit 15 is set, instead of the original's ``E32773``
(docs/protocol.md#bugs-decoding).
"""

from __future__ import annotations

from collections.abc import Mapping

from . import registers
from .registers import Field, Register, Value, Words


def _inspect(key: str, field: Field) -> str:
    """One composite entry as Ruby ≥ 3.4 inspect shows it."""
    if field is None:
        return "nil"
    if isinstance(field, bool):
        return "true" if field else "false"
    if isinstance(field, int):
        # The original builds ``unknown`` as the string "0x%04x" (docs/protocol.md#conversions); we keep the
        # int.
        return f'"0x{field:04x}"' if key == "unknown" else str(field)
    return f":{field}"


def format_value(value: Value | None) -> str:
    """A decoded value as the original prints it with no format (docs/protocol.md#printing): None as empty,
    flag lists joined with ``", "``, composites in Ruby ≥ 3.4 ``Hash#inspect`` form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # Ruby Float#to_s: shortest round trip, at least one decimal (docs/protocol.md#printing)
        return repr(value)
    if isinstance(value, tuple):
        return ", ".join(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_inspect(k, v)}" for k, v in value.items()) + "}"
    return str(value)


def _value(register: Register, words: Words, raw: int) -> Value | None:
    """The value to print: the decoded one, except that the "no sensor" word prints as the
    original prints it (``-999.9°F``, ``5553.7 psi``): a dump shows the raw truth, while the
    decoder (and so the bridge) reads it as no value. docs/differences.md says why."""
    if raw == registers.NOT_PRESENT and register.converter in ("tenths", "signed_tenths"):
        return (registers.int16(raw) if register.converter == "signed_tenths" else raw) / 10
    return register.decode(words)


def _text(register: Register, value: Value | None, raw: int) -> str:
    if register.format and isinstance(value, int | float) and not isinstance(value, bool):
        text = register.format % value
        if register.converter == "fault" and raw & registers.LOCKED_OUT:
            text += " (locked out)"
        return text
    return format_value(value)


def render_line(address: int, words: Words) -> str | None:
    """``Name (N): value`` for one register, as aurora_fetch prints it (docs/protocol.md#printing).

    An unknown register prints ``??? (N): decimal (0x hex)``. None when the register was not read
    or is the continuation word of a string or 32-bit value; a value that cannot be decoded (a
    missing low word) prints empty after the colon; a sensor that is not fitted (0xD8F1) prints
    as the original prints it, ``-999.9°F``.
    """
    raw = words.get(address)
    if raw is None:
        return None
    register = registers.REGISTERS.get(address)
    if register is None:
        return f"??? ({address}): {raw} (0x{raw:04x})"
    if register.name is None:
        return None
    return f"{register.name} ({address}): {_text(register, _value(register, words, raw), raw)}"


def render_lines(words: Words) -> list[str]:
    """The printable lines of every register read, in the map's order."""
    return [line for address in words if (line := render_line(address, words)) is not None]


def render_yaml(words: Words) -> str:
    """The raw words as Ruby Psych's ``YAML.dump`` writes an int -> int map, in map order
    (docs/protocol.md#printing).

    This is the dump format aurora_fetch ``--yaml`` writes and the simulator reads.
    """
    if not words:
        return "--- {}\n"
    return "---\n" + "".join(f"{address}: {raw}\n" for address, raw in words.items())
