"""The ``humidistat`` node: the humidifier and dehumidifier, their modes and targets, and the
relative humidity (docs/architecture.md#homie-tree); modes and targets need a communicating thermostat
or IZ2."""

from __future__ import annotations

from aurora import registers as regs

from .components import Components
from .setters import field_rule, need, parse_enum, parse_number, range_format
from .shapes import flag_sensor, reading
from .spec import Hass, NodeSpec, PropertySpec, Role, Setter, Tier, Value, Words, builder
from .values import current_mode, field, flag

# the mode flags, one mapping for reads and writes (docs/architecture.md#original-bridge C3)
_HUMIDIFY, _DEHUMIDIFY = "auto_humidification", "auto_dehumidification"
_TARGETS = {True: "humidification_target", False: "dehumidification_target"}  # high byte: humidification


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

    def mode(id_: str, name: str, mode_flag: str, role: Role) -> PropertySpec:
        auto, manual = regs.OPTIONS["HUMIDISTAT_MODE"]
        is_auto = flag(mode_r, mode_flag)

        def encode(value: Value, words: Words) -> list[tuple[int, int]]:
            word = need(words, mode_r, "the humidistat mode")
            humidify = (
                value == auto if mode_flag == _HUMIDIFY else bool(regs.is_set(mode_r, _HUMIDIFY, words))
            )
            dehumidify = (
                value == auto if mode_flag == _DEHUMIDIFY else bool(regs.is_set(mode_r, _DEHUMIDIFY, words))
            )
            return [
                (
                    mode_w,
                    regs.encode_humidistat_mode(
                        humidifier_auto=humidify, dehumidifier_auto=dehumidify, current=word
                    ),
                )
            ]

        return p(
            id_,
            name,
            "enum",
            (mode_r,),
            lambda w: auto if is_auto(w) else manual,
            Tier.MEDIUM,
            fmt=",".join(regs.OPTIONS["HUMIDISTAT_MODE"]),
            setter=Setter(parse_enum(regs.OPTIONS["HUMIDISTAT_MODE"]), encode, frozenset({mode_r})),
            role=role,
        )

    hum_rule = field_rule(targets_w, "humidification target")
    dehum_rule = field_rule(targets_w, "dehumidification target")

    def target(id_: str, name: str, high: bool, role: Role) -> PropertySpec:
        """The humidification (high byte) or dehumidification (low byte) target."""
        rule = hum_rule if high else dehum_rule

        def encode(value: Value, words: Words) -> list[tuple[int, int]]:
            need(words, targets_r, "the other humidity target")
            hum = int(value) if high else int(regs.field_of(targets_r, _TARGETS[True], words) or 0)
            dehum = int(value) if not high else int(regs.field_of(targets_r, _TARGETS[False], words) or 0)
            # the other half keeps its value, clamped into its own range so the word is valid
            hum = min(max(hum, int(hum_rule.low)), int(hum_rule.high))
            dehum = min(max(dehum, int(dehum_rule.low)), int(dehum_rule.high))
            return [(targets_w, regs.encode_humidistat_targets(hum, dehum))]

        return p(
            id_,
            name,
            "integer",
            (targets_r,),
            field(targets_r, _TARGETS[high]),
            Tier.MEDIUM,
            fmt=range_format(rule),
            unit=regs.REGISTERS[targets_r].published_unit,
            setter=Setter(parse_number(rule, integer=True), encode, frozenset({targets_r}), rule=rule),
            role=role,
        )

    props: list[PropertySpec] = []
    if c.humidifier:
        props.append(
            flag_sensor(
                p,
                "humidifier-running",
                "Humidifier Running",
                30,
                "accessory",
                Tier.FAST,
                role=Role.HUMIDIFIER_ACTION,
            )
        )
        if c.awl_communicating:
            props += [
                mode("humidifier-mode", "Humidifier Mode", _HUMIDIFY, Role.HUMIDIFIER_MODE),
                target(
                    "humidification-target",
                    "Humidification Target Relative Humidity",
                    True,
                    Role.HUMIDIFIER_TARGET,
                ),
            ]
    if c.dehumidifier or c.vs_drive:
        if c.dehumidifier:
            running = flag_sensor(
                p,
                "dehumidifier-running",
                "Dehumidifier Running",
                1104,
                "accessory2",
                Tier.FAST,
                role=Role.DEHUMIDIFIER_ACTION,
            )
        else:
            running = p(
                "dehumidifier-running",
                "Dehumidifier Running",
                "boolean",
                (30, 6, 362),
                lambda w: current_mode(w) == "dehumidify",
                Tier.FAST,
                role=Role.DEHUMIDIFIER_ACTION,
            )
        props.append(running)
        if c.awl_communicating:
            props += [
                mode("dehumidifier-mode", "Dehumidifier Mode", _DEHUMIDIFY, Role.DEHUMIDIFIER_MODE),
                target(
                    "dehumidification-target",
                    "Dehumidification Target Relative Humidity",
                    False,
                    Role.DEHUMIDIFIER_TARGET,
                ),
            ]
    if c.awl_communicating:
        humidity = Hass(platform="sensor", device_class="humidity", state_class="measurement")
        props.append(
            reading(
                p,
                "relative-humidity",
                "Relative Humidity",
                741,
                Tier.MEDIUM,
                hass=humidity,
                role=Role.HUMIDITY,
            )
        )
    return NodeSpec(id="humidistat", name="Humidistat", type="Humidistat", properties=tuple(props))
