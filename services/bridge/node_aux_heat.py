"""The ``aux-heat`` node: the electric auxiliary heater's stage and power
(docs/architecture.md#homie-tree)."""

from __future__ import annotations

from .components import Components
from .shapes import power_sensor
from .spec import MEASURE, NodeSpec, Tier, Value, Words, builder
from .values import flag

_EH1, _EH2 = flag(30, "eh1"), flag(30, "eh2")


def _stage(words: Words) -> Value | None:
    return 2 if _EH2(words) else 1 if _EH1(words) else 0


def aux_heat_node(c: Components) -> NodeSpec:
    """The ``aux-heat`` node of this unit."""
    p = builder("aux-heat")
    props = [
        p(
            "stage",
            "Current Stage",
            "integer",
            (30,),
            _stage,
            Tier.FAST,
            fmt="0:2",
            hass=MEASURE,
        )
    ]
    if c.energy_monitoring:
        props.append(power_sensor(p, 1150))
    return NodeSpec(id="aux-heat", name="Aux Heater", type="Aux Heater", properties=tuple(props))
