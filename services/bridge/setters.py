"""Payload parsers and register encoders for the description table's setters: a bad payload
raises UsageError before anything is written.

Ranges, steps and enum options come from the register map's write rules
(``aurora/data/registers.json``): a number is rounded to the register's step by
:meth:`aurora.registers.WriteRule.nearest`, the one rounding rule of every write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence

from aurora import registers as regs
from aurora.errors import UsageError, WriteRefused

from .spec import Setter, Value, Words

# Homie 4 numbers: optional sign, digits with an optional fraction, optional exponent (1e2, 7.0E1)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def rule_of(address: int) -> regs.WriteRule:
    """The register map's write rule of a register the bridge writes (a bug if it has none)."""
    rule = regs.writable(address)
    if rule is None:
        raise ValueError(f"register {address} has no write rule in the register map")
    return rule


def field_rule(address: int, name: str) -> regs.WriteRule:
    """A packed part of a register's word (the humidity targets' high and low byte) as a rule of
    its own, with the range the map gives that part."""
    for part in rule_of(address).fields:
        if part.name == name:
            return regs.WriteRule(low=part.low, high=part.high)
    raise ValueError(f"register {address} has no field {name!r} in the register map")


def range_format(rule: regs.WriteRule) -> str:
    """The Homie ``$format`` ``low:high`` of a rule's range, in the register's unit."""
    return f"{rule.low:g}:{rule.high:g}"


def parse_number(rule: regs.WriteRule, *, integer: bool = False) -> Callable[[str], Value]:
    """Any finite number: rounded to the rule's step, refused outside its range. The value is
    what the register will store (an ``int`` for integer properties)."""

    def parse(payload: str) -> Value:
        if not _NUMBER.fullmatch(payload):
            raise UsageError(f"{payload!r} is not a number")
        value = float(payload)  # 1e400 is inf: nearest() refuses it
        try:
            stored: float = rule.value_of(rule.nearest(value))
        except WriteRefused:
            raise UsageError(f"{payload} is outside {rule.low:g}..{rule.high:g}") from None
        return round(stored) if integer else stored

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


def number_setter(address: int, *, reads: Sequence[int], integer: bool = False) -> Setter:
    """Writes a number to ``address`` as its write rule stores it (scaled, rounded to its step)."""
    rule = rule_of(address)
    return Setter(
        parse_number(rule, integer=integer),
        lambda value, words: [(address, rule.nearest(float(value)))],
        frozenset(reads),
        rule=rule,
    )


def enum_options(address: int, *, exclude: Collection[str] = ()) -> dict[str, int]:
    """Option name → raw word, from the register's write rule and its enum in the map."""
    rule = rule_of(address)
    if rule.enum is None:
        raise ValueError(f"register {address} has no enum in the register map")
    return {name: raw for raw, name in regs.ENUMS[rule.enum].items() if name not in exclude}


def step_options(address: int, *, exclude: Collection[int] = ()) -> tuple[str, ...]:
    """Every value of an integer rule's range in its steps (fan minutes 0, 5 … 25), as text."""
    rule = rule_of(address)
    values = range(int(rule.low), int(rule.high) + 1, rule.step)
    return tuple(str(v) for v in values if v not in exclude)


def enum_setter(address: int, table: Mapping[str, int], *, reads: Sequence[int]) -> Setter:
    """Writes the raw word ``table`` gives the option (checked against the map on writing)."""
    return Setter(
        parse_enum(list(table)),
        lambda value, words: [(address, table[str(value)])],
        frozenset(reads),
        rule=rule_of(address),
    )


def bool_setter(address: int, *, reads: Sequence[int]) -> Setter:
    """Writes a boolean register: the rule's high word for true, its low word for false (1/0)."""
    rule = rule_of(address)
    return Setter(
        parse_bool, lambda value, words: [(address, rule.high if value else rule.low)], frozenset(reads)
    )


def steps_setter(address: int, options: Sequence[str], *, reads: Sequence[int]) -> Setter:
    """Writes one of a stepped rule's values offered as a choice (fan minutes 0, 5 … 25)."""
    rule = rule_of(address)
    return Setter(
        parse_enum(options),
        lambda value, words: [(address, rule.nearest(float(str(value))))],
        frozenset(reads),
        rule=rule,
    )


def command_setter(address: int, option: str, *, reads: Collection[int]) -> Setter:
    """A button: the one payload ``option`` writes the one word the register's rule allows
    (47 := 0x5555 clears the fault history)."""
    rule = rule_of(address)
    if rule.low != rule.high:
        raise ValueError(f"register {address} takes more than one word; it is not a command")
    return Setter(parse_enum((option,)), lambda value, words: [(address, rule.low)], frozenset(reads))


def special_word(address: int, name: str) -> int:
    """The raw word the register's write rule names ``name`` outside its range (323's 0x7fff "off")."""
    for raw, special in rule_of(address).special.items():
        if special == name:
            return raw
    raise ValueError(f"register {address} has no special word {name!r} in the register map")


def need(words: Words, address: int, what: str) -> int:
    """A raw word a read-modify-write needs; refused until a poll has read it."""
    if address not in words:
        raise UsageError(f"{what} (register {address}) has not been read yet; try again after the next poll")
    return words[address]
