"""Write shared/aurora/data/registers.json, the project's own register map, from the protocol spec.

Dev-only, run once to bootstrap the map (the runtime reads only the JSON it writes; the JSON is now
edited by hand and this refuses to overwrite it without --force): it turns the spec's description
of the original map (tests/data/registers.json and register_constants.json) into the project's
schema, applies the decode fixes of docs/protocol.md#bugs-decoding and adds the write rules of
docs/protocol.md#writes.

Run: .venv/bin/python scripts/gen_register_data.py [--force] [SPEC_DIR]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "shared" / "aurora" / "data" / "registers.json"

# Spec "kind" -> the project's converter name, for the kinds that need no table.
_SIMPLE_KINDS = {
    "uint16": "uint16",
    "int16": "int16",
    "tenths": "tenths",
    "signed_tenths": "signed_tenths",
    "hundredths": "hundredths",
    "uint32": "uint32",
    "int32": "int32",
    "string": "string",
}

# Spec converter text of the composite/"other" registers -> the project's converter name
# (docs/protocol.md#conversions).
_COMPOSITES = {
    "dipswitch_settings": "dip_switches",
    "status ->": "status",
    "boolean:": "boolean",
    "0x7fff -> 'off', otherwise the raw value": "vs_manual_control",
    "axb_inputs": "axb_inputs",
    "manual_operation": "manual_operation",
    "zone_configuration1": "zone_configuration1",
    "zone_configuration2": "zone_configuration2",
    "zone_configuration3": "zone_configuration3",
    "thermostat_configuration2": "thermostat_configuration2",
    "two bytes: high = humidification": "humidistat_targets",
    "iz2_demand": "iz2_demand",
}

_ENUM_TABLES = (
    "HEATING_MODE",
    "FAN_MODE",
    "SMARTGRID_ACTION",
    "HA_ALARM",
    "COMPONENT_STATUS",
    "BRINE_TYPE",
    "FLOW_METER_TYPE",
    "BLOWER_TYPE",
    "ENERGY_MONITOR_TYPE",
    "PUMP_TYPE",
    "PHASE_TYPE",
    "ACCESSORY_RELAY_SETTINGS",
    "CALLS",
)
_FLAG_TABLES = (
    "SYSTEM_OUTPUTS",
    "SYSTEM_INPUTS",
    "VS_DRIVE_DERATE",
    "VS_SAFE_MODE",
    "VS_ALARM1",
    "VS_ALARM2",
    "VS_EEV2",
    "AXB_OUTPUTS",
    "HUMIDIFIER_SETTINGS",
)

# docs/protocol.md#writes: what the gem writes and how it validates; ranges are in the register's unit.
_ZONE_WRITES: dict[int, dict[str, Any]] = {
    0: {"low": 0, "high": 4, "enum": "HEATING_MODE"},
    1: {"low": 40, "high": 90, "scale": 10},
    2: {"low": 54, "high": 99, "scale": 10},
    3: {"low": 0, "high": 2, "enum": "FAN_MODE"},
    4: {"low": 0, "high": 25, "step": 5},
    5: {"low": 0, "high": 40, "step": 5},
}
_HUMIDISTAT_TARGETS = {
    "low": 0,
    "high": 0xFFFF,
    "fields": [
        {"name": "humidification target", "mask": 0xFF00, "low": 15, "high": 50},
        {"name": "dehumidification target", "mask": 0x00FF, "low": 35, "high": 65},
    ],
}
_WRITES: dict[int, dict[str, Any]] = {
    47: {"low": 0x5555, "high": 0x5555},  # clear fault history: the one magic word
    112: {"low": 90, "high": 635},
    # The gem writes any int; ±50 % is this project's guard against garbage, not a documented limit.
    346: {"low": -50, "high": 50, "signed": True},
    **{a: {"low": 1, "high": 12} for a in (340, 341, 342, 347)},
    321: {"low": 1, "high": 100},
    322: {"low": 1, "high": 100},
    323: {"low": 1, "high": 100, "special": {"32767": "off"}},
    400: {"low": 0, "high": 1},
    401: {"low": 100, "high": 140, "scale": 10},
    # The gem writes any value ×10; 0..100 psi is this project's guard (a trip point is a few psi).
    419: {"low": 0, "high": 100, "scale": 10},
    # Preserved unknown bits | 0x8000 humidifier auto | 0x4000 dehumidifier auto: any word goes.
    12309: {"low": 0, "high": 0xFFFF},
    21114: {"low": 0, "high": 0xFFFF},
    12310: _HUMIDISTAT_TARGETS,
    21115: _HUMIDISTAT_TARGETS,
    # Thermostat (no IZ2): mode 12606, then set points, fan mode and fan times 12619..12623.
    12606: _ZONE_WRITES[0],
    **{12618 + k: rule for k, rule in _ZONE_WRITES.items() if k >= 1},
    # IZ2 zone z (1..6): 21202 + 9(z-1) + k, the same encodings as the thermostat (docs/protocol.md#zones).
    **{21202 + 9 * z + k: rule for z in range(6) for k, rule in _ZONE_WRITES.items()},
    3002: {
        "low": 0,
        "high": 0x03FF,
        "special": {"32767": "off"},
        "fields": [
            {"name": "compressor speed", "mask": 0x000F, "low": 0, "high": 12},
            {"name": "blower speed", "mask": 0x00F0, "low": 0, "high": 12, "also": [15]},
        ],
    },
    # Adding or removing a component reconfigures the board: only with dangerous=True.
    **{a: {"low": 2, "high": 3, "dangerous": True} for a in (800, 806, 812, 815, 818, 824, 827)},
}


def _converter(entry: dict[str, Any]) -> dict[str, Any]:
    """The project's converter name and table for one spec entry (docs/protocol.md#conversions)."""
    address, kind, text = entry["address"], entry["kind"], entry["converter"]
    if address == 32:
        return {"converter": "thermostat_override", "table": "SYSTEM_INPUTS"}
    if kind in _SIMPLE_KINDS:
        return {"converter": _SIMPLE_KINDS[kind]}
    if kind == "bitmask":
        return {"converter": "flags", "table": entry["table"]}
    if kind == "fault":
        return {"converter": "fault" if address == 25 else "last_lockout"}
    if kind == "enum":
        if address == 565:
            return {"converter": "iz2_fan_desired"}
        if text.startswith("0 -> 'closed'"):
            return {"converter": "enum", "table": "TRIGGER"}
        return {"converter": "enum", "table": entry["table"]}
    for marker, name in _COMPOSITES.items():
        if marker in text:
            return {"converter": name}
    raise SystemExit(f"no converter for {address}: {kind} {text!r}")


def _fix(entry: dict[str, Any], row: dict[str, Any]) -> None:
    """docs/protocol.md#bugs-decoding fixes applied to the original map."""
    address = entry["address"]
    # docs/protocol.md#bugs-decoding: the TO_TENTHS typo 22131 left zone 4's cooling set point raw
    if address == 21231:
        row["converter"] = "tenths"
    if address == 31447:  # docs/protocol.md#bugs-decoding: ignore(31447..31459) hid Dealer Email
        row["name"] = "Dealer Email"
        row.pop("part_of", None)
    if address == 809:  # docs/protocol.md#bugs-decoding: AHB Installed decoded like the other components
        row.update(converter="enum", table="COMPONENT_STATUS")
    if address == 810:  # docs/protocol.md#bugs-decoding: AHB Version ÷100 like the other versions
        row["converter"] = "hundredths"
    if address in (817, 820):  # docs/protocol.md#bugs-decoding: revisions are raw, like 802, 805, 808 ...
        row["converter"] = "uint16"


def _rows(spec: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for entry in spec:
        address = entry["address"]
        if not entry["in_register_names"]:
            continue  # 22131: only the typo gave it a converter (docs/protocol.md#bugs-decoding)
        if entry["ignored"] and address != 31447:
            yield {"address": address, "name": None, "part_of": entry["part_of"]}
            continue
        row: dict[str, Any] = {"address": address, "name": entry["name"]}
        row.update(_converter(entry))
        if entry["length"] != 1:  # strings and 32-bit pairs
            row["length"] = entry["length"]
        _fix(entry, row)
        if entry["unit"]:
            row["unit"] = entry["unit"]
        if entry["format"]:
            row["format"] = entry["format"]
        if address in _WRITES:
            row["write"] = _WRITES[address]
        yield row


def _table(raw: dict[str, Any]) -> dict[str, Any]:
    """A spec enum table with its default split off."""
    values = {k: v for k, v in raw.items() if k != "default"}
    table: dict[str, Any] = {"values": values}
    if "default" in raw:
        table["default"] = raw["default"]
    return table


def build(spec_dir: Path) -> dict[str, Any]:
    """The whole project data file as a dict."""
    spec = json.loads((spec_dir / "registers.json").read_text(encoding="utf-8"))
    constants = json.loads((spec_dir / "register_constants.json").read_text(encoding="utf-8"))
    enums = {name: _table(constants[name]) for name in _ENUM_TABLES}
    # 405, 408, 410 (docs/protocol.md#conversions)
    enums["TRIGGER"] = {"values": {"0": "closed"}, "default": "open"}
    rows = list(_rows(spec))
    missing = set(_WRITES) - {r["address"] for r in rows if r["name"]}
    if missing:
        raise SystemExit(f"write rules for registers not in the map: {sorted(missing)}")
    return {
        "about": (
            "WaterFurnace Aurora register map (docs/protocol.md#register-map), owned by this project. "
            "Generated once by scripts/gen_register_data.py with the decode fixes of "
            "docs/protocol.md#bugs-decoding applied; "
            "edit this file, not the spec. converter names map to functions in aurora/registers.py; "
            "write ranges are in the register's unit, raw = value x scale."
        ),
        "ranges": constants["REGISTER_RANGES"],
        "breakpoints": constants["REGISTER_BREAKPOINTS"],
        "faults": constants["FAULTS"],
        "enums": enums,
        "numeric_tables": {
            "ZONE_SIZES": constants["ZONE_SIZES"],
            "IZ2_FAN_DESIRED": {"1": 25, "2": 40, "3": 55, "4": 70, "5": 85, "6": 100},
        },
        "flags": {name: constants[name] for name in _FLAG_TABLES},
        "registers": rows,
    }


def dumps(data: dict[str, Any]) -> str:
    """JSON with one register, table or range list per line, so diffs stay readable."""

    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    def block(open_: str, close: str, lines: list[str]) -> str:
        return open_ + "\n" + ",\n".join(f"    {line}" for line in lines) + f"\n  {close}"

    parts = []
    for key, value in data.items():
        if key == "registers":
            text = block("[", "]", [one(row) for row in value])
        elif isinstance(value, dict) and key != "faults":
            text = block("{", "}", [f"{one(k)}: {one(v)}" for k, v in value.items()])
        else:
            text = one(value)
        parts.append(f"  {one(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str]) -> int:
    force = "--force" in argv
    args = [a for a in argv[1:] if a != "--force"]
    if OUT.exists() and not force:
        # The map has been edited by hand since it was bootstrapped from here (publish units, flags,
        # options, sensor limits: docs/protocol.md#register-map); regenerating would drop that.
        print(
            f"{OUT.relative_to(ROOT)} exists and is now edited by hand (docs/protocol.md#register-map); "
            "this bootstrap would drop what was added since. Use --force to overwrite it anyway.",
            file=sys.stderr,
        )
        return 2
    spec_dir = Path(args[0]) if args else ROOT / "tests" / "data"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(dumps(build(spec_dir)), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
