"""The bridge's Homie 4 tree against what the original published for the same unit.

``orig-bridge-retained.txt`` is everything the Ruby bridge 1.6.4 left retained for
``orig-seed-dump.yml``. Every Homie topic of it must come out identically here, except the
deliberate differences listed (and justified) in DELIBERATE_DIFFERENCES.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from aurora.bridge import homie
from aurora.bridge.components import Components
from aurora.bridge.device import Unit, components_from, detect
from aurora.dump import load_dump
from aurora.errors import AuroraError, UsageError

from tests.support.data import JFCLICHE_FLAT, ORIG_BRIDGE_RETAINED, SEED_DUMP

SEED = SEED_DUMP
RETAINED = ORIG_BRIDGE_RETAINED
DEMO = Path(__file__).resolve().parents[2] / "services" / "sim" / "demo.yml"
JFCLICHE = JFCLICHE_FLAT
ROOT = "homie/aurora-2109123456/"

# topic suffix → (the original's payload, ours, why); None = not published
DELIBERATE_DIFFERENCES: dict[str, tuple[str | None, str | None, str]] = {
    "$state": ("ready", None, "the runtime publishes $state (init → ready / alert), not the description"),
    "$extensions": (
        None,
        "org.homie.legacy-stats:0.1.1:[4.x]",
        "required by Homie 4.0, missing in the original (docs/architecture.md#original-bridge U5); "
        "an empty retained message would delete it",
    ),
    "$stats/interval": (None, "5", "the legacy-stats extension: $stats/uptime every 5 s"),
    "abc/locked-out/$name": (
        "Is the heat pump currently locked out?",
        "Locked Out",
        "a name, not a question",
    ),
    "abc/derated/$name": (
        "Is the compressor currently running at a derated level?",
        "Compressor Derated",
        "a name, not a question (issue 14)",
    ),
    "abc/safe-mode/$name": (
        "Is the heat pump currently in safe mode?",
        "Safe Mode",
        "a name, not a question",
    ),
    "compressor/superheat-temperature/$unit": ("°F", "Δ°F", "a difference: converted by the factor only"),
    "compressor/subcool-temperature/$unit": ("°F", "Δ°F", "a difference: converted by the factor only"),
    "$implementation": (None, "aurora-suite", "homie-spec's optional implementation attribute"),
    "$nodes": (
        "abc,compressor,aux-heat,blower,pump,dhw,humidistat,faults,zone1",
        "abc,compressor,aux-heat,blower,pump,dhw,humidistat,faults,zone1,energy",
        "the energy counters (issue 17), a node of their own (tests/unit/test_bridge_energy.py)",
    ),
    "abc/$properties": (
        "current-mode,emergency-shutdown,load-shed,locked-out,derated,safe-mode,entering-air-temperature,"
        "entering-water-temperature,leaving-water-temperature,low-pressure-switch,high-pressure-switch,"
        "leaving-air-temperature,outdoor-temperature,line-voltage-setting,air-coil-temperature,line-voltage,watts",
        "current-mode,emergency-shutdown,load-shed,locked-out,derated,safe-mode,entering-air-temperature,"
        "entering-water-temperature,leaving-water-temperature,low-pressure-switch,high-pressure-switch,"
        "leaving-air-temperature,outdoor-temperature,line-voltage-setting,air-coil-temperature,line-voltage,watts,"
        "water-delta-t,cop",
        "derived values users computed by hand (issue 3): water ΔT and COP",
    ),
    "abc/water-delta-t": (None, "7.3", "new: entering − leaving water, 38.5 − 31.2 °F"),
    "abc/water-delta-t/$name": (None, "Water Temperature Difference", "new property"),
    "abc/water-delta-t/$datatype": (None, "float", "new property"),
    "abc/water-delta-t/$unit": (None, "Δ°F", "new property, a difference of two temperatures"),
    "abc/cop": (None, "3.5", "new: (18000 BTU/h ÷ 3.412 + 2150 W) ÷ 2150 W"),
    "abc/cop/$name": (None, "Coefficient of Performance", "new property"),
    "abc/cop/$datatype": (None, "float", "new property"),
    "abc/cop/$format": (None, "0:20", "new property"),
    "compressor/heat-of-extraction/$unit": (
        "Btuh",
        "BTU/h",
        "standard spelling (docs/architecture.md#original-bridge U5)",
    ),
    "compressor/heat-of-rejection/$unit": (
        "Btuh",
        "BTU/h",
        "standard spelling (docs/architecture.md#original-bridge U5)",
    ),
    "pump/minimum-speed/$format": (
        "0:100",
        "1:100",
        "the setter refused 0 that $format offered (docs/architecture.md#original-bridge C9)",
    ),
    "pump/maximum-speed/$format": (
        "0:100",
        "1:100",
        "the setter refused 0 that $format offered (docs/architecture.md#original-bridge C9)",
    ),
    "pump/speed/$format": (
        "0:100",
        "1:100",
        "the setter refused 0 that $format offered (docs/architecture.md#original-bridge C9)",
    ),
    "zone1/heating-target-temperature/$datatype": (
        "integer",
        "float",
        "values were 68.0 (docs/architecture.md#original-bridge C7)",
    ),
    "zone1/cooling-target-temperature/$datatype": (
        "integer",
        "float",
        "values were 74.0 (docs/architecture.md#original-bridge C7)",
    ),
    "zone1/fan-intermittent-on/$format": (
        "0,5,10,15,20",
        "0,5,10,15,20,25",
        "the thermostat takes 0..25 (register 12622); the original's setter did too "
        "(docs/architecture.md#original-bridge C9)",
    ),
    "zone1/fan-intermittent-off/$format": (
        "0,5,10,15,20,25,30,35,40",
        "5,10,15,20,25,30,35,40",
        "0 never reads back: the off time decodes as 5..40 (docs/architecture.md#original-bridge C9)",
    ),
    "zone1/fan-intermittent-on/$unit": (
        "M",
        "min",
        "standard unit for minutes (docs/architecture.md#original-bridge U5)",
    ),
    "zone1/fan-intermittent-off/$unit": (
        "M",
        "min",
        "standard unit for minutes (docs/architecture.md#original-bridge U5)",
    ),
}


def reader(words: Mapping[int, int]):  # type: ignore[no-untyped-def]
    """A ``read(ranges)`` over a dump that leaves out registers the dump lacks."""
    return lambda ranges: {a: words[a] for s, n in ranges for a in range(s, s + n) if a in words}


def original_homie() -> dict[str, str]:
    """The original's retained Homie topics (suffix under homie/<id>/) and payloads."""
    topics: dict[str, str] = {}
    for line in RETAINED.read_text(encoding="utf-8").splitlines():
        _retain, _qos, rest = line.split(" ", 2)
        topic, _, payload = rest.partition(" ")
        if topic.startswith(ROOT):
            topics[topic.removeprefix(ROOT)] = payload
    return topics


@pytest.fixture(scope="module")
def seed_words() -> dict[int, int]:
    return load_dump(SEED)


@pytest.fixture(scope="module")
def seed(seed_words: dict[int, int]) -> Unit:
    return detect(reader(seed_words))


@pytest.fixture(scope="module")
def jfcliche() -> Unit:
    return detect(reader(load_dump(JFCLICHE)))


def published(unit: Unit, words: Mapping[int, int]) -> dict[str, str]:
    return dict(unit.description()) | unit.values(words)


def test_every_original_homie_topic_is_reproduced_except_the_listed_differences(
    seed: Unit, seed_words: dict[int, int]
) -> None:
    """Controllers and users of the original see the same tree: nodes, property ids, names,
    datatypes, formats, units, settable flags and values."""
    original, ours = original_homie(), published(seed, seed_words)
    differences = {
        topic: (original.get(topic), ours.get(topic))
        for topic in sorted(set(original) | set(ours))
        if original.get(topic) != ours.get(topic) and not topic.startswith("energy/")  # all new
    }
    expected = {topic: (orig, mine) for topic, (orig, mine, _why) in DELIBERATE_DIFFERENCES.items()}
    assert expected == differences


def test_the_original_nodes_and_property_ids_are_all_present(seed: Unit) -> None:
    """No node or property of the original is dropped: additions only."""
    original = original_homie()
    ours = dict(seed.description())
    assert original["$nodes"].split(",") == [n for n in ours["$nodes"].split(",") if n != "energy"]
    for node in original["$nodes"].split(","):
        theirs = original[f"{node}/$properties"].split(",")
        mine = ours[f"{node}/$properties"].split(",")
        assert theirs == [p for p in mine if p in theirs]


def test_every_difference_has_a_reason() -> None:
    assert [] == [topic for topic, (_o, _m, why) in DELIBERATE_DIFFERENCES.items() if not why.strip()]


def test_the_description_starts_with_homie_and_never_contains_state(seed: Unit) -> None:
    """$homie first lets controllers discover the device; $state belongs to the runtime."""
    description = seed.description()
    assert ("$homie", "4.0.0") == description[0]
    assert [] == [topic for topic, _ in description if topic.endswith("$state")]
    assert [("$name", "WaterFurnace")] == [item for item in description if item[0] == "$name"]


def test_each_property_is_described_after_its_node(seed: Unit) -> None:
    """homie-spec's order: node attributes, then each property's attributes."""
    topics = [topic for topic, _ in seed.description()]
    for node in seed.nodes:
        start = topics.index(f"{node.id}/$properties")
        for spec in node.properties:
            assert topics.index(f"{spec.path}/$datatype") > start


def test_the_device_name_is_taken_from_the_caller(seed_words: dict[int, int]) -> None:
    unit = detect(reader(seed_words), device_name="Basement Heat Pump")
    assert "Basement Heat Pump" == dict(unit.description())["$name"]


def test_topics_keep_their_case_unlike_homie_spec() -> None:
    """homie-spec lower-cases whole topics; node names and payloads must keep their case."""
    unit = Unit.build(Components(serial="X1"))
    description = dict(unit.description())
    assert "Heat Pump" == description["abc/$name"]
    assert "aurora-x1" == unit.device_id


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        ("2109123456", "aurora-2109123456"),
        ("AB12 34", "aurora-ab12-34"),
        ("ab_12.x-", "aurora-ab-12-x"),
        ("   ", "aurora-unknown"),
    ],
)
def test_device_ids_are_valid_homie_ids_whatever_the_serial(serial: str, expected: str) -> None:
    """docs/architecture.md#original-bridge R10: the original aborted on a serial with other characters."""
    unit = Unit.build(Components(serial=serial))
    assert expected == unit.device_id
    assert homie.is_homie_id(unit.device_id)


def test_homie_id_refuses_text_with_nothing_usable() -> None:
    with pytest.raises(UsageError):
        homie.homie_id("___")


def test_every_node_and_property_id_is_a_valid_homie_id(seed: Unit) -> None:
    ids = [n.id for n in seed.nodes] + [p.id for n in seed.nodes for p in n.properties]
    assert [] == [i for i in ids if not homie.is_homie_id(i)]


def _within_format(datatype: str, fmt: str | None, payload: str) -> bool:
    if fmt is None:
        return True
    if datatype == "enum":
        return payload in fmt.split(",")
    low, high = (float(x) for x in fmt.split(":"))
    return low <= float(payload) <= high


@pytest.mark.parametrize("dump", [SEED, DEMO, JFCLICHE], ids=["seed", "demo", "jfcliche"])
def test_every_published_value_fits_its_datatype_and_format(dump: Path) -> None:
    """docs/architecture.md#original-bridge C8/C12: the original published values outside their own
    $format."""
    words = load_dump(dump)
    unit = detect(reader(words))
    values = unit.values(words)
    assert values
    for path, payload in values.items():
        spec = unit.spec(path)
        assert spec is not None
        if spec.datatype == "boolean":
            assert payload in ("true", "false"), path
        elif spec.datatype == "integer":
            assert str(int(payload)) == payload, path
        elif spec.datatype == "float":
            assert f"{float(payload):.1f}" == payload, path
        assert _within_format(spec.datatype, spec.format, payload), (path, payload, spec.format)


def test_a_partial_poll_gives_a_partial_update(seed: Unit, seed_words: dict[int, int]) -> None:
    """A chunk that failed leaves its properties out; the others are still published."""
    words = {a: v for a, v in seed_words.items() if not 1100 <= a <= 1199}
    values = seed.values(words)
    assert "abc/entering-water-temperature" not in values
    assert "compressor/watts" not in values
    assert "heating" == values["abc/current-mode"]
    assert "68.0" == values["zone1/heating-target-temperature"]


def test_not_present_sensors_are_left_out(seed: Unit, seed_words: dict[int, int]) -> None:
    """0xD8F1 (-999.9 °F) means the sensor is not fitted: no value rather than -999.9."""
    values = seed.values({**seed_words, 900: 0xD8F1})
    assert "abc/leaving-air-temperature" not in values


def test_total_watts_use_both_words(seed: Unit, seed_words: dict[int, int]) -> None:
    """docs/architecture.md#original-bridge C1: the original published the low word of 1152-53 and 1150-51
    only."""
    values = seed.values({**seed_words, 1152: 1, 1153: 0x0010, 1150: 1, 1151: 0})
    assert "65552" == values["abc/watts"]
    assert "65536" == values["aux-heat/watts"]


def test_a_five_speed_blower_publishes_running_and_watts() -> None:
    """docs/architecture.md#original-bridge C2."""
    unit = Unit.build(Components(serial="1", blower_type=3, energy_monitor=2))
    values = unit.values({30: 0x0009, 1148: 0, 1149: 300})
    assert ("true", "2", "300") == (values["blower/running"], values["blower/speed"], values["blower/watts"])


def test_a_single_stage_compressor_never_reports_speed_two() -> None:
    """docs/architecture.md#original-bridge C12: cc2 on a single-stage unit published 2 against $format
    0:1."""
    unit = Unit.build(Components(serial="1", dip=0x20))
    assert "0:1" == dict(unit.description())["compressor/speed/$format"]
    assert "1" == unit.values({30: 0x0003})["compressor/speed"]


def test_an_unknown_iz2_call_is_left_out_rather_than_published_outside_the_enum() -> None:
    """docs/architecture.md#original-bridge C8: unknown1/unknown7 were published outside $format."""
    unit = Unit.build(Components(serial="1", iz2=True, iz2_version=2.06, zone_count=1))
    words = {31007: 700, 31008: 0, 31009: 1 << 1}
    assert "zone1/current-mode" not in unit.values(words)
    assert "h1" == unit.values({**words, 31009: 2 << 1})["zone1/current-mode"]


def test_iz2_emergency_heat_reads_back_from_three_mode_bits() -> None:
    """docs/architecture.md#original-bridge C8: two bits read eheat (4) as off."""
    unit = Unit.build(Components(serial="1", iz2=True, iz2_version=2.06, zone_count=1))
    assert "eheat" == unit.values({31008: 0, 31009: 4 << 8})["zone1/target-mode"]


def test_iz2_set_points_decode_the_packed_configuration_words() -> None:
    """docs/protocol.md#conversions: heating = carry bit of config 1 + five bits of config 2, + 36 °F."""
    unit = Unit.build(Components(serial="1", iz2=True, iz2_version=2.06, zone_count=2))
    heat, cool = 68 - 36, 75 - 36
    words = {31011: (cool << 1) | (heat >> 5), 31012: (heat & 0x1F) << 11}
    values = unit.values(words)
    assert "68.0" == values["zone2/heating-target-temperature"]
    assert "75.0" == values["zone2/cooling-target-temperature"]


def test_sensors_the_unit_does_not_have_are_left_out_as_the_original_decided(
    seed_words: dict[int, int],
) -> None:
    """Issue 14: entering air and outdoor temperature reading 0.0 at start-up, a sensor reading
    "not present" (0xD8F1) and fault counters reading 0xFFFF are sensors the unit lacks: no
    property (docs/architecture.md#homie-tree). Once in the tree, a property stays for the whole run."""
    unit = detect(reader({**seed_words, 740: 0, 742: 0, 20: 0xD8F1, 601: 0xFFFF, 602: 0}))
    description = dict(unit.description())
    properties = set(description["abc/$properties"].split(","))
    assert {"entering-air-temperature", "outdoor-temperature", "air-coil-temperature"}.isdisjoint(properties)
    assert {"entering-water-temperature", "leaving-air-temperature"} <= properties
    faults = description["faults/$properties"].split(",")
    assert "e1" not in faults and "e2" in faults
    assert "abc/entering-air-temperature" not in unit.values({**seed_words, 740: 700})
    fitted = detect(reader(seed_words))
    assert "71.3" == fitted.values({**seed_words, 740: 713})["abc/entering-air-temperature"]
    assert "0.0" == fitted.values({**seed_words, 740: 0})["abc/entering-air-temperature"]


def test_the_real_scans_absent_sensors_get_no_property(jfcliche: Unit) -> None:
    """tests/data/jfcliche-flat.yml: 81 fault counters read 0xFFFF, entering air (740) reads 0.0."""
    paths = {spec.path for spec in jfcliche.properties()}
    assert "abc/entering-air-temperature" not in paths
    assert 18 == sum(path.startswith("faults/e") for path in paths)


def test_the_clear_history_button_is_not_retained_and_has_no_value(
    seed: Unit, seed_words: dict[int, int]
) -> None:
    description = dict(seed.description())
    assert "false" == description["faults/clear-history/$retained"]
    assert "faults/clear-history" not in seed.values(seed_words)


def test_components_from_refuses_words_without_identity() -> None:
    with pytest.raises(AuroraError):
        components_from({2: 308})


@pytest.mark.parametrize(
    ("datatype", "payload", "ok"),
    [
        ("integer", "72", True),
        ("integer", "-5", True),
        ("integer", "+5", False),
        ("integer", "٧١", False),
        ("integer", "72.0", False),
        ("integer", " 72", False),
        ("float", "72.5", True),
        ("float", "72", True),
        ("float", "-0.5e+2", True),
        ("float", "75.", False),
        ("float", ".5", False),
        ("float", "7 5", False),
        ("float", "72.5\n", False),
        ("float", "nan", False),
        ("float", "1" * 65, False),
        ("boolean", "true", True),
        ("boolean", "True", False),
        ("enum", "auto", True),
        ("enum", "auto ", False),
    ],
)
def test_set_payloads_follow_the_homie_grammar_exactly(datatype: str, payload: str, ok: bool) -> None:
    assert (homie.set_payload_error(datatype, payload) is None) == ok
