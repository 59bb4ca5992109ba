"""``aurora_mqtt_bridge`` as a process against ``aurora_sim`` over TCP and the project's real mosquitto.

Everything is started the way the README does it: console scripts, a password file, the broker's
CA. Each test waits for topics, lines and ports with deadlines; nothing sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from aurora import rtu
from aurora.bridge import device
from aurora.dump import load_dump
from aurora.sim.cli import demo_registers
from aurora.simulator import SimulatedAbc

from tests.support import (
    Broker,
    Collector,
    RestartableBroker,
    free_port,
    publish,
    running,
    wait_for,
    wait_for_port,
)
from tests.support.bridge import BIN, DEMO_ID, FAST_POLL, READY_S, Bridge
from tests.support.ser2net import SER2NET, Ser2net
from tests.support.sim import Sim, write_log

pytestmark = pytest.mark.integration


def observer(broker: Broker, device_id: str = DEMO_ID) -> Collector:
    """Home Assistant's view: reads the Homie tree, may write /set topics."""
    return Collector(broker.client("homeassistant"), f"homie/{device_id}/#")


def states(watch: Collector, device_id: str = DEMO_ID) -> list[str]:
    return [m.payload.decode() for m in watch.received(f"homie/{device_id}/$state")]


def wait_state(watch: Collector, state: str, *, after: int = 0, device_id: str = DEMO_ID) -> int:
    """Wait for ``$state`` = ``state`` among the messages after the first ``after``; its index."""

    def seen() -> int | None:
        got = states(watch, device_id)
        for i in range(after, len(got)):
            if got[i] == state:
                return i + 1
        return None

    return wait_for(seen, READY_S, f"$state {state} for {device_id} (seen {states(watch, device_id)})")


def value(watch: Collector, topic: str) -> str | None:
    got = watch.received(topic)
    return got[-1].payload.decode() if got else None


def demo_unit() -> device.Unit:
    regs = demo_registers()
    return device.detect(lambda ranges: {a: regs[a] for s, n in ranges for a in range(s, s + n) if a in regs})


def _other_payload(spec: device.PropertySpec, current: str | None) -> str | None:
    """A valid payload different from ``current`` for a settable property (None: none to try)."""
    fmt = spec.format or ""
    if spec.datatype == "boolean":
        return "false" if current == "true" else "true"
    if spec.datatype == "enum":
        options = [o for o in fmt.split(",") if o and o != current]
        return options[0] if options else None
    if ":" in fmt:
        low, high = (float(x) for x in fmt.split(":"))
        now = float(current) if current not in (None, "") else low
        target = now + 1 if now + 1 <= high else now - 1
        return f"{target:g}" if spec.datatype == "float" else str(int(target))
    return None


@pytest.fixture
def sim_tcp(tmp_path: Path) -> Iterator[Sim]:
    """The demo unit on a TCP port, writes logged."""
    with Sim.start(
        tmp_path, "--tcp", "127.0.0.1:0", "--no-drift", "--write-log", str(tmp_path / "writes.log")
    ) as sim:
        yield sim


def test_the_bridge_reaches_ready_and_its_values_and_health_are_retained(
    tmp_path: Path, broker: Broker, sim_tcp: Sim
) -> None:
    """A client connecting after start-up sees the whole device: Homie tree, values, $health."""
    watch = observer(broker)
    with Bridge.start(tmp_path, broker, sim_tcp.url, "--device-name", "Basement") as bridge:
        wait_state(watch, "ready")
        assert bridge.process.poll() is None
        assert ["init", "ready"] == states(watch)[-2:]
        late = Collector(broker.client("homeassistant"), f"homie/{DEMO_ID}/#")
        late.barrier(f"homie/{DEMO_ID}/$state")
        retained = {m.topic: m.payload.decode() for m in late.messages if m.retain}
        root = f"homie/{DEMO_ID}"
        assert "4.0.0" == retained[f"{root}/$homie"]
        assert "Basement" == retained[f"{root}/$name"]
        assert "130.0" == retained[f"{root}/dhw/set-point"]
        assert "ready" == retained[f"{root}/$state"]
        health = json.loads(retained[f"{root}/$health"])
        assert "ready" == health["state"]
        assert health["poll"]["good_cycles"] >= 1
        assert health["bus"]["transactions"] >= 2
        assert health["last_good_poll"] is not None
        hass = Collector(broker.client("homeassistant"), f"homeassistant/+/{DEMO_ID}/#")
        hass.barrier(f"homie/{DEMO_ID}/$state")
        assert any(m.payload for m in hass.messages), "no Home Assistant discovery published"


def test_every_value_is_published_before_ready(tmp_path: Path, broker: Broker, sim_tcp: Sim) -> None:
    """``$state ready`` means the description and every value of the first poll are out: the
    bridge publishes what detection read ahead of the first poll's last read (issue 15), and no
    value may come only after ready. A subscriber gets one publisher's messages in order."""
    unit = demo_unit()
    expected = set(unit.values(demo_registers()))
    assert len(expected) > 100
    watch = observer(broker)
    root = f"homie/{DEMO_ID}"
    with Bridge.start(tmp_path, broker, sim_tcp.url):
        wait_state(watch, "ready")
        before: set[str] = set()
        for message in watch.messages:
            if message.topic == f"{root}/$state" and message.payload == b"ready":
                break
            before.add(message.topic.removeprefix(f"{root}/"))
    assert [] == sorted(expected - before)
    assert {"$homie", "$name", "$nodes"} <= before


def test_the_broker_session_and_the_retained_scan_overlap_detection(tmp_path: Path, broker: Broker) -> None:
    """Issue 15: MQTT connects and the retained topics are scanned as soon as detection's first
    read gave the serial number, while detection reads on (a slow unit makes the order certain);
    then ``$state init`` and the attributes of the properties no presence check can take out go
    out, before detection ends; the rest of the description after it, all before ready."""
    watch = observer(broker)
    root = f"homie/{DEMO_ID}"
    with (
        Sim.start(tmp_path, "--tcp", "127.0.0.1:0", "--no-drift", "--delay-ms", "300") as sim,
        Bridge.start(tmp_path, broker, sim.url, "--timeout", "3") as bridge,
    ):
        wait_for(lambda: "bridge_ready" in bridge.log.read_text(), 10, "the bridge_ready log line")
        lines = bridge.log.read_text().splitlines()
        ready = next(json.loads(line) for line in lines if '"bridge_ready"' in line)
        wait_state(watch, "ready")
    steps = ready["steps_s"]
    assert steps["detection_started"] < steps["mqtt_connected"] <= steps["scanned"] < steps["detected"], steps
    assert steps["scanned"] <= steps["described"] < steps["detected"] < steps["ready"], steps
    tree = [m for m in watch.messages if not m.retain and "/$modbus" not in m.topic]  # this run's
    assert (f"{root}/$state", b"init") == (tree[0].topic, tree[0].payload)
    topics = [m.topic.removeprefix(f"{root}/") for m in tree]
    ready_at = topics.index("$state", 1)
    assert b"ready" == tree[ready_at].payload
    described = set(topics[:ready_at])
    assert {suffix for suffix, _ in demo_unit().description()} <= described


def test_a_killed_bridge_leaves_lost_as_its_last_will(tmp_path: Path, broker: Broker, sim_tcp: Sim) -> None:
    """Homie: the broker says `lost` for a bridge that vanished without a word (kill -9, power cut)."""
    watch = observer(broker)
    with Bridge.start(tmp_path, broker, sim_tcp.url) as bridge:
        ready = wait_state(watch, "ready")
        os.kill(bridge.process.pid, signal.SIGKILL)
        bridge.process.wait(10)
        wait_state(watch, "lost", after=ready)
    late = Collector(broker.client("homeassistant"), f"homie/{DEMO_ID}/$state")
    assert "lost" == late.wait_for(f"homie/{DEMO_ID}/$state").payload.decode()


def test_systemd_is_told_ready_after_the_tree_and_fed_its_watchdog(
    tmp_path: Path, broker: Broker, sim_tcp: Sim
) -> None:
    """Type=notify: READY=1 once $state is ready, WATCHDOG=1 while the main loop lives."""
    import socket

    watch = observer(broker)
    short = Path(tempfile.mkdtemp(prefix="notify-"))  # AF_UNIX paths are limited to 108 bytes
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(str(short / "sock"))
            listener.settimeout(READY_S)
            argv = [str(BIN / "aurora_mqtt_bridge"), sim_tcp.url, broker.url("bridge")]
            env = {
                "AURORA_MQTT_PASSWORD_FILE": str(broker.password_file("bridge")),
                "AURORA_MQTT_CA_FILE": str(broker.ca_file),
                "NOTIFY_SOCKET": str(short / "sock"),
                "AURORA_BRIDGE_ENERGY_STATE": str(tmp_path / "energy.json"),
            }
            with running([*argv, *FAST_POLL], env=env, log=tmp_path / "bridge.log"):
                assert b"READY=1" == listener.recv(100)
                wait_state(watch, "ready")
                # then how it is (systemctl status shows the line), and the heartbeat
                assert b"STATUS=ready" == listener.recv(100)
                assert b"WATCHDOG=1" == listener.recv(100)
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_every_settable_property_ends_in_the_sims_registers(
    tmp_path: Path, broker: Broker, sim_tcp: Sim
) -> None:
    """Each /set is validated, written, read back: the sim's write log holds exactly the setter's writes."""
    unit = demo_unit()
    board = SimulatedAbc(demo_registers())  # what the sim holds, mirrors of write-only registers included
    current = unit.values(board.snapshot())
    writes_file = tmp_path / "writes.log"
    watch = observer(broker)
    ha = watch.client
    with Bridge.start(tmp_path, broker, sim_tcp.url):
        wait_state(watch, "ready")
        tried = 0
        for path in unit.settable():
            spec = unit.spec(path)
            assert spec is not None and spec.setter is not None
            payload = _other_payload(spec, current.get(path))
            if payload is None:
                continue
            expected = spec.setter.writes(payload, board.snapshot())
            before = len(write_log(writes_file))
            publish(ha, f"homie/{DEMO_ID}/{path}/set", payload)
            wanted = before + len(expected)

            def logged(before: int = before, wanted: int = wanted) -> list[tuple[int, int]] | None:
                got = write_log(writes_file)
                return got[before:] if len(got) >= wanted else None

            got = wait_for(logged, 10, f"the write of {path}={payload} in the sim")
            assert expected == got, path
            for address, raw in expected:
                board.respond(rtu.write_single(address, raw))  # read-modify-write builds on it
            tried += 1
        assert tried >= 15
        # The read-back is published: a set point the sim mirrors shows its new value.
        wait_for(lambda: value(watch, f"homie/{DEMO_ID}/dhw/set-point") == "131.0", 10, "dhw read-back")


def test_garbage_on_set_writes_nothing_and_the_bridge_keeps_running(
    tmp_path: Path, broker: Broker, sim_tcp: Sim
) -> None:
    """docs/architecture.md#original-bridge U6/R1: bad payloads are refused with a log line, never written,
    never fatal."""
    writes_file = tmp_path / "writes.log"
    watch = observer(broker)
    ha = watch.client
    root = f"homie/{DEMO_ID}"
    with Bridge.start(tmp_path, broker, sim_tcp.url) as bridge:
        wait_state(watch, "ready")
        for topic, payload in [
            (f"{root}/dhw/set-point/set", b"hot"),
            (f"{root}/dhw/set-point/set", b"1e9"),
            (f"{root}/dhw/set-point/set", b"\xff\xfe\x00"),
            (f"{root}/dhw/set-point/set", b""),
            (f"{root}/zone1/target-mode/set", b"sauna"),
            (f"{root}/abc/line-voltage-setting/set", b"-5"),
            (f"{root}/abc/watts/set", b"0"),
            (f"{root}/nonode/noprop/set", b"1"),
        ]:
            publish(ha, topic, payload)
        # A valid write afterwards is the barrier: writes happen in order, so once it is in the
        # log every earlier payload has been handled.
        publish(ha, f"{root}/dhw/set-point/set", b"125")
        wait_for(lambda: write_log(writes_file), 10, "the valid write in the sim's log")
        assert [(401, 1250)] == write_log(writes_file)
        assert bridge.process.poll() is None
        log = (tmp_path / "bridge.log").read_text()
        assert log.count('"set_refused"') >= 6
        assert "Traceback" not in log


def test_the_bridge_goes_to_alert_when_the_sim_dies_and_back_to_ready_when_it_returns(
    tmp_path: Path, broker: Broker
) -> None:
    """Self-healing over the line: no restart of the bridge is needed (the original exited)."""
    port = free_port()
    watch = observer(broker)
    with Sim.start(tmp_path, "--tcp", f"127.0.0.1:{port}", "--no-drift") as sim:
        url = sim.url
        with Bridge.start(tmp_path, broker, url) as bridge:
            first = wait_state(watch, "ready")
            sim.stop()
            alert = wait_state(watch, "alert", after=first)
            with Sim.start(tmp_path, "--tcp", f"127.0.0.1:{port}", "--no-drift"):
                wait_state(watch, "ready", after=alert)
                assert bridge.process.poll() is None

                def reconnected() -> bool:
                    health = json.loads(watch.received(f"homie/{DEMO_ID}/$health")[-1].payload)
                    return health["bus"]["reconnects"] >= 2 and health["state"] == "ready"

                wait_for(reconnected, 10, "$health counting the reopened line")


def test_the_bridge_rides_out_a_ser2net_restart_over_rfc2217(tmp_path: Path, broker: Broker) -> None:
    """The field set-up: the heat pump's RS-485 adapter behind ser2net on another Pi. ser2net
    restarting (an upgrade, a reboot of that Pi) is an alert, not the end of the bridge."""
    watch = observer(broker)
    s2n_dir = tmp_path / "ser2net"
    s2n_dir.mkdir()
    with Sim.start(tmp_path, "--no-drift") as sim, contextlib.ExitStack() as first_ser2net:
        s2n = first_ser2net.enter_context(Ser2net.start(s2n_dir, sim.url))
        with Bridge.start(tmp_path, broker, s2n.rfc2217_url) as bridge:
            ready = wait_state(watch, "ready")
            first_ser2net.close()  # ser2net stops: the bridge's connection is closed under it
            alert = wait_state(watch, "alert", after=ready)
            again = [SER2NET, "-n", "-d", "-u", "-c", str(s2n.conf), "-P", str(s2n_dir / "again.pid")]
            with running(again, log=s2n_dir / "again.log"):
                wait_for_port("127.0.0.1", s2n.rfc2217_port, READY_S)
                wait_state(watch, "ready", after=alert)
                assert bridge.process.poll() is None


def test_a_unit_that_stalls_silently_is_noticed_and_the_bridge_recovers_when_it_answers_again(
    tmp_path: Path, broker: Broker
) -> None:
    """Issue 104's silent stall: the line stays open but nothing answers. The bridge says alert,
    its watchdog reopens the line, and it is ready again once the unit answers."""
    watch = observer(broker)
    with (
        Sim.start(tmp_path, "--tcp", "127.0.0.1:0", "--no-drift") as sim,
        Bridge.start(tmp_path, broker, sim.url, "--watchdog-cycles", "3") as bridge,
    ):
        first = wait_state(watch, "ready")
        os.kill(sim.process.pid, signal.SIGSTOP)  # the socket stays open; no byte comes back
        try:
            alert = wait_state(watch, "alert", after=first)

            def reset() -> bool:
                health = json.loads(watch.received(f"homie/{DEMO_ID}/$health")[-1].payload)
                return health["poll"]["watchdog_resets"] >= 1

            wait_for(reset, 20, "a watchdog reset in $health")
        finally:
            os.kill(sim.process.pid, signal.SIGCONT)
        wait_state(watch, "ready", after=alert)
        assert bridge.process.poll() is None
        assert '"watchdog_bus_reset"' in (tmp_path / "bridge.log").read_text()


def test_a_bridge_started_before_its_line_exists_waits_and_comes_up_when_it_appears(
    tmp_path: Path, broker: Broker
) -> None:
    """docs/architecture.md#original-bridge R2: the original's first read was unprotected and ended the
    process."""
    port = free_port()
    watch = observer(broker)
    with Bridge.start(tmp_path, broker, f"tcp://127.0.0.1:{port}/", ready_deadline_s=None) as bridge:
        log = tmp_path / "bridge.log"
        wait_for(lambda: '"bus_reopen_failed"' in log.read_text(), READY_S, "a failed open in the log")
        assert bridge.process.poll() is None
        with Sim.start(tmp_path, "--tcp", f"127.0.0.1:{port}", "--no-drift"):
            wait_state(watch, "ready")
            assert bridge.process.poll() is None


def test_a_port_that_cannot_be_right_ends_the_bridge_with_a_usage_error(
    tmp_path: Path, broker: Broker
) -> None:
    """A mistake on the command line is reported in one line, not a traceback, and exits 2."""
    log = tmp_path / "bad.log"
    with Bridge.start(tmp_path, broker, "tcp://no-port-here/", name="bad", ready_deadline_s=None) as bridge:
        assert 2 == bridge.process.wait(30)
    text = log.read_text()
    assert '"bad_port"' in text
    assert "Traceback" not in text


def test_a_wrong_mqtt_password_is_logged_and_the_bridge_keeps_trying(
    tmp_path: Path, broker: Broker, sim_tcp: Sim
) -> None:
    """The broker may be misconfigured for a while; the bridge says why and never exits."""
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    log = tmp_path / "refused.log"
    with Bridge.start(
        tmp_path,
        broker,
        sim_tcp.url,
        name="refused",
        env={"AURORA_MQTT_PASSWORD_FILE": str(wrong)},
        poll=(),
        ready_deadline_s=None,
    ) as bridge:
        wait_for(lambda: '"mqtt_refused"' in log.read_text(), READY_S, "mqtt_refused in the bridge's log")
        assert bridge.process.poll() is None
    assert "not-the-password" not in log.read_text()


def test_a_broker_that_refuses_the_bridges_publishes_is_reported_once_not_every_cycle(
    tmp_path: Path, broker: Broker, sim_tcp: Sim
) -> None:
    """A user the ACL does not let write homie/# (here: fetch): MQTT 5 PUBACKs say so; the log
    names the ACL once a minute instead of at every health document, and the bridge keeps running."""
    log = tmp_path / "acl.log"
    with Bridge.start(
        tmp_path, broker, sim_tcp.url, user="fetch", name="acl", ready_deadline_s=None
    ) as bridge:
        wait_for(lambda: '"mqtt_publish_refused"' in log.read_text(), READY_S, "mqtt_publish_refused")
        wait_for(lambda: '"homie_state"' in log.read_text(), READY_S, "the tree published (and refused)")
        assert bridge.process.poll() is None
    # On SIGTERM the bridge waits for the PUBACK of `disconnected`, the last of ~1000 refused ones.
    assert 1 == log.read_text().count('"mqtt_publish_refused"')


def test_a_board_without_the_waterfurnace_function_codes_is_read_with_standard_reads(
    tmp_path: Path, broker: Broker
) -> None:
    """Commercial 17X553 boards refuse FC 65/66 (docs/protocol.md#original-bugs): the bridge still comes
    up."""
    watch = observer(broker)
    with (
        Sim.start(tmp_path, "--tcp", "127.0.0.1:0", "--no-drift", "--refuse-wf-codes") as sim,
        Bridge.start(tmp_path, broker, sim.url) as bridge,
    ):
        wait_state(watch, "ready")
        wait_for(lambda: value(watch, f"homie/{DEMO_ID}/dhw/set-point") == "130.0", 10, "values over FC 3")
        assert bridge.process.poll() is None
        assert '"wf_codes_unsupported"' in (tmp_path / "bridge.log").read_text()


def test_a_noisy_line_costs_retries_not_the_bridge(tmp_path: Path, broker: Broker) -> None:
    """docs/architecture.md#original-bridge R1 (issue 104, "Illegal function: 0"): garbled and lost replies
    are retried and counted; the bridge stays up and keeps publishing."""
    watch = observer(broker)
    faults = ["--corrupt", "0.15", "--drop", "0.1", "--stray", "0.1", "--seed", "7"]
    with (
        Sim.start(tmp_path, "--tcp", "127.0.0.1:0", *faults) as sim,
        Bridge.start(tmp_path, broker, sim.url) as bridge,
    ):
        wait_state(watch, "ready")

        def counted() -> bool:
            health = json.loads(watch.received(f"homie/{DEMO_ID}/$health")[-1].payload)
            bus = health["bus"]
            return health["poll"]["good_cycles"] >= 10 and bus["retries"] >= 3 and bus["frame_errors"] >= 1

        wait_for(counted, 60, "ten good cycles with retries and frame errors counted in $health")
        assert bridge.process.poll() is None
        assert "Traceback" not in (tmp_path / "bridge.log").read_text()


def test_without_homie_attributes_the_values_state_and_set_still_work(
    tmp_path: Path, broker: Broker, sim_tcp: Sim
) -> None:
    """--no-homie: only $state, $health and values, as in the original (docs/architecture.md#homie-tree)."""
    watch = observer(broker)
    with Bridge.start(tmp_path, broker, sim_tcp.url, "--no-homie", "--no-home-assistant", "--debug-modbus"):
        wait_state(watch, "ready")
        watch.barrier(f"homie/{DEMO_ID}/$state")
        topics = set(watch.topics())
        assert f"homie/{DEMO_ID}/dhw/set-point" in topics
        assert f"homie/{DEMO_ID}/$health" in topics
        assert not [t for t in topics if "/$" in t and not t.endswith(("/$state", "/$health"))]
        publish(watch.client, f"homie/{DEMO_ID}/dhw/set-point/set", "127")
        wait_for(lambda: value(watch, f"homie/{DEMO_ID}/dhw/set-point") == "127.0", 10, "read-back published")
    # --debug-modbus logs frames from the very first request on (docs/architecture.md#original-bridge U8: the
    # original could not).
    first_line = next(line for line in (tmp_path / "bridge.log").read_text().splitlines() if '"tx"' in line)
    assert '"frame"' in first_line


def test_switching_to_no_homie_clears_the_attributes_an_earlier_run_left(
    tmp_path: Path, broker: Broker, sim_tcp: Sim
) -> None:
    """A user who turns the Homie attributes off finds none left retained, values kept."""
    root = f"homie/{DEMO_ID}"
    with Bridge.start(tmp_path, broker, sim_tcp.url, "--no-home-assistant", name="with-homie"):
        wait_state(observer(broker), "ready")
    watch = observer(broker)
    with Bridge.start(tmp_path, broker, sim_tcp.url, "--no-homie", "--no-home-assistant", name="without"):
        wait_state(watch, "ready")
    late = Collector(broker.client("homeassistant"), f"{root}/#")
    late.barrier(f"{root}/$state")
    retained = {m.topic for m in late.messages if m.retain}
    assert f"{root}/dhw/set-point" in retained
    attributes = sorted(t for t in retained if "/$" in t and not t.endswith(("/$state", "/$health")))
    assert not attributes, attributes[:10]


def test_after_a_broker_restart_the_bridge_is_ready_again_and_set_still_works(
    tmp_path: Path, sim_tcp: Sim
) -> None:
    """docs/architecture.md#original-bridge R5: the original lost its subscriptions on reconnect."""
    writes_file = tmp_path / "writes.log"
    with RestartableBroker.started(tmp_path) as broker, Bridge.start(tmp_path, broker, sim_tcp.url) as bridge:
        watch = observer(broker)
        wait_state(watch, "ready")
        broker.down()
        broker.up()
        watch = observer(broker)
        # Connected again: init then ready, sent by the bridge after this reconnect.
        wait_for(
            lambda: states(watch)[-2:] == ["init", "ready"], READY_S, f"init, ready (seen {states(watch)})"
        )
        publish(watch.client, f"homie/{DEMO_ID}/dhw/set-point/set", "128")
        wait_for(lambda: (401, 1280) in write_log(writes_file), 10, "the write after the broker restart")
        wait_for(lambda: value(watch, f"homie/{DEMO_ID}/dhw/set-point") == "128.0", 10, "read-back published")
        assert bridge.process.poll() is None


def test_stale_retained_topics_of_an_earlier_run_are_removed_and_current_ones_kept(
    tmp_path: Path, broker: Broker, sim_tcp: Sim
) -> None:
    """docs/architecture.md#original-bridge U4: a node that no longer exists must not linger in Home
    Assistant."""
    root = f"homie/{DEMO_ID}"
    old = broker.client("bridge")
    publish(old, f"{root}/oldnode/oldprop", "1", retain=True)
    publish(old, f"{root}/oldnode/$name", "Old", retain=True)
    publish(old, f"homeassistant/sensor/{DEMO_ID}/oldnode_oldprop/config", "{}", retain=True)
    publish(old, f"{root}/dhw/set-point", "99.0", retain=True)
    watch = observer(broker)
    with Bridge.start(tmp_path, broker, sim_tcp.url):
        wait_state(watch, "ready")
    late = Collector(broker.client("homeassistant"), f"{root}/#", f"homeassistant/+/{DEMO_ID}/#")
    late.barrier(f"{root}/$state")
    retained = {m.topic: m.payload.decode() for m in late.messages if m.retain}
    assert f"{root}/oldnode/oldprop" not in retained
    assert f"{root}/oldnode/$name" not in retained
    assert f"homeassistant/sensor/{DEMO_ID}/oldnode_oldprop/config" not in retained
    assert "130.0" == retained[f"{root}/dhw/set-point"]
    assert "disconnected" == retained[f"{root}/$state"]  # SIGTERM is a clean shutdown


def test_two_bridges_share_one_broker_without_colliding(tmp_path: Path, broker: Broker, sim_tcp: Sim) -> None:
    """One bridge per heat pump: own device id, own client id, own $state (one on MQTT 3.1.1)."""
    regs = demo_registers()
    serial = "2611000077"
    for i, address in enumerate(range(105, 110)):
        pair = serial[2 * i : 2 * i + 2]
        regs[address] = (ord(pair[0]) << 8) | ord(pair[1])
    dump = tmp_path / "second.yml"
    dump.write_text("".join(f"{a}: {v}\n" for a, v in sorted(regs.items())))
    assert load_dump(dump)[105] == regs[105]
    other = f"aurora-{serial}"
    watch = Collector(broker.client("homeassistant"), "homie/+/$state")
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    with (
        Sim.start(second_dir, str(dump), "--tcp", "127.0.0.1:0", "--no-drift") as sim2,
        Bridge.start(tmp_path, broker, sim_tcp.url) as first,
        Bridge.start(
            tmp_path, broker, sim2.url, "--mqtt-protocol", "3.1.1", name="bridge2", device_id=other
        ) as second,
    ):
        wait_state(watch, "ready")
        wait_state(watch, "ready", device_id=other)
        assert first.process.poll() is None and second.process.poll() is None
        # Neither was kicked off the broker by the other (duplicate client ids reconnect in a loop).
        assert ["ready"] == [s for s in states(watch) if s != "init"]
        assert ["ready"] == [s for s in states(watch, other) if s != "init"]
        # openHAB's Homie discovery subscribes to the whole tree at QoS 1: every retained attribute of
        # both units must arrive (mosquitto's default queue of 1000 messages per client dropped some).
        tree = Collector(broker.client("homeassistant"), "homie/#")
        names = {
            f"homie/{device_id}/{suffix}"
            for device_id in (DEMO_ID, other)
            for suffix, _ in demo_unit().description()
            if suffix.endswith("$name")
        }
        wait_for(lambda: names <= set(tree.topics()), 30, "every $name of both units")
