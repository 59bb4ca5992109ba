"""The ``abc`` node: the heat pump's control board, its mode, safeties and main sensors, with the
totals users computed by hand (docs/architecture.md#homie-tree)."""

from __future__ import annotations

from dataclasses import replace

from .components import Components
from .derived import cop, water_delta_t
from .shapes import int_setting, power_sensor, raw_integer, temperature_difference, temperature_sensor
from .spec import TEMPERATURE, TEMPERATURE_DELTA, Hass, NodeSpec, PropertySpec, Tier, builder
from .values import ABC_MODES, ValueFn, bit, current_mode

_ON_OFF = Hass(platform="binary_sensor")
_PROBLEM = Hass(platform="binary_sensor", device_class="problem")
_SWITCH = Hass(platform="sensor", device_class="enum", category="diagnostic", legacy="")
_VOLTAGE = Hass(
    platform="sensor", device_class="voltage", state_class="measurement", category="diagnostic", legacy=""
)


def _switch(mask: int) -> ValueFn:
    """A pressure switch's state from register 31."""
    return lambda w: "closed" if w[31] & mask else "open"


def abc_node(c: Components) -> NodeSpec:
    """The ``abc`` node of this unit."""
    return NodeSpec(id="abc", name="Heat Pump", type="ABC", properties=tuple(_properties(c)))


def _properties(c: Components) -> list[PropertySpec]:
    p = builder("abc")
    air = 740 if c.awl_axb else 567  # docs/architecture.md#value-path: the AWL AXB's own entering-air sensor
    modes = ABC_MODES + (("dehumidify",) if c.vs_drive else ())
    props = [
        p(
            "current-mode",
            "Current Heating/Cooling Mode",
            "enum",
            (30, 6, *((362,) if c.vs_drive else ())),
            current_mode,
            Tier.FAST,
            fmt=",".join(modes),
            hass=Hass(platform="sensor", device_class="enum"),
        )
    ]
    props += [
        p(id_, name, "boolean", (31,), bit(31, mask), Tier.FAST, hass=_ON_OFF)
        for id_, name, mask in (
            ("emergency-shutdown", "Emergency Shutdown Requested", 0x40),
            ("load-shed", "Load Shed Requested", 0x200),
        )
    ]
    props += [
        p(id_, name, "boolean", (25,), value, Tier.FAST, hass=_PROBLEM)
        for id_, name, value in (
            ("locked-out", "Locked Out", bit(25, 0x8000)),
            (
                "derated",
                "Compressor Derated",
                lambda w: 41 <= w[25] & 0x7FFF <= 46,
            ),
            (
                "safe-mode",
                "Safe Mode",
                lambda w: w[25] & 0x7FFF in (47, 48, 49, 72, 74),
            ),
        )
    ]
    # docs/architecture.md#homie-tree: absent when it reads 0.0 at start-up, as the original decided
    props.append(
        temperature_sensor(
            p, "entering-air-temperature", "Entering Air Temperature", air, Tier.FAST, zero_is_absent=True
        )
    )
    if c.axb:
        props += [
            temperature_sensor(
                p, "entering-water-temperature", "Entering Water Temperature", 1111, Tier.FAST
            ),
            temperature_sensor(p, "leaving-water-temperature", "Leaving Water Temperature", 1110, Tier.FAST),
        ]
    props += [
        p(
            id_,
            name,
            "enum",
            (31,),
            _switch(mask),
            Tier.FAST,
            fmt="open,closed",
            hass=_SWITCH,
        )
        for id_, name, mask in (
            ("low-pressure-switch", "Low Pressure Switch Status", 0x80),
            ("high-pressure-switch", "High Pressure Switch Status", 0x100),
        )
    ]
    if c.awl_axb:
        props.append(
            temperature_sensor(p, "leaving-air-temperature", "Leaving Air Temperature", 900, Tier.FAST)
        )
    if c.awl_communicating:
        props.append(
            temperature_sensor(
                p,
                "outdoor-temperature",
                "Outdoor Temperature",
                742,
                Tier.MEDIUM,
                hass=TEMPERATURE,
                zero_is_absent=True,
            )
        )
    props += [
        # docs/architecture.md#original-bridge C6: the value comes from 112 itself, never from the measured
        # line voltage
        int_setting(
            p,
            "line-voltage-setting",
            "Line Voltage Setting",
            112,
            tier=Tier.SLOW,
            unit="V",
            hass=Hass(platform="number", device_class="voltage", category="config", enabled=False, legacy=""),
        ),
        temperature_sensor(p, "air-coil-temperature", "Air Coil Temperature (FP2)", 20, Tier.FAST),
    ]
    if c.energy_monitoring:
        props += [
            raw_integer(
                p,
                "line-voltage",
                "Line Voltage",
                16,
                Tier.MEDIUM,
                fmt="90:635",
                unit="V",
                hass=_VOLTAGE,
            ),
            power_sensor(p, 1152, "Total Power Usage"),
        ]
    # Derived values users computed by hand (issue 3)
    if c.axb:
        props.append(
            temperature_difference(
                p,
                "water-delta-t",
                "Water Temperature Difference",
                (1110, 1111),
                water_delta_t,
                tier=Tier.FAST,
                hass=replace(TEMPERATURE_DELTA, category=None, legacy=""),
            )
        )
    if c.energy_monitoring:
        props.append(
            p(
                "cop",
                "Coefficient of Performance",
                "float",
                (30, 1152, 1153, 1154, 1155, 1156, 1157),
                cop,
                Tier.FAST,
                fmt="0:20",
                hass=Hass(platform="sensor", state_class="measurement", legacy=""),
            )
        )
    return props
