"""Component detection, poll tiers and every settable property's writes (docs/architecture.md#detection,
docs/architecture.md#homie-tree, docs/protocol.md#writes).

The writes are checked twice: as (register, raw) pairs, and end to end through the simulated
board, whose mirrored registers must then read back as the value that was set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from aurora import rtu
from aurora.bridge.components import Components
from aurora.bridge.device import DETECTION_RANGES, Tier, Unit, detect, settled_properties
from aurora.bridge.spec import NodeSpec
from aurora.dump import load_dump
from aurora.errors import AuroraError, BusTimeout, FrameError, IllegalAddress, UsageError
from aurora.query import plan_chunks
from aurora.simulator import SimulatedAbc

from tests.support.data import JFCLICHE_FLAT, SEED_DUMP

SEED = SEED_DUMP
DEMO = Path(__file__).resolve().parents[2] / "services" / "sim" / "demo.yml"
JFCLICHE = JFCLICHE_FLAT
# write-only registers the seed dump lacks (it was taken by reading, not writing)
WRITE_ONLY = (47, 12606, 12619, 12620, 12621, 12622, 12623)


class Reader:
    """``read(ranges)`` over a dump, recording each call; ``refuse`` addresses answer IllegalAddress."""

    def __init__(self, words: Mapping[int, int], refuse: Sequence[int] = ()) -> None:
        self.words, self.refuse, self.calls = words, set(refuse), []  # type: list[list[tuple[int, int]]]

    def __call__(self, ranges: Sequence[tuple[int, int]]) -> dict[int, int]:
        self.calls.append(list(ranges))
        addresses = [a for s, n in ranges for a in range(s, s + n)]
        if self.refuse & set(addresses):
            raise IllegalAddress(65, 2)
        return {a: self.words[a] for a in addresses if a in self.words}


@pytest.fixture(scope="module")
def dumps() -> dict[str, dict[int, int]]:
    return {"seed": load_dump(SEED), "demo": load_dump(DEMO), "jfcliche": load_dump(JFCLICHE)}


@pytest.fixture(scope="module")
def units(dumps: dict[str, dict[int, int]]) -> dict[str, Unit]:
    return {name: detect(Reader(words)) for name, words in dumps.items()}


def node_types(unit: Unit) -> dict[str, str]:
    return {n.id: n.type for n in unit.nodes}


# ------------------------------------------------------------------------------- detection


def test_the_seed_unit_is_detected_as_the_original_detected_it(units: dict[str, Unit]) -> None:
    """orig-bridge-retained.txt: $nodes and each node's $type."""
    assert {
        "abc": "ABC",
        "compressor": "Variable Speed Drive",
        "aux-heat": "Aux Heater",
        "blower": "ECM 208/230",
        "pump": "VS Pump",
        "dhw": "DHW",
        "humidistat": "Humidistat",
        "faults": "ABC",
        "zone1": "Thermostat",
        "energy": "Energy Counters",  # an addition: kWh counters (issue 17)
    } == node_types(units["seed"])
    assert "aurora-2109123456" == units["seed"].device_id


def test_the_demo_unit_has_three_iz2_zones_and_both_humidity_accessories(
    units: dict[str, Unit],
) -> None:
    demo = units["demo"]
    assert "aurora-2611000042" == demo.device_id
    assert ["zone1", "zone2", "zone3"] == [n.id for n in demo.nodes if n.id.startswith("zone")]
    assert {"IntelliZone 2 Zone"} == {n.type for n in demo.nodes if n.id.startswith("zone")}
    humidistat = next(n for n in demo.nodes if n.id == "humidistat")
    assert {"humidifier-mode", "dehumidifier-mode"} <= {p.id for p in humidistat.properties}


def test_a_real_abcstd_scan_is_a_single_stage_unit_with_axb_psc_blower_and_open_loop_pump(
    units: dict[str, Unit],
) -> None:
    """jfcliche's unit: ABC 3.06 ABCSTD, AXB 2.03, no communicating thermostat, DHW sensor absent."""
    assert {
        "abc": "ABC",
        "compressor": "Single Stage Compressor",
        "aux-heat": "Aux Heater",
        "blower": "PSC",
        "pump": "Open Loop",
        "faults": "ABC",
        "zone1": "Thermostat",
        "energy": "Energy Counters",
    } == node_types(units["jfcliche"])
    zone1 = next(n for n in units["jfcliche"].nodes if n.id == "zone1")
    assert ["current-mode"] == [p.id for p in zone1.properties]  # nothing to set without AWL


def test_detection_is_one_read_of_at_most_100_registers_without_iz2(
    dumps: dict[str, dict[int, int]],
) -> None:
    """The original needed one FC 65 plus a FC 3 per component flag (docs/architecture.md#detection); then
    the optional sensors' words, which decide what the unit has, in requests the board takes (at
    most 100 registers each: it refuses more)."""
    reader = Reader(dumps["seed"])
    detect(reader)
    assert list(DETECTION_RANGES) == reader.calls[0]
    assert sum(n for _, n in DETECTION_RANGES) <= 100
    assert 2 == len(reader.calls[1:])
    assert all(sum(n for _, n in call) <= 100 for call in reader.calls)
    presence = {a for call in reader.calls[1:] for start, count in call for a in range(start, start + count)}
    assert set(range(601, 700)) | {20, 740, 742} <= presence


def test_the_zone_count_comes_with_the_first_read_and_counts_only_for_intellizone_2(
    dumps: dict[str, dict[int, int]],
) -> None:
    """Issue 15: no request of its own for register 483 (one transaction less before ready)."""
    reader = Reader(dumps["demo"])
    detect(reader)
    assert (483, 1) in DETECTION_RANGES
    assert list(DETECTION_RANGES) == reader.calls[0]
    assert 3 == len(reader.calls)  # and the optional sensors' two requests
    assert all((483, 1) not in call for call in reader.calls[1:])
    # A unit without an IZ2 has no IZ2 zones, whatever 483 reads
    seed = detect(Reader({**dumps["seed"], 483: 3}))
    assert ["zone1"] == [n.id for n in seed.nodes if n.id.startswith("zone")]


def test_a_refused_zone_count_gives_no_zones_and_detection_goes_on(dumps: dict[str, dict[int, int]]) -> None:
    words = {a: v for a, v in dumps["demo"].items() if a != 483}
    unit = detect(Reader(words, refuse=[483]))
    assert [] == [n.id for n in unit.nodes if n.id.startswith("zone")]
    assert "aurora-2611000042" == unit.device_id


def test_no_register_is_read_twice_during_detection(dumps: dict[str, dict[int, int]]) -> None:
    for words in dumps.values():
        reader = Reader(words)
        detect(reader)
        addresses = [a for call in reader.calls for start, count in call for a in range(start, start + count)]
        assert len(addresses) == len(set(addresses))


def test_a_refused_detection_read_falls_back_to_one_range_at_a_time(dumps: dict[str, dict[int, int]]) -> None:
    """A board without 1114 must not make detection fail as a whole."""
    words = {a: v for a, v in dumps["seed"].items() if a != 1114}
    reader = Reader(words, refuse=[1114])
    unit = detect(reader)
    assert "dhw" not in [n.id for n in unit.nodes]
    assert len(DETECTION_RANGES) + 3 == len(reader.calls)  # + the optional sensors' two reads


def test_a_refused_range_is_read_one_register_at_a_time(dumps: dict[str, dict[int, int]]) -> None:
    """A board missing one status word (here 803) still reports the thermostat and the AXB."""
    words = {a: v for a, v in dumps["seed"].items() if a != 803}
    reader = Reader(words, refuse=[803])
    unit = detect(reader)
    assert (True, True) == (unit.components.thermostat, unit.components.axb)
    # The refused range is halved towards the one register it lacks: a few reads, not one each.
    status = [call for call in reader.calls if len(call) == 1 and 800 <= call[0][0] <= 813]
    assert [(803, 1)] in status
    assert len(status) <= 10, status


def test_an_unreadable_identity_is_an_error(dumps: dict[str, dict[int, int]]) -> None:
    with pytest.raises(AuroraError, match="identity"):
        detect(Reader(dumps["seed"], refuse=[105]))
    with pytest.raises(AuroraError, match="identity"):
        detect(Reader({a: v for a, v in dumps["seed"].items() if a != 107}))


@pytest.mark.parametrize("fault", [BusTimeout("no answer"), FrameError("bad CRC")])
def test_a_silent_or_garbled_detection_read_is_an_error_not_a_missing_component(
    dumps: dict[str, dict[int, int]], fault: AuroraError
) -> None:
    """A status word that did not answer is not one the unit lacks: detecting without it would
    drop the component for the bridge's whole life, so detection fails (and is tried again)."""
    reader = Reader(dumps["seed"])

    def read(ranges: Sequence[tuple[int, int]]) -> dict[int, int]:
        if any(start <= 806 < start + count for start, count in ranges):
            raise fault
        return reader(ranges)

    with pytest.raises(type(fault)):
        detect(read)


def test_manual_dip_switches_do_not_crash_detection(dumps: dict[str, dict[int, int]]) -> None:
    """docs/architecture.md#original-bridge R8: 0x7FFF ("manual") crashed the original at start-up."""
    unit = detect(Reader({**dumps["jfcliche"], 33: 0x7FFF}))
    assert unit.components.dip is None
    assert "Dual Stage Compressor" == node_types(unit)["compressor"]


def test_a_missing_component_status_is_not_installed(dumps: dict[str, dict[int, int]]) -> None:
    """docs/architecture.md#original-bridge R11: 0xFFFF ("missing") counted as installed."""
    unit = detect(Reader({**dumps["seed"], 806: 0xFFFF}))
    assert not unit.components.axb
    assert "dhw" not in node_types(unit)


def test_an_implausible_zone_count_gives_no_zones(dumps: dict[str, dict[int, int]]) -> None:
    unit = detect(Reader({**dumps["demo"], 483: 200}))
    assert [] == [n.id for n in unit.nodes if n.id.startswith("zone")]


# ------------------------------------------------------------------------------- tiers


@pytest.mark.parametrize("name", ["seed", "demo", "jfcliche"])
def test_the_tiers_cover_every_register_the_properties_read_once(units: dict[str, Unit], name: str) -> None:
    unit = units[name]
    tiers = [unit.registers(t) for t in Tier]
    needed = {a for spec in unit.properties() for a in spec.registers}
    assert needed == frozenset().union(*tiers)
    assert sum(len(t) for t in tiers) == len(needed)


def test_status_is_fast_set_points_medium_and_fault_history_slow(units: dict[str, Unit]) -> None:
    seed = units["seed"]
    assert {25, 30, 31, 1110, 1111, 1152, 1153} <= seed.registers(Tier.FAST)
    assert {401, 745, 746, 340, 12005, 12006} <= seed.registers(Tier.MEDIUM)
    assert set(range(601, 700)) | {112} <= seed.registers(Tier.SLOW)


def test_each_tier_is_read_in_a_few_transactions(units: dict[str, Unit]) -> None:
    """Packed into ≤100-register reads: at most two per tier for the fully equipped demo unit."""
    assert [2, 2, 2] == [len(plan_chunks(sorted(units["demo"].registers(t)))) for t in Tier]


# ------------------------------------------------------------------------------- setters

# (unit, property, payload, writes, property to read back, its payload after the write)
SETS = [
    ("seed", "abc/line-voltage-setting", "230", [(112, 230)], None, "230"),
    ("seed", "blower/blower-only-speed", "5", [(340, 5)], None, "5"),
    ("seed", "blower/aux-heat-speed", "12", [(347, 12)], None, "12"),
    ("seed", "blower/low-compressor-speed", "1", [(341, 1)], None, "1"),
    ("seed", "blower/high-compressor-speed", "7", [(342, 7)], None, "7"),
    ("seed", "pump/manual-control", "true", [(323, 50)], None, "true"),  # at the current speed (325)
    ("seed", "pump/manual-control", "false", [(323, 0x7FFF)], None, "false"),
    ("seed", "pump/minimum-speed", "30", [(321, 30)], None, "30"),
    ("seed", "pump/maximum-speed", "100", [(322, 100)], None, "100"),
    ("seed", "pump/speed", "60", [(323, 60)], "pump/manual-control", "true"),  # manual-speed register
    ("seed", "dhw/enabled", "false", [(400, 0)], None, "false"),
    ("seed", "dhw/set-point", "120.5", [(401, 1205)], None, "120.5"),
    ("seed", "humidistat/dehumidifier-mode", "manual", [(12309, 0)], None, "manual"),
    ("seed", "humidistat/dehumidification-target", "50", [(12310, 35 << 8 | 50)], None, "50"),
    ("seed", "faults/clear-history", "clear", [(47, 0x5555)], "faults/e42", "0"),
    ("seed", "zone1/target-mode", "eheat", [(12606, 4)], None, "eheat"),
    ("seed", "zone1/target-fan-mode", "intermittent", [(12621, 2)], None, "intermittent"),
    ("seed", "zone1/fan-intermittent-on", "25", [(12622, 25)], None, "25"),
    ("seed", "zone1/fan-intermittent-off", "40", [(12623, 40)], None, "40"),
    ("seed", "zone1/heating-target-temperature", "69.5", [(12619, 695)], None, "69.5"),
    ("seed", "zone1/cooling-target-temperature", "76", [(12620, 760)], None, "76.0"),
    ("demo", "humidistat/humidifier-mode", "manual", [(21114, 0)], None, "manual"),
    ("demo", "humidistat/dehumidifier-mode", "auto", [(21114, 0xC000)], None, "auto"),
    ("demo", "humidistat/humidification-target", "30", [(21115, 30 << 8 | 55)], None, "30"),
    ("demo", "humidistat/dehumidification-target", "60", [(21115, 40 << 8 | 60)], None, "60"),
    ("demo", "zone1/target-mode", "eheat", [(21202, 4)], None, "eheat"),
    ("demo", "zone2/target-mode", "cool", [(21211, 2)], None, "cool"),
    ("demo", "zone2/heating-target-temperature", "70", [(21212, 700)], None, "70.0"),
    ("demo", "zone3/cooling-target-temperature", "78.0", [(21222, 780)], None, "78.0"),
    ("demo", "zone3/target-fan-mode", "continuous", [(21223, 1)], None, "continuous"),
    ("demo", "zone2/fan-intermittent-on", "10", [(21215, 10)], None, "10"),
    ("demo", "zone2/fan-intermittent-off", "15", [(21216, 15)], None, "15"),
]


def _kind(unit: Unit, path: str) -> str:
    """A path with its zone number replaced by the zone's kind (thermostat or IntelliZone 2)."""
    return re.sub(r"^zone\d+", "iz2-zone" if unit.components.awl_iz2 else "zone", path)


def test_the_write_table_covers_every_settable_property(units: dict[str, Unit]) -> None:
    """22 settable properties in the original; each kind of them is exercised below."""
    required = {_kind(units[name], p) for name in ("seed", "demo") for p in units[name].settable()}
    covered = {_kind(units[name], path) for name, path, *_ in SETS}
    assert required == covered
    assert len(covered) >= 22


@pytest.mark.parametrize("case", SETS, ids=[f"{u}:{p}={x}" for u, p, x, *_ in SETS])
def test_a_set_payload_writes_the_right_registers_with_the_right_scaling(
    units: dict[str, Unit], dumps: dict[str, dict[int, int]], case: tuple[Any, ...]
) -> None:
    name, path, payload, writes, *_ = case
    setter = units[name].setter(path)
    assert setter is not None
    assert writes == setter.writes(payload, dumps[name])


@pytest.mark.parametrize("case", SETS, ids=[f"{u}:{p}={x}" for u, p, x, *_ in SETS])
def test_a_set_value_ends_in_the_simulated_board_and_reads_back(
    units: dict[str, Unit], dumps: dict[str, dict[int, int]], case: tuple[Any, ...]
) -> None:
    """The written registers, mirrored where the board mirrors them, publish the value set."""
    name, path, payload, _writes, check, expected = case
    check = check or path
    unit = units[name]
    board = SimulatedAbc({**dict.fromkeys(WRITE_ONLY, 0), **dumps[name]})
    setter = unit.setter(path)
    assert setter is not None
    for address, raw in setter.writes(payload, board.snapshot()):
        request = rtu.write_single(address, raw)
        assert rtu.encode_reply(request) == board.respond(request)  # the echo: accepted
    words = board.snapshot()
    assert set(setter.readback()) <= set(words)
    assert expected == unit.values(words)[check]


GARBAGE = [
    ("seed", "abc/line-voltage-setting", ["89", "636", "abc", "", "2.5", "0x100", "9" * 400, "240\x00"]),
    ("seed", "blower/blower-only-speed", ["0", "13", "1e3", "-1"]),
    ("seed", "pump/speed", ["0", "101", "fast"]),
    ("seed", "pump/minimum-speed", ["0", "-5"]),
    ("seed", "pump/manual-control", ["yes", "True", "1", "on"]),
    ("seed", "dhw/enabled", ["on", "TRUE", ""]),
    ("seed", "dhw/set-point", ["99.9", "140.1", "nan", "inf", "1,5", "1e400", "--1", "1e3", "0x64"]),
    ("seed", "humidistat/dehumidifier-mode", ["AUTO", "off", ""]),
    ("seed", "humidistat/dehumidification-target", ["34", "66"]),
    ("seed", "faults/clear-history", ["CLEAR", "reset", "true"]),
    ("seed", "zone1/target-mode", ["emergency", "HEAT", "heat_cool", "4"]),
    ("seed", "zone1/target-fan-mode", ["on", "circulate"]),
    ("seed", "zone1/fan-intermittent-on", ["30", "7", "-5"]),
    ("seed", "zone1/fan-intermittent-off", ["0", "45", "12"]),
    ("seed", "zone1/heating-target-temperature", ["39", "91", "90.2", "seventy", "-inf"]),
    ("seed", "zone1/cooling-target-temperature", ["53", "100", "53.9"]),
    ("demo", "zone2/target-mode", ["eheat"]),  # emergency heat is zone 1's alone
    ("demo", "zone2/heating-target-temperature", ["39.4", "90.5", "91"]),  # out once rounded to 1 °F
    ("demo", "zone2/cooling-target-temperature", ["53.4", "99.5"]),
    ("demo", "humidistat/humidification-target", ["14", "51"]),
]


@pytest.mark.parametrize(
    ("name", "path", "payload"),
    [(u, p, x) for u, p, xs in GARBAGE for x in xs],
    ids=[f"{u}:{p}={x[:12]!r}" for u, p, xs in GARBAGE for x in xs],
)
def test_garbage_on_set_is_refused_with_a_clear_error_and_nothing_written(
    units: dict[str, Unit], dumps: dict[str, dict[int, int]], name: str, path: str, payload: str
) -> None:
    setter = units[name].setter(path)
    assert setter is not None
    board = SimulatedAbc(dumps[name])
    with pytest.raises(UsageError) as refused:
        for address, raw in setter.writes(payload, board.snapshot()):
            board.respond(rtu.write_single(address, raw))
    assert str(refused.value)
    assert [] == board.writes


# What Home Assistant sends (°F, and °C converted to °F by HA: 21 °C → 69.80000000000001) and
# what a person types: (unit, property, payload, raw word written, payload published after it)
ROUNDED = [
    ("seed", "zone1/heating-target-temperature", "69.80000000000001", 698, "69.8"),
    ("seed", "zone1/heating-target-temperature", "71.99999", 720, "72.0"),
    ("seed", "zone1/heating-target-temperature", "70.05", 701, "70.1"),  # half up
    ("seed", "zone1/heating-target-temperature", "90.04", 900, "90.0"),
    ("seed", "zone1/cooling-target-temperature", "1e2", None, None),  # 100 °F: out of range
    ("seed", "zone1/cooling-target-temperature", "7.07e1", 707, "70.7"),
    ("seed", "zone1/cooling-target-temperature", "70.7", 707, "70.7"),  # 21.5 °C
    ("seed", "dhw/set-point", "1e2", 1000, "100.0"),
    ("seed", "dhw/set-point", "122.18000000000001", 1222, "122.2"),  # 50.1 °C
    ("seed", "dhw/set-point", "120.55", 1206, "120.6"),
    ("seed", "dhw/set-point", "139.99999", 1400, "140.0"),
    ("demo", "zone2/heating-target-temperature", "69.80000000000001", 700, "70.0"),
    ("demo", "zone2/heating-target-temperature", "70.5", 710, "71.0"),  # half up: 21.4 °C
    ("demo", "zone2/heating-target-temperature", "71.99999", 720, "72.0"),
    ("demo", "zone3/cooling-target-temperature", "70.7", 710, "71.0"),
    ("demo", "zone3/cooling-target-temperature", "99.4", 990, "99.0"),
]


@pytest.mark.parametrize("case", ROUNDED, ids=[f"{u}:{p}={x}" for u, p, x, *_ in ROUNDED])
def test_a_number_is_rounded_to_the_registers_step_then_checked_against_its_range(
    units: dict[str, Unit], dumps: dict[str, dict[int, int]], case: tuple[Any, ...]
) -> None:
    """Issue 14: any finite number in range is rounded to what the unit stores, written, read
    back and published as that; outside the range it is refused with the range named."""
    name, path, payload, raw, published = case
    unit = units[name]
    setter = unit.setter(path)
    assert setter is not None
    board = SimulatedAbc({**dict.fromkeys(WRITE_ONLY, 0), **dumps[name]})
    if raw is None:
        with pytest.raises(UsageError, match=r"outside \d+\.\.\d+"):
            setter.writes(payload, board.snapshot())
        return
    writes = setter.writes(payload, board.snapshot())
    assert [raw] == [word for _, word in writes]
    for address, word in writes:
        board.respond(rtu.write_single(address, word))
    assert published == unit.values(board.snapshot())[path]


def test_ranges_steps_and_options_come_from_the_register_map(units: dict[str, Unit]) -> None:
    """One rule: each number setter carries its write register's rule, whose range is the $format."""
    from aurora import registers as regs

    for name in ("seed", "demo"):
        unit = units[name]
        for path in unit.settable():
            spec = unit.spec(path)
            assert spec is not None and spec.setter is not None
            rule = spec.setter.rule
            if spec.datatype in ("integer", "float"):
                assert rule is not None, path
                assert spec.format == f"{rule.low:g}:{rule.high:g}", path
    iz2, thermostat = (
        units["demo"].setter("zone1/heating-target-temperature"),
        units["seed"].setter("zone1/heating-target-temperature"),
    )
    assert iz2 is not None and thermostat is not None and iz2.rule and thermostat.rule
    assert (1.0, 0.1) == (iz2.rule.resolution, thermostat.rule.resolution)
    assert regs.writable(21203) is iz2.rule


def test_a_read_modify_write_is_refused_until_the_register_was_read(units: dict[str, Unit]) -> None:
    """Without the current humidistat word the other half's setting would be lost."""
    setter = units["seed"].setter("humidistat/dehumidifier-mode")
    assert setter is not None
    with pytest.raises(UsageError, match="not been read"):
        setter.writes("auto", {})


def test_humidistat_mode_writes_keep_the_other_bits(units: dict[str, Unit]) -> None:
    """docs/architecture.md#original-bridge C3: one bit mapping for read and write, unknown bits kept."""
    setter = units["demo"].setter("humidistat/dehumidifier-mode")
    assert setter is not None
    assert [(21114, 0x8000 | 0x4000 | 0x0012)] == setter.writes("auto", {31109: 0x8012})


def test_manual_pump_control_falls_back_to_the_minimum_speed_without_a_speed_reading() -> None:
    """docs/architecture.md#original-bridge C5: the original failed without an AWL AXB (no register 325)."""
    unit = Unit.build(Components(serial="1", axb=True, axb_version=1.5, pump_type=3))
    setter = unit.setter("pump/manual-control")
    assert setter is not None
    assert [(323, 25)] == setter.writes("true", {321: 25, 323: 0x7FFF})
    assert unit.setter("pump/speed") is None  # 325 is not read below AXB 2.0


def test_properties_without_a_setter_are_not_settable(units: dict[str, Unit]) -> None:
    seed = units["seed"]
    assert seed.setter("abc/current-mode") is None
    assert seed.setter("nonexistent/thing") is None
    assert "abc/current-mode" not in seed.settable()


def test_every_setter_agrees_with_its_format(
    units: dict[str, Unit], dumps: dict[str, dict[int, int]]
) -> None:
    """docs/architecture.md#original-bridge C9: the ends of $format are accepted, just outside is refused."""
    for name in ("seed", "demo"):
        unit, words = units[name], dumps[name]
        for path in unit.settable():
            spec = unit.spec(path)
            assert spec is not None and spec.setter is not None
            if spec.datatype == "boolean":
                assert spec.setter.writes("true", words) and spec.setter.writes("false", words), path
                continue
            assert spec.format is not None, path
            if spec.datatype == "enum":
                for option in spec.format.split(","):
                    assert spec.setter.writes(option, words), (path, option)
                continue
            low, high = spec.format.split(":")
            for ok in (low, high):
                assert spec.setter.writes(ok, words), (path, ok)
            for bad in (str(int(low) - 1), str(int(high) + 1)):
                with pytest.raises(UsageError):
                    spec.setter.writes(bad, words)


def test_the_settled_properties_come_before_the_presence_checks_and_every_fitted_unit_has_them(
    dumps: dict[str, dict[int, int]],
) -> None:
    """Issue 15: the bridge describes them while the presence checks read; none may be one the
    checks then take out."""
    for words in dumps.values():
        reader = Reader(words)
        told: list[tuple[int, tuple[NodeSpec, ...]]] = []

        def on_nodes(
            nodes: tuple[NodeSpec, ...],
            r: Reader = reader,
            into: list[tuple[int, tuple[NodeSpec, ...]]] = told,
        ) -> None:
            into.append((len(r.calls), nodes))

        unit = detect(reader, on_nodes=on_nodes)
        assert [1] == [calls for calls, _ in told]  # once, after the first read, before any presence read
        settled = {p.path for node in settled_properties(told[0][1]) for p in node.properties}
        assert settled and settled <= {p.path for p in unit.properties()}
