"""The ``pump`` node: the loop pump, generic or variable-speed by register 413; a VS pump can be
run by hand (docs/architecture.md#homie-tree)."""

from __future__ import annotations

from aurora import registers as regs
from aurora.errors import UsageError

from .components import Components
from .setters import parse_bool, rule_of, special_word
from .shapes import flag_sensor, power_sensor, reading, setting
from .spec import RUNNING, Builder, Hass, NodeSpec, PropertySpec, Setter, Tier, Value, Words, builder

_PERCENT = Hass(platform="number", category="config")
_FLOW = Hass(
    platform="sensor",
    device_class="volume_flow_rate",
    state_class="measurement",
    category="diagnostic",
    unit="gal/min",
)


def pump_node(c: Components) -> NodeSpec:
    """The ``pump`` node of a unit with a loop pump; its type names the pump."""
    kind = str(regs.enum_name("PUMP_TYPE", c.pump_type))  # the map's default: "Other"
    return NodeSpec(id="pump", name="Loop Pump", type=kind, properties=tuple(_properties(c)))


def _manual_on(value: Value, words: Words) -> list[tuple[int, int]]:
    if not value:
        return [(323, special_word(323, "off"))]
    # docs/architecture.md#original-bridge C5: the original failed without 325; fall back to the configured
    # minimum speed
    rule = rule_of(323)
    for address in (325, 321):
        speed = regs.reading(address, words)
        if isinstance(speed, int) and rule.low <= speed <= rule.high:
            return [(323, rule.nearest(speed))]
    raise UsageError("the pump speed is unknown; set pump/speed instead")


def _properties(c: Components) -> list[PropertySpec]:
    p = builder("pump")
    props: list[PropertySpec] = []
    # 1104 and 1117 are AXB registers: a VS pump without an AXB has neither
    # (docs/architecture.md#original-bridge R9)
    if c.axb:
        props.append(reading(p, "waterflow", "Waterflow", 1117, Tier.FAST, hass=_FLOW))
    if c.energy_monitoring:
        props.append(power_sensor(p, 1164))
    if c.axb:
        props.append(flag_sensor(p, "running", "Running", 1104, "loop_pump", Tier.FAST, hass=RUNNING))
    if c.pump == "vs":
        props += _vs_pump(p, c)
    return props


def _vs_pump(p: Builder, c: Components) -> list[PropertySpec]:
    """Manual control and speed limits of a VS pump; its speed needs an AXB ≥ 2.0 (register 325)."""
    manual = Setter(parse_bool, _manual_on, frozenset({323, *((325,) if c.awl_axb else ())}))
    props = [
        p(
            "manual-control",
            "Manual Control",
            "boolean",
            (323,),
            lambda w: regs.reading(323, w) != "off",
            Tier.MEDIUM,
            setter=manual,
            hass=Hass(platform="switch", category="diagnostic"),
        )
    ]
    # docs/architecture.md#original-bridge C9: 1..100 in $format as in the setter (0 passed Homie, then
    # failed)
    props += [
        setting(p, "minimum-speed", "Actual Minimum Speed", 321, hass=_PERCENT),
        setting(p, "maximum-speed", "Actual Maximum Speed", 322, hass=_PERCENT),
    ]
    if c.awl_axb:
        # Writing a speed goes to 323, the manual-speed register: it also switches to manual
        # control (docs/architecture.md#original-bridge C5), which manual-control then shows.
        speed = Hass(platform="number", category="diagnostic")
        props.append(
            setting(p, "speed", "Speed", 323, read=325, tier=Tier.FAST, readback=(323, 325), hass=speed)
        )
    return props
