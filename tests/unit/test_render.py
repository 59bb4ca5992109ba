"""aurora_fetch's text forms (docs/protocol.md#printing): `Name (N): value` lines and the YAML dump."""

from __future__ import annotations

import pytest
import yaml
from aurora import registers
from aurora.render import format_value, render_line, render_lines, render_yaml

from tests.support.data import JFCLICHE_FLAT, ORIG_FETCH_VALID

# docs/protocol.md#printing, sniffed with -q; raw words chosen to produce each line.
README_EXAMPLES = [
    (25, {25: 0}, "Last Fault Number (25): E0"),
    (26, {26: 0x8013}, "Last Lockout (26): E19"),
    (27, {27: 0x0248}, "System Outputs (At Last Lockout) (27): blower, accessory, 0x0040"),
    (30, {30: 0x024C}, "System Outputs (30): rv, blower, accessory, 0x0040"),
    (35, {35: 1}, "??? (35): 1 (0x0001)"),
    (73, {73: 682}, "??? (73): 682 (0x02aa)"),
    (344, {344: 2}, "ECM Speed (344): 2"),
    (401, {401: 1300}, "DHW Setpoint (401): 130.0°F"),
    (741, {741: 51}, "Relative Humidity (741): 51%"),
    (745, {745: 740}, "Heating Set Point (745): 74.0°F"),
    (747, {747: 0}, "Ambient Temperature (747): 0.0°F"),
    (813, {813: 206}, "IZ2 Version (813): 2.06"),
    (340, {340: 3}, "Blower Only Speed (340): 3"),
]


@pytest.mark.parametrize(("address", "words", "expected"), README_EXAMPLES)
def test_the_readme_examples_render_exactly(address: int, words: dict[int, int], expected: str) -> None:
    """Users compare our output with the original's README (docs/protocol.md#printing)."""
    assert expected == render_line(address, words)


def test_status_renders_in_the_ruby_34_inspect_form() -> None:
    """docs/protocol.md#bugs-decoding: one stable form for composites, Ruby ≥ 3.4 `Hash#inspect`.

    The README's `{:lps=>:closed, :hps=>:closed, :unknown=>"0x0018"}` predates the current
    decoder, where 0x0018 are the inputs `o` and `g`; leftover bits above 0x03ff print as a hex string.
    """
    assert "Status (31): {lps: :closed, hps: :closed, o: true, g: true}" == render_line(31, {31: 0x0198})
    assert 'Status (31): {lps: :open, hps: :closed, unknown: "0x1800"}' == render_line(31, {31: 0x1900})


FORMATS = [
    (1, {1: 10}, "Random Start Delay (1): 10s"),
    (16, {16: 240}, "Line Voltage (16): 240V"),
    (346, {346: 0xFFF6}, "Cooling Airflow Adjustment (346): -10%"),
    (419, {419: 1500}, "Loop Pressure Trip (419): 150.0 psi"),
    (1105, {1105: 52}, "Blower Amps (1105): 5.2A"),
    (1111, {1111: 0xFF9C}, "Entering Water (1111): -10.0°F"),
    (1117, {1117: 85}, "Waterflow (1117): 8.5gpm"),
    (1146, {1146: 0, 1147: 1234}, "Compressor Watts (1146): 1234W"),
    (1154, {1154: 0, 1155: 12345}, "Heat of Extraction (1154): 12345Btuh"),
    (565, {565: 6}, "IZ2 Blower % Desired (565): 100%"),
    (801, {801: 200}, "Thermostat Version (801): 2.0"),  # Ruby Float#to_s
    (400, {400: 0}, "DHW Enabled (400): false"),
    (400, {400: 1}, "DHW Enabled (400): true"),
    (806, {806: 0xFFFF}, "AXB Installed (806): missing"),
    (406, {406: 9}, "SmartGrid Action (406): "),  # no name, prints empty
    (28, {28: 0x0191}, "System Inputs (At Last Lockout) (28): y1, g, 0x0180"),  # README's "Y1, G" is stale
    (1104, {1104: 0}, "AXB Outputs (1104): "),  # no flag set
    (1104, {1104: 0x0003}, "AXB Outputs (1104): dhw, loop_pump"),
    (4, {4: 0x7FFF}, "DIP Switch Override (4): manual"),
    (605, {605: 2}, "E5 (Freeze Detect FP1) (605): 2"),
    (606, {606: 0xFFFF}, "E6 (606): 65535"),
    (12006, {12006: 0x0700}, "Heating Mode (12006): {mode: nil}"),
    (31005, {31005: 0x4B32}, "IZ2 Demand (31005): {fan_demand: 75, unit_demand: 50}"),
]


@pytest.mark.parametrize(("address", "words", "expected"), FORMATS)
def test_each_print_format_renders_like_the_original(
    address: int, words: dict[int, int], expected: str
) -> None:
    """REGISTER_FORMATS (docs/protocol.md#printing) and the to_s rules for values without a format
    (docs/protocol.md#printing)."""
    assert expected == render_line(address, words)


def test_the_lockout_bit_of_register_25_is_shown_as_words() -> None:
    """docs/protocol.md#bugs-decoding: the original printed a lockout on E5 as `E32773`."""
    assert "Last Fault Number (25): E5 (locked out)" == render_line(25, {25: 0x8005})
    assert "Last Fault Number (25): E5" == render_line(25, {25: 5})


def test_a_32_bit_register_without_its_low_word_prints_empty() -> None:
    """docs/protocol.md#bugs-decoding: `aurora_fetch PORT 1146` crashed; now the line is there with no
    value."""
    assert "Compressor Watts (1146): " == render_line(1146, {1146: 1})


def test_a_sensor_that_is_not_fitted_prints_the_raw_truth_as_the_original() -> None:
    """0xD8F1 means "not present": the decoder gives no value, a dump prints what the original did."""
    assert "DHW Temperature (1114): -999.9°F" == render_line(1114, {1114: 0xD8F1})
    assert "Leaving Water (1110): -999.9°F" == render_line(1110, {1110: 0xD8F1})
    assert "Waterflow (1117): 5553.7gpm" == render_line(1117, {1117: 0xD8F1})  # unsigned tenths
    assert None is registers.decode(1114, {1114: 0xD8F1})


def test_zone_4_cooling_set_point_prints_in_degrees() -> None:
    """docs/protocol.md#bugs-decoding: the original printed `750.0°F`; 22131 is an unknown register again."""
    assert "Zone 4 Cooling Setpoint (write) (21231): 75.0°F" == render_line(21231, {21231: 750})
    assert "??? (22131): 750 (0x02ee)" == render_line(22131, {22131: 750})


def test_zone_heating_target_prints_with_the_right_carry() -> None:
    """docs/protocol.md#bugs-decoding: printing raw maps took the carry from the wrong register (off by 32
    °F)."""
    words = {31008: 1, 31009: 2 << 11}
    expected = (
        "Zone 1 Configuration 2 (31009): "
        "{call: :standby, mode: :off, damper: :closed, heating_target_temperature: 70}"
    )
    assert expected == render_line(31009, words)


def test_manual_operation_prints_the_shifted_blower_speed() -> None:
    """docs/protocol.md#bugs-decoding: blower speed 3 printed as 48 in the original."""
    expected = "Manual Operation (3002): {mode: :cooling, compressor_speed: 5, blower_speed: 3}"
    assert expected == render_line(3002, {3002: 0x0135})


def test_dealer_email_is_printed() -> None:
    """docs/protocol.md#bugs-decoding: Dealer Email was hidden from every listing."""
    text = b"a@b.example".ljust(26, b" ")
    words = {31447 + i: text[2 * i] << 8 | text[2 * i + 1] for i in range(13)}
    assert ["Dealer Email (31447): a@b.example"] == render_lines(words)


def test_continuation_words_are_skipped_and_map_order_is_kept() -> None:
    """docs/protocol.md#printing: one line per value, in the order the map was read."""
    words = {747: 0, 89: 0x4243, 88: 0x4142, 90: 0x2020, 91: 0x2020, 35: 1}
    expected = ["Ambient Temperature (747): 0.0°F", "ABC Program (88): ABBC", "??? (35): 1 (0x0001)"]
    assert expected == render_lines(words)
    assert None is render_line(89, words)
    assert None is render_line(746, words)  # not read


def test_every_known_register_of_a_real_scan_renders(scan: dict[int, int]) -> None:
    """The jfcliche full scan (8309 registers) prints without an error, one line per printable value."""
    lines = render_lines(scan)
    printable = [a for a in scan if registers.name_of(a) is not None or not registers.is_known(a)]
    assert len(printable) == len(lines)
    known = {a: scan[a] for a in sorted(registers.KNOWN_ADDRESSES) if a in scan}
    by_address = dict(zip((a for a in known if registers.name_of(a)), render_lines(known), strict=True))
    assert "ABC Program (88): ABCSTD" == by_address[88]
    assert "ABC Program Version (2): 3.06" == by_address[2]
    assert "Model Number (92): NEW050D10RCSS0DN" == by_address[92]
    assert "Serial Number (105): 240501728" == by_address[105]
    assert "AXB Version (807): 2.03" == by_address[807]
    assert "AHB Installed (809): removed" == by_address[809]


@pytest.fixture(scope="module")
def scan() -> dict[int, int]:
    words: dict[int, int] = yaml.safe_load((JFCLICHE_FLAT).read_text())
    return words


def test_format_value_prints_composites_and_lists() -> None:
    """The one stable composite form (docs/protocol.md#bugs-decoding): symbols, nil, booleans, ints, unknown
    as hex."""
    record = {"a": "closed", "b": None, "c": True, "d": 30, "unknown": 0x0400}
    assert '{a: :closed, b: nil, c: true, d: 30, unknown: "0x0400"}' == format_value(record)
    assert "{}" == format_value({})
    assert "y1, g, 0x0180" == format_value(("y1", "g", "0x0180"))
    assert "" == format_value(None)


# --- YAML (docs/protocol.md#printing)
# ------------------------------------------------------------------------------


def test_the_original_fetch_dump_round_trips_to_the_same_text() -> None:
    """`aurora_fetch PORT valid --yaml` output is the simulator's input: byte for byte
    (docs/protocol.md#printing)."""
    text = (ORIG_FETCH_VALID).read_text(encoding="utf-8")
    words = yaml.safe_load(text)
    assert text == render_yaml(words)
    assert words == yaml.safe_load(render_yaml(words))


def test_yaml_keeps_map_order_and_writes_an_empty_map_inline() -> None:
    """Psych writes keys in insertion order, and `--- {}` for an empty map."""
    assert "---\n746: 730\n745: 680\n" == render_yaml({746: 730, 745: 680})
    assert "--- {}\n" == render_yaml({})
    assert {} == yaml.safe_load(render_yaml({}))
