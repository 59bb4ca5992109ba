"""The ``dhw`` node: the domestic hot water generator on the AXB (docs/architecture.md#homie-tree)."""

from __future__ import annotations

from .shapes import flag_sensor, setting, temperature_sensor
from .spec import RUNNING, NodeSpec, Role, Tier, builder


def dhw_node() -> NodeSpec:
    """The ``dhw`` node; the same on every unit that has one."""
    p = builder("dhw")
    props = (
        setting(p, "enabled", "Enabled", 400, role=Role.WATER_HEATER_MODE),
        flag_sensor(p, "running", "Pump Running", 1104, "dhw", Tier.FAST, hass=RUNNING),
        setting(p, "set-point", "Set Point", 401, role=Role.WATER_HEATER_TARGET),
        temperature_sensor(
            p,
            "water-temperature",
            "Water Temperature",
            1114,
            Tier.FAST,
            hass=None,
            role=Role.WATER_HEATER_TEMPERATURE,
        ),
    )
    return NodeSpec(id="dhw", name="Domestic Hot Water Generator", type="DHW", properties=props)
