"""Home Assistant device-based discovery (docs/architecture.md#home-assistant): the keys HA's 2026 schema
requires, valid device classes and units, unique ids that never collide, every entity of the original kept
under its old unique id, and the migration away from the original's per-entity topics.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aurora.bridge.device import Unit, detect
from aurora.dump import load_dump

from tests.support.data import JFCLICHE_FLAT, ORIG_BRIDGE_RETAINED, SEED_DUMP

SEED = SEED_DUMP
RETAINED = ORIG_BRIDGE_RETAINED
DEMO = Path(__file__).resolve().parents[2] / "services" / "sim" / "demo.yml"
JFCLICHE = JFCLICHE_FLAT

# Entities the original did not announce; everything else of it is kept (same key and platform)
HASS_ADDITIONS = {
    "abc_low-pressure-switch": "sensor",
    "abc_high-pressure-switch": "sensor",
    "abc_line-voltage-setting": "number",
    "abc_line-voltage": "sensor",
    "abc_water-delta-t": "sensor",
    "abc_cop": "sensor",
    # the energy counters and COPs (issue 17)
    **{
        f"energy_{prop}": "sensor"
        for prop in (
            "electrical-total",
            "electrical-compressor",
            "electrical-blower",
            "electrical-aux-heat",
            "electrical-pump",
            "thermal-heating",
            "thermal-cooling",
            "cop-today",
            "cop-running",
        )
    },
}
# docs/architecture.md#original-bridge U2: the original's humidifier state was the running flag and on/off
# went nowhere; here on/off is automatic/manual control, and running is the entity's action
STATE_TOPIC_CHANGES = {"dehumidifier": "homie/aurora-2109123456/humidistat/dehumidifier-mode"}
# (entity, field) → (the original's value, ours, why), for the entities announced on their own
HASS_DIFFERENCES: dict[tuple[str, str], tuple[Any, Any, str]] = {
    ("pump_minimum-speed", "min"): (0, 1, "the setter refuses 0 (docs/architecture.md#original-bridge C9)"),
    ("pump_maximum-speed", "min"): (0, 1, "the setter refuses 0 (docs/architecture.md#original-bridge C9)"),
    ("pump_speed", "min"): (0, 1, "the setter refuses 0 (docs/architecture.md#original-bridge C9)"),
    ("compressor_heat-of-extraction", "unit_of_measurement"): ("Btuh", "BTU/h", "HA's spelling"),
    ("compressor_heat-of-rejection", "unit_of_measurement"): ("Btuh", "BTU/h", "HA's spelling"),
    ("pump_waterflow", "device_class"): (None, "volume_flow_rate", "HA converts and graphs flows"),
    ("pump_waterflow", "unit_of_measurement"): ("gpm", "gal/min", "the unit volume_flow_rate accepts"),
    ("abc_locked-out", "device_class"): (None, "problem", "shown as a problem in HA"),
    ("abc_derated", "device_class"): (None, "problem", "shown as a problem in HA"),
    ("abc_safe-mode", "device_class"): (None, "problem", "shown as a problem in HA"),
    ("faults_clear-history", "entity_category"): (None, "config", "a maintenance action, not a control"),
    ("compressor_superheat-temperature", "device_class"): (
        "temperature",
        "temperature_delta",
        "a difference: 7 °F is 3.9 °C, not -13.9 °C (issue 14)",
    ),
    ("compressor_subcool-temperature", "device_class"): (
        "temperature",
        "temperature_delta",
        "a difference: 7 °F is 3.9 °C, not -13.9 °C (issue 14)",
    ),
    ("zone1_fan-intermittent-on", "options"): (
        ["0", "5", "10", "15", "20"],
        ["0", "5", "10", "15", "20", "25"],
        "the Homie $format (docs/architecture.md#original-bridge C9)",
    ),
    ("zone1_fan-intermittent-off", "options"): (
        ["0", "5", "10", "15", "20", "25", "30", "35", "40"],
        ["5", "10", "15", "20", "25", "30", "35", "40"],
        "the Homie $format (docs/architecture.md#original-bridge C9)",
    ),
}
_ABBREVIATIONS = {
    "dev_cla": "device_class",
    "stat_cla": "state_class",
    "ent_cat": "entity_category",
    "unit_of_meas": "unit_of_measurement",
    "ops": "options",
    "pl_on": "payload_on",
    "pl_off": "payload_off",
    "pl_prs": "payload_press",
    "min": "min",
    "max": "max",
}
# What HA 2026.2 accepts (homeassistant.const / sensor and binary_sensor device classes)
PLATFORMS = {
    "sensor",
    "binary_sensor",
    "number",
    "select",
    "switch",
    "button",
    "climate",
    "water_heater",
    "humidifier",
}
SENSOR_UNITS: dict[str | None, set[str | None]] = {
    None: {None, "BTU/h", "%", "°F"},
    "temperature": {"°F", "°C", "K"},
    "temperature_delta": {"°F", "°C", "K"},
    "power": {"W", "kW", "BTU/h"},
    "energy": {"Wh", "kWh", "MWh"},
    "pressure": {"psi", "Pa", "kPa", "bar"},
    "humidity": {"%"},
    "voltage": {"V", "mV"},
    "volume_flow_rate": {"gal/min", "L/min", "m³/h"},
}
BINARY_CLASSES = {None, "running", "problem"}
STATE_CLASSES = {None, "measurement", "total", "total_increasing"}
REQUIRED = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic", "payload_on", "payload_off"},
    "number": {"state_topic", "command_topic", "min", "max"},
    "select": {"state_topic", "command_topic", "options"},
    "switch": {"state_topic", "command_topic", "payload_on", "payload_off"},
    "button": {"command_topic", "payload_press"},
    "climate": {"mode_command_topic", "modes"},
    "water_heater": {"mode_command_topic", "modes"},
    "humidifier": {"command_topic", "target_humidity_command_topic"},
}


def reader(words: Mapping[int, int]):  # type: ignore[no-untyped-def]
    return lambda ranges: {a: words[a] for s, n in ranges for a in range(s, s + n) if a in words}


@pytest.fixture(scope="module")
def units() -> dict[str, Unit]:
    return {
        name: detect(reader(load_dump(path)))
        for name, path in (("seed", SEED), ("demo", DEMO), ("jfcliche", JFCLICHE))
    }


def document(unit: Unit, **kwargs: Any) -> dict[str, Any]:
    topics = [(t, p) for t, p in unit.hass_discovery(**kwargs) if "/device/" in t]
    assert 1 == len(topics)
    return dict(json.loads(topics[0][1]))


def original_entities() -> dict[str, tuple[str, dict[str, Any]]]:
    """The original's per-entity configs for the seed: object id → (platform, config)."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for line in RETAINED.read_text(encoding="utf-8").splitlines():
        _r, _q, rest = line.split(" ", 2)
        topic, _, payload = rest.partition(" ")
        if topic.startswith("homeassistant/"):
            _prefix, platform, _device, key, _config = topic.split("/")
            out[key] = (platform, json.loads(payload))
    return out


@pytest.mark.parametrize("name", ["seed", "demo", "jfcliche"])
def test_the_device_document_has_what_device_discovery_requires(units: dict[str, Unit], name: str) -> None:
    """dev, origin and a platform plus unique_id per component; availability from Homie $state."""
    unit = units[name]
    doc = document(unit)
    assert [unit.device_id] == doc["dev"]["ids"]
    assert ("WaterFurnace", "WaterFurnace") == (doc["dev"]["name"], doc["dev"]["mf"])
    assert doc["o"]["name"]
    assert [
        {
            "topic": f"homie/{unit.device_id}/$state",
            "value_template": "{{ 'online' if value == 'ready' else 'offline' }}",
        }
    ] == doc["avty"]
    for key, cmp in doc["cmps"].items():
        assert re.fullmatch(r"[a-zA-Z0-9_-]+", key), key
        assert cmp["p"] in PLATFORMS, key
        assert REQUIRED[cmp["p"]] <= set(cmp), (key, REQUIRED[cmp["p"]] - set(cmp))
        assert cmp["unique_id"] == f"{unit.device_id}_{key}"
        assert 1 == cmp["qos"], key  # a root qos is not inherited (docs/architecture.md#home-assistant)
        assert "object_id" not in cmp
        assert re.fullmatch(rf"{cmp['p']}\.[a-z0-9_]+", cmp["default_entity_id"]), key


@pytest.mark.parametrize("name", ["seed", "demo", "jfcliche"])
def test_device_classes_units_and_state_classes_are_valid(units: dict[str, Unit], name: str) -> None:
    for key, cmp in document(units[name])["cmps"].items():
        if cmp["p"] == "sensor":
            if cmp.get("device_class") == "enum":
                # original issue 84: an enum sensor with a state class is rejected
                assert {"state_class", "unit_of_measurement"}.isdisjoint(cmp), key
                assert cmp["options"], key
                continue
            assert cmp.get("device_class") in SENSOR_UNITS, key
            assert cmp.get("unit_of_measurement") in SENSOR_UNITS[cmp.get("device_class")], key
            assert cmp.get("state_class") in STATE_CLASSES, key
        elif cmp["p"] == "binary_sensor":
            assert cmp.get("device_class") in BINARY_CLASSES, key
            assert ("true", "false") == (cmp["payload_on"], cmp["payload_off"]), key


@pytest.mark.parametrize("name", ["seed", "demo", "jfcliche"])
def test_every_topic_is_a_property_and_every_command_goes_to_a_settable_one(
    units: dict[str, Unit], name: str
) -> None:
    """docs/architecture.md#original-bridge U2: the original's humidifier on/off went to a topic nobody
    read."""
    unit = units[name]
    base = f"homie/{unit.device_id}/"
    for key, cmp in document(unit)["cmps"].items():
        for field, topic in cmp.items():
            if not field.endswith("_topic"):
                continue
            assert topic.startswith(base), (key, field)
            path = topic.removeprefix(base)
            if field.endswith("command_topic"):
                assert path.endswith("/set"), (key, field)
                assert path.removesuffix("/set") in unit.settable(), (key, field)
            else:
                assert unit.spec(path) is not None, (key, field, path)


def test_ranges_and_options_are_those_of_the_homie_format(units: dict[str, Unit]) -> None:
    unit = units["seed"]
    cmps = document(unit)["cmps"]
    for key, cmp in cmps.items():
        spec = unit.spec(key.replace("_", "/", 1))
        if cmp["p"] == "number":
            assert spec is not None and spec.format is not None
            assert spec.format == f"{cmp['min']}:{cmp['max']}", key
        if cmp["p"] == "select" or cmp.get("device_class") == "enum":
            assert spec is not None and spec.format is not None
            assert spec.format.split(",") == cmp["options"], key


def test_every_entity_of_the_original_is_kept_under_its_unique_id(units: dict[str, Unit]) -> None:
    """Users switching from the gem keep their entities and their history."""
    original = original_entities()
    cmps = document(units["seed"])["cmps"]
    kept = {key: cmps[key]["p"] for key in original if key in cmps}
    assert {key: platform for key, (platform, _cfg) in original.items()} == kept
    for key, (_platform, config) in original.items():
        assert config["uniq_id"] == cmps[key]["unique_id"], key
        expected = STATE_TOPIC_CHANGES.get(key, config.get("stat_t"))
        assert expected == cmps[key].get("state_topic"), key
    assert HASS_ADDITIONS == {key: cmp["p"] for key, cmp in cmps.items() if key not in original}


def test_entity_classes_units_and_ranges_match_the_original_except_the_listed_differences(
    units: dict[str, Unit],
) -> None:
    cmps = document(units["seed"])["cmps"]
    differences: dict[tuple[str, str], tuple[Any, Any]] = {}
    for key, (platform, config) in original_entities().items():
        if platform in ("climate", "water_heater", "humidifier"):
            continue  # node entities: their own tests below
        theirs = {_ABBREVIATIONS[k]: v for k, v in config.items() if k in _ABBREVIATIONS}
        ours = {k: v for k, v in cmps[key].items() if k in _ABBREVIATIONS.values()}
        for field in sorted(set(theirs) | set(ours)):
            if theirs.get(field) != ours.get(field):
                differences[(key, field)] = (theirs.get(field), ours.get(field))
    assert {k: (o, m) for k, (o, m, _why) in HASS_DIFFERENCES.items()} == differences


# Issue 14: names a user would write, not questions (the unique ids stay, so history is kept)
NAME_CHANGES = {
    "abc_locked-out": ("Heat Pump Is the heat pump currently locked out?", "Heat Pump Locked Out"),
    "abc_derated": (
        "Heat Pump Is the compressor currently running at a derated level?",
        "Heat Pump Compressor Derated",
    ),
    "abc_safe-mode": ("Heat Pump Is the heat pump currently in safe mode?", "Heat Pump Safe Mode"),
}


def test_entities_keep_the_original_names_and_classes(units: dict[str, Unit]) -> None:
    cmps = document(units["seed"])["cmps"]
    renamed = {}
    for key, (platform, config) in original_entities().items():
        named = platform in ("sensor", "binary_sensor", "number", "select", "switch", "button")
        if named and config["name"] != cmps[key]["name"]:
            renamed[key] = (config["name"], cmps[key]["name"])
        if platform == "sensor" and "dev_cla" in config and (key, "device_class") not in HASS_DIFFERENCES:
            assert config["dev_cla"] == cmps[key]["device_class"], key
    assert NAME_CHANGES == renamed
    for name in (cmp.get("name") or "" for cmp in cmps.values()):
        assert not name.endswith("?"), name


@pytest.mark.parametrize("name", ["seed", "demo", "jfcliche"])
def test_every_temperature_difference_is_a_temperature_delta(units: dict[str, Unit], name: str) -> None:
    """Issue 14: superheat, subcool and water ΔT convert by the factor only, in HA as in Homie."""
    unit = units[name]
    cmps = document(unit)["cmps"]
    differences = {
        spec.path
        for spec in unit.properties()
        if re.search(r"superheat|subcool|delta|difference", f"{spec.id} {spec.name}", re.IGNORECASE)
    }
    assert differences, name
    for spec in unit.properties():
        key = f"{spec.node}_{spec.id}"
        if spec.path in differences:
            assert "Δ°F" == spec.unit, spec.path
            assert ("temperature_delta", "°F") == (
                cmps[key]["device_class"],
                cmps[key]["unit_of_measurement"],
            ), key
        elif key in cmps:
            assert cmps[key].get("device_class") != "temperature_delta", key


def test_a_single_thermostat_is_one_climate_entity_named_after_the_device(units: dict[str, Unit]) -> None:
    climate = document(units["seed"])["cmps"]["zone1"]
    assert climate["name"] is None  # the device's main entity (HA naming since 2023.8)
    assert ["off", "heat_cool", "cool", "heat"] == climate["modes"]
    # HA has no eheat mode (docs/architecture.md#original-bridge U3)
    assert ["emergency_heat"] == climate["preset_modes"]
    assert (40, 99, "F") == (climate["min_temp"], climate["max_temp"], climate["temperature_unit"])
    assert (0.1, 0.5) == (climate["precision"], climate["temp_step"])  # the thermostat stores tenths
    assert climate["temperature_low_command_topic"].endswith("zone1/heating-target-temperature/set")
    assert climate["temperature_high_command_topic"].endswith("zone1/cooling-target-temperature/set")


def test_each_iz2_zone_is_a_climate_and_only_zone_one_has_emergency_heat(
    units: dict[str, Unit],
) -> None:
    cmps = document(units["demo"])["cmps"]
    climates = {key: cmp for key, cmp in cmps.items() if cmp["p"] == "climate"}
    assert ["zone1", "zone2", "zone3"] == sorted(climates)
    assert ["Zone 1", "Zone 2", "Zone 3"] == [climates[k]["name"] for k in sorted(climates)]
    assert ["zone1"] == [k for k, c in climates.items() if "preset_modes" in c]
    assert {1} == {c["temp_step"] for c in climates.values()}  # IZ2 zones hold whole degrees


def test_a_unit_without_a_communicating_thermostat_gets_no_climate(units: dict[str, Unit]) -> None:
    cmps = document(units["jfcliche"])["cmps"]
    assert [] == [key for key, cmp in cmps.items() if cmp["p"] in ("climate", "water_heater", "humidifier")]


def test_the_water_heater_sends_its_limits_under_the_keys_ha_reads(units: dict[str, Unit]) -> None:
    """docs/architecture.md#original-bridge U3: the original sent min/max, which the water heater ignores."""
    heater = document(units["seed"])["cmps"]["dhw"]
    assert (100, 140) == (heater["min_temp"], heater["max_temp"])
    assert {"min", "max"}.isdisjoint(heater)
    assert ["off", "heat_pump"] == heater["modes"]


def test_humidifiers_switch_between_auto_and_manual_and_carry_their_ranges(
    units: dict[str, Unit],
) -> None:
    cmps = document(units["demo"])["cmps"]
    humidifier, dehumidifier = cmps["humidifier"], cmps["dehumidifier"]
    assert ("humidifier", 15, 50) == (
        humidifier["device_class"],
        humidifier["min_humidity"],
        humidifier["max_humidity"],
    )
    assert ("dehumidifier", 35, 65) == (
        dehumidifier["device_class"],
        dehumidifier["min_humidity"],
        dehumidifier["max_humidity"],
    )
    assert ("auto", "manual") == (humidifier["payload_on"], humidifier["payload_off"])


def test_two_bridges_never_share_a_unique_id_or_a_discovery_topic(units: dict[str, Unit]) -> None:
    ids = {name: {c["unique_id"] for c in document(unit)["cmps"].values()} for name, unit in units.items()}
    assert set() == ids["seed"] & ids["demo"]
    assert set() == ids["seed"] & ids["jfcliche"]
    topics = {t for unit in units.values() for t, _ in unit.hass_discovery() if "/device/" in t}
    assert 3 == len(topics)


def test_the_gem_topics_are_migrated_then_cleared_around_the_device_document(units: dict[str, Unit]) -> None:
    """HA's migration order: migrate_discovery on the old topics, the new document, then empty payloads."""
    unit = units["seed"]
    messages = unit.hass_discovery()
    device = [i for i, (t, _) in enumerate(messages) if t == f"homeassistant/device/{unit.device_id}/config"]
    assert 1 == len(device)
    before, after = messages[: device[0]], messages[device[0] + 1 :]
    assert {json.dumps({"migrate_discovery": True})} == {p for _, p in before}
    assert {""} == {p for _, p in after}
    assert [t for t, _ in before] == [t for t, _ in after]
    original = {
        f"homeassistant/{platform}/{unit.device_id}/{key}/config"
        for key, (platform, _) in original_entities().items()
    }
    legacy = {  # docs/architecture.md#home-assistant: emptied by the original on every start
        f"homeassistant/{p}/{unit.device_id}/{k}/config"
        for p, k in (
            ("switch", "dhw_enabled"),
            ("number", "dhw_set-point"),
            ("sensor", "dhw_water-temperature"),
            ("scene", "faults_clear-history"),
        )
    }
    assert original | legacy == {t for t, _ in before}


def test_without_migration_only_the_device_document_is_published(units: dict[str, Unit]) -> None:
    messages = units["seed"].hass_discovery(migrate=False)
    assert ["homeassistant/device/aurora-2109123456/config"] == [t for t, _ in messages]


def test_the_topic_root_and_discovery_prefix_are_configurable(units: dict[str, Unit]) -> None:
    unit = units["seed"]
    messages = unit.hass_discovery(homie_root="site/a", prefix="ha", migrate=False)
    topic, payload = messages[0]
    assert "ha/device/aurora-2109123456/config" == topic
    doc = json.loads(payload)
    assert "site/a/aurora-2109123456/$state" == doc["avty"][0]["topic"]
    assert doc["cmps"]["abc_watts"]["state_topic"].startswith("site/a/aurora-2109123456/")


def test_only_gem_topics_still_retained_are_migrated(units: dict[str, Unit]) -> None:
    """After the first run nothing is left to migrate: no marker floods HA on every start."""
    unit = units["seed"]
    old = "homeassistant/sensor/aurora-2109123456/abc_watts/config"
    messages = unit.hass_discovery(existing={old, "homie/aurora-2109123456/$state"})
    assert [old, "homeassistant/device/aurora-2109123456/config", old] == [t for t, _ in messages]
    assert ["homeassistant/device/aurora-2109123456/config"] == [
        t for t, _ in unit.hass_discovery(existing=())
    ]
