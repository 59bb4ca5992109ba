"""docs/differences.md is the one list of where our output differs from the original's: each row
is checked here, and on the real dumps no other line differs.

There is no recording of the original's text output for these dumps, so the original's lines
come from its print rules (docs/protocol.md#register-map, docs/protocol.md#printing) applied to its own
register map as data (``tests/data/registers.json``, extracted from the original's source). This printer is
written
from those rules alone and shares no code with ``shared/aurora/render.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from aurora import registers
from aurora.bridge.components import Components
from aurora.bridge.device import Unit
from aurora.render import render_line

from tests.support.data import JFCLICHE_FLAT, ORIG_FETCH_VALID, SEED_DUMP

DOC = Path(__file__).resolve().parents[2] / "docs" / "differences.md"


# --- the original's print rules, from its register map ------------------------------------------


def _spec() -> dict[int, dict[str, Any]]:
    from tests.support.data import SPEC_REGISTERS

    return {e["address"]: e for e in json.loads(SPEC_REGISTERS.read_text(encoding="utf-8"))}


SPEC = _spec()


class OriginalCrashed(Exception):
    """The original raised here (a 32-bit value without its low word, docs/protocol.md#bugs-decoding)."""


def _int16(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


def _original_value(entry: Mapping[str, Any], words: Mapping[int, int]) -> object:
    address, kind = entry["address"], entry["kind"]
    raw = words[address]
    if kind == "uint16":
        return raw
    if kind == "int16":
        return _int16(raw)
    if kind == "tenths":
        return raw / 10
    if kind == "signed_tenths":
        return _int16(raw) / 10
    if kind == "hundredths":
        return raw / 100
    if kind in ("uint32", "int32"):
        if address + 1 not in words:
            raise OriginalCrashed
        value = raw << 16 | words[address + 1]
        return value - (1 << 32) if kind == "int32" and value & 0x8000_0000 else value
    if kind == "string":
        chars = []
        for a in range(address, address + entry["length"]):
            chars.append(chr(words[a] >> 8) + chr(words[a] & 0xFF) if a in words else "\ufffd")
        return "".join(chars).rstrip(" \0")
    if kind == "bitmask":
        if address == 32 and raw == 0x7FFF:
            return ["off"]
        names, left = [], raw
        for bits, name in entry["flags"].items():
            if left & int(bits, 0) == int(bits, 0):
                names.append(name)
                left &= ~int(bits, 0)
        return names + ([f"0x{left:04x}"] if left else [])
    if kind == "enum":
        default = entry.get("default")
        return entry["values"].get(str(raw), raw if default == "raw value" else default)
    if kind == "fault":  # 25 prints the raw word; 26 the code only while locked out
        return raw if address == 25 else (raw & 0x7FFF if raw & 0x8000 else None)
    # composites (status, DIP switches, zone configuration) have no rule here: test_registers.py checks them
    raise LookupError(f"no reference rule for {kind!r} values")


def original_line(address: int, words: Mapping[int, int]) -> str | None:
    """What the original's ``print_registers`` printed for one register, None for no line."""
    entry = SPEC.get(address)
    if entry is None:
        return f"??? ({address}): {words[address]} (0x{words[address]:04x})"
    if entry["ignored"]:
        return None
    value = _original_value(entry, words)
    if not entry["in_register_names"]:  # 22131: a converter and no name
        number = int(value)  # type: ignore[call-overload]
        return f"??? ({address}): {number} (0x{number:04x})"
    if isinstance(value, list):
        value = ", ".join(value)
    if value is None:
        text = ""
    elif entry["format"]:
        text = entry["format"] % value
    else:
        text = repr(value) if isinstance(value, float) else str(value)
    return f"{entry['name']} ({address}): {text}"


def _composite(address: int) -> bool:
    return address in SPEC and SPEC[address]["kind"] == "other"


# --- the document --------------------------------------------------------------------------------


def _table(heading: str) -> list[list[str]]:
    """The rows of the first table under ``heading``, cells stripped, header and rule left out."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]


def _code(cell: str) -> str | None:
    """The text of a cell that is one code span, else None (a remark such as "(no line)")."""
    match = re.fullmatch(r"`([^`]*)`(?: \(.*\))?", cell)
    return match[1] if match else None


def _words(cell: str) -> dict[int, int]:
    """``745=680, 746=0x02da`` or ``31447="text"`` → raw words."""
    words: dict[int, int] = {}
    for item in (_code(cell) or "").split(", "):
        address_text, value = item.split("=", 1)
        address = int(address_text)
        if value.startswith('"'):
            length = registers.REGISTERS[address].length
            data = value.strip('"').encode("ascii").ljust(2 * length, b" ")
            words.update({address + i: data[2 * i] << 8 | data[2 * i + 1] for i in range(length)})
        else:
            words[address] = int(value, 0)
    return words


FETCH_ROWS = _table("`aurora_fetch` lines, `$modbus` replies and the web register browser")
LISTED = {int(row[0]) for row in FETCH_ROWS}


@pytest.mark.parametrize("row", FETCH_ROWS, ids=[row[0] for row in FETCH_ROWS])
def test_each_listed_line_is_what_we_print_and_differs_from_the_original(row: list[str]) -> None:
    """Our column is render_line's output; the original's column follows from its rules."""
    address, words, theirs, ours = int(row[0]), _words(row[1]), row[2], row[3]
    assert _code(ours) == render_line(address, words)
    assert theirs != ours
    if theirs == "(no line)":
        assert None is original_line(address, words)
    elif theirs == "(crash: TypeError)":
        with pytest.raises(OriginalCrashed):
            original_line(address, words)
    elif not _composite(address) and _code(theirs) is not None and theirs.startswith("`"):
        assert _code(theirs) == original_line(address, words)


@pytest.mark.parametrize("dump", [JFCLICHE_FLAT, SEED_DUMP, ORIG_FETCH_VALID], ids=lambda p: p.name)
def test_on_the_real_dumps_only_listed_registers_print_differently(dump: Path) -> None:
    """Every line of `aurora_fetch DUMP all` (composites aside) is the original's, but the list's."""
    words = {a: v for a, v in yaml.safe_load(dump.read_text(encoding="utf-8")).items() if v is not None}
    differing = {
        address
        for address in words
        if not _composite(address) and original_line(address, words) != render_line(address, words)
    }
    assert differing <= LISTED
    assert {809, 810, 817, 820} <= differing  # the list is not stale: these units show them


def test_a_sensor_that_is_not_fitted_prints_as_the_original_and_publishes_nothing() -> None:
    """The kept behaviour the document quotes: -999.9°F / 5553.7 psi in a dump, no Homie value."""
    text = DOC.read_text(encoding="utf-8")
    scan = yaml.safe_load(JFCLICHE_FLAT.read_text(encoding="utf-8"))
    assert (0xD8F1, 0xD8F1) == (scan[1114], scan[1119])  # the real unit has neither sensor
    for address, line in (
        (1114, "DHW Temperature (1114): -999.9°F"),
        (1119, "Loop Pressure (1119): 5553.7 psi"),
    ):
        assert line == render_line(address, scan) == original_line(address, scan)
        assert line.split(": ")[1] in text.replace("\n  ", " ")
    unit = Unit.build(Components(serial="1", axb=True, dhw=True))
    assert "dhw/water-temperature" not in unit.values({**scan, 1114: 0xD8F1})
    assert "120.5" == unit.values({**scan, 1114: 1205})["dhw/water-temperature"]


BRIDGE_ROWS = {row[0].split("`")[1]: row for row in _table("The bridge (Homie topics)")}


def test_the_bridge_rows_are_what_the_bridge_publishes() -> None:
    """IZ2 set points as floats under $datatype float; pump/running for a fixed-speed pump."""
    assert {"zoneN/heating-target-temperature", "pump/running"} <= set(BRIDGE_ROWS)
    iz2 = Unit.build(Components(serial="1", iz2=True, iz2_version=2.06, zone_count=1))
    values = iz2.values({31007: 700, 31008: 1 | 38 << 1, 31009: 2 << 11, 31200: 0, 31: 0})
    assert ("70.0", "74.0") == (
        values["zone1/heating-target-temperature"],
        values["zone1/cooling-target-temperature"],
    )
    description = dict(iz2.description())
    assert "float" == description["zone1/heating-target-temperature/$datatype"]
    assert "float" == description["zone1/cooling-target-temperature/$datatype"]
    assert "`70.0` under `$datatype float`" in BRIDGE_ROWS["zoneN/heating-target-temperature"][2]
    fixed_speed = Unit.build(Components(serial="1", axb=True, pump_type=1))  # FC1 flow centre
    assert "pump/manual-control" not in fixed_speed.values({1104: 0x02, 323: 0x7FFF})
    assert "true" == fixed_speed.values({1104: 0x02})["pump/running"]
    assert "false" == fixed_speed.values({1104: 0x01})["pump/running"]


CLI_ROWS = {row[0]: row for row in _table("`aurora_fetch` on the command line")}


def _fetch(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from aurora.fetch.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_line_rows_are_how_fetch_behaves(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Each row of the command-line table, as a user meets it."""
    dump = tmp_path / "unit.yml"
    dump.write_text("---\n745: 680\n746: 730\n747: 712\n", encoding="utf-8")
    usage = CLI_ROWS["exit status of a usage error (bad query, unknown option, missing argument)"]
    assert "2 and one line on stderr" == usage[2]
    for argv in ([str(dump), "745-x"], [str(dump), "747-745"]):
        code, out, err = _fetch(capsys, *argv)
        assert (2, "", 1) == (code, out, len(err.splitlines()))
    missing = CLI_ROWS["a register the unit does not have"]
    code, _, err = _fetch(capsys, str(dump), "745-747,1114")
    assert 1 == code
    assert _code(missing[2]) == err.rstrip("\n")
    assert "valid,745" in CLI_ROWS["`valid,745` or `all,745`"][0]
    code, out, _ = _fetch(capsys, str(dump), "known,745", "--ignore-missing-registers")
    assert 0 == code and "Heating Set Point (745): 68.0°F" in out.splitlines()
    code, _, err = _fetch(capsys, str(tmp_path / "none.yml"), "745")  # a typo in the dump's name
    assert (2, f"aurora_fetch: {tmp_path / 'none.yml'}: no such dump file\n") == (code, err)
    code, _, err = _fetch(capsys, "/dev/ttyNOSUCH", "745")  # a device or connection error
    assert 1 == code and 1 == len(err.splitlines()) and "Traceback" not in err


@pytest.mark.parametrize("query", ["known", "all"])
def test_the_whole_text_output_of_a_real_scan_is_the_originals_line_for_line(
    capsys: pytest.CaptureFixture[str], query: str
) -> None:
    """`aurora_fetch SCAN QUERY` stdout as a whole: the original's lines in address order, one
    newline each, continuation words skipped; listed registers and composites as we print them."""
    code, out, _ = _fetch(capsys, str(JFCLICHE_FLAT), query)
    assert 0 == code
    words = {
        a: v for a, v in yaml.safe_load(JFCLICHE_FLAT.read_text(encoding="utf-8")).items() if v is not None
    }
    wanted = sorted(registers.KNOWN_ADDRESSES & set(words)) if query == "known" else sorted(words)
    expected = []
    for address in wanted:
        mine = address in LISTED or _composite(address)
        line = render_line(address, words) if mine else original_line(address, words)
        if line is not None:
            expected.append(line)
    assert "\n".join(expected) + "\n" == out
