"""One register model (issue 13): a property names its register and takes everything else from the
map, so a new sensor is one line in a node and a new setting is one write rule in the map plus one
line (docs/architecture.md#add-a-sensor, docs/architecture.md#add-a-setting).

The test adds both to a copy of the map and to a node, the way the checklists say, and finds them
in the Homie tree, the values, the ``/set`` handling and Home Assistant discovery.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from aurora import registers as regs
from aurora.bridge import properties
from aurora.bridge.components import Components
from aurora.bridge.device import Unit
from aurora.bridge.properties import build_nodes as shipped_nodes
from aurora.bridge.shapes import reading, setting
from aurora.bridge.spec import TEMPERATURE, Hass, NodeSpec, Role, Tier, builder
from aurora.errors import UsageError

# What a contributor adds to shared/aurora/data/registers.json: a register the map does not know
# yet (the sensor), and a write rule for one it knows (the setting)
NEW_SENSOR = {
    "address": 1120,
    "name": "Test Loop Temperature",
    "converter": "signed_tenths",
    "unit": "°F",
    "format": "%0.1f°F",
}
NEW_RULE = {"write": {"low": 0, "high": 120, "step": 5}, "publish_unit": "min"}
SETTING = 407  # Off Time Length: read-only in the shipped map


def _map_with_additions() -> MappingProxyType[int, regs.Register]:
    entries = json.loads((Path(regs.__file__).parent / "data" / "registers.json").read_text("utf-8"))
    by_address: dict[int, dict[str, Any]] = {e["address"]: e for e in entries["registers"]}
    assert 1120 not in by_address and "write" not in by_address[SETTING]
    by_address[1120] = NEW_SENSOR
    by_address[SETTING] = {**by_address[SETTING], **NEW_RULE}
    return MappingProxyType({a: regs.register_from(e) for a, e in by_address.items()})


@pytest.fixture
def unit(monkeypatch: pytest.MonkeyPatch) -> Unit:
    monkeypatch.setattr(regs, "REGISTERS", _map_with_additions())
    shipped = properties.build_nodes

    def build_nodes(c: Components) -> tuple[NodeSpec, ...]:
        nodes = list(shipped(c))
        p = builder("abc")
        added = (
            # the one line of the sensor
            reading(p, "loop-temperature", "Loop Temperature", 1120, Tier.FAST, hass=TEMPERATURE),
            # the one line of the setting
            setting(
                p,
                "off-time-length",
                "Off Time Length",
                SETTING,
                hass=Hass(platform="number", category="config"),
            ),
        )
        nodes[0] = nodes[0].replace(properties=nodes[0].properties + added)
        return tuple(nodes)

    monkeypatch.setattr(properties, "build_nodes", build_nodes)
    return Unit.build(Components(serial="1234"))


def _cmps(unit: Unit) -> dict[str, dict[str, Any]]:
    (document,) = [json.loads(p) for t, p in unit.hass_discovery(migrate=False) if "/device/" in t]
    cmps: dict[str, dict[str, Any]] = document["cmps"]
    return cmps


def _tree(unit: Unit) -> dict[str, str]:
    return dict(unit.description())


def test_the_new_sensor_is_in_the_homie_tree_with_the_maps_datatype_and_unit(unit: Unit) -> None:
    tree = _tree(unit)
    assert "loop-temperature" in tree["abc/$properties"].split(",")
    assert ("Loop Temperature", "float", "°F") == tuple(
        tree[f"abc/loop-temperature/{attribute}"] for attribute in ("$name", "$datatype", "$unit")
    )
    assert "false" == tree.get("abc/loop-temperature/$settable", "false")
    assert 1120 in unit.registers(Tier.FAST)


def test_the_new_sensor_publishes_the_maps_decoding(unit: Unit) -> None:
    """Signed tenths: 0xFFF6 is -1.0 °F; "not present" publishes nothing."""
    assert "-1.0" == unit.values({1120: 0xFFF6})["abc/loop-temperature"]
    assert "abc/loop-temperature" not in unit.values({1120: regs.NOT_PRESENT})


def test_the_new_setting_takes_range_step_unit_and_setter_from_the_write_rule(unit: Unit) -> None:
    tree = _tree(unit)
    assert ("integer", "0:120", "min", "true") == tuple(
        tree[f"abc/off-time-length/{attribute}"]
        for attribute in ("$datatype", "$format", "$unit", "$settable")
    )
    assert SETTING in unit.registers(Tier.MEDIUM)
    setter = unit.setter("abc/off-time-length")
    assert setter is not None
    assert [(SETTING, 20)] == setter.writes("22", {})  # rounded to the rule's step of 5
    assert "25" == unit.values({SETTING: 25})["abc/off-time-length"]
    with pytest.raises(UsageError, match=r"outside 0\.\.120"):
        setter.writes("125", {})


def test_both_are_announced_to_home_assistant(unit: Unit) -> None:
    cmps = _cmps(unit)
    sensor, number = cmps["abc_loop-temperature"], cmps["abc_off-time-length"]
    assert ("sensor", "temperature", "°F") == (
        sensor["p"],
        sensor["device_class"],
        sensor["unit_of_measurement"],
    )
    assert sensor["state_topic"] == "homie/aurora-1234/abc/loop-temperature"
    assert ("number", 0, 120, 5, "min") == tuple(
        number[key] for key in ("p", "min", "max", "step", "unit_of_measurement")
    )
    assert number["command_topic"] == "homie/aurora-1234/abc/off-time-length/set"


def test_without_the_write_rule_the_line_fails_at_once() -> None:
    """Nothing can write a register the map gives no rule: the table is not built."""
    p = builder("abc")
    with pytest.raises(ValueError, match="register 407 has no write rule"):
        setting(p, "off-time-length", "Off Time Length", SETTING)
    with pytest.raises(ValueError, match="register 1120 is not in the register map"):
        reading(p, "loop-temperature", "Loop Temperature", 1120, Tier.FAST)


def _paths(nodes: Sequence[NodeSpec]) -> list[str]:
    return [spec.path for node in nodes for spec in node.properties]


def test_the_shipped_tree_is_unchanged_by_the_copy(unit: Unit) -> None:
    """The additions are the only difference to the shipped table."""
    shipped = _paths(shipped_nodes(Components(serial="1234")))
    abc = [path for path in shipped if path.startswith("abc/")]
    added = ["abc/loop-temperature", "abc/off-time-length"]
    assert _paths(unit.nodes) == abc + added + shipped[len(abc) :]


def test_composite_entities_find_their_parts_by_role_not_by_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Renaming a zone's target property moves the climate entity's topics with it; taking the
    role away takes the entity away (a thermostat with nothing to control)."""
    c = Components(serial="1234", thermostat=True, thermostat_version=3.1)
    shipped = properties.build_nodes

    def renamed(role: Role | None, new_id: str) -> tuple[NodeSpec, ...]:
        nodes = list(shipped(c))
        zone = next(i for i, n in enumerate(nodes) if n.id == "zone1")
        props = tuple(
            s.replace(id=new_id, role=role) if s.id == "heating-target-temperature" else s
            for s in nodes[zone].properties
        )
        nodes[zone] = nodes[zone].replace(properties=props)
        return tuple(nodes)

    monkeypatch.setattr(properties, "build_nodes", lambda _c: renamed(Role.CLIMATE_HEATING_TARGET, "heat-to"))
    climate = _cmps(Unit.build(c))["zone1"]
    assert "homie/aurora-1234/zone1/heat-to" == climate["temperature_low_state_topic"]
    assert "homie/aurora-1234/zone1/heat-to/set" == climate["temperature_low_command_topic"]
    monkeypatch.setattr(properties, "build_nodes", lambda _c: renamed(None, "heating-target-temperature"))
    assert "zone1" not in _cmps(Unit.build(c))
