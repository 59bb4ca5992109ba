"""The ``humidistat`` node: the humidifier and dehumidifier, their modes and targets, and the
relative humidity (docs/architecture.md#homie-tree); modes and targets need a communicating thermostat
or IZ2."""

from __future__ import annotations

from aurora import registers as regs

from .components import Components
from .setters import field_rule, need, parse_enum, parse_number, range_format
from .shapes import raw_integer
from .spec import Hass, NodeSpec, PropertySpec, Setter, Tier, Value, Words, builder
from .values import ACCESSORY, bit, current_mode

# mode bits: one mapping for reads and writes (docs/architecture.md#original-bridge C3)
_HUMIDIFY, _DEHUMIDIFY = 0x8000, 0x4000


def humidistat_registers(c: Components) -> tuple[int, int, int, int]:
    """(mode read, targets read, mode write, targets write): IZ2 ≥ 2.0 or the thermostat's.

    docs/architecture.md#original-bridge C4: the original read the mode from the IZ2 write register 21114, and
    used IZ2 registers with an IZ2 older than 2.0; here the IZ2 read registers 31109/31110 are read, only with
    IZ2 ≥ 2.0.
    """
    if c.awl_iz2:
        return 31109, 31110, 21114, 21115
    return 12309, 12310, 12309, 12310


def humidistat_node(c: Components) -> NodeSpec:
    """The ``humidistat`` node of a unit with a humidistat (``c.humidistat``)."""
    p = builder("humidistat")
    mode_r, targets_r, mode_w, targets_w = humidistat_registers(c)

    def mode(id_: str, name: str, mode_bit: int) -> PropertySpec:
        def encode(value: Value, words: Words) -> list[tuple[int, int]]:
            word = need(words, mode_r, "the humidistat mode")
            word = word | mode_bit if value == "auto" else word & ~mode_bit
            return [(mode_w, word & 0xFFFF)]

        return p(
            id_,
            name,
            "enum",
            (mode_r,),
            lambda w: "auto" if w[mode_r] & mode_bit else "manual",
            Tier.MEDIUM,
            fmt="auto,manual",
            setter=Setter(parse_enum(("auto", "manual")), encode, frozenset({mode_r})),
        )

    hum_rule, dehum_rule = field_rule(targets_w, 0xFF00), field_rule(targets_w, 0x00FF)

    def target(id_: str, name: str, high: bool) -> PropertySpec:
        """The humidification (high byte) or dehumidification (low byte) target."""
        rule = hum_rule if high else dehum_rule

        def encode(value: Value, words: Words) -> list[tuple[int, int]]:
            word = need(words, targets_r, "the other humidity target")
            hum, dehum = word >> 8, word & 0xFF
            hum, dehum = (int(value), dehum) if high else (hum, int(value))
            # the other half keeps its value, clamped into its own range so the word is valid
            hum = min(max(hum, int(hum_rule.low)), int(hum_rule.high))
            dehum = min(max(dehum, int(dehum_rule.low)), int(dehum_rule.high))
            return [(targets_w, regs.encode_humidistat_targets(hum, dehum))]

        return p(
            id_,
            name,
            "integer",
            (targets_r,),
            (lambda w: w[targets_r] >> 8) if high else (lambda w: w[targets_r] & 0xFF),
            Tier.MEDIUM,
            fmt=range_format(rule),
            unit="%",
            setter=Setter(parse_number(rule, integer=True), encode, frozenset({targets_r}), rule=rule),
        )

    props: list[PropertySpec] = []
    if c.humidifier:
        props.append(
            p("humidifier-running", "Humidifier Running", "boolean", (30,), bit(30, ACCESSORY), Tier.FAST)
        )
        if c.awl_communicating:
            props += [
                mode("humidifier-mode", "Humidifier Mode", _HUMIDIFY),
                target("humidification-target", "Humidification Target Relative Humidity", True),
            ]
    if c.dehumidifier or c.vs_drive:
        if c.dehumidifier:
            running = p(
                "dehumidifier-running", "Dehumidifier Running", "boolean", (1104,), bit(1104, 0x10), Tier.FAST
            )
        else:
            running = p(
                "dehumidifier-running",
                "Dehumidifier Running",
                "boolean",
                (30, 6, 362),
                lambda w: current_mode(w) == "dehumidify",
                Tier.FAST,
            )
        props.append(running)
        if c.awl_communicating:
            props += [
                mode("dehumidifier-mode", "Dehumidifier Mode", _DEHUMIDIFY),
                target("dehumidification-target", "Dehumidification Target Relative Humidity", False),
            ]
    if c.awl_communicating:
        props.append(
            raw_integer(
                p,
                "relative-humidity",
                "Relative Humidity",
                741,
                Tier.MEDIUM,
                fmt="0:100",
                unit="%",
                hass=Hass(platform="sensor", device_class="humidity", state_class="measurement", unit="%"),
            )
        )
    return NodeSpec(id="humidistat", name="Humidistat", type="Humidistat", properties=tuple(props))
