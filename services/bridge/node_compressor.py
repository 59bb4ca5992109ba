"""The ``compressor`` node: speed and refrigerant circuit of a generic or variable-speed
compressor (docs/architecture.md#homie-tree); a VS drive reports much more."""

from __future__ import annotations

from .components import Components
from .shapes import power_sensor, reading, temperature_difference, temperature_sensor
from .spec import (
    MEASURE,
    MEASURE_DIAG,
    Builder,
    Hass,
    NodeSpec,
    PropertySpec,
    Tier,
    Value,
    Words,
    builder,
)
from .values import flag
from .values import sensor as sensor_value

_BTU = Hass(platform="sensor", state_class="measurement")
_PSI = Hass(platform="sensor", device_class="pressure", state_class="measurement", category="diagnostic")


def compressor_node(c: Components) -> NodeSpec:
    """The ``compressor`` node of this unit; its type names the drive."""
    if c.vs_drive:
        kind = "Variable Speed Drive"
    else:
        kind = "Single Stage Compressor" if c.stages == 1 else "Dual Stage Compressor"
    return NodeSpec(id="compressor", name="Compressor", type=kind, properties=tuple(_properties(c)))


def _properties(c: Components) -> list[PropertySpec]:
    p = builder("compressor")
    if c.vs_drive:
        speed = reading(p, "speed", "Current Speed", 3001, Tier.FAST, hass=MEASURE)
    else:
        stages = c.stages

        def generic_speed(w: Words) -> Value | None:
            # docs/architecture.md#original-bridge C12: never above the stage count (a single-stage unit
            # published 2 when cc2 was set)
            return min(stages, 2 if flag(30, "cc2")(w) else 1 if flag(30, "cc")(w) else 0)

        speed = p(
            "speed",
            "Current Speed",
            "integer",
            (30,),
            generic_speed,
            Tier.FAST,
            fmt=f"0:{stages}",
            hass=MEASURE,
        )
    props = [
        speed,
        temperature_sensor(
            p, "cooling-liquid-line-temperature", "Cooling Liquid Line Temperature (FP1)", 19, Tier.FAST
        ),
    ]
    if c.refrigeration_monitoring:
        props += [
            temperature_sensor(
                p, "heating-liquid-line-temperature", "Heating Liquid Line Temperature", 1109, Tier.MEDIUM
            ),
            temperature_sensor(
                p,
                "saturated-condensor-discharge-temperature",
                "Saturated Condensor Discharge Temperature",
                1134,
                Tier.MEDIUM,
            ),
        ]
        props += [
            reading(p, "heat-of-extraction", "Heat of Extraction", 1154, Tier.FAST, hass=_BTU),
            reading(p, "heat-of-rejection", "Heat of Rejection", 1156, Tier.FAST, hass=_BTU),
        ]
    if c.energy_monitoring:
        props.append(power_sensor(p, 1146))
    if c.vs_drive:
        props += _vs_drive(p, c)
    return props


def _vs_drive(p: Builder, c: Components) -> list[PropertySpec]:
    """What only a variable-speed drive reports (registers 3000-3906)."""

    def percent(id_: str, name: str, address: int) -> PropertySpec:
        return reading(p, id_, name, address, Tier.MEDIUM, hass=MEASURE_DIAG)

    def pressure(id_: str, name: str, address: int) -> PropertySpec:
        return reading(p, id_, name, address, Tier.MEDIUM, hass=_PSI)

    def sensor(id_: str, name: str, address: int) -> PropertySpec:
        return temperature_sensor(p, id_, name, address, Tier.MEDIUM)

    props = [
        reading(p, "desired-speed", "Desired Speed", 3000, Tier.FAST, hass=MEASURE),
        sensor("ambient-temperature", "Ambient Temperature", 3326),
        sensor("drive-temperature", "Drive Temperature", 3327),
        sensor("inverter-temperature", "Inverter Temperature", 3522),
        percent("fan-speed", "Fan Speed", 3524),
        sensor("discharge-temperature", "Discharge Temperature", 3325),
        pressure("discharge-pressure", "Discharge Pressure", 3322),
        sensor("suction-temperature", "Suction Temperature", 3903),
        pressure("suction-pressure", "Suction Pressure", 3323),
        sensor(
            "saturated-evaporator-discharge-temperature", "Saturated Evaporator Discharge Temperature", 3905
        ),
        temperature_difference(
            p, "superheat-temperature", "SuperHeat Temperature", (3906,), sensor_value(3906), tier=Tier.MEDIUM
        ),
        temperature_difference(
            p,
            "subcool-temperature",
            "SubCool Temperature",
            (30, 1135, 1136),
            lambda w: sensor_value(1136 if flag(30, "rv")(w) else 1135)(w),
            tier=Tier.MEDIUM,
        ),
        percent("eev-open-percentage", "Electronic Expansion Valve Open Percentage", 3808),
    ]
    if c.iz2:
        props.append(
            reading(p, "iz2-desired-speed", "IZ2 Desired Speed", 564, Tier.MEDIUM, hass=MEASURE_DIAG)
        )
    return props
