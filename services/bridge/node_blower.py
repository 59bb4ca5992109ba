"""The ``blower`` node: the indoor fan, PSC, five-speed or ECM by register 404; an ECM blower has
presets to set (docs/architecture.md#homie-tree)."""

from __future__ import annotations

from aurora import registers as regs

from .components import Components
from .shapes import int_setting, power_sensor, raw_integer
from .spec import MEASURE, MEASURE_DIAG, RUNNING, Hass, NodeSpec, PropertySpec, Tier, Value, Words, builder
from .values import BLOWER, CC, CC2, EH1, EH2, bit

BLOWER_TYPES = {0: "PSC", 1: "ECM 208/230", 2: "ECM 265/277", 3: "5 Speed ECM 460"}
_PRESET = Hass(platform="number", category="config")


def blower_node(c: Components) -> NodeSpec:
    """The ``blower`` node of this unit; its type names the blower."""
    kind = BLOWER_TYPES.get(c.blower_type, "Other")
    return NodeSpec(id="blower", name="Blower", type=kind, properties=tuple(_properties(c)))


def _five_speed(w: Words) -> Value | None:
    out = w[30]
    return 4 if out & (EH1 | EH2) else 3 if out & CC2 else 2 if out & CC else 1 if out & BLOWER else 0


def _properties(c: Components) -> list[PropertySpec]:
    p = builder("blower")
    # docs/architecture.md#original-bridge C2: the 5-speed blower publishes running and watts like the others
    props = [p("running", "Running", "boolean", (30,), bit(30, BLOWER), Tier.FAST, hass=RUNNING)]
    if c.blower == "ecm":
        props.append(raw_integer(p, "speed", "Current Speed", 344, Tier.FAST, fmt="0:12", hass=MEASURE))
    elif c.blower == "5speed":
        props.append(
            p("speed", "Current Speed", "integer", (30,), _five_speed, Tier.FAST, fmt="0:4", hass=MEASURE)
        )
    if c.energy_monitoring:
        props.append(power_sensor(p, 1148))
    if c.blower == "ecm":
        props += [
            int_setting(p, prop, name, address, hass=_PRESET)
            for prop, name, address in (
                ("blower-only-speed", "Blower Only Preset Speed", 340),
                ("aux-heat-speed", "Aux Heat Preset Speed", 347),
                ("low-compressor-speed", "Low Compressor Preset Speed", 341),
                ("high-compressor-speed", "High Compressor Preset Speed", 342),
            )
        ]
        if c.iz2:
            props.append(
                p(
                    "iz2-desired-speed",
                    "IZ2 Desired Speed",
                    "integer",
                    (565,),
                    lambda w: regs.iz2_fan_desired(w[565]),
                    Tier.MEDIUM,
                    fmt="0:100",
                    unit="%",
                    hass=MEASURE_DIAG,
                )
            )
    return props
