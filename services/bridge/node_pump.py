"""The ``pump`` node: the loop pump, generic or variable-speed by register 413; a VS pump can be
run by hand (docs/architecture.md#homie-tree)."""

from __future__ import annotations

from aurora.errors import UsageError

from .components import Components
from .setters import number_setter, parse_bool
from .shapes import int_setting, power_sensor, raw_integer
from .spec import RUNNING, Builder, Hass, NodeSpec, PropertySpec, Setter, Tier, Value, Words, builder
from .values import bit, decoded

PUMP_TYPES = {
    0: "Open Loop",
    1: "FC1",
    2: "FC2",
    3: "VS Pump",
    4: "VS Pump + 26-99",
    5: "VS Pump + UPS26-99",
    6: "FC1_GLNP",
    7: "FC2_GLNP",
}
_OFF = 0x7FFF  # register 323 while manual control is off
_PERCENT = Hass(platform="number", category="config", unit="%")
_FLOW = Hass(
    platform="sensor",
    device_class="volume_flow_rate",
    state_class="measurement",
    category="diagnostic",
    unit="gal/min",
)


def pump_node(c: Components) -> NodeSpec:
    """The ``pump`` node of a unit with a loop pump; its type names the pump."""
    kind = PUMP_TYPES.get(c.pump_type, "Other")
    return NodeSpec(id="pump", name="Loop Pump", type=kind, properties=tuple(_properties(c)))


def _manual_on(value: Value, words: Words) -> list[tuple[int, int]]:
    if not value:
        return [(323, _OFF)]
    # docs/architecture.md#original-bridge C5: the original failed without 325; fall back to the configured
    # minimum speed
    for address in (325, 321):
        if 1 <= words.get(address, 0) <= 100:
            return [(323, words[address])]
    raise UsageError("the pump speed is unknown; set pump/speed instead")


def _properties(c: Components) -> list[PropertySpec]:
    p = builder("pump")
    props: list[PropertySpec] = []
    # 1104 and 1117 are AXB registers: a VS pump without an AXB has neither
    # (docs/architecture.md#original-bridge R9)
    if c.axb:
        props.append(
            p("waterflow", "Waterflow", "float", (1117,), decoded(1117), Tier.FAST, unit="gpm", hass=_FLOW)
        )
    if c.energy_monitoring:
        props.append(power_sensor(p, 1164))
    if c.axb:
        props.append(p("running", "Running", "boolean", (1104,), bit(1104, 0x02), Tier.FAST, hass=RUNNING))
    if c.pump == "vs":
        props += _vs_pump(p, c)
    return props


def _vs_pump(p: Builder, c: Components) -> list[PropertySpec]:
    """Manual control and speed limits of a VS pump; its speed needs an AXB ≥ 2.0 (register 325)."""
    props = [
        p(
            "manual-control",
            "Manual Control",
            "boolean",
            (323,),
            lambda w: w[323] != _OFF,
            Tier.MEDIUM,
            setter=Setter(parse_bool, _manual_on, frozenset({323, *((325,) if c.awl_axb else ())})),
            hass=Hass(platform="switch", category="diagnostic"),
        )
    ]
    # docs/architecture.md#original-bridge C9: 1..100 in $format as in the setter (0 passed Homie, then
    # failed)
    props += [
        int_setting(p, "minimum-speed", "Actual Minimum Speed", 321, unit="%", hass=_PERCENT),
        int_setting(p, "maximum-speed", "Actual Maximum Speed", 322, unit="%", hass=_PERCENT),
    ]
    if c.awl_axb:
        # Writing a speed goes to 323, the manual-speed register: it also switches to manual
        # control (docs/architecture.md#original-bridge C5), which manual-control then shows.
        props.append(
            raw_integer(
                p,
                "speed",
                "Speed",
                325,
                Tier.FAST,
                fmt="1:100",
                unit="%",
                setter=number_setter(323, reads=(323, 325), integer=True),
                hass=Hass(platform="number", category="diagnostic", unit="%"),
            )
        )
    return props
