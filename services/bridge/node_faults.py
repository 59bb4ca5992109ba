"""The ``faults`` node: the current fault, a counter per fault code E1-E99 and a button that
clears them (docs/architecture.md#homie-tree)."""

from __future__ import annotations

from aurora import registers as regs

from .setters import command_setter
from .shapes import reading
from .spec import Hass, NodeSpec, Tier, builder

_COUNTER = Hass(platform="sensor", state_class="total_increasing", category="diagnostic")


def faults_node() -> NodeSpec:
    """The ``faults`` node; the same on every unit."""
    p = builder("faults")
    counters = range(601, 700)  # 600 + n counts fault n
    clear = "clear"  # the button's one payload
    props = [
        reading(p, "current", "Current fault", 25, Tier.FAST, hass=Hass(platform="sensor")),
        p(
            "clear-history",
            "Reset Fault Counts",
            "enum",
            (),
            lambda w: None,
            Tier.SLOW,
            fmt=clear,
            retained=False,
            setter=command_setter(47, clear, reads=counters),
            hass=Hass(platform="button", category="config"),
        ),
    ]
    # docs/architecture.md#value-path: a counter reading the map's "absent" 0xFFFF at start-up is a
    # fault this unit does not count, and gets no property
    props += [
        reading(p, f"e{a - 600}", regs.FAULT_NAMES.get(a - 600, f"E{a - 600}"), a, Tier.SLOW, hass=_COUNTER)
        for a in counters
    ]
    return NodeSpec(id="faults", name="Fault History", type="ABC", properties=tuple(props))
