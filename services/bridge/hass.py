"""Home Assistant device-based MQTT discovery for a unit (docs/architecture.md#home-assistant, verified
schema).

One retained payload at ``<prefix>/device/<device_id>/config`` carries the device, origin,
availability (from Homie ``$state``: online only when ``ready``) and one component per entity.
Unique ids keep the Ruby gem's ``aurora-<serial>_<node>_<property>`` so Home Assistant keeps the
entities' history after a switch, and carry the device id so several bridges never collide. The
gem's per-entity topics are migrated (HA's ``migrate_discovery`` marker), then cleared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from importlib import metadata
from typing import Any, Protocol

from .components import Components
from .spec import NodeSpec, PropertySpec, Role


class Unit(Protocol):
    """What discovery needs of a detected unit (``device.Unit`` is one; device.py imports this
    module, so naming it here would make the two a circle)."""

    @property
    def device_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def components(self) -> Components: ...
    @property
    def nodes(self) -> tuple[NodeSpec, ...]: ...
    def spec(self, node_prop: str) -> PropertySpec | None: ...
    def properties(self) -> list[PropertySpec]: ...


ORIGIN_NAME = "aurora-suite bridge"
MANUFACTURER = "WaterFurnace"
AVAILABILITY_TEMPLATE = "{{ 'online' if value == 'ready' else 'offline' }}"
# Commands HA renders: an integer as digits (HA sends 50.0, or 49.99999 after a conversion),
# a temperature with two decimals (21 °C is 69.80000000000001 °F). The bridge rounds either to
# the register's step (aurora.registers.WriteRule.nearest), so the templates only tidy the text.
INTEGER_TEMPLATE = "{{ value | float | round(0) | int }}"
NUMBER_TEMPLATE = "{{ value | float | round(2) }}"
# The four topics the gem emptied on every start (docs/architecture.md#home-assistant), the first
# three only for a unit with a water heater
_GEM_LEGACY = (
    ("switch", "dhw_enabled", Role.WATER_HEATER_TARGET),
    ("number", "dhw_set-point", Role.WATER_HEATER_TARGET),
    ("sensor", "dhw_water-temperature", Role.WATER_HEATER_TARGET),
    ("scene", "faults_clear-history", None),
)
# The parts of a humidifier entity, by its kind
_HUMIDIFIER_ROLES = {
    "humidifier": (Role.HUMIDIFIER_MODE, Role.HUMIDIFIER_TARGET, Role.HUMIDIFIER_ACTION),
    "dehumidifier": (Role.DEHUMIDIFIER_MODE, Role.DEHUMIDIFIER_TARGET, Role.DEHUMIDIFIER_ACTION),
}


def _version() -> str:
    try:
        return metadata.version("aurora-suite")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def object_id(spec: PropertySpec) -> str:
    """The component key and unique-id suffix: ``<node>_<property>`` as the gem named it."""
    return f"{spec.node}_{spec.id}"


def part(unit: Unit, role: Role, node: NodeSpec | None = None) -> PropertySpec | None:
    """The property playing ``role`` in a composite entity, in ``node`` or anywhere; None if none."""
    for candidate in (node,) if node is not None else unit.nodes:
        for spec in candidate.properties:
            if spec.role is role:
                return spec
    return None


def _parts(unit: Unit, node: NodeSpec | None, *roles: Role) -> list[PropertySpec] | None:
    """Every role's property, or None when one is missing."""
    specs = [part(unit, role, node) for role in roles]
    return None if any(s is None for s in specs) else [s for s in specs if s is not None]


def _options(spec: PropertySpec) -> list[str]:
    return (spec.format or "").split(",")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _common(unit: Unit, platform: str, key: str, name: str | None) -> dict[str, Any]:
    return {
        "p": platform,
        "unique_id": f"{unit.device_id}_{key}",
        "default_entity_id": f"{platform}.{_slug(unit.device_id)}_{_slug(key)}",
        "name": name,
        "qos": 1,  # a root qos is not inherited by components (docs/architecture.md#home-assistant)
    }


def _range(spec: PropertySpec) -> tuple[float, float]:
    assert spec.format is not None and ":" in spec.format, spec.path
    low, high = spec.format.split(":")
    return float(low), float(high)


def _number(text: float) -> int | float:
    return int(text) if float(text).is_integer() else text


def _step(spec: PropertySpec) -> int | float:
    """The step of a settable number: its register's resolution in the map (1 for integers)."""
    rule = spec.setter.rule if spec.setter is not None else None
    if rule is None:
        return 1 if spec.datatype == "integer" else 0.1
    return _number(round(rule.resolution, 6))


def _target_limits(*specs: PropertySpec | None) -> tuple[int | float, int | float]:
    """One range for HA's one min_temp/max_temp: from the lowest low to the highest high of the
    targets (heating 40..90, cooling 54..99 °F give 40..99). The bridge refuses a target outside
    its own range, and republishes the current value so HA shows it at once."""
    ranges = [_range(s) for s in specs if s is not None]
    return _number(min(low for low, _ in ranges)), _number(max(high for _, high in ranges))


def _property_component(unit: Unit, spec: PropertySpec, base: str) -> dict[str, Any]:
    hint = spec.hass
    assert hint is not None
    node_name = next(n.name for n in unit.nodes if n.id == spec.node)
    topic = f"{base}/{spec.node}/{spec.id}"
    c = _common(unit, hint.platform, object_id(spec), f"{node_name} {spec.name}")
    if spec.retained:
        c["state_topic"] = topic
    if spec.setter is not None:
        c["command_topic"] = f"{topic}/set"
    if hint.category:
        c["entity_category"] = hint.category
    if not hint.enabled:
        c["enabled_by_default"] = False
    unit_of_measurement = hint.unit or spec.unit
    if hint.platform == "sensor":
        if spec.datatype == "enum":
            # original issue 84: an enum sensor must not have a state class or a unit
            c["device_class"] = "enum"
            c["options"] = (spec.format or "").split(",")
        else:
            if hint.device_class:
                c["device_class"] = hint.device_class
            if hint.state_class:
                c["state_class"] = hint.state_class
            if unit_of_measurement:
                c["unit_of_measurement"] = unit_of_measurement
            if spec.datatype == "float":
                c["suggested_display_precision"] = 1
    elif hint.platform in ("binary_sensor", "switch"):
        c["payload_on"], c["payload_off"] = "true", "false"
        if hint.device_class:
            c["device_class"] = hint.device_class
    elif hint.platform == "number":
        low, high = _range(spec)
        c.update(min=_number(low), max=_number(high), step=_step(spec), mode="box")
        # Homie integers have no decimal point
        c["command_template"] = INTEGER_TEMPLATE if spec.datatype == "integer" else NUMBER_TEMPLATE
        if unit_of_measurement:
            c["unit_of_measurement"] = unit_of_measurement
        if hint.device_class:
            c["device_class"] = hint.device_class
    elif hint.platform == "select":
        c["options"] = (spec.format or "").split(",")
    elif hint.platform == "button":
        c["payload_press"] = spec.format
    return c


def _climate(unit: Unit, node: NodeSpec, base: str) -> dict[str, Any] | None:
    parts = _parts(
        unit,
        node,
        Role.CLIMATE_MODE,
        Role.CLIMATE_FAN_MODE,
        Role.CLIMATE_HEATING_TARGET,
        Role.CLIMATE_COOLING_TARGET,
        Role.CLIMATE_TEMPERATURE,
        Role.CLIMATE_ACTION,
    )
    if parts is None:
        return None  # a thermostat that does not communicate: nothing to control
    mode, fan, heating, cooling, ambient, action = (f"{base}/{s.path}" for s in parts)
    mode_spec, fan_spec, heating_spec, cooling_spec = parts[:4]
    single = unit.components.awl_thermostat and not unit.components.awl_iz2
    c = _common(unit, "climate", node.id, None if single else node.name)
    step = max(_step(heating_spec), _step(cooling_spec))  # 1 °F for IZ2 zones, 0.1 °F for the thermostat
    low, high = _target_limits(heating_spec, cooling_spec)
    modes = _options(mode_spec)
    c.update(
        {
            "current_temperature_topic": ambient,
            "action_topic": action,
            "action_template": "{% if value.startswith('h') %}heating{% elif value.startswith('c') %}cooling"
            "{% else %}idle{% endif %}",
            # Homie "auto" is the range mode HA calls heat_cool; eheat is a preset
            # (docs/architecture.md#home-assistant)
            "modes": [{"auto": "heat_cool"}.get(m, m) for m in modes if m != "eheat"],
            "mode_state_topic": mode,
            "mode_state_template": "{{ {'auto': 'heat_cool', 'eheat': 'heat'}.get(value, value) }}",
            "mode_command_topic": f"{mode}/set",
            "mode_command_template": "{{ 'auto' if value == 'heat_cool' else value }}",
            "fan_modes": _options(fan_spec),
            "fan_mode_state_topic": fan,
            "fan_mode_command_topic": f"{fan}/set",
            "temperature_low_state_topic": heating,
            "temperature_low_command_topic": f"{heating}/set",
            "temperature_low_command_template": NUMBER_TEMPLATE,
            "temperature_high_state_topic": cooling,
            "temperature_high_command_topic": f"{cooling}/set",
            "temperature_high_command_template": NUMBER_TEMPLATE,
            "temperature_unit": "F",
            "precision": 1.0 if step >= 1 else 0.1,
            "temp_step": 1 if step >= 1 else 0.5,
            "min_temp": low,
            "max_temp": high,
        }
    )
    if "eheat" in modes:
        c.update(
            {
                "preset_modes": ["emergency_heat"],
                "preset_mode_state_topic": mode,
                "preset_mode_value_template": "{{ 'emergency_heat' if value == 'eheat' else 'none' }}",
                "preset_mode_command_topic": f"{mode}/set",
                "preset_mode_command_template": "{{ 'eheat' if value == 'emergency_heat' else 'heat' }}",
            }
        )
    if (humidity := part(unit, Role.HUMIDITY)) is not None:
        c["current_humidity_topic"] = f"{base}/{humidity.path}"
    return c


def _water_heater(unit: Unit, base: str) -> dict[str, Any] | None:
    parts = _parts(
        unit, None, Role.WATER_HEATER_MODE, Role.WATER_HEATER_TARGET, Role.WATER_HEATER_TEMPERATURE
    )
    if parts is None:
        return None
    mode, target, temperature = (f"{base}/{s.path}" for s in parts)
    set_point = parts[1]
    low, high = _target_limits(set_point)
    c = _common(unit, "water_heater", set_point.node, "Domestic Hot Water Generator")
    c.update(
        {
            "icon": "mdi:water-boiler",
            "current_temperature_topic": temperature,
            "modes": ["off", "heat_pump"],
            "mode_state_topic": mode,
            "mode_state_template": "{{ 'heat_pump' if value == 'true' else 'off' }}",
            "mode_command_topic": f"{mode}/set",
            "mode_command_template": "{{ 'false' if value == 'off' else 'true' }}",
            "temperature_state_topic": target,
            "temperature_command_topic": f"{target}/set",
            "temperature_command_template": NUMBER_TEMPLATE,
            # docs/architecture.md#original-bridge U3: HA reads min_temp/max_temp; the gem sent min/max
            "min_temp": low,
            "max_temp": high,
            "precision": _step(set_point),
            "temperature_unit": "F",
        }
    )
    return c


def _humidifier(unit: Unit, base: str, kind: str) -> dict[str, Any] | None:
    """kind "humidifier" or "dehumidifier"; needs the mode and target properties (AWL)."""
    parts = _parts(unit, None, *_HUMIDIFIER_ROLES[kind])
    if parts is None:
        return None
    mode_spec, target_spec, _ = parts
    mode, target, running = (f"{base}/{s.path}" for s in parts)
    low, high = _range(target_spec)
    on, off = _options(mode_spec)
    c = _common(unit, "humidifier", kind, kind.capitalize())
    c.update(
        {
            "device_class": kind,
            # docs/architecture.md#original-bridge U2: on/off went to a topic nobody read; here on = automatic
            # control, off = manual
            "state_topic": mode,
            "command_topic": f"{mode}/set",
            "payload_on": on,
            "payload_off": off,
            "action_topic": running,
            "action_template": "{{ '%s' if value == 'true' else 'idle' }}"
            % ("humidifying" if kind == "humidifier" else "drying"),
            "target_humidity_state_topic": target,
            "target_humidity_command_topic": f"{target}/set",
            "target_humidity_command_template": INTEGER_TEMPLATE,
            "min_humidity": int(low),
            "max_humidity": int(high),
        }
    )
    if (humidity := part(unit, Role.HUMIDITY)) is not None:
        c["current_humidity_topic"] = f"{base}/{humidity.path}"
    return c


def components(unit: Unit, *, homie_root: str = "homie") -> dict[str, dict[str, Any]]:
    """The ``cmps`` map: component key → component config (with its platform ``p``)."""
    base = f"{homie_root}/{unit.device_id}"
    cmps: dict[str, dict[str, Any]] = {}
    for spec in unit.properties():
        if spec.hass is not None:
            cmps[object_id(spec)] = _property_component(unit, spec, base)
    for node in unit.nodes:
        if (climate := _climate(unit, node, base)) is not None:
            cmps[node.id] = climate
    if (water_heater := _water_heater(unit, base)) is not None:
        cmps["dhw"] = water_heater
    for kind in ("humidifier", "dehumidifier"):
        if (humidifier := _humidifier(unit, base, kind)) is not None:
            cmps[kind] = humidifier
    return cmps


def device_payload(unit: Unit, *, homie_root: str = "homie") -> dict[str, Any]:
    """The whole device-discovery document."""
    c = unit.components
    device: dict[str, Any] = {"ids": [unit.device_id], "name": unit.name, "mf": MANUFACTURER}
    if c.model:
        device["mdl"] = c.model
    if c.serial:
        device["sn"] = c.serial
    if c.abc_version:
        device["sw"] = f"{c.abc_version:.2f}"
    return {
        "dev": device,
        "o": {"name": ORIGIN_NAME, "sw": _version()},
        "avty": [{"topic": f"{homie_root}/{unit.device_id}/$state", "value_template": AVAILABILITY_TEMPLATE}],
        "cmps": components(unit, homie_root=homie_root),
    }


def legacy_topics(unit: Unit, *, prefix: str = "homeassistant") -> list[str]:
    """The gem's per-entity discovery topics this unit would have had
    (docs/architecture.md#home-assistant)."""
    topics: list[str] = []
    specs = {object_id(spec): spec for spec in unit.properties()}
    for key, cmp in components(unit).items():
        spec = specs.get(key)
        platform = cmp["p"]
        if spec is not None and spec.hass is not None and spec.hass.legacy is not None:
            platform = spec.hass.legacy
        if platform:
            topics.append(f"{prefix}/{platform}/{unit.device_id}/{key}/config")
    for platform, key, role in _GEM_LEGACY:
        if role is None or part(unit, role) is not None:
            topics.append(f"{prefix}/{platform}/{unit.device_id}/{key}/config")
    return topics


def discovery(
    unit: Unit,
    *,
    homie_root: str = "homie",
    prefix: str = "homeassistant",
    migrate: bool = True,
    existing: Collection[str] | None = None,
) -> list[tuple[str, str]]:
    """(topic, payload) in publishing order, all retained: with ``migrate``, HA's migration
    marker on each of the gem's old topics (those in ``existing``, when given), then the device
    document, then the old topics emptied (HA's documented migration order)."""
    document = json.dumps(
        device_payload(unit, homie_root=homie_root), ensure_ascii=False, separators=(",", ":")
    )
    own = (f"{prefix}/device/{unit.device_id}/config", document)
    if not migrate:
        return [own]
    old = [t for t in legacy_topics(unit, prefix=prefix) if existing is None or t in existing]
    marker = json.dumps({"migrate_discovery": True})
    return [(t, marker) for t in old] + [own] + [(t, "") for t in old]
