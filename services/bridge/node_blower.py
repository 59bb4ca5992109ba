"""The ``blower`` node: the indoor fan, PSC, five-speed or ECM by register 404; an ECM blower has
presets to set (docs/architecture.md#homie-tree)."""

from __future__ import annotations

from aurora import registers as regs

from .components import Components
from .shapes import flag_sensor, power_sensor, reading, setting
from .spec import MEASURE, MEASURE_DIAG, RUNNING, Hass, NodeSpec, PropertySpec, Tier, Value, Words, builder
from .values import flag

_PRESET = Hass(platform="number", category="config")


def blower_node(c: Components) -> NodeSpec:
    """The ``blower`` node of this unit; its type names the blower."""
    kind = str(regs.enum_name("BLOWER_TYPE", c.blower_type))  # the map's default: "Other"
    return NodeSpec(id="blower", name="Blower", type=kind, properties=tuple(_properties(c)))


def _five_speed(w: Words) -> Value | None:
    def out(name: str) -> bool:
        return bool(flag(30, name)(w))

    return (
        4 if out("eh1") or out("eh2") else 3 if out("cc2") else 2 if out("cc") else 1 if out("blower") else 0
    )


def _properties(c: Components) -> list[PropertySpec]:
    p = builder("blower")
    # docs/architecture.md#original-bridge C2: the 5-speed blower publishes running and watts like the others
    props = [flag_sensor(p, "running", "Running", 30, "blower", Tier.FAST, hass=RUNNING)]
    if c.blower == "ecm":
        props.append(reading(p, "speed", "Current Speed", 344, Tier.FAST, hass=MEASURE))
    elif c.blower == "5speed":
        props.append(
            p("speed", "Current Speed", "integer", (30,), _five_speed, Tier.FAST, fmt="0:4", hass=MEASURE)
        )
    if c.energy_monitoring:
        props.append(power_sensor(p, 1148))
    if c.blower == "ecm":
        props += [
            setting(p, prop, name, address, hass=_PRESET)
            for prop, name, address in (
                ("blower-only-speed", "Blower Only Preset Speed", 340),
                ("aux-heat-speed", "Aux Heat Preset Speed", 347),
                ("low-compressor-speed", "Low Compressor Preset Speed", 341),
                ("high-compressor-speed", "High Compressor Preset Speed", 342),
            )
        ]
        if c.iz2:
            props.append(
                reading(p, "iz2-desired-speed", "IZ2 Desired Speed", 565, Tier.MEDIUM, hass=MEASURE_DIAG)
            )
    return props
