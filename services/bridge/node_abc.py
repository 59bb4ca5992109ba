"""The ``abc`` node: the heat pump's control board, its mode, safeties and main sensors, with the
totals users computed by hand (docs/architecture.md#homie-tree)."""

from __future__ import annotations

from aurora import registers as regs

from .components import Components
from .derived import COP_FORMAT, cop, water_delta_t
from .shapes import flag_sensor, power_sensor, reading, setting, temperature_difference, temperature_sensor
from .spec import TEMPERATURE, TEMPERATURE_DELTA, Hass, NodeSpec, PropertySpec, Tier, builder
from .values import current_mode, field, in_group

_ON_OFF = Hass(platform="binary_sensor")
_PROBLEM = Hass(platform="binary_sensor", device_class="problem")
_SWITCH = Hass(platform="sensor", device_class="enum", category="diagnostic", legacy="")
_VOLTAGE = Hass(
    platform="sensor", device_class="voltage", state_class="measurement", category="diagnostic", legacy=""
)


def abc_node(c: Components) -> NodeSpec:
    """The ``abc`` node of this unit."""
    return NodeSpec(id="abc", name="Heat Pump", type="ABC", properties=tuple(_properties(c)))


def _properties(c: Components) -> list[PropertySpec]:
    p = builder("abc")
    air = 740 if c.awl_axb else 567  # docs/architecture.md#value-path: the AWL AXB's own entering-air sensor
    # dehumidify is last in the map's options: only a VS drive reports it (register 362)
    modes = [m for m in regs.OPTIONS["CURRENT_MODE"] if m != "dehumidify" or c.vs_drive]
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
        flag_sensor(
            p,
            "emergency-shutdown",
            "Emergency Shutdown Requested",
            31,
            "emergency_shutdown",
            Tier.FAST,
            hass=_ON_OFF,
        ),
        flag_sensor(p, "load-shed", "Load Shed Requested", 31, "load_shed", Tier.FAST, hass=_ON_OFF),
        flag_sensor(p, "locked-out", "Locked Out", 25, "locked_out", Tier.FAST, hass=_PROBLEM),
        p(
            "derated",
            "Compressor Derated",
            "boolean",
            (25,),
            in_group(25, "derated"),
            Tier.FAST,
            hass=_PROBLEM,
        ),
        p("safe-mode", "Safe Mode", "boolean", (25,), in_group(25, "safe_mode"), Tier.FAST, hass=_PROBLEM),
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
    switch = ",".join(regs.OPTIONS["PRESSURE_SWITCH"])
    props += [
        p(
            "low-pressure-switch",
            "Low Pressure Switch Status",
            "enum",
            (31,),
            field(31, "lps"),
            Tier.FAST,
            fmt=switch,
            hass=_SWITCH,
        ),
        p(
            "high-pressure-switch",
            "High Pressure Switch Status",
            "enum",
            (31,),
            field(31, "hps"),
            Tier.FAST,
            fmt=switch,
            hass=_SWITCH,
        ),
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
        setting(
            p,
            "line-voltage-setting",
            "Line Voltage Setting",
            112,
            tier=Tier.SLOW,
            hass=Hass(platform="number", device_class="voltage", category="config", enabled=False, legacy=""),
        ),
        temperature_sensor(p, "air-coil-temperature", "Air Coil Temperature (FP2)", 20, Tier.FAST),
    ]
    if c.energy_monitoring:
        props += [
            reading(p, "line-voltage", "Line Voltage", 16, Tier.MEDIUM, hass=_VOLTAGE),
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
                hass=TEMPERATURE_DELTA.replace(category=None, legacy=""),
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
                fmt=COP_FORMAT,
                hass=Hass(platform="sensor", state_class="measurement", legacy=""),
            )
        )
    return props
