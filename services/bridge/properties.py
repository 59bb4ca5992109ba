"""The bridge's one description table (docs/architecture.md#one-table): every Homie node and property, its
datatype, format and unit, the registers it reads, its value from raw words, its setter and its Home
Assistant hint. Homie messages, values, ``/set`` handling and HA discovery are all made from it.

Which nodes exist depends on the detected :class:`Components` (docs/architecture.md#detection,
docs/architecture.md#homie-tree); each heat-pump sub-system describes its own node in a ``node_*.py`` module,
from the records in
:mod:`.spec`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .components import Components
from .node_abc import abc_node
from .node_aux_heat import aux_heat_node
from .node_blower import blower_node
from .node_compressor import compressor_node
from .node_dhw import dhw_node
from .node_energy import energy_node
from .node_faults import faults_node
from .node_humidistat import humidistat_node
from .node_pump import pump_node
from .node_zones import iz2_zone_node, thermostat_zone_node
from .spec import NodeSpec, Tier

_TIER_ORDER = {Tier.FAST: 0, Tier.MEDIUM: 1, Tier.SLOW: 2}


def build_nodes(c: Components) -> tuple[NodeSpec, ...]:
    """Every node of this unit, in the original's ``$nodes`` order (docs/architecture.md#homie-tree)."""
    nodes = [abc_node(c), compressor_node(c), aux_heat_node(c), blower_node(c)]
    if c.pump:
        nodes.append(pump_node(c))
    if c.dhw:
        nodes.append(dhw_node())
    if c.humidistat:
        nodes.append(humidistat_node(c))
    nodes.append(faults_node())
    if c.awl_iz2:
        nodes += [iz2_zone_node(zone) for zone in range(1, c.zone_count + 1)]
    else:
        nodes.append(thermostat_zone_node(c))
    if c.energy_monitoring:
        nodes.append(energy_node(c))  # kWh counters the bridge integrates (issue 17)
    return tuple(nodes)


def register_tiers(nodes: Sequence[NodeSpec]) -> dict[int, Tier]:
    """Each register in the fastest tier of any property that reads it, so it is polled once."""
    tiers: dict[int, Tier] = {}
    for node in nodes:
        for spec in node.properties:
            for address in spec.registers:
                known = tiers.get(address)
                if known is None or _TIER_ORDER[spec.tier] < _TIER_ORDER[known]:
                    tiers[address] = spec.tier
    return tiers
