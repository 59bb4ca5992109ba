"""The register map and its decoders (docs/protocol.md#register-map), with the decode bugs of
docs/protocol.md#bugs-decoding fixed."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from aurora import registers
from aurora.errors import WriteRefused
from aurora.registers import decode, name_of, validate_raw_write, writable

from tests.support.data import JFCLICHE_FLAT, SPEC_CONSTANTS, SPEC_REGISTERS


def spec_registers() -> dict[int, dict[str, Any]]:
    entries = json.loads((SPEC_REGISTERS).read_text(encoding="utf-8"))
    return {e["address"]: e for e in entries}


def spec_constants() -> dict[str, Any]:
    constants: dict[str, Any] = json.loads((SPEC_CONSTANTS).read_text(encoding="utf-8"))
    return constants


@pytest.fixture(scope="module")
def scan() -> dict[int, int]:
    """A real unit's full scan: ABC 3.06 ABCSTD, AXB 2.03, AWL 2.01."""
    words: dict[int, int] = yaml.safe_load((JFCLICHE_FLAT).read_text())
    return words


def ascii_words(text: str, length: int) -> dict[int, int]:
    padded = text.encode("latin-1").ljust(2 * length, b"\0")
    return {i: padded[2 * i] << 8 | padded[2 * i + 1] for i in range(length)}


def at(address: int, words: dict[int, int]) -> dict[int, int]:
    return {address + offset: raw for offset, raw in words.items()}


# --- the map is the spec's map, except where docs/protocol.md#bugs-decoding says the original was wrong
# -----------------

# Registers whose decoding deliberately differs from the original (docs/protocol.md#bugs-decoding).
FIXED = {21231, 31447, 809, 810, 817, 820}


def test_known_addresses_are_the_keys_of_the_original_register_names() -> None:
    """`known` must query the same 476 registers as the original, continuation words included
    (docs/protocol.md#register-map)."""
    expected = {a for a, e in spec_registers().items() if e["in_register_names"]}
    assert 476 == len(expected)
    assert expected == registers.KNOWN_ADDRESSES
    assert all(registers.is_known(a) for a in expected)


def test_every_named_register_has_the_original_name() -> None:
    """Printed names are what users grep for; only Dealer Email changes, from hidden to shown
    (docs/protocol.md#bugs-decoding)."""
    spec = spec_registers()
    expected = {a: e["name"] for a, e in spec.items() if e["in_register_names"] and not e["ignored"]}
    expected[31447] = "Dealer Email"
    actual = {a: r.name for a, r in registers.REGISTERS.items() if r.name is not None}
    assert expected == actual


def test_continuation_words_have_no_name_and_point_at_their_owner() -> None:
    """Continuation words are read with `known` but never printed (docs/protocol.md#printing)."""
    spec = spec_registers()
    expected = {a: e["part_of"] for a, e in spec.items() if e["ignored"] and a != 31447}
    actual = {a: r.part_of for a, r in registers.REGISTERS.items() if r.ignored}
    assert expected == actual
    assert all(name_of(a) is None for a in actual)


def test_print_formats_and_units_are_the_originals() -> None:
    """REGISTER_FORMATS carried over exactly (docs/protocol.md#printing)."""
    spec = spec_registers()
    for address, register in registers.REGISTERS.items():
        if register.name is not None:
            assert (spec[address]["format"], spec[address]["unit"]) == (register.format, register.unit)


def test_scalar_conversions_are_the_originals_except_the_documented_fixes() -> None:
    """tenths, hundredths, 32-bit and string kinds carry over (docs/protocol.md#conversions); FIXED lists the
    deviations."""
    spec = spec_registers()
    simple = {"uint16", "int16", "tenths", "signed_tenths", "hundredths", "uint32", "int32", "string"}
    for address, register in registers.REGISTERS.items():
        if register.name is None or address in FIXED:
            continue
        kind = spec[address]["kind"]
        if kind in simple:
            assert (kind, spec[address]["length"]) == (register.converter, register.length), address


def test_the_valid_ranges_and_breakpoints_are_exact() -> None:
    """docs/protocol.md#valid-ranges: 72 inclusive ranges, 3065 registers; docs/protocol.md#valid-ranges:
    breakpoints 12100 and 12500."""
    constants = spec_constants()
    assert [tuple(r) for r in constants["REGISTER_RANGES"]] == list(registers.REGISTER_RANGES)
    assert 72 == len(registers.REGISTER_RANGES)
    assert 3065 == sum(b - a + 1 for a, b in registers.REGISTER_RANGES)
    assert (12100, 12500) == registers.BREAKPOINTS


def test_fault_names_and_tables_are_the_originals() -> None:
    """docs/protocol.md#conversions, docs/protocol.md#faults: the same names for the same codes and bits."""
    constants = spec_constants()
    assert {int(k): v for k, v in constants["FAULTS"].items()} == dict(registers.FAULT_NAMES)
    for name in ("HEATING_MODE", "FAN_MODE", "COMPONENT_STATUS", "PUMP_TYPE", "CALLS"):
        expected = {int(k): v for k, v in constants[name].items() if k != "default"}
        assert expected == dict(registers.ENUMS[name])
    for name in ("SYSTEM_OUTPUTS", "SYSTEM_INPUTS", "VS_ALARM2", "AXB_OUTPUTS", "HUMIDIFIER_SETTINGS"):
        assert [(int(k, 16), v) for k, v in constants[name].items()] == list(registers.FLAGS[name].items())


def test_every_entry_of_the_packaged_map_builds_and_passes_its_checks() -> None:
    """Entries are built on first lookup (issue 15): this builds each one, so a typo in
    data/registers.json fails here, not mid-poll."""
    entries = json.loads((Path(registers.__file__).parent / "data" / "registers.json").read_text("utf-8"))
    built = [registers.register_from(e) for e in entries["registers"]]
    assert len(built) == len(registers.REGISTERS) == len(registers.KNOWN_ADDRESSES)
    assert {r.address: r for r in built} == dict(registers.REGISTERS)
    assert sorted(registers.MULTIWORD) == sorted((r.address, r.length) for r in built if r.length > 1)
    assert (105, 5) in registers.MULTIWORD  # the serial number, a string of 5 words


def test_a_lookup_builds_only_the_register_asked_for() -> None:
    """A fresh map builds nothing to answer ``in`` or to be iterated, and one record per lookup,
    the same record each time."""
    fresh = registers._RegisterMap(registers._DATA["registers"])
    assert 745 in fresh and 9999 not in fresh and 745 in list(fresh)
    assert 0 == len(fresh._built)
    assert fresh[745] is fresh.get(745) and "Heating Set Point" == fresh[745].name
    assert [745] == list(fresh._built)
    assert fresh.get(9999) is None
    with pytest.raises(KeyError):
        fresh[9999]


def test_an_unknown_converter_name_fails_when_the_entry_is_built() -> None:
    """A typo in the data file fails when its entry is built (the test above builds them all)."""
    with pytest.raises(ValueError, match="unknown converter 'tenth'"):
        registers._register({"address": 1, "name": "x", "converter": "tenth"})
    with pytest.raises(ValueError, match="unknown table"):
        registers._register({"address": 1, "name": "x", "converter": "enum", "table": "NOPE"})


# --- a real unit ------------------------------------------------------------------------------


def test_a_real_scan_decodes_its_identity(scan: dict[int, int]) -> None:
    """The jfcliche scan is an ABCSTD 3.06 with AXB 2.03 and AWL 2.01 (dumps/README)."""
    assert "ABCSTD" == decode(88, scan)
    assert 3.06 == decode(2, scan)
    assert "NEW050D10RCSS0DN" == decode(92, scan)
    assert "240501728" == decode(105, scan)
    assert ("active", 2.03) == (decode(806, scan), decode(807, scan))
    assert ("active", 2.01) == (decode(827, scan), decode(828, scan))
    assert "Energy Monitor" == decode(412, scan)


def test_every_known_register_of_a_real_scan_decodes(scan: dict[int, int]) -> None:
    """No converter may crash on real data; present words decode to a value or a documented None."""
    values = {a: decode(a, scan) for a in sorted(registers.KNOWN_ADDRESSES)}
    nones = {a for a, v in values.items() if v is None and a in scan}
    # 26: no lockout; 1114, 1119: not fitted (0xD8F1); 1104 and the rest decode to empty flag lists.
    assert {26, 1114, 1119} == nones


def test_a_real_scans_composites_decode(scan: dict[int, int]) -> None:
    """Status 0x0180, DIP switches 0x00fc, AXB inputs 0x01f0 of the scan (docs/protocol.md#conversions)."""
    assert {"lps": "closed", "hps": "closed"} == decode(31, scan)
    assert {
        "fp1": 15,
        "fp2": "off",
        "reversing_valve": "o",
        "accessory_relay": "blower",
        "compressor": 1,
        "lockout": "continuous",
        "dehumidifier_reheat": "dehumidifier",
    } == decode(33, scan)
    assert "manual" == decode(4, scan)  # 0x7fff
    assert {
        "smart_grid": False,
        "ha1": False,
        "ha2": False,
        "pump_slave": False,
        "mb_address": 3,
        "sw1_2": True,
        "sw1_3": True,
        "accessory_relay2": "blower",
    } == decode(1103, scan)


# --- conversions, raw words with the decoded value as a comment ----------------------------------

SCALARS = [
    (1111, {1111: 0x01F6}, 50.2),  # signed tenths °F
    (1111, {1111: 0xFF9C}, -10.0),  # int16 -100
    (1111, {1111: 0xD8F1}, None),  # -999.9: sensor not present
    (1119, {1119: 0xD8F1}, None),  # unsigned tenths, same sentinel
    (401, {401: 1300}, 130.0),  # DHW set point
    (2, {2: 306}, 3.06),  # hundredths
    (346, {346: 0xFFF6}, -10),  # int16 %
    (1146, {1146: 0x0001, 1147: 0x86A0}, 100000),  # uint32, high word first
    (1154, {1154: 0xFFFF, 1155: 0xFC18}, -1000),  # int32
    (25, {25: 5}, 5),  # current fault
    (26, {26: 0x8013}, 19),  # last lockout E19
    (26, {26: 0x0013}, None),  # bit 15 clear: no lockout
    (30, {30: 0x024C}, ("rv", "blower", "accessory", "0x0040")),
    (32, {32: 0x7FFF}, ("off",)),
    (32, {32: 0x0011}, ("y1", "g")),
    (362, {362: 7}, True),
    (402, {402: 485}, "Antifreeze"),
    (402, {402: 0}, "Water"),  # default
    (406, {406: 9}, None),  # no name, no default
    (408, {408: 0}, "closed"),
    (408, {408: 1}, "open"),
    (565, {565: 3}, 55),  # IZ2 blower step 3 = 55 %
    (565, {565: 80}, 80),  # passed through
    (323, {323: 0x7FFF}, "off"),
    (323, {323: 60}, 60),
    (12606, {12606: 3}, "heat"),
    (12309, {12309: 0xC000}, ("auto_dehumidification", "auto_humidification")),
]


@pytest.mark.parametrize(("address", "words", "expected"), SCALARS)
def test_raw_words_decode_as_the_spec_says(address: int, words: dict[int, int], expected: object) -> None:
    """docs/protocol.md#conversions conversions, one row per rule."""
    assert expected == decode(address, words)


COMPOSITES: list[tuple[int, int, dict[str, object]]] = [
    (31, 0x1980, {"lps": "closed", "hps": "closed", "unknown": 0x1800}),
    (31, 0x0219, {"lps": "open", "hps": "open", "y1": True, "o": True, "g": True, "load_shed": True}),
    (33, 0x0003, {"fp1": 30, "fp2": 30, "reversing_valve": "b", "accessory_relay": "compressor",
                  "compressor": 2, "lockout": "pulse", "dehumidifier_reheat": "reheat"}),
    (1103, 0x0309, {"smart_grid": True, "ha1": False, "ha2": False, "pump_slave": True, "mb_address": 4,
                    "sw1_2": False, "sw1_3": False, "accessory_relay2": "low_capacity_compressor",
                    "unknown": 0x0200}),
    (31005, 0x4B32, {"fan_demand": 75, "unit_demand": 50}),
    (31110, 0x2332, {"humidification_target": 35, "dehumidification_target": 50}),
    (12006, 0x0300, {"mode": "heat"}),
    (12006, 0x0700, {"mode": None}),  # 7 has no name
    (12005, 0x3380 | (30 << 1) | 1, {"fan": "continuous", "on_time": 5, "off_time": 20,
                                     "cooling_target_temperature": 66,
                                     "heating_target_temperature_carry": 1}),
    (31200, 0x4028, {"zone_priority": "economy", "zone_size": 25, "normalized_size": 64}),
    (31200, 0x0007, {"zone_priority": "comfort", "zone_size": 0, "normalized_size": 0, "unknown": 7}),
]  # fmt: skip


@pytest.mark.parametrize(("address", "raw", "expected"), COMPOSITES)
def test_composite_words_decode_to_records(address: int, raw: int, expected: dict[str, object]) -> None:
    """docs/protocol.md#conversions composites, keys in the original's order; unknown bits kept as an int."""
    actual = decode(address, {address: raw})
    assert expected == actual
    assert isinstance(actual, Mapping)
    assert list(expected) == list(actual)


def test_an_unknown_register_decodes_as_its_raw_word() -> None:
    """`??? (35)` has no converter; its value is the word itself (docs/protocol.md#printing)."""
    assert (1, None, False) == (decode(35, {35: 1}), name_of(35), registers.is_known(35))


def test_a_register_not_read_decodes_as_none() -> None:
    assert (None, None) == (decode(745, {}), decode(35, {}))


def test_a_string_with_a_missing_word_decodes_as_none() -> None:
    """A partial read must not invent characters (the original padded with U+FFFD)."""
    words = at(88, ascii_words("ABCVSP", 4))
    del words[90]
    assert None is decode(88, words)


# --- docs/protocol.md#bugs-decoding fixes
# ------------------------------------------------------------------------------


def test_a_32_bit_value_without_its_low_word_is_none_not_a_crash() -> None:
    """docs/protocol.md#bugs-decoding: `aurora_fetch PORT 1146` crashed with a TypeError."""
    assert None is decode(1146, {1146: 1})
    assert None is decode(1154, {1155: 1})


def test_zone_configuration2_takes_the_carry_from_configuration1() -> None:
    """docs/protocol.md#bugs-decoding: the carry is bit 0 of the register before, not of this one.

    70 °F = 36 + 34 = 36 + 0b1_00010: carry 1 in 31008, low bits 2 in 31009's top five bits.
    The original read bit 0 of 31009 (0 here) and printed 38 °F.
    """
    words = {31008: (30 << 1) | 1, 31009: (2 << 11) | 0x10 | (5 << 1) | (2 << 8)}
    expected = {"call": "c1", "mode": "cool", "damper": "open", "heating_target_temperature": 70}
    assert expected == decode(31009, words)


def test_zone_configuration2_without_configuration1_has_no_heating_target() -> None:
    """Without the register before there is no carry, so no heating target rather than a wrong one."""
    assert {"call": "standby", "mode": "off", "damper": "closed"} == decode(31009, {31009: 0})


def test_zone_4_cooling_set_point_is_in_tenths_and_22131_is_unknown() -> None:
    """docs/protocol.md#bugs-decoding: the TO_TENTHS typo 22131 left 21231 raw (750.0 °F)."""
    assert 75.0 == decode(21231, {21231: 750})
    assert (750, False) == (decode(22131, {22131: 750}), registers.is_known(22131))


def test_dealer_email_is_named_and_decoded() -> None:
    """docs/protocol.md#bugs-decoding: ignore(31447..31459) hid Dealer Email."""
    words = at(31447, ascii_words("dealer@example.com", 13))
    assert ("Dealer Email", "dealer@example.com") == (name_of(31447), decode(31447, words))


def test_the_current_fault_masks_the_lockout_bit() -> None:
    """docs/protocol.md#bugs-decoding: 0x8005 is E5 locked out, not E32773."""
    assert 5 == decode(25, {25: 0x8005})


def test_manual_operation_shifts_the_blower_speed() -> None:
    """docs/protocol.md#bugs-decoding: blower speed is bits 4-7 shifted down (was 16× too large)."""
    assert {"mode": "cooling", "compressor_speed": 5, "blower_speed": 3} == decode(3002, {3002: 0x0135})
    assert {
        "mode": "heating",
        "aux_heat": True,
        "compressor_speed": 0,
        "blower_speed": "with_compressor",
    } == (decode(3002, {3002: 0x02F0}))
    assert "off" == decode(3002, {3002: 0x7FFF})


def test_manual_operation_encodes_what_it_decodes_including_the_compressor_speed() -> None:
    """docs/protocol.md#bugs-decoding: the original validated the compressor speed but never encoded it."""
    raw = registers.encode_manual_operation("cooling", compressor_speed=7, blower_speed=4, aux_heat=True)
    assert 0x0347 == raw
    assert {"mode": "cooling", "aux_heat": True, "compressor_speed": 7, "blower_speed": 4} == decode(
        3002, {3002: raw}
    )
    assert 0x00F0 == registers.encode_manual_operation("heating", blower_speed="with_compressor")
    assert 0x7FFF == registers.encode_manual_operation("off")
    with pytest.raises(WriteRefused, match="compressor speed 13"):
        registers.encode_manual_operation("heating", compressor_speed=13)
    with pytest.raises(WriteRefused, match="mode 'auto'"):
        registers.encode_manual_operation("auto")


def test_humidistat_mode_is_written_with_the_bits_it_is_read_with() -> None:
    """docs/protocol.md#bugs-decoding: the original read 0x8000 as humidifier auto but wrote 0x4000."""
    humidifier = registers.encode_humidistat_mode(humidifier_auto=True, dehumidifier_auto=False)
    dehumidifier = registers.encode_humidistat_mode(humidifier_auto=False, dehumidifier_auto=True)
    assert ("auto_humidification",) == decode(12309, {12309: humidifier})
    assert ("auto_dehumidification",) == decode(21114, {21114: dehumidifier})


def test_humidistat_mode_keeps_the_other_bits_of_the_raw_word() -> None:
    """docs/protocol.md#bugs-decoding: unknown bits come from the raw word (the original parsed a symbol)."""
    word = registers.encode_humidistat_mode(humidifier_auto=False, dehumidifier_auto=True, current=0x8123)
    assert 0x4123 == word


def test_humidistat_targets_round_trip() -> None:
    """docs/protocol.md#writes: (humidification << 8) + dehumidification, 15..50 and 35..65 %RH."""
    raw = registers.encode_humidistat_targets(40, 50)
    assert {"humidification_target": 40, "dehumidification_target": 50} == decode(12310, {12310: raw})
    with pytest.raises(WriteRefused, match="dehumidification target 70%"):
        registers.encode_humidistat_targets(40, 70)


def test_component_registers_decode_consistently() -> None:
    """docs/protocol.md#bugs-decoding: 809 is a COMPONENT_STATUS, 810 a version ÷100, revisions raw."""
    words = {809: 3, 810: 105, 817: 12, 820: 7, 802: 4}
    assert ("removed", 1.05) == (decode(809, words), decode(810, words))
    assert (12, 7, 4) == (decode(817, words), decode(820, words), decode(802, words))


def test_a_string_with_high_bytes_decodes_with_replacement_characters() -> None:
    """docs/protocol.md#bugs-decoding: bytes ≥ 0x80 hit encoding errors in the original."""
    words = at(105, {0: 0x4142, 1: 0xFF80, 2: 0x4300, 3: 0x2020, 4: 0x0000})
    assert "AB\ufffd\ufffdC" == decode(105, words)


# --- write rules (docs/protocol.md#writes)
# -----------------------------------------------------------------------

ALLOWED = [
    (47, 0x5555),  # clear fault history
    (112, 90),
    (112, 635),
    (340, 12),
    (346, 0xFFCE),  # -50 %
    (321, 1),
    (323, 100),
    (323, 0x7FFF),  # manual control off
    (400, 1),
    (401, 1000),  # 100.0 °F
    (401, 1255),  # 125.5 °F
    (419, 30),  # 3.0 psi
    (12606, 4),  # eheat
    (12619, 685),  # 68.5 °F
    (12620, 990),
    (12621, 2),
    (12622, 25),
    (12623, 40),
    (21202 + 9 * 5, 3),  # zone 6 mode heat
    (21231, 750),  # zone 4 cooling 75 °F
    (21207 + 9 * 3, 35),
    (12309, 0x8000),
    (21115, 0x2332),  # 35 % / 50 %
    (3002, 0x0347),
    (3002, 0x01FC),  # cooling, blower with compressor, compressor 12
    (3002, 0x7FFF),
]


@pytest.mark.parametrize(("address", "raw"), ALLOWED)
def test_writes_the_gem_makes_are_allowed(address: int, raw: int) -> None:
    """Every write of docs/protocol.md#writes within the gem's validation passes."""
    validate_raw_write(address, raw)


REFUSED = [
    (47, 0x5554, "only 21845 (0x5555)"),
    (112, 89, "outside 90..635"),
    (340, 0, "outside 1..12"),
    (346, 51, "outside -50..50"),
    (321, 0, "outside 1..100"),
    (323, 0x7FFE, "outside 1..100"),
    (400, 2, "outside 0..1"),
    (401, 1401, "outside 100..140 (raw 1000..1400)"),
    (12619, 399, "outside 40..90"),
    (12606, 5, "outside 0..4"),
    (12622, 7, "not in 0..25 in steps of 5"),
    (21206, 30, "outside 0..25"),
    (21115, 0x3C32, "humidification target 60 is outside 15..50"),
    (12310, 0x2320, "dehumidification target 32 is outside 35..65"),
    (3002, 0x000D, "compressor speed 13 is outside 0..12"),
    (3002, 0x00D0, "blower speed 13 is outside 0..12 or 15"),
    (3002, 0x0400, "outside 0..1023"),
    (112, 0x10000, "not a 16-bit word"),
    (745, 700, "is not writable"),
    (31447, 0, "is not writable"),
    (1, 0, "is not writable"),
]


@pytest.mark.parametrize(("address", "raw", "reason"), REFUSED)
def test_writes_outside_the_rules_are_refused_with_the_reason(address: int, raw: int, reason: str) -> None:
    """A refused write names the register and why, so the user can fix the payload."""
    with pytest.raises(WriteRefused, match=f"register {address} .*{re.escape(reason)}"):
        validate_raw_write(address, raw)


def test_adding_or_removing_components_needs_the_dangerous_flag() -> None:
    """800..827 := 2/3 reconfigures the board (docs/protocol.md#writes, docs/protocol.md#bugs-web): never
    writable by default."""
    for address in (800, 806, 812, 815, 818, 824, 827):
        assert None is writable(address)
        with pytest.raises(WriteRefused, match="reconfigures the board"):
            validate_raw_write(address, 3)
        validate_raw_write(address, 3, dangerous=True)
    with pytest.raises(WriteRefused, match=re.escape("outside 2..3")):
        validate_raw_write(806, 1, dangerous=True)


def test_a_write_rule_turns_values_into_raw_words() -> None:
    """Set points are written ×10, negatives as two's complement (docs/protocol.md#writes); a value is rounded
    half up to the register's step, then checked against the range."""
    dhw, airflow, fan_on = writable(401), writable(346), writable(12622)
    assert dhw is not None and airflow is not None and fan_on is not None
    assert (1255, 0xFFF6) == (dhw.to_raw(125.5), airflow.to_raw(-10))
    assert (1222, 1400, 1000) == (dhw.nearest(122.18000000000001), dhw.nearest(140.04), dhw.nearest(1e2))
    assert (5, 10, 25) == (fan_on.nearest(7), fan_on.nearest(7.5), fan_on.nearest(26))
    with pytest.raises(WriteRefused, match=re.escape("141 is outside 100..140")):
        dhw.to_raw(141)
    with pytest.raises(WriteRefused, match=re.escape("outside 0..25")):
        fan_on.nearest(28)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(WriteRefused, match="not a finite number"):
            dhw.nearest(bad)
    assert (0.1, 5.0, 125.5, -10.0) == (
        dhw.resolution,
        fan_on.resolution,
        dhw.value_of(1255),
        airflow.value_of(0xFFF6),
    )


def test_every_zone_has_the_thermostats_write_rules_but_whole_degree_set_points() -> None:
    """docs/protocol.md#zones: zone z's write registers are 21202 + 9(z-1) .. +5 with the thermostat's
    encodings, except that a zone stores its set points in whole °F (its configuration words hold no
    tenths)."""
    thermostat = [writable(a) for a in (12606, 12619, 12620, 12621, 12622, 12623)]
    for zone in range(6):
        rules = [writable(21202 + 9 * zone + k) for k in range(6)]
        assert [thermostat[k] for k in (0, 3, 4, 5)] == [rules[k] for k in (0, 3, 4, 5)]
        for k in (1, 2):
            rule, same = rules[k], thermostat[k]
            assert rule is not None and same is not None
            assert (same.low, same.high, same.scale, 1, 10) == (
                rule.low,
                rule.high,
                rule.scale,
                same.step,
                rule.step,
            )
            assert (720, 730) == (rule.nearest(71.99999), rule.nearest(72.5))


# --- the facts the bridge publishes from (issue 13: one register model) ------------------------


def test_a_flag_table_names_the_bits_of_registers_whose_converter_is_not_flags() -> None:
    """Register 31 decodes as a record and 25 as a fault code, yet their bits have names too."""
    assert (True, False) == (
        registers.is_set(31, "load_shed", {31: 0x200}),
        registers.is_set(31, "g", {31: 0x200}),
    )
    assert registers.is_set(25, "locked_out", {25: 0x8005}) and 5 == decode(25, {25: 0x8005})
    assert registers.is_set(30, "eh2", {30: 0x20}) and not registers.is_set(30, "eh1", {30: 0x20})
    assert registers.is_set(30, "cc", {}) is None
    with pytest.raises(KeyError, match="no flag 'nope'"):
        registers.is_set(30, "nope", {30: 0})
    with pytest.raises(KeyError, match="no flag table"):
        registers.is_set(16, "x", {16: 1})
    with pytest.raises(ValueError, match="unknown flags table"):
        registers._register({"address": 1, "name": "x", "flags": "NOPE"})


def test_an_absent_reading_is_no_value_while_decode_keeps_printing_it() -> None:
    """A fault counter the unit does not keep reads 0xFFFF: no value for the bridge, 65535 for fetch."""
    assert (None, 65535, 3) == (
        registers.reading(605, {605: 0xFFFF}),
        decode(605, {605: 0xFFFF}),
        registers.reading(605, {605: 3}),
    )


def test_a_sensor_reading_beyond_the_maps_limits_is_a_missing_sensor() -> None:
    assert (-1.0, 999.0, None, None) == tuple(
        registers.sensor_reading(19, {19: raw}) for raw in (0xFFF6, 9990, 9991, registers.NOT_PRESENT)
    )
    assert (-3000.0, 1234.5) == (decode(19, {19: 0x8AD0}), decode(19, {19: 12345}))


def test_composite_fields_enum_defaults_and_options_come_from_the_map() -> None:
    assert "closed" == registers.field_of(31, "hps", {31: 0x100})
    assert registers.field_of(31, "hps", {}) is None and registers.field_of(16, "x", {16: 1}) is None
    assert ("Open Loop", "Other") == (
        registers.enum_name("PUMP_TYPE", 0),
        registers.enum_name("PUMP_TYPE", 99),
    )
    assert "open" == registers.OPTIONS["PRESSURE_SWITCH"][0]
    assert 41 in registers.FAULT_GROUPS["derated"] and 72 in registers.FAULT_GROUPS["safe_mode"]
    assert ((90, 635), "V") == (registers.REGISTERS[16].range, registers.REGISTERS[16].published_unit)
    assert ("Btuh", "BTU/h") == (registers.REGISTERS[1154].unit, registers.REGISTERS[1154].published_unit)
