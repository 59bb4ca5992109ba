"""mosquitto with the repository's own config, ACL and a fresh ``aurora_setup`` directory.

    with Broker.start(tmp_path) as broker:
        fetch = broker.client("fetch")                         # connected, TLS, paho 2.x
        replies = Collector(fetch, "homie/+/$modbus/response/fetch/" + fetch_id)
        ...
        replies.wait_for("homie/aurora-1/$modbus/response/fetch/" + fetch_id, deadline_s=5)

The setup directory lives in its own directory under /tmp, not in ``tmp_path``: mosquitto, started
as root, reads its files as user ``mosquitto`` and cannot pass pytest's 0700 base directory.
The listener is moved to a free port on 127.0.0.1; everything else is the repository's config.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from aurora.setup.layout import Layout
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from .processes import HOST, free_port, running, tail, wait_for, wait_for_port

REPO = Path(__file__).resolve().parents[2]
MOSQUITTO_SOURCE = REPO / "mosquitto"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
START_S = 15.0
RESTART_S = 30.0  # a restarted mosquitto accepting connections again
CONNECT_S = 10.0

MQTTv311 = mqtt.MQTTv311
MQTTv5 = mqtt.MQTTv5


class MqttRefused(ConnectionError):
    """The broker answered CONNECT with a failure reason code (e.g. "Not authorized")."""

    def __init__(self, reason: ReasonCode) -> None:
        super().__init__(f"connection refused: {reason}")
        self.reason = reason


def local_config(
    rendered: str, port: int, host: str = HOST, *, wss_port: int | None = None, ws_port: int | None = None
) -> str:
    """``aurora_setup``'s mosquitto.conf with its TLS listener moved to ``host:port``.

    ``wss_port``: the config has the WebSocket listener too (``aurora_setup --websocket-port``),
    moved there. ``ws_port``: a plain WebSocket listener is added there, for tests of ``ws://``
    only (the project's config has no plain listener; passwords and ACL are the same for all)."""
    ports = iter([port] if wss_port is None else [port, wss_port])
    expected = 1 if wss_port is None else 2
    text, count = re.subn(
        r"^listener\s+\d+\s*$", lambda _: f"listener {next(ports)} {host}", rendered, flags=re.MULTILINE
    )
    if count != expected:
        raise ValueError(f"expected {expected} 'listener PORT' lines in mosquitto.conf, found {count}")
    if ws_port is not None:
        text += (
            f"\n# tests only: plain MQTT over WebSockets\nlistener {ws_port} {host}\nprotocol websockets\n"
        )
    return text


def run_setup(root: Path, log: Path, *extra: str, command: Sequence[str] | None = None) -> None:
    """The project's setup command into ``root`` (its output, which has no secrets, to ``log``).

    ``command`` replaces ``python -m aurora.setup --mosquitto-source <repo>/mosquitto`` (e.g. an
    installed ``aurora_setup`` that must find its files by itself).
    """
    if command is None:
        command = [sys.executable, "-m", "aurora.setup", "--mosquitto-source", str(MOSQUITTO_SOURCE)]
    argv = [*command, "--dir", str(root)]
    with log.open("ab") as out:
        done = subprocess.run([*argv, *extra], stdout=out, stderr=subprocess.STDOUT, check=False, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"aurora_setup exited with {done.returncode}:\n{tail(log)}")


def broker_data_dir(root: Path) -> Path:
    """A persistence directory the broker can write after dropping to user mosquitto."""
    data = root / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam("mosquitto")
            os.chown(data, entry.pw_uid, entry.pw_gid)
    return data


@dataclass
class Broker:
    """A running mosquitto and the setup directory it uses."""

    root: Path
    tls_port: int
    log: Path
    host: str = HOST
    wss_port: int | None = None  # Broker.start(websockets=True): the setup's wss:// listener
    ws_port: int | None = None  # and a plain ws:// one (tests only)
    _clients: list[mqtt.Client] = field(default_factory=list, repr=False)

    @property
    def layout(self) -> Layout:
        return Layout(self.root)

    @property
    def ca_file(self) -> Path:
        path: Path = self.layout.ca_cert
        return path

    def password_file(self, user: str) -> Path:
        """The file with ``user``'s password; ``"web-ui"`` is the web login password."""
        path: Path = self.layout.web_ui_password if user == "web-ui" else self.layout.password(user)
        return path

    def password(self, user: str) -> str:
        return self.password_file(user).read_text(encoding="utf-8").strip()

    def url(self, user: str, path: str = "", *, scheme: str = "mqtts") -> str:
        """``mqtts://user@127.0.0.1:PORT/path``: no password, tools read it from a file.

        ``scheme`` ``wss`` or ``ws``: the WebSocket listeners (``path`` is then the WebSocket's)."""
        port = {"mqtts": self.tls_port, "wss": self.wss_port, "ws": self.ws_port}[scheme]
        if port is None:
            raise ValueError(f"no {scheme}:// listener: start the broker with websockets=True")
        return f"{scheme}://{user}@{self.host}:{port}/{path.lstrip('/')}"

    def client(
        self,
        user: str | None,
        client_id: str | None = None,
        protocol: MQTTProtocolVersion = MQTTv311,
        *,
        password: str | None = None,
        ca_file: Path | bool | None = True,
        deadline_s: float = CONNECT_S,
    ) -> mqtt.Client:
        """A connected paho client (VERSION2 callbacks, TLS, TCP_NODELAY, network loop running).

        ``user`` None connects anonymously; ``password`` overrides the user's own; ``ca_file``
        True is the broker's CA, None the system's trusted CAs. Raises ``MqttRefused`` when the
        broker refuses the login and ``ssl.SSLError`` when TLS fails. Disconnected on exit.
        """
        cid = client_id or f"{user or 'anonymous'}-{uuid.uuid4().hex[:12]}"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=cid, protocol=protocol, reconnect_on_failure=False
        )
        client.suppress_exceptions = True
        if user is not None:
            client.username_pw_set(user, self.password(user) if password is None else password)
        cafile = str(self.ca_file) if ca_file is True else (str(ca_file) if ca_file else None)
        client.tls_set_context(ssl.create_default_context(cafile=cafile))
        answer: list[ReasonCode] = []
        connacked = threading.Event()

        def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
            answer.append(reason)
            connacked.set()

        client.on_connect = on_connect
        client.connect(self.host, self.tls_port, keepalive=30)
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.loop_start()
        if not connacked.wait(deadline_s):
            client.loop_stop()
            raise TimeoutError(f"no CONNACK for {cid} within {deadline_s:g} s")
        if answer[0].is_failure:
            client.loop_stop()
            raise MqttRefused(answer[0])
        self._clients.append(client)
        return client

    def close_clients(self) -> None:
        for client in self._clients:
            client.disconnect()
            client.loop_stop()
        self._clients.clear()

    @classmethod
    @contextlib.contextmanager
    def start(
        cls,
        tmp_path: Path,
        *,
        port: int | None = None,
        setup_command: Sequence[str] | None = None,
        websockets: bool = False,
        homie_root: str = "homie",
    ) -> Iterator[Broker]:
        """Run ``aurora_setup`` (or ``setup_command``, see ``run_setup``) and mosquitto.

        ``websockets``: with the setup's wss:// listener (``--websocket-port``) and a plain ws://
        one. ``homie_root``: the ACL's rules for ``homie/`` made for that root instead, as
        mosquitto/README.md says for ``--homie-root``. Logs go to ``tmp_path``; everything ends on exit.
        """
        root = Path(tempfile.mkdtemp(prefix="aurora-broker-"))
        try:
            root.chmod(0o711)  # user mosquitto may pass through, not list
            data = broker_data_dir(root)
            wss_port, ws_port = (free_port(), free_port()) if websockets else (None, None)
            extra = ("--websocket-port", str(wss_port)) if wss_port else ()
            run_setup(root, tmp_path / "setup.log", "--broker-data", str(data), *extra, command=setup_command)
            if homie_root != "homie":
                acl = Layout(root).acl
                acl.write_text(re.sub(r"(?<=\s)homie/", f"{homie_root}/", acl.read_text()))
            port = port or free_port()
            conf = tmp_path / "mosquitto.conf"  # read as root, before the switch to mosquitto
            rendered = Layout(root).broker_conf.read_text()
            conf.write_text(local_config(rendered, port, wss_port=wss_port, ws_port=ws_port))
            log = tmp_path / "mosquitto.log"
            with running([MOSQUITTO, "-c", str(conf)], log=log) as process:
                broker = cls(root=root, tls_port=port, log=log, wss_port=wss_port, ws_port=ws_port)

                def started() -> bool:
                    if process.poll() is not None:
                        raise RuntimeError(f"mosquitto exited with {process.returncode}:\n{tail(log)}")
                    return " running" in tail(log, 20)

                wait_for(started, START_S, "'mosquitto ... running' in the broker log")
                try:
                    yield broker
                finally:
                    broker.close_clients()
        finally:
            shutil.rmtree(root, ignore_errors=True)


class RestartableBroker(Broker):
    """The project's broker whose mosquitto a test can stop and start again on the same port."""

    conf: Path = Path()
    process: subprocess.Popen[bytes] | None = None
    _stack: contextlib.ExitStack | None = None

    def up(self) -> None:
        """Start mosquitto (same config, port, passwords and persistence as before)."""
        self._stack = contextlib.ExitStack()
        self.process = process = self._stack.enter_context(
            running([MOSQUITTO, "-c", str(self.conf)], log=self.log)
        )

        def started() -> bool:
            # its own "running" line (running() starts the log afresh), not a port that answers:
            # another process may hold the port
            if process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {process.returncode}:\n{tail(self.log)}")
            return " running" in tail(self.log, 20)

        wait_for(started, RESTART_S, "'mosquitto ... running' in the broker log")
        wait_for_port(self.host, self.tls_port, RESTART_S)

    def down(self) -> None:
        """Stop mosquitto and reap it."""
        assert self._stack is not None
        self.close_clients()
        self._stack.close()
        self._stack = None

    def restart(self) -> None:
        """``down`` then ``up``: every client is disconnected, the bridge must reconnect."""
        self.down()
        self.up()

    @classmethod
    @contextlib.contextmanager
    def started(cls, tmp_path: Path) -> Iterator[RestartableBroker]:
        """Run ``aurora_setup`` and mosquitto like ``Broker.start``; stopped and removed on exit."""
        root = Path(tempfile.mkdtemp(prefix="aurora-broker-"))
        try:
            root.chmod(0o711)  # user mosquitto may pass through, not list
            data = broker_data_dir(root)
            run_setup(root, tmp_path / "setup.log", "--broker-data", str(data))
            port = free_port()
            conf = tmp_path / "mosquitto.conf"
            conf.write_text(local_config(Layout(root).broker_conf.read_text(), port))
            broker = cls(root=root, tls_port=port, log=tmp_path / "mosquitto.log")
            broker.conf = conf
            broker.up()
            try:
                yield broker
            finally:
                if broker._stack is not None:
                    broker.down()
        finally:
            shutil.rmtree(root, ignore_errors=True)


class Collector:
    """Subscribes a client and keeps every message it receives, so tests can wait for delivery.

    mosquitto grants every SUBSCRIBE and filters at delivery, so only delivery proves a right.
    ``barrier`` proves the absence of a message: after it returns, everything the broker had
    queued for this client before the call has arrived.
    """

    def __init__(self, client: mqtt.Client, *filters: str, qos: int = 1) -> None:
        self.client = client
        self.messages: list[mqtt.MQTTMessage] = []
        self._changed = threading.Condition()
        self._subacks: dict[int, int] = {}  # mid -> number of messages received before its SUBACK
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        if filters:
            self.subscribe(*filters, qos=qos)

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        with self._changed:
            self._subacks[mid] = len(self.messages)
            self._changed.notify_all()

    def subscribe(self, *filters: str, qos: int = 1, deadline_s: float = CONNECT_S) -> int:
        """Subscribe and wait for the SUBACK (which mosquitto grants even without read rights).

        Returns how many messages had arrived before the SUBACK.
        """
        result, mid = self.client.subscribe([(f, qos) for f in filters])
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise ConnectionError(f"SUBSCRIBE {filters} failed: {result}")
        with self._changed:
            if not self._changed.wait_for(lambda: mid in self._subacks, deadline_s):
                raise TimeoutError(f"no SUBACK for {filters} within {deadline_s:g} s")
            return self._subacks.pop(mid)

    def received(self, topic_filter: str) -> list[mqtt.MQTTMessage]:
        """The messages so far whose topic matches ``topic_filter`` (a topic or a filter)."""
        with self._changed:
            return [m for m in self.messages if mqtt.topic_matches_sub(topic_filter, m.topic)]

    def topics(self) -> list[str]:
        with self._changed:
            return [m.topic for m in self.messages]

    def wait_for(self, topic: str, deadline_s: float = 5.0, *, count: int = 1) -> mqtt.MQTTMessage:
        """The ``count``-th message on ``topic`` (a topic or a filter); TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._matching(topic)) >= count, deadline_s):
                seen = sorted({m.topic for m in self.messages})
                raise TimeoutError(f"no message #{count} on {topic} within {deadline_s:g} s; got {seen}")
            return self._matching(topic)[count - 1]

    def _matching(self, topic_filter: str) -> list[mqtt.MQTTMessage]:
        return [m for m in self.messages if mqtt.topic_matches_sub(topic_filter, m.topic)]

    def barrier(self, retained_topic: str, deadline_s: float = 5.0, *, payload: bytes | None = None) -> None:
        """Wait until everything the broker queued for this client before the call has arrived.

        Subscribes again to ``retained_topic``, which must hold a retained message this client
        may read; mosquitto handles one client's packets in order and queues the retained copy
        behind whatever it had queued for the client already. Pass the retained ``payload`` when
        the topic's retained message was just replaced with a unique one (then a live copy counts
        as well): without it, a copy of an older retained message still in flight could be taken
        for the new one.
        """
        start = self.subscribe(retained_topic, deadline_s=deadline_s)

        def arrived() -> bool:
            candidates = self.messages if payload is not None else self.messages[start:]
            return any(
                mqtt.topic_matches_sub(retained_topic, m.topic) and payload in (None, m.payload)
                for m in candidates
            )

        with self._changed:
            if not self._changed.wait_for(arrived, deadline_s):
                raise TimeoutError(f"no retained message on {retained_topic} within {deadline_s:g} s")


def publish(client: mqtt.Client, topic: str, payload: str | bytes = b"", *, retain: bool = False) -> None:
    """QoS 1 publish that returns once the broker has acknowledged (and so routed) it."""
    info = client.publish(topic, payload, qos=1, retain=retain)
    info.wait_for_publish(timeout=CONNECT_S)
    if not info.is_published():
        raise TimeoutError(f"no PUBACK for {topic} within {CONNECT_S:g} s")


ACCUMULATING_NODES = frozenset({"energy"})
"""Nodes whose values integrate over elapsed time (the energy counters and COP): two runs of different
length rightly publish different values there, so value-for-value comparisons leave them out."""


def live_values(
    watch: Collector, *, skip_nodes: frozenset[str] = ACCUMULATING_NODES
) -> list[tuple[str, str]]:
    """Every value published live (not retained from an earlier run) on a property topic, in order."""
    out = []
    for m in list(watch.messages):
        parts = m.topic.split("/")
        if m.retain or len(parts) != 4 or parts[2].startswith("$") or parts[3].startswith("$"):
            continue
        if parts[2] in skip_nodes:
            continue
        out.append((m.topic, m.payload.decode()))
    return out
