"""Payload parsers and register encoders for the description table's setters: a bad payload
raises UsageError before anything is written."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence

from aurora.errors import UsageError

from .spec import Setter, Value, Words

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def parse_int(low: int, high: int, step: int = 1) -> Callable[[str], Value]:
    """An integer in low..high, a multiple of ``step`` counted from ``low``."""

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


def parse_float(low: float, high: float, step: float) -> Callable[[str], Value]:
    """A finite number in low..high, a multiple of ``step``, rounded to it."""

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


def parse_enum(options: Sequence[str]) -> Callable[[str], Value]:
    """One of ``options``, exactly."""

    def parse(payload: str) -> Value:
        if payload not in options:
            raise UsageError(f"{payload!r} is not one of {','.join(options)}")
        return payload

    return parse


def parse_bool(payload: str) -> Value:
    """Homie's ``true`` or ``false``."""
    if payload not in ("true", "false"):
        raise UsageError(f"{payload!r} is not true or false")
    return payload == "true"


def _write_scaled(address: int, scale: int = 1) -> Callable[[Value, Words], list[tuple[int, int]]]:
    return lambda value, words: [(address, round(float(value) * scale))]


def _write_enum(address: int, table: Mapping[str, int]) -> Callable[[Value, Words], list[tuple[int, int]]]:
    return lambda value, words: [(address, table[str(value)])]


def int_setter(address: int, low: int, high: int, *, reads: Sequence[int], step: int = 1) -> Setter:
    """Writes the integer as it is."""
    return Setter(parse_int(low, high, step), _write_scaled(address), frozenset(reads))


def float_setter(address: int, low: float, high: float, step: float, *, reads: Sequence[int]) -> Setter:
    """Writes the number in tenths."""
    return Setter(parse_float(low, high, step), _write_scaled(address, 10), frozenset(reads))


def enum_setter(address: int, table: Mapping[str, int], *, reads: Sequence[int]) -> Setter:
    """Writes the raw word ``table`` gives the option."""
    return Setter(parse_enum(list(table)), _write_enum(address, table), frozenset(reads))


def need(words: Words, address: int, what: str) -> int:
    """A raw word a read-modify-write needs; refused until a poll has read it."""
    if address not in words:
        raise UsageError(f"{what} (register {address}) has not been read yet; try again after the next poll")
    return words[address]
