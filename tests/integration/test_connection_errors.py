"""Each way a user gets the broker connection wrong, as they get it wrong: `aurora_fetch` and
`web_aid_tool` against the project's real TLS broker, and one line on stderr that says what
failed and what to do, quickly, with exit status 1 (a device or connection error)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aurora.setup.certs import create_ca

from tests.support.broker import MOSQUITTO, Broker
from tests.support.processes import HOST, free_port, running, wait_for_port

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
FAST_S = 8.0  # the old behaviour waited 10 s for a CONNACK; a loaded machine still answers in ~1 s


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker.start(tmp_path_factory.mktemp("broker")) as running:
        yield running


def run(tool: str, *args: str, **env: str) -> tuple[int, str, float]:
    """The tool as a user runs it, without the MQTT variables of the test's own environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "AURORA_"))}
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN / tool), *args], capture_output=True, text=True, env={**clean, **env}, timeout=60
    )
    return done.returncode, done.stderr, time.monotonic() - started


def fetch(*args: str, **env: str) -> tuple[int, str, float]:
    return run("aurora_fetch", *args, "745", **env)


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert 1 == len(lines), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_mqtt_to_the_tls_port_fails_fast_and_says_to_use_mqtts(broker: Broker) -> None:
    """Not a 10 s wait and six JSON log lines: the port speaks TLS, so say mqtts://."""
    env = {
        "AURORA_MQTT_PASSWORD_FILE": str(broker.password_file("fetch")),
        "AURORA_MQTT_CA_FILE": str(broker.ca_file),
    }
    code, stderr, took = fetch(f"mqtt://fetch@{HOST}:{broker.tls_port}/", **env)
    line = one_line(stderr)
    assert 1 == code
    assert f"expects TLS; use mqtts:// (mqtts://fetch@{HOST}:{broker.tls_port}/)" in line
    assert took < FAST_S


def test_mqtts_to_a_plain_listener_says_to_use_mqtt(tmp_path: Path) -> None:
    """The other way round: a plain (non-TLS) mosquitto listener, reached with mqtts://."""
    port = free_port()
    conf = tmp_path / "plain.conf"
    conf.write_text(f"listener {port} {HOST}\nallow_anonymous true\n", encoding="utf-8")
    with running([MOSQUITTO, "-c", str(conf)], log=tmp_path / "plain.log"):
        wait_for_port(HOST, port, 15)
        code, stderr, took = fetch(f"mqtts://fetch@{HOST}:{port}/", AURORA_MQTT_PASSWORD="x")
    line = one_line(stderr)
    assert 1 == code
    assert f"the TLS handshake with {HOST}:{port} failed" in line
    assert line.endswith("if that port is a plain MQTT listener, use mqtt://")
    assert took < FAST_S


def test_a_missing_user_name_says_so(broker: Broker) -> None:
    """Not "refused the login as None"."""
    env = {
        "AURORA_MQTT_PASSWORD_FILE": str(broker.password_file("fetch")),
        "AURORA_MQTT_CA_FILE": str(broker.ca_file),
    }
    code, stderr, _ = fetch(f"mqtts://{HOST}:{broker.tls_port}/", **env)
    line = one_line(stderr)
    assert 1 == code
    assert "refused a login without a user name (Not authorized): put the user in the URL" in line
    assert f"mqtts://USER@{HOST}:{broker.tls_port}/" in line
    assert "None" not in line


def test_a_missing_or_wrong_password_says_which(broker: Broker) -> None:
    ca = {"AURORA_MQTT_CA_FILE": str(broker.ca_file)}
    code, stderr, _ = fetch(f"mqtts://fetch@{HOST}:{broker.tls_port}/", **ca)
    assert 1 == code
    assert "refused the login as fetch (Not authorized): no password was given" in one_line(stderr)
    code, stderr, _ = fetch(f"mqtts://fetch@{HOST}:{broker.tls_port}/", AURORA_MQTT_PASSWORD="wrong", **ca)
    line = one_line(stderr)
    assert 1 == code
    assert "refused the login as fetch (Not authorized): check the user name and its password" in line
    assert "wrong" not in line


def test_without_the_ca_the_message_says_to_give_it(broker: Broker) -> None:
    code, stderr, _ = fetch(
        f"mqtts://fetch@{HOST}:{broker.tls_port}/",
        AURORA_MQTT_PASSWORD_FILE=str(broker.password_file("fetch")),
    )
    assert 1 == code
    assert "(give the broker's CA with --mqtt-ca-file or AURORA_MQTT_CA_FILE)" in one_line(stderr)


def test_a_wrong_ca_is_named_as_not_this_brokers(broker: Broker, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.crt"
    other.write_bytes(create_ca("some other CA").cert_pem)
    code, stderr, _ = fetch(
        f"mqtts://fetch@{HOST}:{broker.tls_port}/",
        "--mqtt-ca-file",
        str(other),
        AURORA_MQTT_PASSWORD_FILE=str(broker.password_file("fetch")),
    )
    line = one_line(stderr)
    assert 1 == code
    assert f"the broker's certificate is not signed by the CA in {other}" in line
    assert "give this broker's own CA" in line


def test_a_host_name_the_certificate_lacks_is_not_blamed_on_the_ca(broker: Broker) -> None:
    """127.1 is the loopback address under a name the certificate does not hold: with the right
    CA given, the advice is about the name, and lists the names the certificate holds."""
    env = {
        "AURORA_MQTT_PASSWORD_FILE": str(broker.password_file("fetch")),
        "AURORA_MQTT_CA_FILE": str(broker.ca_file),
    }
    code, stderr, _ = fetch(f"mqtts://fetch@127.1:{broker.tls_port}/", **env)
    line = one_line(stderr)
    assert 1 == code
    assert "the broker's certificate names localhost, broker, 127.0.0.1" in line
    assert (
        "not 127.1: use a name it holds in the URL, or add this one to it (aurora_setup --host 127.1)" in line
    )
    assert "--mqtt-ca-file" not in line


def test_no_bridge_on_the_broker_is_a_connection_error_that_says_where_it_looked(broker: Broker) -> None:
    env = {
        "AURORA_MQTT_PASSWORD_FILE": str(broker.password_file("fetch")),
        "AURORA_MQTT_CA_FILE": str(broker.ca_file),
    }
    code, stderr, _ = fetch(f"mqtts://fetch@{HOST}:{broker.tls_port}/", **env)
    assert 1 == code
    assert f"no aurora-* device under homie/ on mqtts://{HOST}:{broker.tls_port} (is the bridge running" in (
        one_line(stderr)
    )


def test_a_dead_broker_is_named_with_its_address_and_the_reason() -> None:
    port = free_port()
    code, stderr, took = fetch(f"mqtts://fetch@{HOST}:{port}/", AURORA_MQTT_PASSWORD="x")
    line = one_line(stderr)
    assert 1 == code
    assert f"cannot reach the broker at {HOST}:{port}: connection refused" in line
    assert took < FAST_S


def test_the_web_tool_says_the_same(broker: Broker, tmp_path: Path) -> None:
    """web_aid_tool shares the broker connection's messages and exit status."""
    ui_password = tmp_path / "ui-password"
    ui_password.write_text("a long enough ui password\n", encoding="utf-8")
    common = ("--port", "0", "--password-file", str(ui_password))
    env = {
        "AURORA_MQTT_PASSWORD_FILE": str(broker.password_file("web")),
        "AURORA_MQTT_CA_FILE": str(broker.ca_file),
    }
    code, stderr, took = run("web_aid_tool", f"mqtt://web@{HOST}:{broker.tls_port}/", *common, **env)
    assert 1 == code
    assert "expects TLS; use mqtts://" in one_line(stderr)
    assert took < FAST_S
    code, stderr, _ = run("web_aid_tool", f"mqtts://{HOST}:{broker.tls_port}/", *common, **env)
    assert 1 == code
    assert "refused a login without a user name" in one_line(stderr)


def test_the_bridge_given_mqtt_for_the_tls_port_logs_once_that_it_expects_tls(
    broker: Broker, tmp_path: Path
) -> None:
    """The bridge never exits on a broker it cannot reach; it says why, once: paho itself says
    only "failed to receive on socket" for a connection the broker closes before its CONNACK."""
    from tests.support.processes import wait_for
    from tests.support.sim import Sim

    log = tmp_path / "bridge.log"
    env = {
        "AURORA_MQTT_PASSWORD_FILE": str(broker.password_file("bridge")),
        "AURORA_LOG_FORMAT": "json",
        "AURORA_BRIDGE_ENERGY_STATE": "-",
        "AURORA_BRIDGE_STATUS_FILE": str(tmp_path / "bridge.status"),
    }
    with (
        Sim.start(tmp_path, "--tcp", "127.0.0.1:0") as sim,
        running(
            [str(BIN / "aurora_mqtt_bridge"), sim.url, f"mqtt://bridge@{HOST}:{broker.tls_port}/"],
            env=env,
            log=log,
        ) as bridge,
    ):

        def said() -> list[str]:
            return [line for line in log.read_text().splitlines() if "mqtt_connect_failed" in line]

        lines = wait_for(said, 30, "mqtt_connect_failed in the bridge's log")
        assert f"expects TLS; use mqtts:// (mqtts://bridge@{HOST}:{broker.tls_port}/)" in lines[0]
        wait_for(lambda: log.read_text().count("failed to receive on socket") >= 3, 30, "two retries")
        assert bridge.poll() is None
        assert 1 == len(said())  # the retries are not logged again (a summary once a minute)
