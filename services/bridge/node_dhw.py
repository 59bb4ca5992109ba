"""The ``dhw`` node: the domestic hot water generator on the AXB (docs/architecture.md#homie-tree)."""

from __future__ import annotations

from .setters import number_setter, parse_bool, range_format, rule_of
from .shapes import temperature_sensor
from .spec import RUNNING, NodeSpec, Setter, Tier, builder
from .values import bit, decoded


def dhw_node() -> NodeSpec:
    """The ``dhw`` node; the same on every unit that has one."""
    p = builder("dhw")
    props = (
        p(
            "enabled",
            "Enabled",
            "boolean",
            (400,),
            lambda w: w[400] != 0,
            Tier.MEDIUM,
            setter=Setter(parse_bool, lambda v, w: [(400, 1 if v else 0)], frozenset({400})),
        ),
        p("running", "Pump Running", "boolean", (1104,), bit(1104, 0x01), Tier.FAST, hass=RUNNING),
        p(
            "set-point",
            "Set Point",
            "float",
            (401,),
            decoded(401),
            Tier.MEDIUM,
            fmt=range_format(rule_of(401)),
            unit="°F",
            setter=number_setter(401, reads=(401,)),
        ),
        temperature_sensor(p, "water-temperature", "Water Temperature", 1114, Tier.FAST, hass=None),
    )
    return NodeSpec(id="dhw", name="Domestic Hot Water Generator", type="DHW", properties=props)
