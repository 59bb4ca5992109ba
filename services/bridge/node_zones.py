"""The zone nodes: ``zone1`` from the thermostat, or ``zone1``..``zoneN`` from an IntelliZone 2
≥ 2.0, with the modes, fan settings and target temperatures to set (docs/architecture.md#homie-tree,
docs/protocol.md#writes). Without a communicating thermostat or IZ2, ``zone1`` only shows what the thermostat
calls for."""

from __future__ import annotations

from collections.abc import Sequence

from aurora import registers as regs

from .components import Components
from .shapes import setting, temperature_sensor
from .spec import (
    MEASURE_DIAG,
    RUNNING,
    TEMPERATURE,
    Builder,
    Hass,
    NodeSpec,
    PropertySpec,
    Role,
    Tier,
    Value,
    Words,
    builder,
)
from .values import ValueFn, decoded, field, flag

# docs/architecture.md#original-bridge C8: unknown1/unknown7 of the map's CALLS are outside the enum
ZONE_CALLS = tuple(name for name in regs.CALLS.values() if not name.startswith("unknown"))

_FAN_MINUTES = Hass(platform="select", category="config")
_ZONE_SETTING = Hass(platform="sensor", device_class="enum", category="diagnostic")


def thermostat_zone_node(c: Components) -> NodeSpec:
    """``zone1`` of a unit without IZ2 ≥ 2.0: the thermostat's calls, and with AWL its settings."""
    p = builder("zone1")

    def call(w: Words) -> Value | None:
        def calls(name: str) -> bool:
            return bool(flag(31, name)(w))

        cooling = calls("o")
        if calls("y2"):
            return "c2" if cooling else "h2"
        if calls("y1"):
            return "c1" if cooling else "h1"
        return "standby"

    props = [_requested(p, (31,), call)]
    if c.awl_thermostat:
        props += _settings(
            p,
            zone=1,
            config1=12005,
            mode_read=(12006,),
            mode_value=field(12006, "mode"),
            writes=(12606, 12619, 12620, 12621, 12622, 12623),
            heating=((745,), decoded(745)),
            cooling=((746,), decoded(746)),
            ambient=502,
            fan_running=((31,), flag(31, "g")),
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
        name = regs.field_of(c2, "call", w)
        return name if name in ZONE_CALLS else None

    def mode(w: Words) -> Value | None:
        return regs.zone_mode(w[c2])  # three mode bits, so that eheat reads back

    def heating(w: Words) -> Value | None:
        target = regs.field_of(c2, "heating_target_temperature", w)
        return None if target is None else float(target)

    def cooling(w: Words) -> Value | None:
        target = regs.field_of(c1, "cooling_target_temperature", w)
        return None if target is None else float(target)

    configuration = [
        p(
            "priority",
            "Zone Priority",
            "enum",
            (c3,),
            field(c3, "zone_priority"),
            Tier.SLOW,
            fmt=",".join(regs.OPTIONS["ZONE_PRIORITY"]),
            hass=_ZONE_SETTING,
        ),
        p(
            "size",
            "Size",
            "enum",
            (c3,),
            lambda w: str(regs.field_of(c3, "zone_size", w)),
            Tier.SLOW,
            fmt=",".join(str(size) for size in regs.ZONE_SIZES.values()),
            hass=_ZONE_SETTING,
        ),
        p(
            "normalized-size",
            "Normalized Size",
            "integer",
            (c3,),
            field(c3, "normalized_size"),
            Tier.SLOW,
            fmt="0:100",
            unit="%",
            hass=MEASURE_DIAG,
        ),
    ]
    props = [_requested(p, (c2,), call)]
    props += _settings(
        p,
        zone=zone,
        config1=c1,
        mode_read=(c2,),
        mode_value=mode,
        writes=tuple(21202 + 9 * (zone - 1) + i for i in range(6)),  # type: ignore[arg-type]
        heating=((c1, c2), heating),
        cooling=((c1,), cooling),
        ambient=ambient,
        fan_running=((c2,), lambda w: regs.field_of(c2, "damper", w) == "open"),
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
        role=Role.CLIMATE_ACTION,
    )


def _settings(
    p: Builder,
    *,
    zone: int,
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
    """A zone's mode, fan and target properties, with ``configuration`` before its temperatures.

    Options, ranges and steps come from the write registers' rules: the IZ2 stores whole degrees
    (step 10 tenths), the thermostat tenths."""
    # writes: mode, heating, cooling, fan mode, fan on, fan off registers (docs/protocol.md#writes)
    mode_w, heat_w, cool_w, fan_w, on_w, off_w = writes

    def minutes(id_: str, name: str, key: str, write: int, exclude: tuple[str, ...] = ()) -> PropertySpec:
        return setting(
            p,
            id_,
            name,
            write,
            registers=(config1,),
            value=field(config1, key),
            datatype="enum",
            exclude=exclude,
            hass=_FAN_MINUTES,
        )

    # docs/architecture.md#original-bridge C7: float, as published (68.0), not integer
    def target(
        id_: str, name: str, read: tuple[tuple[int, ...], ValueFn], write: int, role: Role
    ) -> PropertySpec:
        registers, value = read
        return setting(p, id_, name, write, registers=registers, value=value, datatype="float", role=role)

    return [
        setting(
            p,
            "target-mode",
            "Target Heating/Cooling Mode",
            mode_w,
            registers=mode_read,
            value=mode_value,
            # emergency heat is the whole unit's: only zone 1 offers it
            exclude=() if zone == 1 else ("eheat",),
            role=Role.CLIMATE_MODE,
        ),
        setting(
            p,
            "target-fan-mode",
            "Target Fan Mode",
            fan_w,
            registers=(config1,),
            value=field(config1, "fan"),
            role=Role.CLIMATE_FAN_MODE,
        ),
        # 0..25 (docs/architecture.md#homie-tree; Homie said 0..20, docs/architecture.md#original-bridge C9)
        minutes("fan-intermittent-on", "Fan Intermittent Mode On Duration", "on_time", on_w),
        # decodes as 5..40; 0 never reads back (C9)
        minutes("fan-intermittent-off", "Fan Intermittent Mode Off Duration", "off_time", off_w, ("0",)),
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
            role=Role.CLIMATE_TEMPERATURE,
        ),
        target(
            "heating-target-temperature",
            "Heating Target Temperature",
            heating,
            heat_w,
            Role.CLIMATE_HEATING_TARGET,
        ),
        target(
            "cooling-target-temperature",
            "Cooling Target Temperature",
            cooling,
            cool_w,
            Role.CLIMATE_COOLING_TARGET,
        ),
    ]
