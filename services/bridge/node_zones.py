"""The zone nodes: ``zone1`` from the thermostat, or ``zone1``..``zoneN`` from an IntelliZone 2
≥ 2.0, with the modes, fan settings and target temperatures to set (docs/architecture.md#homie-tree,
docs/protocol.md#writes). Without a communicating thermostat or IZ2, ``zone1`` only shows what the thermostat
calls for."""

from __future__ import annotations

from collections.abc import Sequence

from aurora import registers as regs

from .components import Components
from .setters import enum_options, enum_setter, number_setter, parse_enum, range_format, rule_of, step_options
from .shapes import temperature_sensor
from .spec import (
    MEASURE_DIAG,
    RUNNING,
    TEMPERATURE,
    Builder,
    Hass,
    NodeSpec,
    PropertySpec,
    Setter,
    Tier,
    Value,
    Words,
    builder,
)
from .values import G_INPUT, O_INPUT, Y1, Y2, ValueFn, bit, decoded

HEATING_MODES = enum_options(12606)  # off, auto, cool, heat, eheat
FAN_MODES = enum_options(12621)  # auto, continuous, intermittent
CALLS = ("standby", "unknown1", "h1", "h2", "h3", "c1", "c2", "unknown7")
ZONE_CALLS = ("standby", "h1", "h2", "h3", "c1", "c2")
# 0..25 (docs/architecture.md#homie-tree; Homie said 0..20, docs/architecture.md#original-bridge C9)
FAN_ON_MINUTES = step_options(12622)
FAN_OFF_MINUTES = step_options(12623, exclude=(0,))  # decodes as 5..40; 0 never reads back (C9)

_FAN_MINUTES = Hass(platform="select", category="config")
_ZONE_SETTING = Hass(platform="sensor", device_class="enum", category="diagnostic")


def thermostat_zone_node(c: Components) -> NodeSpec:
    """``zone1`` of a unit without IZ2 ≥ 2.0: the thermostat's calls, and with AWL its settings."""
    p = builder("zone1")

    def call(w: Words) -> Value | None:
        inputs = w[31]
        cooling = inputs & O_INPUT
        if inputs & Y2:
            return "c2" if cooling else "h2"
        if inputs & Y1:
            return "c1" if cooling else "h1"
        return "standby"

    props = [_requested(p, (31,), call)]
    if c.awl_thermostat:
        props += _settings(
            p,
            zone=1,
            iz2=False,
            config1=12005,
            mode_read=(12006,),
            mode_value=lambda w: regs.HEATING_MODE.get((w[12006] >> 8) & 7),
            writes=(12606, 12619, 12620, 12621, 12622, 12623),
            heating=((745,), decoded(745)),
            cooling=((746,), decoded(746)),
            ambient=502,
            fan_running=((31,), bit(31, G_INPUT)),
        )
    return NodeSpec(id="zone1", name="Zone 1", type="Thermostat", properties=tuple(props))


def iz2_zone_node(zone: int) -> NodeSpec:
    """``zone<zone>`` of an IntelliZone 2 ≥ 2.0 (zones count from 1)."""
    p = builder(f"zone{zone}")
    ambient, c1, c2 = (31007 + 3 * (zone - 1) + i for i in range(3))
    c3 = 31200 + 3 * (zone - 1)

    def call(w: Words) -> Value | None:
        # docs/architecture.md#original-bridge C8: unknown1/unknown7 are outside the enum: left out rather
        # than published
        name = CALLS[(w[c2] >> 1) & 7]
        return name if name in ZONE_CALLS else None

    configuration = [
        p(
            id_,
            name,
            "enum",
            (c3,),
            lambda w, key=key: str(regs.zone_configuration3(w[c3])[key]),
            Tier.SLOW,
            fmt=fmt,
            hass=_ZONE_SETTING,
        )
        for id_, name, key, fmt in (
            ("priority", "Zone Priority", "zone_priority", "economy,comfort"),
            ("size", "Size", "zone_size", "0,25,45,70"),
        )
    ]
    configuration.append(
        p(
            "normalized-size",
            "Normalized Size",
            "integer",
            (c3,),
            lambda w: regs.zone_configuration3(w[c3])["normalized_size"],
            Tier.SLOW,
            fmt="0:100",
            unit="%",
            hass=MEASURE_DIAG,
        )
    )
    props = [_requested(p, (c2,), call)]
    props += _settings(
        p,
        zone=zone,
        iz2=True,
        config1=c1,
        # docs/architecture.md#original-bridge C8: three mode bits (8-10) so that eheat (4) reads back; the
        # original read two
        mode_read=(c2,),
        mode_value=lambda w: regs.HEATING_MODE.get((w[c2] >> 8) & 7),
        writes=tuple(21202 + 9 * (zone - 1) + i for i in range(6)),  # type: ignore[arg-type]
        heating=((c1, c2), lambda w: float(((w[c1] & 1) << 5 | (w[c2] & 0xF800) >> 11) + 36)),
        cooling=((c1,), lambda w: float(((w[c1] & 0x7E) >> 1) + 36)),
        ambient=ambient,
        fan_running=((c2,), bit(c2, 0x10)),
        configuration=configuration,
    )
    return NodeSpec(id=f"zone{zone}", name=f"Zone {zone}", type="IntelliZone 2 Zone", properties=tuple(props))


def _requested(p: Builder, registers: tuple[int, ...], value: ValueFn) -> PropertySpec:
    """``current-mode``: the heating or cooling stage the zone calls for."""
    return p(
        "current-mode",
        "Current Heating/Cooling Mode Requested",
        "enum",
        registers,
        value,
        Tier.FAST,
        fmt=",".join(ZONE_CALLS),
    )


def _settings(
    p: Builder,
    *,
    zone: int,
    iz2: bool,
    config1: int,
    mode_read: tuple[int, ...],
    mode_value: ValueFn,
    writes: tuple[int, int, int, int, int, int],
    heating: tuple[tuple[int, ...], ValueFn],
    cooling: tuple[tuple[int, ...], ValueFn],
    ambient: int,
    fan_running: tuple[tuple[int, ...], ValueFn],
    configuration: Sequence[PropertySpec] = (),
) -> list[PropertySpec]:
    """A zone's mode, fan and target properties, with ``configuration`` before its temperatures."""
    # writes: mode, heating, cooling, fan mode, fan on, fan off registers (docs/protocol.md#writes)
    mode_w, heat_w, cool_w, fan_w, on_w, off_w = writes
    modes = {k: v for k, v in HEATING_MODES.items() if k != "eheat" or zone == 1}
    # Ranges and steps from the write registers' rules: the IZ2 stores whole degrees (step 10
    # tenths), the thermostat tenths

    def fan(key: str) -> ValueFn:
        return lambda w: str(regs.zone_configuration1(w[config1])[key])

    def minutes(id_: str, name: str, key: str, options: tuple[str, ...], write: int) -> PropertySpec:
        return p(
            id_,
            name,
            "enum",
            (config1,),
            fan(key),
            Tier.MEDIUM,
            fmt=",".join(options),
            unit="min",
            setter=Setter(parse_enum(options), lambda v, w: [(write, int(str(v)))], frozenset({config1})),
            hass=_FAN_MINUTES,
        )

    # docs/architecture.md#original-bridge C7: float, as published (68.0), not integer
    def target(id_: str, name: str, read: tuple[tuple[int, ...], ValueFn], write: int) -> PropertySpec:
        registers, value = read
        return p(
            id_,
            name,
            "float",
            registers,
            value,
            Tier.MEDIUM,
            fmt=range_format(rule_of(write)),
            unit="°F",
            setter=number_setter(write, reads=registers),
        )

    return [
        p(
            "target-mode",
            "Target Heating/Cooling Mode",
            "enum",
            mode_read,
            mode_value,
            Tier.MEDIUM,
            fmt=",".join(modes),
            setter=enum_setter(mode_w, modes, reads=mode_read),
        ),
        p(
            "target-fan-mode",
            "Target Fan Mode",
            "enum",
            (config1,),
            fan("fan"),
            Tier.MEDIUM,
            fmt=",".join(FAN_MODES),
            setter=enum_setter(fan_w, FAN_MODES, reads=(config1,)),
        ),
        minutes("fan-intermittent-on", "Fan Intermittent Mode On Duration", "on_time", FAN_ON_MINUTES, on_w),
        minutes(
            "fan-intermittent-off", "Fan Intermittent Mode Off Duration", "off_time", FAN_OFF_MINUTES, off_w
        ),
        p("current-fan-mode", "Current Fan Status", "boolean", *fan_running, Tier.FAST, hass=RUNNING),
        *configuration,
        temperature_sensor(
            p,
            "ambient-temperature",
            "Ambient Temperature",
            ambient,
            Tier.FAST,
            hass=TEMPERATURE,
            optional=False,
        ),
        target("heating-target-temperature", "Heating Target Temperature", heating, heat_w),
        target("cooling-target-temperature", "Cooling Target Temperature", cooling, cool_w),
    ]
