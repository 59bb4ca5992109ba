"""The ``faults`` node: the current fault, a counter per fault code E1-E99 and a button that
clears them (docs/architecture.md#homie-tree)."""

from __future__ import annotations

from aurora import registers as regs

from .setters import parse_enum
from .spec import Hass, NodeSpec, Setter, Tier, builder

_NO_COUNTER = 0xFFFF
_COUNTER = Hass(platform="sensor", state_class="total_increasing", category="diagnostic")


def faults_node() -> NodeSpec:
    """The ``faults`` node; the same on every unit."""
    p = builder("faults")
    props = [
        p(
            "current",
            "Current fault",
            "integer",
            (25,),
            lambda w: w[25] & 0x7FFF,
            Tier.FAST,
            fmt="0:99",
            hass=Hass(platform="sensor"),
        ),
        p(
            "clear-history",
            "Reset Fault Counts",
            "enum",
            (),
            lambda w: None,
            Tier.SLOW,
            fmt="clear",
            retained=False,
            setter=Setter(parse_enum(("clear",)), lambda v, w: [(47, 0x5555)], frozenset(range(601, 700))),
            hass=Hass(platform="button", category="config"),
        ),
    ]
    for n in range(1, 100):
        address = 600 + n
        props.append(
            p(
                f"e{n}",
                regs.FAULT_NAMES.get(n, f"E{n}"),
                "integer",
                (address,),
                lambda w, a=address: None if w[a] == _NO_COUNTER else w[a],
                Tier.SLOW,
                hass=_COUNTER,
                # docs/architecture.md#value-path: 0xFFFF at start-up is a fault this unit does not count
                present=lambda w, a=address: w[a] != _NO_COUNTER,
            )
        )
    return NodeSpec(id="faults", name="Fault History", type="ABC", properties=tuple(props))
