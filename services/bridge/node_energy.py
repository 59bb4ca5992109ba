"""The ``energy`` node: kWh counters and COPs of a unit with an energy monitor (register 412 = 2).

Unlike every other node its values are not a function of one poll's words: the bridge's
:class:`~.energy.EnergyMeter` integrates them, so the description table carries the properties'
description and Home Assistant hints, and their values come from the meter (``value`` is never
known from words alone).
"""

from __future__ import annotations

from .components import Components
from .derived import COP_FORMAT
from .energy import channels_for
from .spec import Hass, NodeSpec, PropertySpec, Tier, Value, Words, builder

# What HA's Energy dashboard lists as candidates: energy, total_increasing, kWh (no configuration).
ENERGY = Hass(platform="sensor", device_class="energy", state_class="total_increasing", unit="kWh", legacy="")
_COP = Hass(platform="sensor", state_class="measurement", legacy="")


def _from_meter(_words: Words) -> Value | None:
    return None  # published by the bridge's energy meter, never decoded from registers


def energy_node(c: Components) -> NodeSpec:
    """The ``energy`` node of this unit (only with an energy monitor)."""
    p = builder("energy")
    props: list[PropertySpec] = [
        # the registers are listed so that the fast poll reads them, whatever other nodes need
        p(ch.id, ch.name, "float", ch.registers, _from_meter, Tier.FAST, unit="kWh", hass=ENERGY)
        for ch in channels_for(pump=c.pump is not None)
    ]
    props += [
        p("cop-today", "COP Today", "float", (), _from_meter, Tier.FAST, fmt=COP_FORMAT, hass=_COP),
        p("cop-running", "Running COP", "float", (), _from_meter, Tier.FAST, fmt=COP_FORMAT, hass=_COP),
        # JSON: each local day's counter values at its start, for daily figures (web dashboard)
        p("history", "Daily History", "string", (), _from_meter, Tier.SLOW),
    ]
    return NodeSpec(id="energy", name="Energy", type="Energy Counters", properties=tuple(props))
