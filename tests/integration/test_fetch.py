"""`aurora_fetch` as a user runs it: a process against the sim over a pty and TCP, and a dump file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from aurora.query import parse_query

from tests.support.data import JFCLICHE_FLAT, ORIG_FETCH_VALID, SEED_DUMP
from tests.support.sim import Sim

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
FLAT = JFCLICHE_FLAT
ORIG_VALID = ORIG_FETCH_VALID
UNIT = "---\n2: 306\n88: 16706\n89: 17238\n90: 21328\n91: 8224\n745: 680\n746: 730\n747: 712\n813: 206\n"


def fetch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "aurora_fetch"), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def unit_dump(tmp_path: Path) -> Path:
    path = tmp_path / "unit.yml"
    path.write_text(UNIT, encoding="utf-8")
    return path


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_fetch_prints_named_registers_from_the_sim(tmp_path: Path, unit_dump: Path, transport: str) -> None:
    """`aurora_fetch /dev/ttyUSB0 745-747` is a user's first contact: exact original lines."""
    args = ["--tcp", "127.0.0.1:0"] if transport == "tcp" else []
    with Sim.start(tmp_path, str(unit_dump), *args) as sim:
        done = fetch(sim.url, "745-747,813")
    assert 0 == done.returncode, done.stderr
    expected = [
        "Heating Set Point (745): 68.0°F",
        "Cooling Set Point (746): 73.0°F",
        "Ambient Temperature (747): 71.2°F",
        "IZ2 Version (813): 2.06",
    ]
    assert expected == done.stdout.splitlines()


def test_fetch_valid_yaml_from_the_sim_reproduces_the_real_scan(tmp_path: Path) -> None:
    """A full dump for a bug report: every `valid` register of the real unit, raw, over a paced line."""
    with Sim.start(tmp_path, str(FLAT), "--tcp", "127.0.0.1:0", "--baud", "0") as sim:
        done = fetch(sim.url, "valid", "--yaml")
    assert 0 == done.returncode, done.stderr
    got = yaml.safe_load(done.stdout)
    scan = yaml.safe_load(FLAT.read_text())
    valid = set(parse_query("valid").addresses)
    assert {a: v for a, v in scan.items() if a in valid} == got


@pytest.mark.parametrize(
    ("dump", "query", "skip_lines"),
    [(ORIG_VALID, "valid", 0), (SEED_DUMP, "all", 0), (FLAT, "all", 1)],  # FLAT opens with a comment
)
def test_fetch_of_a_dump_reproduces_the_dump(dump: Path, query: str, skip_lines: int) -> None:
    """`aurora_fetch DUMP QUERY --yaml` gives the dump back byte for byte, as the original's YAML:
    people diff and commit these dumps, so not even an extra empty line at the end."""
    done = subprocess.run(
        [str(BIN / "aurora_fetch"), str(dump), query, "--yaml"], capture_output=True, timeout=120
    )
    assert 0 == done.returncode, done.stderr[-2000:]
    expected = b"".join(dump.read_bytes().splitlines(keepends=True)[skip_lines:])
    assert expected == done.stdout


def test_fetch_known_decodes_the_real_full_scan() -> None:
    """Model, serial, program and versions of a real unit (ABC 3.06 ABCSTD, AXB 2.03) decode."""
    done = fetch(str(FLAT), "known")
    assert 0 == done.returncode, done.stderr
    lines = done.stdout.splitlines()
    assert "ABC Program (88): ABCSTD" in lines
    assert "ABC Program Version (2): 3.06" in lines
    assert "AXB Version (807): 2.03" in lines
    assert not [line for line in lines if "Traceback" in line]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["745-x"], "is not a register"),
        (["747-745"], "runs backwards"),
        (["745", "--bogus"], "unrecognized arguments"),
        ([], "the following arguments are required"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(unit_dump: Path, args: list[str], message: str) -> None:
    """A malformed query is the user's mistake: a message, no traceback, exit 2."""
    done = fetch(str(unit_dump), *args)
    assert 2 == done.returncode
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_device_errors_exit_1_with_the_users_document_wording(tmp_path: Path) -> None:
    """Connection refused reads as in network-serial-connections.md; a missing device is named."""
    with Sim.start(tmp_path, "--tcp", "127.0.0.1:0") as sim:
        port = sim.url.rstrip("/").rsplit(":", 1)[1]
    refused = fetch(f"tcp://127.0.0.1:{port}/", "745")
    expected = f"aurora_fetch: Connection refused - tcp://127.0.0.1:{port}/\n"
    assert (1, expected) == (refused.returncode, refused.stderr)
    missing = fetch("/dev/ttyNOSUCH", "745")
    assert 1 == missing.returncode
    assert "aurora_fetch: Cannot open /dev/ttyNOSUCH: no such device (is the adapter plugged in?" in (
        missing.stderr
    )
    assert 1 == len(missing.stderr.splitlines())


@pytest.mark.parametrize(
    ("port", "code", "message"),
    [
        ("/dev/null", 1, "Cannot open /dev/null: not a serial device"),
        ("{tmp}", 1, "Cannot open {tmp}: a directory, not a serial device or dump file"),
        ("{tmp}/myunit.yml", 2, "{tmp}/myunit.yml: no such dump file"),
        (
            "http://127.0.0.1:1/",
            2,
            "http://127.0.0.1:1/: not a port; give a serial device (/dev/ttyUSB0), tcp://",
        ),
    ],
)
def test_a_port_that_is_no_port_is_named_in_one_line(
    tmp_path: Path, port: str, code: int, message: str
) -> None:
    """Not pyserial's "[Errno 2] could not open port …: [Errno 2] …" or "(25, 'Inappropriate ioctl')"."""
    done = fetch(port.format(tmp=tmp_path), "745")
    assert code == done.returncode
    assert done.stderr.startswith("aurora_fetch: " + message.format(tmp=tmp_path)), done.stderr
    assert 1 == len(done.stderr.splitlines())


def test_an_absent_register_fails_an_explicit_query_unless_told_to_skip_it(unit_dump: Path) -> None:
    """Exit 1 with one line naming the missing registers and the option that skips them; with
    --ignore-missing-registers the rest, and one warning naming what was skipped."""
    strict = fetch(str(unit_dump), "745-748,1114")
    assert 1 == strict.returncode
    assert (
        "aurora_fetch: registers 748, 1114 are not on this unit (illegal data address); "
        "--ignore-missing-registers skips them\n"
    ) == strict.stderr
    assert "" == strict.stdout
    one = fetch(str(unit_dump), "1114")
    assert (
        "aurora_fetch: register 1114 (DHW Temperature) is not on this unit (illegal data address); "
        "--ignore-missing-registers skips it\n"
    ) == one.stderr
    lenient = fetch(str(unit_dump), "745-748", "--ignore-missing-registers")
    assert 0 == lenient.returncode, lenient.stderr
    assert 3 == len(lenient.stdout.splitlines())
    assert 1 == len(lenient.stderr.splitlines()) and '"registers": "748"' in lenient.stderr


def test_a_keyword_query_of_a_small_dump_prints_no_warning_for_what_the_unit_lacks() -> None:
    """`valid` asks for whatever the unit has: the 2807 registers the seed dump lacks are no news."""
    done = fetch(str(SEED_DUMP), "valid")
    assert 0 == done.returncode, done.stderr[-2000:]
    assert [] == [line for line in done.stderr.splitlines() if '"info"' not in line]  # progress only
    assert done.stdout.strip()


def test_debug_modbus_shows_every_frame(tmp_path: Path, unit_dump: Path) -> None:
    """--debug-modbus logs the request and reply bytes (docs/protocol.md#fc65 example frame for 745-747)."""
    with Sim.start(tmp_path, str(unit_dump), "--tcp", "127.0.0.1:0") as sim:
        done = fetch(sim.url, "745-747", "--debug-modbus")
    assert 0 == done.returncode, done.stderr
    assert "01 41 02 e9 00 03 ad 88" in done.stderr
