"""The user's Raspberry Pi setup: the sim on a pty exposed by Debian's real ser2net, raw TCP and RFC 2217.

network-serial-connections.md (the user's document) and docs/protocol.md#ser2net: ``aurora_fetch`` reads the
same values through ``tcp://``, ``rfc2217://`` and ``telnet://`` as on the serial line itself, and
ser2net's in-band refusals (``Port already in use``, ``Device open failure``) end in one clear line.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from contextlib import AbstractContextManager, closing
from pathlib import Path

import pytest
import yaml
from aurora import rtu
from aurora.ports import open_bus

from tests.support import Broker, Collector, free_port, running, wait_for, wait_for_port
from tests.support.bridge import DEMO_ID, Bridge
from tests.support.data import JFCLICHE_FLAT
from tests.support.ser2net import SER2NET, Ser2net
from tests.support.sim import Sim

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
FLAT = JFCLICHE_FLAT  # a real unit's full scan: ABC 3.06, AXB 2.03, AWL 2.01
QUERY = "2,88-91,745-747,1110-1111,1146-1147,3001"  # version, program, set points, water, watts, speed


def fetch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "aurora_fetch"), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    with Sim.start(tmp_path, str(FLAT), "--no-drift") as running_sim:
        yield running_sim


@pytest.fixture
def on_the_line(sim: Sim) -> str:
    """What aurora_fetch prints for QUERY on the pty itself, before ser2net owns it."""
    done = fetch(sim.url, QUERY)
    assert 0 == done.returncode, done.stderr
    assert "ABC Program (88): ABCSTD" in done.stdout.splitlines()
    return done.stdout


@pytest.mark.parametrize("chardelay", [False, True], ids=["as-documented", "ser2net-default-chardelay"])
@pytest.mark.parametrize("scheme", ["raw", "rfc2217", "telnet"])
def test_fetch_through_ser2net_prints_what_the_serial_line_gives(
    tmp_path: Path, sim: Sim, on_the_line: str, scheme: str, chardelay: bool
) -> None:
    """tcp://, rfc2217:// and telnet:// are the user's document's three ways to reach the Pi, with
    docs/network-serial.md's ``chardelay: false`` (replies in pieces as the bytes come) and with
    ser2net's default that a user may have kept (each reply held, then sent whole)."""
    with Ser2net.start(tmp_path, sim.url, chardelay=chardelay) as s2n:
        url = {"raw": s2n.raw_url, "rfc2217": s2n.rfc2217_url, "telnet": s2n.telnet_url}[scheme]
        done = fetch(url, QUERY)
    assert 0 == done.returncode, done.stderr + s2n.output()
    assert on_the_line == done.stdout


def test_fetch_yaml_through_rfc2217_is_the_dump_itself(tmp_path: Path, sim: Sim) -> None:
    """A bug-report dump taken over the network holds the unit's raw words, 100-register chunks included."""
    with Ser2net.start(tmp_path, sim.url) as s2n:
        done = fetch(s2n.rfc2217_url, "0-155,600-749", "--yaml")
    assert 0 == done.returncode, done.stderr
    scan = yaml.safe_load(FLAT.read_text())
    wanted = [*range(156), *range(600, 750)]
    assert {a: scan[a] for a in wanted} == yaml.safe_load(done.stdout)


@pytest.mark.filterwarnings("ignore:set(Daemon|Name).. is deprecated:DeprecationWarning")  # pyserial 3.5
@pytest.mark.parametrize("scheme", ["raw", "rfc2217"])
def test_a_second_client_without_kickolduser_is_told_the_port_is_busy(
    tmp_path: Path, sim: Sim, scheme: str
) -> None:
    """ser2net writes 'Port already in use' into the stream; the user reads one line, not ASCII as data."""
    with Ser2net.start(tmp_path, sim.url, kickolduser=False) as s2n:
        url = s2n.raw_url if scheme == "raw" else s2n.rfc2217_url
        with closing(open_bus(url)) as holder:  # another client, talking to the unit
            holder.read_holding(745, 1)
            done = fetch(url, "745")
    assert 1 == done.returncode, done.stdout
    first_line = done.stderr.strip().splitlines()[-1]
    assert first_line.startswith(f"aurora_fetch: Serial port busy - {url}"), done.stderr
    assert "already in use" in first_line and "kickolduser" in first_line
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("scheme", ["raw", "rfc2217"])
def test_a_missing_device_behind_ser2net_is_named_from_its_in_band_text(tmp_path: Path, scheme: str) -> None:
    """docs/protocol.md#ser2net: a wrong device path makes ser2net send 'Device open failure' and hang up."""
    with Ser2net.start(tmp_path, tmp_path / "ttyUSB9") as s2n:
        url = s2n.raw_url if scheme == "raw" else s2n.rfc2217_url
        done = fetch(url, "745")
    assert 1 == done.returncode
    assert "ser2net cannot open its serial device: 'Device open failure" in done.stderr
    assert "Traceback" not in done.stderr


def test_kickolduser_lets_fetch_take_the_port_from_a_stale_client(tmp_path: Path, sim: Sim) -> None:
    """A client that never let go (a crashed bridge) no longer locks the user out (the rig's config)."""
    with (
        Ser2net.start(tmp_path, sim.url, kickolduser=True) as s2n,
        socket.create_connection(("127.0.0.1", s2n.raw_port)) as stale,
    ):
        stale.settimeout(5)
        # The stale client really holds the port: its request was answered (else ser2net may still
        # be opening the device for it, and refuse it instead of kicking it).
        request = rtu.read_holding(745, 1)
        stale.sendall(request.encode())
        answer = b""
        while len(answer) < request.expected_reply_length():
            answer += stale.recv(100)
        done = fetch(s2n.raw_url, "745-747")
        kicked = stale.recv(100)  # ser2net closed the stale client: recv returns b''
    assert 0 == done.returncode, done.stderr + s2n.output()
    assert 3 == len(done.stdout.splitlines())
    assert b"" == kicked


def test_switching_between_the_raw_and_rfc2217_ports_waits_for_ser2net_to_free_the_device(
    tmp_path: Path, sim: Sim
) -> None:
    """Right after a raw client leaves, ser2net answers the RFC 2217 port 'Port's device already in use'.

    Measured with ser2net 4.3.11: the device is freed a fraction of a second later, so the client
    reconnects instead of failing.
    """
    with Ser2net.start(tmp_path, sim.url) as s2n:
        started = time.monotonic()
        outputs = [fetch(url, "745").stdout for url in (s2n.raw_url, s2n.rfc2217_url, s2n.raw_url)]
        elapsed = time.monotonic() - started
    assert [out for out in outputs if out.startswith("Heating Set Point (745): ")] == outputs, outputs
    assert elapsed < 15


def test_connection_refused_reads_as_in_the_users_document() -> None:
    """'Connection refused - tcp://hostname:2000/' is the document's first troubleshooting entry."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        done = fetch(f"rfc2217://127.0.0.1:{port}/", "745")
    assert (1, f"aurora_fetch: Connection refused - rfc2217://127.0.0.1:{port}/\n") == (
        done.returncode,
        done.stderr,
    )


# ---------------------------------------------------------------- the bridge through ser2net


@pytest.mark.parametrize("scheme", ["raw", "rfc2217"])
def test_the_bridge_through_ser2net_publishes_the_units_values(
    tmp_path: Path, broker: Broker, scheme: str
) -> None:
    """`aurora_mqtt_bridge tcp://pi:2000/ mqtts://…` as in the user's document: ready, right values."""
    watch = Collector(broker.client("homeassistant"), f"homie/{DEMO_ID}/#")
    with Sim.start(tmp_path, "--no-drift") as sim, Ser2net.start(tmp_path, sim.url) as s2n:
        url = s2n.raw_url if scheme == "raw" else s2n.rfc2217_url
        with Bridge.start(tmp_path, broker, url, ready_deadline_s=None) as bridge:
            state = f"homie/{DEMO_ID}/$state"
            wait_for(lambda: b"ready" in [m.payload for m in watch.received(state)], 30, "$state ready")
            watch.barrier(state)
            assert bridge.process.poll() is None
    values = {m.topic: m.payload.decode() for m in watch.messages}
    assert "130.0" == values[f"homie/{DEMO_ID}/dhw/set-point"]  # the demo unit's DHW set point
    health = json.loads(values[f"homie/{DEMO_ID}/$health"])
    assert 0 == health["bus"]["timeouts"], health["bus"]


# ---------------------------------------------------------------- the user's document's legacy lines


def legacy_ser2net(tmp_path: Path, line: str, port: int) -> AbstractContextManager[object]:
    """ser2net reading an old-style ``ser2net.conf`` line (still read by 4.3, with a warning)."""
    conf = tmp_path / "ser2net.conf"
    conf.write_text(line + "\n")
    argv = [SER2NET, "-n", "-d", "-u", "-c", str(conf), "-P", str(tmp_path / "legacy.pid")]
    return running(argv, log=tmp_path / "legacy-ser2net.log")


@pytest.mark.parametrize("options", ["kickolduser", "kickolduser -chardelay"])
def test_the_documents_legacy_raw_line_serves_tcp(tmp_path: Path, sim: Sim, options: str) -> None:
    """`2000:raw:0:/dev/ttyUSB0:19200 EVEN 8DATABITS 1STOPBIT kickolduser`, as the document has it,
    and with docs/network-serial.md's `-chardelay`."""
    port = free_port()
    with legacy_ser2net(tmp_path, f"{port}:raw:0:{sim.url}:19200 EVEN 8DATABITS 1STOPBIT {options}", port):
        wait_for_port("127.0.0.1", port, 10)
        done = fetch(f"tcp://127.0.0.1:{port}/", "745")
    assert (0, "Heating Set Point (745): 0.0°F\n") == (done.returncode, done.stdout), done.stderr


def test_a_legacy_telnet_line_without_remctl_is_named_as_not_rfc2217(tmp_path: Path, sim: Sim) -> None:
    """The document's `2217:telnet:0:…` line lacks `remctl`: plain telnet, no COM-port control.
    With `remctl` it works; without, the user is told what to change instead of a timeout."""
    plain, remctl = free_port(), free_port()
    settings = "19200 EVEN 8DATABITS 1STOPBIT"
    with legacy_ser2net(tmp_path, f"{plain}:telnet:0:{sim.url}:{settings}", plain):
        wait_for_port("127.0.0.1", plain, 10)
        refused = fetch(f"rfc2217://127.0.0.1:{plain}/", "745")
    assert 1 == refused.returncode
    assert "the server does not speak RFC 2217" in refused.stderr and "remctl" in refused.stderr
    with legacy_ser2net(tmp_path, f"{remctl}:telnet:0:{sim.url}:{settings} remctl", remctl):
        wait_for_port("127.0.0.1", remctl, 10)
        done = fetch(f"rfc2217://127.0.0.1:{remctl}/", "745")
    assert (0, "Heating Set Point (745): 0.0°F\n") == (done.returncode, done.stdout), done.stderr


def _documented_ser2net_yaml(device: str, raw_port: int, rfc2217_port: int) -> str:
    """docs/network-serial.md's /etc/ser2net.yaml as written, on this test's pty and free loopback ports."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "network-serial.md").read_text()
    start = doc.index("# /etc/ser2net.yaml")
    block = doc[doc.rindex("```yaml\n", 0, start) + len("```yaml\n") : doc.index("```", start)]
    assert "chardelay: false" in block, "the documented configuration changed: look at this test again"
    define = next(line for line in block.splitlines() if line.startswith("define: &dev "))
    block = block.replace(define, f"define: &dev {device}")
    block = block.replace("accepter: tcp,2000", f"accepter: tcp,127.0.0.1,{raw_port}")
    rfc2217 = f"accepter: telnet(rfc2217),tcp,127.0.0.1,{rfc2217_port}"
    return block.replace("accepter: telnet(rfc2217),2217", rfc2217)


@pytest.mark.parametrize("scheme", ["tcp", "rfc2217"])
def test_the_documented_ser2net_yaml_serves_fetch(
    tmp_path: Path, sim: Sim, on_the_line: str, scheme: str
) -> None:
    """The configuration a user copies from docs/network-serial.md (chardelay off) gives the line's output."""
    raw_port, rfc2217_port = free_port(), free_port()
    conf = tmp_path / "ser2net.yaml"
    conf.write_text(_documented_ser2net_yaml(str(sim.url), raw_port, rfc2217_port))
    argv = [SER2NET, "-n", "-d", "-u", "-c", str(conf), "-P", str(tmp_path / "doc.pid")]
    with running(argv, log=tmp_path / "doc-ser2net.log"):
        port = raw_port if scheme == "tcp" else rfc2217_port
        wait_for_port("127.0.0.1", port, 10)
        done = fetch(f"{scheme}://127.0.0.1:{port}/", QUERY)
    assert 0 == done.returncode, done.stderr + (tmp_path / "doc-ser2net.log").read_text()
    assert on_the_line == done.stdout
