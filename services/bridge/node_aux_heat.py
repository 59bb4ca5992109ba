"""The ``aux-heat`` node: the electric auxiliary heater's stage and power
(docs/architecture.md#homie-tree)."""

from __future__ import annotations

from .components import Components
from .shapes import power_sensor
from .spec import MEASURE, NodeSpec, Tier, builder
from .values import EH1, EH2


def aux_heat_node(c: Components) -> NodeSpec:
    """The ``aux-heat`` node of this unit."""
    p = builder("aux-heat")
    props = [
        p(
            "stage",
            "Current Stage",
            "integer",
            (30,),
            lambda w: 2 if w[30] & EH2 else 1 if w[30] & EH1 else 0,
            Tier.FAST,
            fmt="0:2",
            hass=MEASURE,
        )
    ]
    if c.energy_monitoring:
        props.append(power_sensor(p, 1150))
    return NodeSpec(id="aux-heat", name="Aux Heater", type="Aux Heater", properties=tuple(props))
