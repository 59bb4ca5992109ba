"""``aurora_fetch`` imports only what its port needs (issue 15's startup goal), checked on a real
run against the sim: a ``tcp://`` or pty fetch never imports paho, asyncio, structlog, tenacity,
ssl or importlib.metadata, and still logs (through structlog) when something goes wrong; an
RFC 2217 port opens in milliseconds, not pyserial's 0.45 s.
The timings themselves are in the bench (tests/perf/bench_startup.py)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import Broker
from tests.support.bridge import DEMO_ID, Bridge
from tests.support.processes import wait_for
from tests.support.ser2net import Ser2net
from tests.support.sim import Sim

pytestmark = pytest.mark.integration

UNIT = "---\n745: 680\n746: 730\n747: 712\n"
# What a serial or tcp:// fetch must not cost: each of these takes longer to import than the
# whole of the fetch itself needs.
NOT_NEEDED = ("paho", "asyncio", "structlog", "tenacity", "ssl", "importlib.metadata", "yaml", "aurora.mqtt")

# Runs aurora_fetch's main in this interpreter and reports which modules it imported.
PROBE = """
import json, sys
from aurora.fetch.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
sys.stdout.flush()
sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
raise SystemExit(code)
"""


def _fetch_modules(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    head, _, modules = done.stderr.rpartition("\nMODULES ")
    done.stderr = head
    return done, set(json.loads(modules))


def _loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


@pytest.fixture
def unit_dump(tmp_path: Path) -> Path:
    path = tmp_path / "unit.yml"
    path.write_text(UNIT, encoding="utf-8")
    return path


@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_a_fetch_on_a_line_imports_nothing_it_does_not_need(
    tmp_path: Path, unit_dump: Path, transport: str
) -> None:
    """Three registers over TCP or a pty: the output is right and the import set is lean."""
    args = ["--tcp", "127.0.0.1:0"] if transport == "tcp" else []
    with Sim.start(tmp_path, str(unit_dump), *args) as sim:
        done, modules = _fetch_modules(sim.url, "745-747")
    assert 0 == done.returncode, done.stderr
    assert "Heating Set Point (745): 68.0°F" == done.stdout.splitlines()[0]
    assert "" == done.stderr.strip()
    assert [] == [name for name in NOT_NEEDED if _loaded(modules, name)]
    assert not _loaded(modules, "aurora.urlhandler.protocol_rfc2217")  # only rfc2217:// needs it
    # not pyserial's socket:// module, the idna codec getaddrinfo loads for a host given as str,
    # logging until something logs, nor shutil for a help text nobody asked for (issue 15)
    # dataclasses with inspect (ast, dis, tokenize) either: the records are aurora.records ones
    unused = ("serial.urlhandler.protocol_socket", "encodings.idna", "logging", "shutil")
    unused += ("dataclasses", "inspect", "ast", "dis", "tokenize")
    assert [] == [m for m in unused if m in modules]


def test_a_fetch_through_the_broker_needs_paho_but_not_structlog_or_asyncio(tmp_path: Path) -> None:
    """Through the bridge: paho and ssl, of course; structlog, asyncio and tenacity still not."""
    quiet = ["--fast-interval", "3600", "--medium-interval", "3600", "--slow-interval", "3600"]
    with (
        Broker.start(tmp_path) as broker,
        Sim.start(tmp_path, "--tcp", "127.0.0.1:0", "--no-drift") as sim,
        Bridge.start(tmp_path, broker, sim.url, poll=quiet),
    ):
        env = {
            "AURORA_MQTT_PASSWORD_FILE": str(broker.password_file("fetch")),
            "AURORA_MQTT_CA_FILE": str(broker.ca_file),
        }
        done, modules = _fetch_modules(broker.url("fetch", f"homie/{DEMO_ID}/$modbus"), "745", env=env)
    assert 0 == done.returncode, done.stderr
    assert ["Heating Set Point (745): 68.0°F"] == done.stdout.splitlines()
    assert _loaded(modules, "paho") and _loaded(modules, "ssl")
    assert [] == [
        m for m in ("structlog", "asyncio", "tenacity", "importlib.metadata") if _loaded(modules, m)
    ]


def test_a_warning_still_goes_through_the_log_format(tmp_path: Path, unit_dump: Path) -> None:
    """Logging is set up when something first logs: a missing register is one structured line."""
    with Sim.start(tmp_path, str(unit_dump), "--tcp", "127.0.0.1:0") as sim:
        done, modules = _fetch_modules(sim.url, "745,9999", "--ignore-missing-registers")
    assert 0 == done.returncode, done.stderr
    assert ["Heating Set Point (745): 68.0°F"] == done.stdout.splitlines()
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [("warning", "aurora.fetch")] == [(e["level"], e["logger"]) for e in logged]
    assert _loaded(modules, "structlog")


def test_a_retried_transaction_still_retries(tmp_path: Path, unit_dump: Path) -> None:
    """The retry path (tenacity, imported when an attempt fails) still works: a unit that does
    not answer is tried ``attempts`` times and reported as a timeout, exit 1."""
    with Sim.start(tmp_path, str(unit_dump), "--tcp", "127.0.0.1:0", "--drop", "1") as sim:
        done, modules = _fetch_modules(sim.url, "745", "--timeout", "0.05")
    assert 1 == done.returncode, done.stderr
    assert done.stderr.endswith(" within 0.06 s\n") and "aurora_fetch: no reply from tcp://" in done.stderr
    retries = [json.loads(line) for line in done.stderr.splitlines() if '"bus_retry"' in line]
    # Each transaction gets 3 attempts (2 retries logged), exactly as before tenacity became lazy.
    attempts = [r["attempt"] for r in retries]
    assert attempts and [1, 2] * (len(attempts) // 2) == attempts
    assert _loaded(modules, "tenacity")


def test_version_is_read_only_when_asked() -> None:
    """--version prints the installed version (and is the only path needing importlib.metadata)."""
    done, modules = _fetch_modules("--version")
    assert 0 == done.returncode
    assert done.stdout.strip() and done.stdout.strip()[0].isdigit()
    assert _loaded(modules, "importlib.metadata")


@pytest.mark.timing  # a median under 0.15 s
def test_an_rfc2217_port_opens_in_milliseconds(tmp_path: Path, unit_dump: Path) -> None:
    """pyserial's open polls 50 ms per answer and sleeps 0.1 s per modem line; with delayed
    acknowledgements ser2net's answers took 40 ms more each: 0.45 s per open. Now the answers
    set the pace (a few ms on loopback); the bound leaves room for a loaded machine."""
    from aurora.ports import open_bus
    from aurora.query import parse_query, read_query

    opens = []
    with Sim.start(tmp_path, str(unit_dump)) as sim, Ser2net.start(tmp_path, device=sim.url) as s2n:
        for _ in range(7):
            started = time.monotonic()
            # ser2net frees the device a moment after the previous client left: wait for it.
            wait_for(lambda t=started: time.monotonic() - t >= 0.1, 1, "ser2net to free the device")
            t0 = time.perf_counter()
            bus = open_bus(s2n.rfc2217_url)
            opens.append(time.perf_counter() - t0)
            try:
                assert {745: 680, 746: 730, 747: 712} == read_query(bus, parse_query("745-747")).values
            finally:
                bus.close()
    assert statistics.median(opens) < 0.15, [round(o * 1000) for o in opens]


def _command(
    *args: str, stdout: int = subprocess.PIPE, via_main: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it (its entry point is cli.command), or the
    same through main() and the interpreter's usual exit."""
    usual = [sys.executable, "-c", "import sys; from aurora.fetch.cli import main; sys.exit(main())"]
    return subprocess.run(
        [*usual, *args] if via_main else [str(Path(sys.executable).parent / "aurora_fetch"), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        env=env,
    )


def test_the_command_skips_the_teardown_but_not_its_output_or_exit_status(
    tmp_path: Path, unit_dump: Path
) -> None:
    """The console script ends with os._exit after flushing (issue 15): every line, a warning
    logged on the way and each exit status still come out as from main()."""
    with Sim.start(tmp_path, str(unit_dump), "--tcp", "127.0.0.1:0") as sim:
        done = _command(sim.url, "745-747")
        assert (0, "") == (done.returncode, done.stderr)
        assert ["Heating Set Point (745): 68.0°F", "Cooling Set Point (746): 73.0°F"] == (
            done.stdout.splitlines()[:2]
        )
        assert 3 == len(done.stdout.splitlines()) and done.stdout.endswith("\n")
        assert done.stdout == _command(sim.url, "745-747", via_main=True).stdout
        warned = _command(sim.url, "745,9999", "--ignore-missing-registers", "--log-format", "json")
        assert 0 == warned.returncode
        logged = [json.loads(line) for line in warned.stderr.splitlines()]
        assert ["registers_not_read"] == [e["event"] for e in logged]
        yaml_out = _command(sim.url, "745-747", "--yaml")
        assert "---\n745: 680\n746: 730\n747: 712\n" == yaml_out.stdout
    gone = _command(sim.url, "745")  # the sim has stopped
    assert 1 == gone.returncode and gone.stderr.startswith("aurora_fetch: ")
    assert 2 == _command("tcp://127.0.0.1:1/", "nonsense").returncode


def _output_buffering(buffered: bool) -> dict[str, str]:
    """This environment with the output buffered (a terminal user's default) or not (the image's
    PYTHONUNBUFFERED=1)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return env if buffered else {**env, "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("buffered", [True, False])
def test_a_reader_that_leaves_early_ends_the_command_quietly(
    tmp_path: Path, unit_dump: Path, buffered: bool
) -> None:
    """`aurora_fetch … | head -1` with the reader gone before the output is written or flushed,
    with buffered output and unbuffered (PYTHONUNBUFFERED=1, as the image sets it): no traceback,
    no "Exception ignored", and 141, the status a shell gives a tool its SIGPIPE ended."""
    env = _output_buffering(buffered)
    with Sim.start(tmp_path, str(unit_dump), "--tcp", "127.0.0.1:0") as sim:
        read, write = os.pipe()
        os.close(read)
        try:
            done = _command(sim.url, "745-747", stdout=write, env=env)
        finally:
            os.close(write)
    assert (141, "") == (done.returncode, done.stderr)


@pytest.mark.parametrize("buffered", [True, False])
def test_an_output_that_cannot_be_written_is_one_line(
    tmp_path: Path, unit_dump: Path, buffered: bool
) -> None:
    """A full disk (/dev/full) under the output: one line naming the failure, status 1."""
    env = _output_buffering(buffered)
    with Sim.start(tmp_path, str(unit_dump), "--tcp", "127.0.0.1:0") as sim, open("/dev/full", "w") as full:
        done = _command(sim.url, "745-747", stdout=full.fileno(), env=env)
    assert 1 == done.returncode
    assert ["aurora_fetch: cannot write the output: No space left on device"] == done.stderr.splitlines()
